"""What every event stream of the sandbox shares: how replies are cut into deltas, the 200
head, and the watch for a client that went away (chat, responses and the profiles' streams)."""

from __future__ import annotations

import asyncio
import re

from starlette.types import Receive, Send

WORDS = re.compile(r"\s*\S+|\s+")
ARG_PIECES = re.compile(r"[A-Za-z0-9_]+|[^A-Za-z0-9_]+")
HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


def pieces(text: str, pattern: re.Pattern[str] = WORDS) -> list[str]:
    """Stream deltas: a word at a time for text (WORDS), identifier-sized pieces for arguments (ARG_PIECES)."""
    return pattern.findall(text) or ([text] if text else [])


async def start(send: Send, headers: list[tuple[bytes, bytes]] = HEADERS) -> None:
    """The 200 and its headers, sent before the first event."""
    await send({"type": "http.response.start", "status": 200, "headers": headers})


def watch_disconnect(receive: Receive) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """An event set when the client disconnects, and the task watching for it (cancel it when done)."""
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    return gone, asyncio.get_running_loop().create_task(watch())
