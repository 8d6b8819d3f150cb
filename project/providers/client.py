"""The one place that builds an `openai` client for a connection and turns SDK
errors into the project's own, with a message a person can act on.

Everything that talks to a provider goes through `client_for` and
`provider_call`: timeouts and retries are set here, and the caller only ever
sees `ProviderError` (and its subclasses), never an SDK exception.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypedDict

import httpx2
import openai
from openai._constants import DEFAULT_CONNECTION_LIMITS

from project import netguard
from project.providers.models import ProviderConnection, ProviderKind
from project.providers.paced_reads import PacedBackend

log = logging.getLogger(__name__)

# Connect quickly or fail; reading may take long for streamed or big replies.
DEFAULT_TIMEOUT = httpx2.Timeout(60.0, connect=5.0)
DEFAULT_MAX_RETRIES = 2
# Sandbox and local servers need a key to be sent, but do not check it.
PLACEHOLDER_KEY = "sk-no-key-needed"


class ProviderError(Exception):
    """A provider call failed. `message` is written for the person on the page."""

    kind = "error"

    def __init__(self, message: str, *, status_code: int | None = None, request_id: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return False


class ProviderAuthError(ProviderError):
    kind = "auth"


class ProviderUnreachable(ProviderError):
    kind = "unreachable"

    @property
    def transient(self) -> bool:
        return True


class ProviderTimeout(ProviderError):
    kind = "timeout"

    @property
    def transient(self) -> bool:
        return True


class ProviderRateLimited(ProviderError):
    kind = "rate_limited"

    @property
    def transient(self) -> bool:
        return True


class ProviderNotFound(ProviderError):
    kind = "not_found"


class ProviderRejected(ProviderError):
    """The provider refused the request as invalid (400/409/422)."""

    kind = "rejected"


class ProviderServerError(ProviderError):
    kind = "server"

    @property
    def transient(self) -> bool:
        return True


def poll_backoff_seconds(failures: int, error: ProviderError | None, *, base: float, cap: float) -> float:
    """How long a poller waits after its n-th failure in a row (or its n-th look at work
    not done yet, `error` None): doubling from `base` up to `cap`, and never less than
    the provider's retry-after."""
    delay = min(cap, base * 2 ** min(failures - 1, 30))
    return max(delay, (error.retry_after if error is not None else None) or 0.0)


@dataclass(frozen=True)
class ClientOptions:
    timeout: float | httpx2.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    max_retries: int = DEFAULT_MAX_RETRIES


@cache
def tls_context() -> ssl.SSLContext:
    """The one TLS context of this process. Building one loads the whole CA bundle
    (tens of ms of CPU, under the GIL); a context is safe to share between clients
    and threads, so each new client reuses it."""
    return httpx2.create_ssl_context()


class OutboundRefusedError(openai.OpenAIError):
    """Raised by the transport when netguard refuses a request (or a redirect hop). An
    OpenAIError, so the SDK passes it on at once instead of retrying a refusal."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _ProviderTransport(netguard.GuardedTransport):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # Its connections' reads can be held back while a run streams (paced_reads).
        self._pool._network_backend = PacedBackend(self._pool._network_backend)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return super().handle_request(request)
        except netguard.OutboundUnresolvable as error:
            raise openai.APIConnectionError(message=str(error), request=request) from error
        except netguard.OutboundRefused as error:
            raise OutboundRefusedError(str(error)) from error


def client_for(connection: ProviderConnection, options: ClientOptions | None = None, *,
               api_key: str | None = None) -> openai.OpenAI:
    """The SDK client for a connection. Every request it sends (each redirect hop too)
    goes through netguard: the base URL must be public or allowed by the operator.
    `api_key` replaces the connection's key (its admin key, for the organization endpoints)."""
    options = options or ClientOptions()
    api_key = api_key or connection.get_api_key() or PLACEHOLDER_KEY
    webhook_secret = connection.get_webhook_secret() or None
    transport = _ProviderTransport(verify=tls_context(), limits=DEFAULT_CONNECTION_LIMITS)
    http_client = openai.DefaultHttpxClient(transport=transport, timeout=options.timeout)
    if connection.kind == ProviderKind.AZURE:
        return openai.AzureOpenAI(
            azure_endpoint=connection.base_url,
            api_version=connection.api_version or "2024-10-21",
            api_key=api_key,
            webhook_secret=webhook_secret,
            timeout=options.timeout,
            max_retries=options.max_retries,
            http_client=http_client,
        )
    return openai.OpenAI(
        api_key=api_key,
        base_url=connection.base_url,
        organization=connection.organization or None,
        project=connection.project or None,
        webhook_secret=webhook_secret,
        timeout=options.timeout,
        max_retries=options.max_retries,
        http_client=http_client,
    )


