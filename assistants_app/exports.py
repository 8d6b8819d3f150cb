"""A thread as Markdown, as JSON, and as one fine-tuning example (chat JSONL line)."""

from __future__ import annotations

import json
from typing import Any

from assistants_app.models import Message, Role, Thread
from assistants_app.tools import api_tools


def export_markdown(thread: Thread, messages: list[Message]) -> str:
    lines = [f"# {thread.title}", "", f"Assistant: {thread.assistant.name}", ""]
    for message in messages:
        if message.role == Role.TOOL:
            lines += [f"**tool {message.tool_name}** → {message.text}", ""]
            continue
        who = "You" if message.role == Role.USER else f"Assistant (v{message.version.number})" if message.version else "Assistant"
        lines.append(f"## {who}")
        for call in message.tool_calls:
            lines.append(f"- calls `{call['function']['name']}({call['function']['arguments']})`")
        for attachment in message.attachments:
            lines.append(f"- attached {attachment.get('type')}: {attachment.get('name', '')}")
        lines += [message.text, ""]
    return "\n".join(lines)


def _message_json(message: Message) -> dict[str, Any]:
    return {"id": message.pk, "role": message.role, "text": message.text, "created_at": message.created_at.isoformat(),
            "tool_calls": message.tool_calls, "tool_call_id": message.tool_call_id or None,
            "attachments": [{k: v for k, v in a.items() if k != "data_url"} for a in message.attachments],
            "version": message.version.number if message.version else None, "token_count": message.token_count}


def export_json(thread: Thread, messages: list[Message]) -> str:
    return json.dumps({"thread": {"id": thread.pk, "title": thread.title, "assistant": thread.assistant.name,
                                  "created_at": thread.created_at.isoformat()},
                       "messages": [_message_json(m) for m in messages]}, indent=2, ensure_ascii=False)


def export_jsonl(thread: Thread, messages: list[Message]) -> str:
    """One training example in the chat fine-tuning format: the instructions of the
    current version as the system message, then the conversation with tool turns."""
    version = thread.assistant.current_version
    out: list[dict[str, Any]] = []
    if version and version.instructions:
        out.append({"role": "system", "content": version.instructions})
    for message in messages:
        if message.pending:
            continue
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
