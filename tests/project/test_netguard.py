"""Outbound calls to addresses a team chooses (HTTP tools, provider base URLs) reach only
public addresses, unless the operator allows a host. Nothing here sends a packet anywhere
but 127.0.0.1: every refusal happens before a connection is opened."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest

from assistants_app.tools import ToolDefinitionError, ToolFailed, call_http_tool, validate_tools
from project import netguard
from project.config import Config, ConfigError
from project.outbound_rules import literal_address, parse_rules
from project.providers.models import ProviderConnection, ProviderKind
from project.providers.services import connection_test
from tests.factories import make_connection
from tests.project.test_config import GOOD

INTERNAL_URLS = [
    "http://127.0.0.1/hook", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook", "http://[::1]/hook",
    "http://2130706433/hook", "http://0x7f000001/hook", "http://0177.0.0.1/hook", "http://127.1/hook",
    "http://metadata.google.internal/computeMetadata/v1/", "http://[::ffff:127.0.0.1]/hook", "http://localhost/hook",
    "http://192.168.1.10:5432/", "http://[fd00::1]/hook", "http://0.0.0.0:5432/",
]


class _Hits(BaseHTTPRequestHandler):
    """Answers 200, or redirects when the server has a `location`; counts what it got."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        server.hits.append((self.path, self.headers.get("Host")))
        location = server.location
        body = b'{"object": "list", "data": []}'
        self.send_response(307 if location else 200)
        if location:
            self.send_header("Location", location + self.path)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    hits: list[tuple[str, str | None]]
    location: str


def _serve(location: str = "") -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Hits)
    server.hits = []
    server.location = location
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def inner() -> Iterator[_Server]:
    """A server on a loopback port nobody allowed: it must never be reached."""
    yield from _serve()


@pytest.fixture
def nothing_allowed(settings) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = []
    settings.SANDBOX_URL = ""


def _port(server: _Server) -> int:
    return int(server.server_address[1])


UNSPECIFIED = "0.0.0.0"  # noqa: S104 (an address to refuse, not one to bind)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.0.1", "169.254.169.254",
                                     "100.64.0.1", UNSPECIFIED, "224.0.0.1", "240.0.0.1", "255.255.255.255", "::1", "::",
                                     "fe80::1", "fd00::1", "ff02::1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe",
                                     "2002:7f00:1::1"])
def test_internal_addresses_are_recognised(address: str) -> None:
    assert netguard.is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_not_internal(address: str) -> None:
    assert not netguard.is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_an_http_tool_at_an_internal_address_is_refused_when_saved(nothing_allowed, url: str) -> None:
    with pytest.raises(ToolDefinitionError, match=r"not allowed|OUTBOUND_ALLOWED_HOSTS"):
        validate_tools([{"name": "probe", "binding": "http", "url": url}])


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_an_http_tool_at_an_internal_address_is_refused_when_called(nothing_allowed, url: str) -> None:
    """A tool saved before the rule existed (or a host whose DNS changed) is checked at the call."""
    tool = {"name": "probe", "binding": "http", "url": url, "timeout": 2.0}
    with pytest.raises(ToolFailed, match="OUTBOUND_ALLOWED_HOSTS"):
        call_http_tool(tool=tool, arguments={}, secret="s", call_id="c")


def test_a_name_that_resolves_to_loopback_is_refused_before_connecting(nothing_allowed, inner) -> None:
    tool = {"name": "probe", "binding": "http", "url": f"http://localhost:{_port(inner)}/x", "timeout": 2.0}
    with pytest.raises(ToolFailed, match="OUTBOUND_ALLOWED_HOSTS"):
        call_http_tool(tool=tool, arguments={}, secret="s", call_id="c")
    # Past the name check, the resolved address is what is refused.
    with netguard.guarded_client() as client, pytest.raises(netguard.OutboundRefused,
                                                            match=r"localhost \(127\.0\.0\.1\) is internal"):
        client.get(f"http://localhost:{_port(inner)}/x")
    assert inner.hits == []