class _ErrorIds(TypedDict):
    status_code: int
    request_id: str | None


MESSAGE_MAX_CHARS = 400
_TRACEBACK_FRAME = re.compile(r'^(\s*)File "[^"]*", line \d+')
_EXCEPTION_PREFIX = re.compile(r"^(?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception|Exit|Interrupt): ")
# A server's file path (Unix or Windows), not part of a URL: under a filesystem root, or
# naming a source or model file. API paths such as /v1/images/generations are kept: they
# are what a person needs to read in "Supported values are: …".
_FILE_PATH = re.compile(
    r"(?<![\w:/.~-])/(?:usr|home|opt|srv|var|tmp|root|app|lib|lib64|etc|mnt|workspace|data|Users)(?:/[\w.@+-]+)+/?"
    r"|(?<![\w:/.~-])(?:/[\w.@+-]+)+\.(?:py|pyc|pyx|so|c|cc|cpp|h|js|ts|go|rs|java|rb|gguf|bin)\b"
    r"|\b[A-Za-z]:\\(?:[\w.@+ -]+\\)*[\w.@+-]+")


def _body_text(body: object) -> str:
    """The message in an error body of any shape servers send: OpenAI's
    {"error": {"message"}} (the SDK hands over the inner object), {"message"} (vLLM),
    {"detail": "..."} or FastAPI's {"detail": [{"loc", "msg"}]} (llama.cpp), a bare
    {"error": "..."} (the SDK hands over the string), or a plain text body."""
    if isinstance(body, str):
        return body
    if isinstance(body, list):
        parts = []
        for item in body:
            if isinstance(item, dict) and isinstance(item.get("msg"), str):
                loc = ".".join(str(part) for part in item.get("loc") or ())
                parts.append(f"{loc}: {item['msg']}" if loc else item["msg"])
            else:
                parts.append(_body_text(item))
        return "; ".join(part for part in parts if part)
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "msg"):
            value = body.get(key)
            if value and isinstance(value, (str, dict, list)):
                text = _body_text(value)
                if text:
                    return text
    return ""


def public_error_text(text: str) -> str:
    """A provider's error text as a person may see it: no stack trace (frames and their
    code lines), no server file paths, each line once, short. The full text goes to the log."""
    lines: list[str] = []
    frame_indent: int | None = None
    for raw in text.splitlines():
        frame = _TRACEBACK_FRAME.match(raw)
        if frame:
            frame_indent = len(frame.group(1))
            continue
        indent = len(raw) - len(raw.lstrip())
        if frame_indent is not None and raw.strip() and indent > frame_indent:
            continue  # the code line under a frame
        frame_indent = None
        line = raw.strip()
        if not line or line.startswith("Traceback (most recent call last)") or line.startswith(
                "For further information visit"):
            continue
        line = _EXCEPTION_PREFIX.sub("", line)
        line = _FILE_PATH.sub("(a server path)", line)
        if line and line not in lines:
            lines.append(line)
    public = "; ".join(lines)
    if len(public) > MESSAGE_MAX_CHARS:
        public = public[: MESSAGE_MAX_CHARS - 1].rstrip() + "…"
    return public


