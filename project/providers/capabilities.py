"""What a connection's server supports, probed rather than assumed.

OpenAI-compatible servers differ from OpenAI in what they accept: llama.cpp answers a
json_schema response format with a 500, ignores tools unless one is forced, sends no usage
in streams, and has no files, batches or fine-tuning API. "Test connection" asks the server
(a few small requests, `capabilities_probe`) and stores what it saw; a run whose request
needs something the server lacks is refused at once with words a person understands
(`request_refusal`), and pages for files, batches and fine-tuning say when the API is missing
(`connection_lacks`). A connection never probed is probed the first time a run needs to know
(`capabilities_known`, from the worker).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
from django.conf import settings
from django.utils import timezone

from project.providers.client import (
    ClientOptions,
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnreachable,
    provider_call,
)
from project.providers.engine import engine_detect
from project.providers.model_facts import model_facts
from project.providers.models import ConnectionCapabilities, Engine, ProviderConnection
from project.providers.remote_models import connection_models

log = logging.getLogger(__name__)

# name -> what it means, as the connection page says it.
CAPABILITIES: dict[str, str] = {
    "stream_usage": "Token usage in streamed replies",
    "tools": "Tools (called when the model chooses)",
    "forced_tool_choice": "Tools when one is forced (tool_choice)",
    "json_schema": "JSON-schema replies (response_format json_schema)",
    "json_object": "JSON mode (response_format json_object)",
    "images": "Pictures in messages",
    "files": "Files API",
    "batches": "Batch API",
    "fine_tuning": "Fine-tuning API",
    "embeddings": "Embeddings",
    "responses": "Responses API (/v1/responses)",
}

# What a person is told when a request needs what the server lacks.
REFUSALS: dict[str, str] = {
    "tools": "This server ignores tools unless one is forced, so this assistant's tools would never be called. "
             "Remove the tools, or use a connection whose server calls them.",
    "tools_none": "This server does not support tools. Remove the assistant's tools, or use another connection.",
    "json_schema": "This server does not accept JSON-schema output (a reply schema). Remove the reply schema, "
                   "or use a connection that supports it.",
    "images": "This server does not accept pictures in messages. Send text only, or use another connection.",
    "files": "This server has no Files API, so files cannot be attached or uploaded to it.",
    "batches": "This server has no Batch API.",
    "fine_tuning": "This server has no fine-tuning API.",
}

PROBE_TOOL = {"type": "function", "function": {
    "name": "report_ok", "description": "Reports that the test worked. Always call it when asked.",
    "parameters": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                   "additionalProperties": False}}}
PROBE_SCHEMA = {"type": "json_schema", "json_schema": {"name": "probe", "strict": True, "schema": {
    "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False}}}
# A 1x1 PNG: the smallest picture a server that takes pictures must accept.
PROBE_PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f80f00010401005f0d6f6d0000000049454e44ae426082")).decode()
_NOT_CHAT = ("embedding", "whisper", "tts", "dall-e", "gpt-image", "moderation", "transcribe", "realtime", "audio")


@dataclass(frozen=True)
class Outcome:
    ok: bool | None  # None: could not tell (never "lacks")
    detail: str = ""


def _options() -> ClientOptions:
    return ClientOptions(timeout=settings.PROVIDER_TEST_TIMEOUT_SECONDS, max_retries=0)


def _error_outcome(error: ProviderError, *, missing_route: bool = False) -> Outcome:
    """A refusal (4xx, 5xx) means the server lacks it; a failure to get an answer says nothing."""
    if isinstance(error, ProviderNotFound):
        return Outcome(False if missing_route else None, error.message)
    if isinstance(error, (ProviderTimeout, ProviderUnreachable, ProviderRateLimited, ProviderAuthError)):
        return Outcome(None, error.message)
    if error.status_code is None:
        return Outcome(None, error.message)
    return Outcome(False, error.message)


def probe_model_for(connection: ProviderConnection) -> str:
    """A model to try chat requests on: the cheapest non-reasoning chat model the catalog
    knows among the connection's models, else its first chat-looking model ("" when none)."""
    ids = [m.id for m in connection_models(connection, options=_options())]
    chat_ids = [i for i in ids if not any(word in i.lower() for word in _NOT_CHAT)]
    known = [(model_facts(i), i) for i in chat_ids]
    plain = [(f.price("input"), i) for f, i in known if f.known and "chat_completions" in f.endpoints
             and not f.supports("reasoning") and f.price("input") is not None]
    if plain:
        return min(plain)[1]
    return chat_ids[0] if chat_ids else ""


def _limit(model: str, tokens: int) -> dict[str, int]:
    # Reasoning models refuse max_tokens; most compatible servers know only max_tokens.
    return {"max_completion_tokens": tokens * 8} if model_facts(model).supports("reasoning") else {"max_tokens": tokens}


def _chat(connection: ProviderConnection, model: str, text: str | list[dict[str, Any]], **extra: Any) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **_limit(model, 24), **extra}
    return provider_call(connection, lambda client: client.chat.completions.create(**body), _options())


