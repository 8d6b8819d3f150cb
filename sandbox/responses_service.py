"""Stored and background responses: their documents, their clock, cancel, webhooks and counts.

A response is generated once, when it is created (sandbox/responses_engine.py), and its
final form is what gets stored. A background response then only *reveals* that answer
on the sandbox clock: queued for QUEUE_SECONDS, then one stream event every
EVENT_SECONDS (simulated seconds; SANDBOX_TIME_SCALE divides them), so its status, its
output so far and the events a stream may replay are all computed from the stored
creation time on every read. Nothing advances in a loop and a restart changes nothing.

Documents live in <data_dir>/responses/<id>.json (store=true or background=true); a
response created with store=false is never written and cannot be retrieved, as with
the real API. Each is visible only to the API key that created it.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from .errors import invalid, not_found
from .models_data import ModelSpec
from .owners import OWNER_FIELD, fingerprint, owns
from .responses_engine import Lookup, build_events, cancelled, generate, snapshot
from .state import SandboxState
from .store import Collection

QUEUE_SECONDS = 2.0  # simulated seconds a background response waits as "queued"
EVENT_SECONDS = 0.02  # simulated seconds between two events of a background response (50 a second)
TERMINAL = ("completed", "incomplete", "failed", "cancelled")
EVENTS_CACHED = 256  # responses whose event lists are kept in memory


@dataclass
class Created:
    response: dict[str, Any]  # the final response (what a non-background call returns)
    doc: dict[str, Any] | None  # the stored document, when there is one
    events: list[dict[str, Any]]  # empty unless streamed, background or failing


class ResponsesService:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.docs = Collection(state.store.root, "responses")
        self.counts: dict[str, Counter[str]] = {}
        self.items: dict[str, tuple[str, dict[str, Any]]] = {}  # item id -> (response id, item)
        for doc in self.docs.values():
            self._index(doc)
        self.active = {d["id"] for d in self.docs.values() if d["background"] and not d["webhook_sent"]}
        # Events are a pure function of the document; keep the recent ones so polling stays cheap.
        self._events: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        state.tick_hooks.append(self._tick)

    # -- counting --------------------------------------------------------------------------
    def count(self, api_key: str, what: str) -> None:
        self.counts.setdefault(api_key, Counter())[what] += 1

    def stats(self, api_key: str) -> dict[str, int]:
        counts = self.counts.get(api_key, Counter())
        return {k: counts[k] for k in ("create_requests", "responses_generated", "background_created",
                                       "stream_resumes", "cancel_requests")}

    # -- creating ------------------------------------------------------------------------------
    def lookup(self, api_key: str) -> Lookup:
        def context_of(response_id: str) -> list[dict[str, Any]] | None:
            doc = self.docs.get(response_id)
            if doc is None or not owns(api_key, doc):
                return None
            return [*doc["context"], *self.view(doc)["output"]]

        def stored_item(item_id: str) -> dict[str, Any] | None:
            found = self.items.get(item_id)
            if found is None:
                return None
            doc = self.docs.get(found[0])
            return found[1] if owns(api_key, doc) else None

        return Lookup(context_of=context_of, stored_item=stored_item)

    def create(self, body: dict[str, Any], spec: ModelSpec, api_key: str) -> Created:
        response, prepared = generate(self.state.simulator, body, spec, self.lookup(api_key))
        background = bool(body.get("background"))
        # A sandbox switch for the unhappy path: metadata {"sandbox_fail": "true"} fails the response
        # half way through its stream, as a server error would.
        fail = (body.get("metadata") or {}).get("sandbox_fail") == "true"
        self.count(api_key, "responses_generated")
        created_at = time.time()
        # The events (an event per word) are built only when something uses them: a stream, the
        # background clock, or a failing response whose final form is cut from them. A plain
        # call's final response is the generated one.
        events = (build_events(response, background=background, fail=fail)
                  if background or fail or body.get("stream") else [])
        if background and response["completed_at"] is not None:
            # It completes when the clock has revealed its last event, not now (the terminal event
            # holds this same dict, so the stream says so too).
            end = self.state.clock.real_at(created_at, QUEUE_SECONDS + (len(events) - 3) * EVENT_SECONDS)
            response["completed_at"] = max(response["created_at"], int(end))
        doc = None
        if background or response["store"]:
            doc = {
                "id": response["id"],
                "created_at": created_at,
                "_api_key": api_key,  # the webhook sender needs the key itself
                OWNER_FIELD: fingerprint(api_key),
                "background": background,
                "fail": fail,
                "response": response,
                "context": prepared.context,
                "cancelled_at": None,
                "webhook_sent": False,
            }
            self.docs.put(doc)
            self._index(doc)
            if background:
                self.count(api_key, "background_created")
                self.active.add(doc["id"])
        if doc is not None and events:
            self._remember(doc["id"], events)
        final = events[-1]["response"] if events else response
        return Created(response=final, doc=doc, events=events)

    def _index(self, doc: dict[str, Any]) -> None:
        response = doc["response"]
        reasoning_tokens = (response.get("usage") or {}).get("output_tokens_details", {}).get("reasoning_tokens", 0)
        for item in response["output"]:
            entry = {**item, "_reasoning_tokens": reasoning_tokens} if item["type"] == "reasoning" else item
            self.items[item["id"]] = (doc["id"], entry)

    # -- reading ----------------------------------------------------------------------------------
    def get(self, response_id: str, api_key: str) -> dict[str, Any]:
        doc = self.docs.get(response_id)
        if doc is None or not owns(api_key, doc):
            raise not_found(f"Response with id '{response_id}' not found.", param=None)
        return doc

    def events(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._events.get(doc["id"])
        if events is None:
            events = build_events(doc["response"], background=doc["background"], fail=doc["fail"])
            self._remember(doc["id"], events)
        else:
            self._events.move_to_end(doc["id"])
        return events

    def _remember(self, response_id: str, events: list[dict[str, Any]]) -> None:
        self._events[response_id] = events
        while len(self._events) > EVENTS_CACHED:
            self._events.popitem(last=False)

    def due_times(self, doc: dict[str, Any], count: int) -> list[float]:
        """The real time at which each event of a background response happens."""
        clock, start = self.state.clock, doc["created_at"]
        if not doc["background"]:
            return [start] * count
        return [start if i < 2 else clock.real_at(start, QUEUE_SECONDS + (i - 2) * EVENT_SECONDS)
                for i in range(count)]

    def happened(self, doc: dict[str, Any], events: list[dict[str, Any]], now: float | None = None) -> int:
        """How many of the events have happened by now (cancelling stops the rest)."""
        now = time.time() if now is None else now
        cut = now if doc["cancelled_at"] is None else min(now, doc["cancelled_at"])
        return sum(1 for due in self.due_times(doc, len(events)) if due <= cut)

    def view(self, doc: dict[str, Any], now: float | None = None) -> dict[str, Any]:
        """The response object as GET /v1/responses/{id} shows it now."""
        if not doc["background"] and not doc["fail"]:
            final: dict[str, Any] = doc["response"]  # every event happened at creation
            return final
        events = self.events(doc)
        seen = self.happened(doc, events, now)
        if seen == len(events):
            last: dict[str, Any] = events[-1]["response"]
            return last
        finished = [e["item"] for e in events[:seen] if e["type"] == "response.output_item.done"]
        if doc["cancelled_at"] is not None:
            return cancelled(doc["response"], finished)
        if seen <= 2:
            return snapshot(doc["response"], "queued")
        return snapshot(doc["response"], "in_progress", finished)

    # -- changing ------------------------------------------------------------------------------------
    def cancel(self, doc: dict[str, Any], api_key: str) -> dict[str, Any]:
        self.count(api_key, "cancel_requests")
        if not doc["background"]:
            raise invalid("Only responses created with background=true can be cancelled.", param=None)
        status = self.view(doc)["status"]
        if status == "cancelled":
            return self.view(doc)  # cancelling twice answers the cancelled response again
        if status in TERMINAL:
            raise invalid(f"Cannot cancel a response with status '{status}'.", param=None)
        doc["cancelled_at"] = time.time()
        self.docs.put(doc)
        self._notify(doc)
        return self.view(doc)

    def delete(self, doc: dict[str, Any]) -> None:
        for item in doc["response"]["output"]:
            self.items.pop(item["id"], None)
        self.docs.delete(doc["id"])
        self.active.discard(doc["id"])
        self._events.pop(doc["id"], None)

    # -- webhooks ------------------------------------------------------------------------------------
    def _notify(self, doc: dict[str, Any]) -> None:
        """Send response.completed|incomplete|failed|cancelled once a background response ends."""
        if doc["webhook_sent"] or not doc["background"]:
            self.active.discard(doc["id"])
            return
        status = self.view(doc)["status"]
        if status not in TERMINAL:
            return
        doc["webhook_sent"] = True
        self.docs.put(doc)
        self.active.discard(doc["id"])
        # RuntimeError: no running loop (a synchronous caller); there is nothing to send from there.
        with contextlib.suppress(RuntimeError):
            self.state.webhooks.emit(doc["_api_key"], f"response.{status}", doc["id"])

    def _tick(self) -> None:
        """Run by the sandbox's ticker (SandboxState.tick_hooks): notice background responses that ended."""
        for response_id in list(self.active):
            doc = self.docs.get(response_id)
            if doc is None:
                self.active.discard(response_id)
            else:
                self._notify(doc)