def _provider_message(error: openai.APIStatusError) -> str:
    raw = _body_text(error.body)
    public = public_error_text(raw) if raw else ""
    if raw and public != raw.strip():
        log.warning("provider error %s, shown as %r; the provider said: %s", error.status_code, public, raw)
    return public or "no reason given"


def _retry_after(error: openai.APIStatusError) -> float | None:
    raw = error.response.headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def translate_error(error: openai.OpenAIError) -> ProviderError:
    """Map an SDK exception to the project's error with a plain-words message."""
    if isinstance(error, OutboundRefusedError):
        return ProviderError(f"The provider was not called: {error.message}")
    if isinstance(error, openai.APITimeoutError):
        return ProviderTimeout("The provider did not answer in time (timeout). Try again, or check the base URL.")
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        detail = f" ({cause})" if cause else ""
        if isinstance(cause, netguard.OutboundUnresolvable):
            return ProviderUnreachable(f"Could not reach the provider: {cause}")
        return ProviderUnreachable(f"Could not reach the provider: the host is unreachable{detail}.")
    if isinstance(error, openai.APIStatusError):
        message = _provider_message(error)
        ids: _ErrorIds = {"status_code": error.status_code, "request_id": error.request_id}
        if isinstance(error, openai.AuthenticationError):
            return ProviderAuthError(f"The provider rejected the API key (401): {message}", **ids)
        if isinstance(error, openai.PermissionDeniedError):
            return ProviderAuthError(f"The key is not allowed to do this (403): {message}", **ids)
        if isinstance(error, openai.NotFoundError):
            return ProviderNotFound(f"Not found on the provider (404): {message}", **ids)
        if isinstance(error, openai.RateLimitError):
            return ProviderRateLimited(
                f"Rate limited by the provider (429): {message}", retry_after=_retry_after(error), **ids
            )
        if error.status_code >= 500:
            return ProviderServerError(f"The provider failed ({error.status_code}): {message}", **ids)
        return ProviderRejected(f"The provider refused the request ({error.status_code}): {message}", **ids)
    return ProviderError(f"Provider call failed: {error}")


# Raised while a request is built or sent rather than by the SDK's own checks: a header
# value that is not ASCII (an organization id "org-é"), a URL httpx2 cannot parse. Their
# tracebacks hold the request's headers, the API key included, so they never reach a page.
_REQUEST_BUILDING_ERRORS = (UnicodeError, httpx2.InvalidURL, httpx2.HTTPError, ssl.SSLError)


@contextmanager
def provider_errors() -> Iterator[None]:
    """Turn SDK exceptions raised inside the block into ProviderError, and errors from
    building or sending the request into one with a safe message (never the headers)."""
    try:
        yield
    except openai.OpenAIError as error:
        raise translate_error(error) from error
    except _REQUEST_BUILDING_ERRORS as error:
        # Not chained: the original's frames hold the headers (and so the key).
        raise _request_failure(error) from None


def _request_failure(error: Exception) -> ProviderError:
    """A ProviderError for an httpx2 or encoding error met outside the SDK's own handling
    (while a streamed body is read, or while the request is built)."""
    name = type(error).__name__
    if isinstance(error, httpx2.TimeoutException):
        return ProviderTimeout(f"The provider did not answer in time ({name}). Try again, or check the base URL.")
    if isinstance(error, httpx2.TransportError):
        return ProviderUnreachable(f"Could not reach the provider: the connection failed ({name}).")
    return ProviderError(
        f"The request to the provider could not be sent ({name}); check the connection's base URL, "
        "organization and project."
    )


def provider_call[T](connection: ProviderConnection, call: Callable[[openai.OpenAI], T],
                  options: ClientOptions | None = None, *, api_key: str | None = None) -> T:
    with provider_errors():
        return call(client_for(connection, options, api_key=api_key))