def _probe_stream_usage(connection: ProviderConnection, model: str) -> Outcome:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "Say OK."}], "stream": True,
                            "stream_options": {"include_usage": True}, **_limit(model, 8)}

    def call(client: openai.OpenAI) -> bool:
        return any(chunk.usage is not None for chunk in client.chat.completions.create(**body))

    if provider_call(connection, call, _options()):
        return Outcome(True)
    return Outcome(False, "Streamed replies carry no token counts; Switchboard counts them itself (estimated).")


def _tool_called(completion: Any) -> bool:
    return any(choice.message.tool_calls for choice in completion.choices)


def _probe_tools(connection: ProviderConnection, model: str) -> Outcome:
    completion = _chat(connection, model, "Call the function report_ok now with ok=true. Do not write text.",
                       tools=[PROBE_TOOL], tool_choice="auto")
    if _tool_called(completion):
        return Outcome(True)
    return Outcome(False, "Asked to call a tool, the server answered with text: it ignores tools unless one is forced.")


def _probe_forced_tool(connection: ProviderConnection, model: str) -> Outcome:
    completion = _chat(connection, model, "Report that the test worked.", tools=[PROBE_TOOL],
                       tool_choice={"type": "function", "function": {"name": "report_ok"}})
    return Outcome(True) if _tool_called(completion) else Outcome(False, "A forced tool was not called.")


def _probe_json_schema(connection: ProviderConnection, model: str) -> Outcome:
    _chat(connection, model, "Answer in JSON: did the test work?", response_format=PROBE_SCHEMA)
    return Outcome(True)


def _probe_json_object(connection: ProviderConnection, model: str) -> Outcome:
    _chat(connection, model, 'Answer with the JSON object {"ok": true}.', response_format={"type": "json_object"})
    return Outcome(True)


