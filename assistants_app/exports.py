"""A thread as Markdown, as JSON, and as one fine-tuning example (chat JSONL line).

A reply that did not finish (stopped by a person, failed) or came back empty is marked in
the Markdown and JSON exports, and left out of the training example together with the
question that asked for it: a cut-off answer must never become something to learn from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from assistants_app.models import Message, Role, Run, RunStatus, Thread
from assistants_app.tools import api_tools

_STATE_WORDS = {RunStatus.CANCELLED: "stopped", RunStatus.FAILED: "failed"}


@dataclass(frozen=True)
class ReplyState:
    """Why a reply is not a complete answer: "stopped", "failed" or "empty", and the run's reason."""

    state: str
    reason: str = ""

    def as_json(self) -> dict[str, str]:
        return {"state": self.state, "reason": self.reason}

    def as_markdown(self) -> str:
        words = {"stopped": "Stopped: this reply is incomplete", "failed": "Failed: this reply is incomplete",
                 "empty": "Empty reply", "unanswered": "No reply"}[self.state]
        return f"> _{words}{'. ' + self.reason if self.reason else '.'}_"


def _run_state(run: Run | None) -> ReplyState | None:
    if run is None or run.status not in _STATE_WORDS:
        return None
    return ReplyState(_STATE_WORDS[RunStatus(run.status)], run.error)


def _is_empty_reply(message: Message) -> bool:
    return message.role == Role.ASSISTANT and not message.text.strip() and not message.tool_calls \
        and not message.attachments


def reply_states(messages: list[Message], runs: list[Run]) -> dict[int, ReplyState]:
    """By message id: the state of every message that is part of an unfinished or empty reply,
    and of every question whose run ended without any reply ("unanswered")."""
    states: dict[int, ReplyState] = {}
    answered = {m.run_id for m in messages if m.role != Role.USER and m.run_id}
    for message in messages:
        if message.role == Role.USER:
            continue
        state = _run_state(message.run)
        if state is None and _is_empty_reply(message):
            state = ReplyState("empty", message.run.error if message.run else "")
        if state is not None:
            states[message.pk] = state
    for run in runs:
        state = _run_state(run)
        if state is not None and run.user_message_id and run.pk not in answered:
            states[run.user_message_id] = ReplyState("unanswered", f"The run {state.state}: {run.error}".rstrip(": "))
    return states


def export_markdown(thread: Thread, messages: list[Message], runs: list[Run]) -> str:
    states = reply_states(messages, runs)
    lines = [f"# {thread.title}", "", f"Assistant: {thread.assistant.name}", ""]
    for message in messages:
        state = states.get(message.pk)
        if message.role == Role.TOOL:
            lines += [f"**tool {message.tool_name}** → {message.text}", ""]
            if state:
                lines += [state.as_markdown(), ""]
            continue
        who = "You" if message.role == Role.USER else f"Assistant (v{message.version.number})" if message.version else "Assistant"
        lines.append(f"## {who}")
        for call in message.tool_calls:
            lines.append(f"- calls `{call['function']['name']}({call['function']['arguments']})`")
        for attachment in message.attachments:
            lines.append(f"- attached {attachment.get('type')}: {attachment.get('name', '')}")
        lines += [message.text, ""]
        if state:
            lines += [state.as_markdown(), ""]
    return "\n".join(lines)


def _message_json(message: Message, state: ReplyState | None) -> dict[str, Any]:
    return {"id": message.pk, "role": message.role, "text": message.text, "created_at": message.created_at.isoformat(),
            "tool_calls": message.tool_calls, "tool_call_id": message.tool_call_id or None,
            "attachments": [{k: v for k, v in a.items() if k != "data_url"} for a in message.attachments],
            "version": message.version.number if message.version else None, "token_count": message.token_count,
            "incomplete": state.as_json() if state else None}


def export_json(thread: Thread, messages: list[Message], runs: list[Run]) -> str:
    states = reply_states(messages, runs)
    return json.dumps({"thread": {"id": thread.pk, "title": thread.title, "assistant": thread.assistant.name,
                                  "created_at": thread.created_at.isoformat()},
                       "messages": [_message_json(m, states.get(m.pk)) for m in messages]}, indent=2,
                      ensure_ascii=False)


def _training_messages(messages: list[Message], runs: list[Run]) -> list[Message]:
    """The messages fit to learn from: without pending tool results, and without any exchange
    (the question and everything its run wrote) whose reply was stopped, failed or empty."""
    states = reply_states(messages, runs)
    bad_runs = {m.run_id for m in messages if m.pk in states and m.run_id}
    bad_questions = {pk for pk, state in states.items() if state.state == "unanswered"}
    bad_questions |= {run.user_message_id for run in runs if run.pk in bad_runs and run.user_message_id}
    kept: list[Message] = []
    for message in messages:
        if message.pending or message.pk in states or message.pk in bad_questions or message.run_id in bad_runs:
            continue
        kept.append(message)
    # An example ends with the assistant's turn.
    while kept and kept[-1].role != Role.ASSISTANT:
        kept.pop()
    return kept


def export_jsonl(thread: Thread, messages: list[Message], runs: list[Run]) -> str:
    """One training example in the chat fine-tuning format: the instructions of the current
    version as the system message, then the conversation with tool turns. Empty when no
    complete reply is left to learn from."""
    kept = _training_messages(messages, runs)
    if not kept:
        return ""
    version = thread.assistant.current_version
    out: list[dict[str, Any]] = []
    if version and version.instructions:
        out.append({"role": "system", "content": version.instructions})
    for message in kept:
        if message.role == Role.TOOL:
            out.append({"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text})
        elif message.role == Role.ASSISTANT:
            item: dict[str, Any] = {"role": "assistant", "content": message.text or None}
            if message.tool_calls:
                item["tool_calls"] = message.tool_calls
            out.append(item)
        else:
            out.append({"role": "user", "content": message.text})
    example: dict[str, Any] = {"messages": out}
    if version and version.tools:
        example["tools"] = api_tools(version.tools)
    return json.dumps(example, ensure_ascii=False) + "\n"
