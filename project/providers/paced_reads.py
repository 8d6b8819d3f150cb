"""Reads of a streamed reply held back to the pace its display is written at.

A provider paces a reply's tokens (80 a second is common) and sends each as its own
server-sent event, so a worker that reads as soon as bytes arrive wakes once per token:
a socket read, the HTTP parser and the SSE reader, each time under the GIL that the
worker's other runs share. The display only takes text every FLUSH_SECONDS (run_attempt)
anyway, so once a reply's first words are out the run loop asks for its connection's
next read not to start before its next flush is due (ReadPacer.hold_until): the tokens
that arrived meanwhile wait in the kernel's buffer and come in one read. Measured on a
sandbox pacing 80 tokens a second, 50 replies at once: about half the CPU per reply.

Only the connection's reads from the network are held (the HTTP parser asks for one when
it has nothing buffered), never a read of what has arrived already, and only until the
run loop's next flush: what a person sees, and when, stays as it was.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore2

# httpcore2's type for socket options, spelled out (its alias is private).
type SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


class PacedStream(httpcore2.NetworkStream):
    """A connection whose next read from the network may be held until a given time."""

    def __init__(self, stream: httpcore2.NetworkStream) -> None:
        self.stream = stream
        self.not_before = 0.0  # time.monotonic(); 0: read at once

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self.not_before:
            wait = self.not_before - time.monotonic()
            self.not_before = 0.0
            if wait > 0:
                time.sleep(wait)
        return self.stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.stream.write(buffer, timeout)

    def close(self) -> None:
        self.stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore2.NetworkStream:
        return PacedStream(self.stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self.stream.get_extra_info(info)


class PacedBackend(httpcore2.NetworkBackend):
    """httpcore2's network backend, its connections PacedStreams."""

    def __init__(self, backend: httpcore2.NetworkBackend | None = None) -> None:
        self.backend = backend or httpcore2.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[SocketOption] | None = None) -> httpcore2.NetworkStream:
        return PacedStream(self.backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[SocketOption] | None = None) -> httpcore2.NetworkStream:
        return PacedStream(self.backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self.backend.sleep(seconds)


class ReadPacer:
    """What a run loop holds of its streamed reply's connection: `hold_until` delays the
    connection's next read from the network (a no-op when the reply did not come over a
    PacedStream: a test's transport, an HTTP/2 connection). Released when the reply is
    closed, so the connection goes back to the pool reading at once."""

    def __init__(self, response: Any) -> None:
        http_response = getattr(response, "http_response", response)  # the SDK's APIResponse wraps one
        extensions = getattr(http_response, "extensions", None) or {}
        stream = extensions.get("network_stream")
        self.stream = stream if isinstance(stream, PacedStream) else None

    def hold_until(self, when: float) -> None:
        if self.stream is not None:
            self.stream.not_before = when

    def release(self) -> None:
        self.hold_until(0.0)


@contextmanager
def read_pacer(response: Any) -> Iterator[ReadPacer]:
    """The reply's ReadPacer, released when done: its connection may be used again."""
    pacer = ReadPacer(response)
    try:
        yield pacer
    finally:
        pacer.release()