def _probe_images(connection: ProviderConnection, model: str) -> Outcome:
    _chat(connection, model, [{"type": "text", "text": "What colour is this picture?"},
                              {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PROBE_PNG}"}}])
    return Outcome(True)


def _probe_embeddings(connection: ProviderConnection, model: str) -> Outcome:
    ids = [m.id for m in connection_models(connection, options=_options())]
    embedding_model = next((i for i in ids if "embed" in i.lower()), model)
    provider_call(connection, lambda client: client.embeddings.create(model=embedding_model, input="probe"), _options())
    return Outcome(True)


def _probe_responses(connection: ProviderConnection, model: str) -> Outcome:
    """The engine's detection (project.providers.engine): a model-less request that costs nothing."""
    engine = engine_detect(connection, _options())
    if engine is None:
        return Outcome(None, "The server's answer did not say whether it has the Responses API.")
    return Outcome(engine == Engine.RESPONSES)


def _route_probe(list_call: Callable[[openai.OpenAI], Any]) -> Callable[[ProviderConnection, str], Outcome]:
    def probe(connection: ProviderConnection, model: str) -> Outcome:
        provider_call(connection, list_call, _options())
        return Outcome(True)
    return probe


CHAT_PROBES: dict[str, Callable[[ProviderConnection, str], Outcome]] = {
    "stream_usage": _probe_stream_usage,
    "tools": _probe_tools,
    "forced_tool_choice": _probe_forced_tool,
    "json_schema": _probe_json_schema,
    "json_object": _probe_json_object,
    "images": _probe_images,
    "embeddings": _probe_embeddings,
    "responses": _probe_responses,
}
ROUTE_PROBES: dict[str, Callable[[ProviderConnection, str], Outcome]] = {
    "files": _route_probe(lambda client: client.files.list(limit=1)),
    "batches": _route_probe(lambda client: client.batches.list(limit=1)),
    "fine_tuning": _route_probe(lambda client: client.fine_tuning.jobs.list(limit=1)),
}


def _run_probe(name: str, connection: ProviderConnection, model: str) -> Outcome:
    if name in CHAT_PROBES and not model:
        return Outcome(None, "The server lists no chat model to try.")
    probe = CHAT_PROBES.get(name) or ROUTE_PROBES[name]
    try:
        return probe(connection, model)
    except ProviderError as error:
        # A missing route is a 404 for the APIs (files…); for a chat request it names the model.
        return _error_outcome(error, missing_route=name in ROUTE_PROBES or name in ("embeddings", "responses"))
    except Exception as error:  # a body the SDK cannot read is the server's failing, not ours
        log.warning("capability probe %s on connection %s failed", name, connection.pk, exc_info=True)
        return Outcome(None, f"The answer could not be read ({type(error).__name__}).")


def capabilities_probe(*, connection: ProviderConnection, names: list[str] | None = None,
                       model: str = "") -> ConnectionCapabilities:
    """Ask the server what it supports (all capabilities, or `names`) and store the answers
    (kept for the capabilities not asked). One small request each, one after another: a
    local server serves one request at a time, and some cut the one streaming for a new one."""
    names = names or list(CAPABILITIES)
    try:
        # The APIs (files…) are probed without a model: no need to list the models for them.
        model = model or (probe_model_for(connection) if any(name in CHAT_PROBES for name in names) else "")
    except ProviderError:
        model = ""
    stored = ConnectionCapabilities.objects.filter(connection=connection).first()
    results: dict[str, Any] = dict(stored.results) if stored else {}
    for name in names:
        outcome = _run_probe(name, connection, model)
        results[name] = {"ok": outcome.ok, "detail": outcome.detail[:400]}
    saved, _ = ConnectionCapabilities.objects.update_or_create(
        connection=connection, defaults={"results": results, "probe_model": model, "checked_at": timezone.now()})
    return saved


def connection_capabilities(connection: ProviderConnection) -> ConnectionCapabilities | None:
    return ConnectionCapabilities.objects.filter(connection=connection).first()


def supports(capabilities: ConnectionCapabilities | None, name: str) -> bool | None:
    """True / False as probed; None when never probed or the probe could not tell."""
    if capabilities is None:
        return None
    entry = capabilities.results.get(name)
    return entry.get("ok") if isinstance(entry, dict) else None


def connection_lacks(connection: ProviderConnection, name: str, *, probe_unknown: bool = False) -> str:
    """The words for a page when the connection's server was seen to lack `name` ("" otherwise).
    `probe_unknown`: a connection never probed for it is asked now (one small list request),
    so a submit is refused in words rather than failing on the provider's 404."""
    capabilities = connection_capabilities(connection)
    if probe_unknown and (capabilities is None or name not in capabilities.results):
        capabilities = capabilities_probe(connection=connection, names=[name])
    if supports(capabilities, name) is False:
        return f"{connection.name}: {REFUSALS[name]}"
    return ""


@dataclass(frozen=True)
class RequestNeeds:
    tools: bool = False
    json_schema: bool = False
    images: bool = False

    @property
    def any(self) -> bool:
        return self.tools or self.json_schema or self.images

    @property
    def names(self) -> list[str]:
        needed = ["tools", "forced_tool_choice"] if self.tools else []
        return needed + (["json_schema"] if self.json_schema else []) + (["images"] if self.images else [])


def request_needs(body: dict[str, Any]) -> RequestNeeds:
    """What a Chat Completions body needs of the server beyond plain chat."""
    fmt = body.get("response_format")
    images = any(isinstance(part, dict) and part.get("type") == "image_url"
                 for message in body.get("messages") or () if isinstance(message.get("content"), list)
                 for part in message["content"])
    return RequestNeeds(tools=bool(body.get("tools")) and not isinstance(body.get("tool_choice"), dict),
                        json_schema=isinstance(fmt, dict) and fmt.get("type") == "json_schema", images=images)


def request_refusal(capabilities: ConnectionCapabilities | None, needs: RequestNeeds) -> str:
    """Why the server cannot serve a request with these needs, in words; "" when it can
    (or when it was never seen not to)."""
    if needs.tools and supports(capabilities, "tools") is False:
        return REFUSALS["tools"] if supports(capabilities, "forced_tool_choice") else REFUSALS["tools_none"]
    if needs.json_schema and supports(capabilities, "json_schema") is False:
        return REFUSALS["json_schema"]
    if needs.images and supports(capabilities, "images") is False:
        return REFUSALS["images"]
    return ""


def capabilities_known(*, connection: ProviderConnection, needs: RequestNeeds, model: str) -> ConnectionCapabilities | None:
    """The stored capabilities, probing (with `model`) the ones `needs` asks about that were
    never probed. For the worker, before a run is sent: a probe costs a small request or two."""
    stored = connection_capabilities(connection)
    missing = [name for name in needs.names if stored is None or name not in stored.results]
    if not missing:
        return stored
    return capabilities_probe(connection=connection, names=missing, model=model)


def refusal_after_error(*, connection: ProviderConnection, needs: RequestNeeds, model: str) -> str:
    """After a request with `needs` was refused (a 4xx, or a 5xx that may be a server failing
    on what it does not support): probe those capabilities again, store what is seen, and say
    in words what the server lacks ("" when it supports them: the error was something else)."""
    if not needs.any:
        return ""
    return request_refusal(capabilities_probe(connection=connection, names=needs.names, model=model), needs)


@dataclass(frozen=True)
class CapabilityRow:
    name: str
    label: str
    ok: bool | None
    detail: str


def capability_rows(capabilities: ConnectionCapabilities | None) -> list[CapabilityRow]:
    """Every capability with what was seen, for the connection's pages (unknown when never probed)."""
    results = capabilities.results if capabilities else {}
    rows = []
    for name, label in CAPABILITIES.items():
        found = results.get(name)
        entry: dict[str, Any] = found if isinstance(found, dict) else {}
        rows.append(CapabilityRow(name, label, entry.get("ok"), str(entry.get("detail") or "")))
    return rows


def connections_lacking(connections: Any, name: str) -> list[str]:
    """For a page offering several connections: what to say of each one probed to lack `name`."""
    lacking = ConnectionCapabilities.objects.filter(connection__in=connections).select_related("connection")
    return [f"{caps.connection.name}: {REFUSALS[name]}" for caps in lacking if supports(caps, name) is False]
