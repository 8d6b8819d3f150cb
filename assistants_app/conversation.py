"""What a version sends and what a thread's history is: chat's published face.

Everything that turns an assistant's version and a thread's stored messages into a
request to a model lives here, once: the chat worker (run_loop) and batches (a thread
asked again, a CSV through an assistant) both call it, so a request is built the same
way wherever it goes. Other features import this module and nothing else of chat's
internals (an import-linter contract in pyproject.toml holds them to it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any, NamedTuple

from django.db.models import QuerySet

from assistants_app.images import image_data_url
from assistants_app.models import Assistant, AssistantVersion, Message, Role, Thread
from assistants_app.reply_budget import output_budget
from assistants_app.selectors import (
    ThreadFilters,
    team_assistant_get,
    team_assistants,
    team_threads,
    team_version_get,
    thread_list_page,
    thread_message_counts,
)
from assistants_app.services import ChatError, assistant_switch_model
from assistants_app.tools import api_tools
from project.joined_rows import JoinedModel
from project.providers.connection_facts import connection_model_facts
from project.providers.model_facts import ModelFacts, model_facts
from project.tokens import REPLY_PRIMING, count_message, encoding_named

# Published for other features: what they may use of chat. The reads let a feature offer
# the team's assistants and threads to choose from (batches asks threads again); evals
# switches an assistant to the model it proved (assistant_switch_model); search embeds and
# ranks the messages (Message, Role).
__all__ = [
    "Assistant", "AssistantVersion", "ChatError", "History", "HistoryTooLong", "Message", "RequestSpec", "Role",
    "Thread", "ThreadFilters", "api_message", "assistant_request_spec", "assistant_switch_model", "build_history",
    "chat_request", "history_budget", "history_with_sources", "output_budget", "responses_input", "responses_request",
    "team_assistant_get", "team_assistants", "team_threads", "team_version_get", "thread_list_page",
    "thread_message_counts", "thread_question", "user_content", "version_request_spec",
]


class HistoryTooLong(Exception):
    """The latest message alone does not fit the model's context window; the message is shown."""


# -- what a version sends --------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestSpec:
    """What makes a request besides the conversation: the model, the instructions, the
    tools (as Chat Completions function definitions), the response format, and the
    sampling or reasoning settings the model takes (`extra`, in Chat Completions terms)."""

    model: str
    instructions: str = ""
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def version_request_spec(version: AssistantVersion, facts: ModelFacts | None = None) -> RequestSpec:
    """A version's settings as a request takes them: temperature/top_p, or reasoning_effort
    for a reasoning model (which refuses the sampling settings), the output limit, a strict
    json_schema response format for a response schema ({} means free text), and the tools."""
    facts = facts or model_facts(version.model)
    extra: dict[str, Any] = {}
    if facts.supports("reasoning"):
        if version.reasoning_effort:
            extra["reasoning_effort"] = version.reasoning_effort
    else:
        if version.temperature is not None:
            extra["temperature"] = version.temperature
        if version.top_p is not None:
            extra["top_p"] = version.top_p
    if version.max_output_tokens:
        extra["max_completion_tokens"] = version.max_output_tokens
    tools = api_tools(version.tools) if version.tools else None
    if tools:
        extra["parallel_tool_calls"] = True
    schema = version.response_schema or None
    response_format = ({"type": "json_schema", "json_schema": {"name": "reply", "strict": True, "schema": schema}}
                       if schema else None)
    return RequestSpec(model=version.model, instructions=version.instructions or "", response_format=response_format,
                       tools=tools, extra=extra)


def assistant_request_spec(assistant: Assistant) -> RequestSpec:
    """The assistant's current version's spec; ValueError when it has none yet."""
    version = assistant.current_version
    if version is None:
        raise ValueError(f"{assistant} has no saved version yet.")
    return version_request_spec(version)


