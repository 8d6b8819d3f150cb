"""A run's live display, as its worker writes it: Redis is the display, not the record.

The worker keeps what it has shown since the last reset (the text of the reply being
written, notes, tool lines); a Redis write that fails is kept too and tried again
with backoff, while the provider's stream goes on being read. When Redis answers
again the display is written over from the start (a reset, then everything shown,
in one round trip), so an open page, which resumes its stream on its own, and a page
opened later both catch up, whether Redis came back with its data or without it.
A reply is never failed because its display was unreachable: it is saved to the
database when the provider has finished, and every page renders it from there.

Any run loop (Chat Completions, Responses) writes through one LiveDisplay per
attempt; the stream's format stays assistants_app.streams'.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from assistants_app import streams
from project.outages import REDIS, REDIS_ERRORS, Backoff

log = logging.getLogger(__name__)


@dataclass
class LiveDisplay:
    run_id: int
    # What a viewer opening the page now must see: entries since the last reset or "saved".
    shown: list[tuple[str, str]] = field(default_factory=list)
    # Redis was unreachable at the last write: the display is behind until a catch-up.
    down: bool = False
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.1, cap=2.0))
    outages: int = 0

    def publish(self, kind: str, data: str = "") -> None:
        """Show an entry (delta, note, tool, reset, saved); kept for later while Redis is down."""
        if kind in ("reset", "saved"):
            self.shown = []
        else:
            self._remember(kind, data)
        if self.down:
            self.catch_up()  # writes `shown`, this entry included
            return
        try:
            streams.publish(self.run_id, kind, data)
        except REDIS_ERRORS as error:
            self._went_down(error)

    def catch_up(self) -> None:
        """While Redis is down, and its backoff says it is time: write the whole display again."""
        if not self.down or not self.backoff.due():
            return
        try:
            streams.publish_many(self.run_id, [("reset", ""), *self.shown])
        except REDIS_ERRORS as error:
            self._went_down(error)
            return
        lasted = self.backoff.recovered()
        self.down = False
        log.info("run %s: %s answered again after %.1f s; the live display caught up", self.run_id, REDIS, lasted)

    def end(self) -> None:
        """The run ended and is in the database: pages render it from there. When Redis is
        down the open pages notice on their own (they re-check the run's status while idle)."""
        if self.down:
            self.backoff.next_try = 0.0  # one last try, now
            self.catch_up()
        try:
            streams.publish_end(self.run_id)
        except REDIS_ERRORS as error:
            log.warning("run %s: ended, but %s could not be told (%s); pages read the end from the database",
                        self.run_id, REDIS, error)

    def text(self) -> str:
        """The reply text shown since the last reset (kept here, not read back from Redis)."""
        return "".join(data for kind, data in self.shown if kind == "delta")

    def _remember(self, kind: str, data: str) -> None:
        if kind == "delta" and self.shown and self.shown[-1][0] == "delta":
            self.shown[-1] = ("delta", self.shown[-1][1] + data)
        else:
            self.shown.append((kind, data))

    def _went_down(self, error: BaseException) -> None:
        if not self.down:
            self.outages += 1
            self.down = True
            log.warning("run %s: %s unreachable (%s); the reply goes on and the display catches up later",
                        self.run_id, REDIS, error)
        self.backoff.failed()
