"""Outbound calls to addresses a team chooses: HTTP tools and provider base URLs.

A team member may type any URL, and the call is made from inside our network, so
without a check a URL reaches the cloud's metadata service (169.254.169.254), the
database port on localhost or any private host (server-side request forgery). Here a
URL may leave only for a public address:

- only http and https;
- the host is resolved when the call is made, and every address it resolves to must
  be public (not loopback, private, link-local, shared, reserved, multicast or
  unspecified, IPv4 or IPv6, IPv4-mapped and other embedded IPv4 included); numeric
  forms such as 2130706433 or 0x7f000001 resolve like any other host;
- the connection goes to the address that was checked (the transport puts it in the
  URL and keeps the name for the Host header and TLS), so a DNS answer that changes
  between the check and the connect (rebinding) cannot redirect it;
- each redirect hop goes through the same transport, so it is checked again.

An operator allows internal hosts in OUTBOUND_ALLOWED_HOSTS (`host`, `host:port`, an
address or a network such as 10.0.0.0/8); the sandbox at SANDBOX_URL is allowed too.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx2
from django.conf import settings

from project.outbound_rules import IPAddress, Rules, literal_address, parse_rules

SCHEMES = ("http", "https")
OPERATOR_HINT = "ask your operator to add the host to OUTBOUND_ALLOWED_HOSTS"
# Names of cloud metadata services that need not resolve to a link-local address.
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal"})
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, IPv4-compatible).
_EMBEDDED_V4 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"),
                ipaddress.ip_network("::/96"))


class OutboundRefused(ValueError):
    """The URL may not be called. The message is written for the person on the page."""


class OutboundUnresolvable(OutboundRefused):
    """The host has no address (DNS failed); not a refusal, but nothing to connect to."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    # The checked address to connect to; None when the operator allowed the host by name.
    pinned: IPAddress | None


def is_internal(address: IPAddress) -> bool:
    """True for every address that is not plainly a public unicast one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
            return is_internal(address.ipv4_mapped)
        embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and any(address in prefix for prefix in _EMBEDDED_V4):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and is_internal(embedded):
            return True
    return (not address.is_global or address.is_private or address.is_loopback or address.is_link_local
            or address.is_multicast or address.is_reserved or address.is_unspecified)


@lru_cache(maxsize=8)
def _parse_rules(texts: tuple[str, ...]) -> Rules:
    return parse_rules(texts)


def allowed_rules() -> Rules:
    texts = list(getattr(settings, "OUTBOUND_ALLOWED_HOSTS", []))
    sandbox = getattr(settings, "SANDBOX_URL", "")
    if sandbox:
        # The operator's own sandbox (make run starts it on 127.0.0.1): its host and port only.
        _, host, port = url_origin(sandbox)
        texts.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return _parse_rules(tuple(texts))


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _refusal(host: str, why: str) -> OutboundRefused:
    return OutboundRefused(f"The address {host} is {why}, which is not allowed; to use it, {OPERATOR_HINT}.")


def split_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or OutboundRefused with the reason."""
    if url.startswith("//"):
        raise OutboundRefused("Write the URL with its scheme (http:// or https://).")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundRefused("The URL is not valid (check the host and port).") from None
    if parts.scheme.lower() not in SCHEMES:
        raise OutboundRefused("Only http:// and https:// URLs can be called.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise OutboundRefused("The URL has no host.")
    return parts.scheme.lower(), host, port or _default_port(parts.scheme.lower())


def url_origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port: where a request (and the key in it) goes."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ("", url, None)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").rstrip("."), port or (_default_port(scheme) if scheme in SCHEMES else None)


def _resolve(host: str, port: int) -> list[IPAddress]:
    address = literal_address(host)
    if address is not None:
        return [address]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise OutboundUnresolvable(f"The host {host} could not be found (DNS).") from None
    found: list[IPAddress] = []
    for info in infos:
        found_address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if found_address not in found:
            found.append(found_address)
    return found


def check_host(host: str, port: int, *, resolve: bool = True) -> Target:
    """Check a host and port; with resolve=False only what the name itself shows
    (used when a form is saved and the host may not resolve yet)."""
    host = host.lower().rstrip(".")
    rules = allowed_rules()
    if rules.allows_host(host, port):
        return Target(host, port, None)
    if host in METADATA_NAMES:
        raise _refusal(host, "a cloud metadata service")
    literal = literal_address(host)
    if literal is None and not resolve:
        if host == "localhost" or host.endswith((".localhost", ".internal", ".local")):
            raise _refusal(host, "an internal name")
        return Target(host, port, None)
    addresses = _resolve(host, port)
    for address in addresses:
        if is_internal(address) and not rules.allows_address(address):
            where = host if literal is not None or str(address) == host else f"{host} ({address})"
            raise _refusal(where, "internal (loopback, private, link-local or reserved)")
    return Target(host, port, addresses[0])


def check_url(url: str, *, resolve: bool = True) -> Target:
    _, host, port = split_url(url)
    return check_host(host, port, resolve=resolve)


class GuardedTransport(httpx2.HTTPTransport):
    """An httpx2 transport that checks every request's host (every redirect hop too)
    and connects to the address it checked."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.scheme not in SCHEMES:
            raise OutboundRefused("Only http:// and https:// URLs can be called.")
        host = request.url.host
        target = check_host(host, request.url.port or _default_port(request.url.scheme))
        if target.pinned is not None and str(target.pinned) != host:
            # The Host header was set from the name when the request was built; TLS checks
            # the certificate against the name given as SNI.
            request.url = request.url.copy_with(host=str(target.pinned))
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        return super().handle_request(request)


def guarded_client(**options: Any) -> httpx2.Client:
    """An httpx2 client for URLs a team chose; redirects are off unless asked for."""
    transport_options = {key: options.pop(key) for key in ("verify",) if key in options}
    return httpx2.Client(transport=GuardedTransport(**transport_options), **options)
