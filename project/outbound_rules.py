"""OUTBOUND_ALLOWED_HOSTS, parsed in one place: config checks every rule at start with
`parse_rule` (a bad one is named in the start-up error), netguard applies them with
`parse_rules`. No Django and no HTTP client here, because config imports it before
settings exist.

A rule is `host`, `host:port`, `[v6]:port`, an address (`10.1.2.3`, `::1`, also the old
numeric forms such as 2130706433) or a network (`10.0.0.0/8`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
type IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
type Rule = tuple[str, int | None] | IPNetwork


@dataclass(frozen=True)
class Rules:
    hosts: frozenset[tuple[str, int | None]]
    networks: tuple[IPNetwork, ...]

    def allows_host(self, host: str, port: int) -> bool:
        return (host, None) in self.hosts or (host, port) in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names by itself: 127.0.0.1, ::1, and the old numeric forms
    (2130706433, 0x7f000001, 0177.0.0.1, 127.1) that resolvers and browsers accept."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(ch in "0123456789abcdefx." for ch in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def parse_rule(text: str) -> Rule:
    """A (host, port or None) pair, or a network; ValueError for anything else."""
    text = text.strip().lower()
    try:
        return ipaddress.ip_network(text, strict=False)  # an address or a network
    except ValueError:
        pass
    if "/" in text or any(ch.isspace() for ch in text):
        raise ValueError(f"{text!r} is not a host, host:port or network")
    parts = urlsplit(f"//{text}")
    host = (parts.hostname or "").rstrip(".")
    port = parts.port  # ValueError when it is not a port number
    if not host or parts.username is not None or parts.path or parts.query or parts.fragment:
        raise ValueError(f"{text!r} is not a host, host:port or network")
    address = literal_address(host)
    if address is not None and port is None:
        return ipaddress.ip_network(address)
    return (str(address) if address is not None else host, port)


def parse_rules(texts: Iterable[str]) -> Rules:
    """Every good rule of `texts` (config has already named the bad ones at start)."""
    hosts: set[tuple[str, int | None]] = set()
    networks: list[IPNetwork] = []
    for text in texts:
        try:
            rule = parse_rule(text)
        except ValueError:
            continue
        if isinstance(rule, tuple):
            hosts.add(rule)
        else:
            networks.append(rule)
    return Rules(frozenset(hosts), tuple(networks))