def chat_request(spec: RequestSpec, messages: list[dict[str, Any]], *, stream: bool) -> dict[str, Any]:
    """A Chat Completions body: the instructions as the system message, then `messages`."""
    system = [{"role": "system", "content": spec.instructions}] if spec.instructions else []
    body: dict[str, Any] = {"model": spec.model, "messages": system + messages, **spec.extra}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if spec.response_format:
        body["response_format"] = spec.response_format
    if spec.tools:
        body["tools"] = spec.tools
    return body


def responses_request(spec: RequestSpec, input_value: str | list[dict[str, Any]]) -> dict[str, Any]:
    """A Responses body for the same spec. Responses names three settings differently
    (max_output_tokens, reasoning.effort, text.format) and takes tools flat."""
    extra = dict(spec.extra)
    if "max_completion_tokens" in extra:
        extra["max_output_tokens"] = extra.pop("max_completion_tokens")
    if "reasoning_effort" in extra:
        extra["reasoning"] = {"effort": extra.pop("reasoning_effort")}
    body: dict[str, Any] = {"model": spec.model, "input": input_value, **extra}
    if spec.instructions:
        body["instructions"] = spec.instructions
    if spec.response_format and spec.response_format.get("type") == "json_schema":
        body["text"] = {"format": {"type": "json_schema", **(spec.response_format.get("json_schema") or {})}}
    if spec.tools:
        body["tools"] = [{"type": "function", **tool.get("function", {})} for tool in spec.tools]
    else:
        body.pop("parallel_tool_calls", None)
    return body