def test_an_operator_allowed_host_and_port_is_called(settings, inner) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{_port(inner)}"]
    tool = validate_tools([{"name": "probe", "binding": "http", "url": f"http://127.0.0.1:{_port(inner)}/x"}])[0]
    assert call_http_tool(tool=tool, arguments={}, secret="s", call_id="c").startswith('{"object"')
    # Another port of the same address is still refused.
    with pytest.raises(ToolDefinitionError, match="OUTBOUND_ALLOWED_HOSTS"):
        validate_tools([{"name": "probe", "binding": "http", "url": f"http://127.0.0.1:{_port(inner) + 1}/x"}])


def test_a_tool_endpoint_that_redirects_is_not_followed(settings, inner) -> None:
    for outer in _serve(location=f"http://127.0.0.1:{_port(inner)}"):
        settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{_port(outer)}"]
        tool = {"name": "probe", "binding": "http", "url": f"http://127.0.0.1:{_port(outer)}/x", "timeout": 2.0}
        with pytest.raises(ToolFailed, match="redirects are not followed"):
            call_http_tool(tool=tool, arguments={}, secret="s", call_id="c")
    assert inner.hits == []


def test_each_redirect_hop_is_checked(settings, inner) -> None:
    for outer in _serve(location=f"http://127.0.0.1:{_port(inner)}"):
        settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{_port(outer)}"]
        with netguard.guarded_client(follow_redirects=True) as client, pytest.raises(netguard.OutboundRefused):
            client.get(f"http://127.0.0.1:{_port(outer)}/start")
        assert outer.hits
    assert inner.hits == []


def test_a_provider_redirect_to_an_internal_address_is_refused(team, settings, inner) -> None:
    for outer in _serve(location=f"http://127.0.0.1:{_port(inner)}"):
        settings.OUTBOUND_ALLOWED_HOSTS = [f"127.0.0.1:{_port(outer)}"]
        connection = make_connection(team, base_url=f"http://127.0.0.1:{_port(outer)}/v1")
        result = connection_test(connection=connection)
    assert not result.ok and "OUTBOUND_ALLOWED_HOSTS" in result.message
    assert inner.hits == []


def test_the_checked_address_is_the_one_connected_to(settings, inner) -> None:
    """The URL's name is resolved once and the connection pinned to that address; the
    server still sees the name in the Host header."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.0/8"]
    with netguard.guarded_client() as client:
        assert client.get(f"http://localhost:{_port(inner)}/pinned").status_code == 200
    assert inner.hits == [("/pinned", f"localhost:{_port(inner)}")]


@pytest.mark.parametrize("base_url", ["http://10.0.0.1/v1", "http://169.254.169.254/v1", "http://localhost:11434/v1"])
def test_a_provider_connection_at_an_internal_address_is_refused_at_call_time(team, nothing_allowed,
                                                                              base_url: str) -> None:
    connection = make_connection(team, base_url=base_url)  # saved before the rule, or by hand
    result = connection_test(connection=connection)
    assert not result.ok
    assert "ask your operator to add the host to OUTBOUND_ALLOWED_HOSTS" in result.message


def _connection_form(**overrides: str) -> dict[str, str]:
    return {"kind": "compatible", "name": "Local", "api_key": "sk-local-1234", **overrides}


@pytest.mark.parametrize(("base_url", "message"), [
    ("ftp://files.example.com/v1", "Only http:// and https://"),
    ("//169.254.169.254/", "with its scheme"),
    ("http://169.254.169.254/v1", "OUTBOUND_ALLOWED_HOSTS"),
    ("http://127.0.0.1:8080/v1", "ask your operator to add the host to OUTBOUND_ALLOWED_HOSTS"),
    ("http://[::1]:8080/v1", "OUTBOUND_ALLOWED_HOSTS"),
])
def test_the_connection_form_refuses_internal_and_odd_base_urls(owner_client, team, nothing_allowed, base_url: str,
                                                                 message: str) -> None:
    response = owner_client.post("/settings/connections/new/", _connection_form(base_url=base_url))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ProviderConnection.objects.filter(team=team).exists()


def test_a_local_server_the_operator_allowed_can_be_added(owner_client, team, settings) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1:8080"]
    owner_client.post("/settings/connections/new/", _connection_form(base_url="http://127.0.0.1:8080/v1"))
    assert ProviderConnection.objects.get(team=team).base_url == "http://127.0.0.1:8080/v1"


def test_the_operators_sandbox_is_allowed_without_a_list(owner_client, team, settings, sandbox_url) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = []
    settings.SANDBOX_URL = sandbox_url
    owner_client.post("/settings/connections/new/", _connection_form(kind=ProviderKind.SANDBOX, base_url=sandbox_url))
    connection = ProviderConnection.objects.get(team=team)
    assert connection_test(connection=connection).ok


def test_the_allowed_list_is_read_from_the_environment() -> None:
    config = Config.from_environ({**GOOD, "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1:8080, llm.internal, 10.0.0.0/8, ::1"})
    assert config.outbound_allowed_hosts == ["127.0.0.1:8080", "llm.internal", "10.0.0.0/8", "::1"]
    with pytest.raises(ConfigError, match="OUTBOUND_ALLOWED_HOSTS"):
        Config.from_environ({**GOOD, "OUTBOUND_ALLOWED_HOSTS": "10.0.0.0/99"})


@pytest.mark.parametrize(("rule", "host", "port", "allowed"), [
    ("127.0.0.1:8080", "127.0.0.1", 8080, True),
    ("127.0.0.1:8080", "127.0.0.1", 8081, False),
    ("LLM.internal", "llm.internal", 443, True),
    ("[::1]:8080", "::1", 8080, True),
    ("2130706433", "127.0.0.1", 80, True),
    ("10.0.0.0/8", "10.2.3.4", 443, True),
])
def test_a_rule_the_start_up_check_accepts_is_applied_as_written(rule: str, host: str, port: int, allowed: bool) -> None:
    config = Config.from_environ({**GOOD, "OUTBOUND_ALLOWED_HOSTS": rule})
    rules = parse_rules(config.outbound_allowed_hosts)
    address = literal_address(host)
    assert (rules.allows_host(host, port) or (address is not None and rules.allows_address(address))) is allowed


@pytest.mark.parametrize("rule", ["10.0.0.0/99", "llm.internal/v1", "user@llm.internal", ":8080", "llm.internal:http"])
def test_a_rule_the_guard_could_not_apply_stops_the_start(rule: str) -> None:
    with pytest.raises(ConfigError, match="OUTBOUND_ALLOWED_HOSTS"):
        Config.from_environ({**GOOD, "OUTBOUND_ALLOWED_HOSTS": rule})


def test_a_guarded_client_refuses_other_schemes() -> None:
    with netguard.guarded_client() as client, pytest.raises((netguard.OutboundRefused, httpx2.UnsupportedProtocol)):
        client.get("ftp://127.0.0.1/")


@pytest.mark.parametrize(("sandbox", "host", "port"), [
    ("http://[::1]/v1", "::1", 80),  # no port: read as "::1:80", another address, before d1d7842
    ("http://[::1]:8100/v1", "::1", 8100),
    ("https://user:pw@127.0.0.1/v1", "127.0.0.1", 443),
])
def test_the_sandbox_url_allows_its_own_host_and_port_only(settings, sandbox: str, host: str, port: int) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = []
    settings.SANDBOX_URL = sandbox
    assert netguard.check_host(host, port).pinned is None  # allowed by the operator's rule, not resolved
    with pytest.raises(netguard.OutboundRefused, match="OUTBOUND_ALLOWED_HOSTS"):
        netguard.check_host(host, port + 1)