def _input_part(part: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions content part (user_content) as a Responses input part."""
    if part.get("type") == "image_url":
        return {"type": "input_image", "image_url": (part.get("image_url") or {}).get("url"), "detail": "auto"}
    if part.get("type") == "file":
        return {"type": "input_file", "file_id": (part.get("file") or {}).get("file_id")}
    return {"type": "input_text", "text": part.get("text", "")}


def responses_input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions messages (build_history, thread_question) as Responses input items:
    tool rounds become function_call and function_call_output items, pictures and files
    input_image and input_file parts. The instructions are not among them (responses_request
    sends them as `instructions`)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "user":
            content = message.get("content")
            items.append({"role": "user", "content": content if isinstance(content, str)
                          else [_input_part(part) for part in content or ()]})
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": message.get("tool_call_id", ""),
                          "output": message.get("content") or ""})
        elif role == "assistant":
            if message.get("content"):
                items.append({"role": "assistant", "content": message["content"]})
            items += [{"type": "function_call", "call_id": call["id"], "name": call["function"]["name"],
                       "arguments": call["function"]["arguments"]} for call in message.get("tool_calls") or ()]
        elif role in ("system", "developer"):
            items.append({"role": role, "content": message.get("content") or ""})
    return items


# -- what a thread's history is ----------------------------------------------------------------------

def user_content(message: Message) -> str | list[dict[str, Any]]:
    """A user message as the API takes it: the text alone, or the text and its parts
    (images as data URLs, files by their provider id)."""
    if not message.attachments:
        return message.text
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.text}] if message.text else []
    for attachment in message.attachments:
        if attachment.get("type") == "image":
            url = image_data_url(attachment, team_id=message.team_id)
            if url is not None:
                parts.append({"type": "image_url", "image_url": {"url": url}})
        elif attachment.get("type") == "file" and attachment.get("remote_id"):
            parts.append({"type": "file", "file": {"file_id": attachment["remote_id"]}})
    return parts or message.text


def api_message(message: Message) -> dict[str, Any]:
    if message.role == Role.TOOL:
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
    if message.role == Role.ASSISTANT:
        # content may be null only beside tool calls: servers such as llama.cpp fail on a
        # null content (OpenAI accepts it only with tool_calls).
        out: dict[str, Any] = {"role": "assistant", "content": message.text or (None if message.tool_calls else "")}
        if message.tool_calls:
            out["tool_calls"] = message.tool_calls
        return out
    return {"role": "user", "content": user_content(message)}


def _sendable_messages(thread: Thread) -> QuerySet[Message]:
    """The thread's stored messages that belong in a request: not a tool result still
    waiting for a person, and not an assistant message with no text and no tool calls (an
    empty reply an older version saved says nothing, and some providers refuse it)."""
    return thread.messages.filter(pending=False).exclude(role=Role.ASSISTANT, text="", tool_calls=[])


HISTORY_PAGE = 200
_HISTORY_MESSAGE = JoinedModel(Message, "m")


@cache
def _history_page_sql() -> str:
    # _sendable_messages' first page, newest first, said in SQL for a caller that reads it in
    # a round trip of its own statements (history_first_page_statement). Only the model's
    # own table and column names are formatted in; the thread's id is a parameter.
    return (f"SELECT {_HISTORY_MESSAGE.columns} FROM {Message._meta.db_table} m "  # noqa: S608
            "WHERE m.thread_id = %s AND NOT m.pending "
            "AND NOT (m.role = %s AND m.text = '' AND m.tool_calls = '[]'::jsonb) "
            f"ORDER BY m.id DESC LIMIT {HISTORY_PAGE}")


def history_first_page_statement(thread_id: int) -> tuple[str, tuple[Any, ...]]:
    """The statement that reads the history's first page (its newest messages), for a caller
    that runs it with its own in one round trip (the worker's claim of a run just posted);
    history_first_page builds its rows, for build_history's `first_page`."""
    return _history_page_sql(), (thread_id, str(Role.ASSISTANT))


def history_first_page(rows: list[tuple[Any, ...]]) -> list[Message]:
    built = [_HISTORY_MESSAGE.build(row) for row in rows]
    return [message for message in built if isinstance(message, Message)]


def _newest_first(messages: QuerySet[Message], first_page: list[Message] | None = None) -> Iterator[Message]:
    """The messages newest first, a page per query (keyset on id): most threads fit in
    one page, one round trip, where a server-side cursor (.iterator()) costs three.
    `first_page`: the newest page, read already (history_first_page)."""
    before: int | None = None
    while True:
        if first_page is not None:
            page, first_page = first_page, None
        else:
            page = list((messages if before is None else messages.filter(id__lt=before)).order_by("-id")[:HISTORY_PAGE])
        yield from page
        if len(page) < HISTORY_PAGE:
            return
        before = page[-1].pk


_version_token_counts: dict[tuple[int, str], int] = {}


def _version_tokens(version: AssistantVersion, encoding_name: str) -> int:
    """Tokens the instructions and tool definitions take in every request. A version
    never changes once saved, so each is counted once per process and encoding, not once
    per run (long instructions take a millisecond or more to encode)."""
    count = _version_token_counts.get((version.pk, encoding_name))
    if count is None:
        encoding = encoding_named(encoding_name)
        count = count_message({"role": "system", "content": version.instructions}, encoding) if version.instructions else 0
        if version.tools:
            count += len(encoding.encode(json.dumps(api_tools(version.tools)), disallowed_special=()))
        _version_token_counts[(version.pk, encoding_name)] = count
    return count


def history_budget(version: AssistantVersion, facts: ModelFacts) -> int:
    """Tokens the conversation may take: the context window less the room kept for the
    reply and what the instructions and tools take in every request."""
    return facts.context_window - output_budget(version, facts) - REPLY_PRIMING - _version_tokens(version, facts.encoding)


class History(NamedTuple):
    messages: list[dict[str, Any]]  # without the instructions, which chat_request adds
    trimmed: int  # how many older messages were left out
    prompt_tokens: int  # what the whole request takes: instructions, tools, these messages


def build_history(*, thread: Thread, version: AssistantVersion, facts: ModelFacts,
                  first_page: list[Message] | None = None) -> History:
    """The conversation to send, oldest messages left out first to fit the context window
    less the output budget (the instructions are never trimmed).

    Reads newest first and stops at the budget, so a thread of thousands of messages
    costs what fits in the window, not its whole history; stored token counts are used
    where the message has one. The request's token count comes out of the same counting,
    for a provider that reports no usage. `first_page`: the newest messages, read already
    (history_first_page)."""
    return history_with_sources(thread=thread, version=version, facts=facts, first_page=first_page)[0]


def history_with_sources(*, thread: Thread, version: AssistantVersion, facts: ModelFacts,
                         first_page: list[Message] | None = None) -> tuple[History, list[Message]]:
    """build_history's History and, for each of its messages, the stored Message it came
    from (the Responses engine sends a reply's reasoning items back with it)."""
    encoding = encoding_named(facts.encoding)
    budget = history_budget(version, facts)
    stored = _sendable_messages(thread)
    kept: list[tuple[dict[str, Any], int, Message]] = []  # (API message, its tokens, source), newest first
    total = 0
    full = False
    for message in _newest_first(stored, first_page):
        api = api_message(message)
        cost = message.token_count or count_message(api, encoding)
        if total + cost > budget:
            full = True
            break
        kept.append((api, cost, message))
        total += cost
    kept.reverse()
    fetched = len(kept)
    # A tool result cannot open the history: its call was trimmed away.
    while kept and kept[0][0]["role"] == "tool":
        total -= kept.pop(0)[1]
    if not any(api["role"] == "user" for api, _, _ in kept):
        raise HistoryTooLong(
            f"The latest message alone needs more tokens than the model's context window allows "
            f"({facts.context_window} minus {output_budget(version, facts)} for the reply). Shorten it.")
    # Counted only when something did not fit: most runs are spared the query.
    trimmed = (stored.count() if full else fetched) - len(kept)
    history = History([api for api, _, _ in kept], trimmed, total + _version_tokens(version, facts.encoding) + REPLY_PRIMING)
    return history, [message for _, _, message in kept]


def _complete_tool_rounds(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The API refuses an assistant tool call without its result (and a result without its
    call); a round left unanswered (a person never replied) is kept as text only."""
    answered = {m["tool_call_id"] for m in messages if m["role"] == "tool"}
    called: set[str] = set()
    out: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "assistant" and message.get("tool_calls"):
            ids = {str(call.get("id")) for call in message["tool_calls"]}
            if ids <= answered:
                called |= ids
            else:
                message = {k: v for k, v in message.items() if k != "tool_calls"}
                if not message.get("content"):
                    continue
        elif message["role"] == "tool" and message["tool_call_id"] not in called:
            continue
        out.append(message)
    return out


def thread_question(thread: Thread) -> list[dict[str, Any]]:
    """The thread asked again: its stored messages up to and including its last user
    message, as the API takes them. Pending tool results are left out. As in a chat
    run, the oldest messages are left out when the conversation does not fit the current
    version's model (the last question is always kept)."""
    entries: list[tuple[dict[str, Any], int]] = []  # (API message, its stored tokens)
    last_user = -1
    for message in _sendable_messages(thread).filter(role__in=(Role.USER, Role.ASSISTANT, Role.TOOL)).order_by("id"):
        if message.role == Role.USER:
            last_user = len(entries)
        entries.append((api_message(message), message.token_count))
    entries = entries[: last_user + 1]
    version = thread.assistant.current_version
    if version is not None and entries:
        facts = connection_model_facts(thread.assistant.connection, version.model)
        encoding = encoding_named(facts.encoding)
        budget = history_budget(version, facts)
        costs = [tokens or count_message(api, encoding) for api, tokens in entries]
        start, total = 0, sum(costs)
        while total > budget and start < len(entries) - 1:
            total -= costs[start]
            start += 1
        entries = entries[start:]
    return _complete_tool_rounds([api for api, _ in entries])
