"""What more than one chat page shows (the thread page, a compare column, the event
stream's rendered blocks): view-model builders, shared here so no view
module imports another. Display state goes in the context, never onto model instances."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Q
from django.template.loader import render_to_string

from assistants_app import selectors, streams
from assistants_app.models import Message, Role, Run, RunStatus, Thread
from project.outages import REDIS, REDIS_ERRORS
from project.spend.selectors import sources_cost


def _attach_runs(messages: list[Message]) -> list[Any]:
    """Group messages for display: a user message, then each run's messages as one group
    (with the run's meta line and, when it failed or was stopped, why) that a live block
    can replace. A run that ended without writing anything still gets its (empty) group
    after the message that started it, so its reason is shown once, in the run's block."""
    user_ids = [m.pk for m in messages if m.role == Role.USER]
    run_ids = {m.run_id for m in messages if m.run_id is not None}
    found = list(Run.objects.filter(Q(user_message_id__in=user_ids) | Q(pk__in=run_ids)))
    ended = [run.pk for run in found if run.pk not in run_ids and run.status in (RunStatus.FAILED, RunStatus.CANCELLED)]
    # Its messages may be on a newer page: only a run that wrote nothing at all is shown empty.
    wrote = set(Message.objects.filter(run_id__in=ended).values_list("run_id", flat=True).distinct()) if ended else set()
    silent_by = {run.user_message_id: run for run in found if run.pk in ended and run.pk not in wrote}
    by_id = {run.pk: run for run in found}
    items: list[Any] = []
    for message in messages:
        if message.role == Role.USER:
            items.append(("message", message))
            if (silent := silent_by.get(message.pk)) is not None:
                items.append(("group", {"run_id": silent.pk, "messages": [], "run": silent}))
        elif items and items[-1][0] == "group" and items[-1][1]["run_id"] == message.run_id:
            items[-1][1]["messages"].append(message)
        else:
            # With its run, the group shows what the run cost and took, and has the id a
            # resumed run's live block takes the place of.
            run = by_id.get(message.run_id) if message.run_id is not None else None
            items.append(("group", {"run_id": message.run_id, "messages": [message], "run": run}))
    # What each run cost is what the ledger holds for it (one query for the page).
    groups = [item for kind, item in items if kind == "group" and item["run"] is not None]
    billed = sources_cost(team_id=groups[0]["run"].team_id, source_kind="run",
                          source_ids=[g["run_id"] for g in groups]) if groups else {}
    for group in groups:
        group["billed"] = billed.get(group["run_id"])
    return items


def run_group_context(run: Run) -> dict[str, Any]:
    """The run's block, its messages and billed cost read here."""
    messages = list(run.messages.select_related("version").order_by("id"))
    billed = None if _live(run) else sources_cost(team_id=run.team_id, source_kind="run", source_ids=[run.pk]).get(run.pk)
    return run_block_context(run, messages=messages, billed=billed)


def run_block_context(run: Run, *, messages: list[Message], billed: Decimal | None) -> dict[str, Any]:
    """The run's block from what the caller has read: its messages and what the ledger
    holds for it (not shown while the run is live)."""
    live = _live(run)
    return {"run": run, "group_messages": messages, "live": live, "billed": None if live else billed}


class PostedRunBlock:
    """The block of a run just posted (its message, then its live block) rendered once, for
    the POST's answer and, sent with the run's announcement (services.thread_post's
    run_block), for every page open on the thread, which shows it without a query and a
    render of its own (views_stream): in a burst of posts that was a fifth of the web's
    CPU. Shared by whoever views the thread, so it holds nothing of one request: no CSRF
    field in its Stop form, which posts through htmx with the page's token (base.html)."""

    def __init__(self) -> None:
        self.html = ""

    def __call__(self, message: Message, run: Run) -> str:
        self.html = render_to_string("assistants_app/_run_started.html", {
            "message": message, "run": run, "group_messages": [], "live": True, "billed": None, "shared": True})
        return self.html


def _live(run: Run) -> bool:
    return run.status in (RunStatus.QUEUED, RunStatus.RUNNING)


def thread_view_context(thread: Thread, *, before: int | None = None) -> dict[str, Any]:
    """What a page showing a thread needs (the thread page, a compare column): a page of
    messages grouped by run, the active runs as live blocks and, for a whole page, the
    feed position its event stream starts from. A page of older messages (before) has
    neither live blocks nor a stream of its own."""
    # Read before the messages: the page's event stream follows the feed from here, so
    # a run started while the page is rendered is shown twice at worst (the page's
    # script drops the copy), never missed.
    live_paused = False
    feed_position = ""
    if before is None:
        try:
            feed_position = streams.feed_position(thread.pk)
        except REDIS_ERRORS:  # the page still shows what is saved; its stream retries on its own
            live_paused = True
            streams.live_health.failed()
        else:
            streams.live_health.answered()
    messages, has_older = selectors.thread_messages_page(thread=thread, before_id=before)
    active = list(selectors.thread_active_runs(thread=thread).select_related("version"))
    active_ids = {run.pk for run in active}
    items = [item for item in _attach_runs(messages) if not (item[0] == "group" and item[1]["run_id"] in active_ids)]
    active_runs = [run_group_context(run) for run in active] if before is None else []
    return {"thread": thread, "items": items, "has_older": has_older, "feed_position": feed_position,
            "live_paused": live_paused, "live_service": REDIS,
            "oldest_id": messages[0].pk if messages else None, "active_runs": active_runs,
            # The runs this page shows as writing: its stream ends each one, even one that
            # finished between the page's render and the stream's start.
            "live_run_ids": ",".join(str(group["run"].pk) for group in active_runs if group["live"])}


def live_updates_paused() -> bool:
    """Whether the live display (Redis) is out of reach, as this process's last write to it
    found (the message POST's own announcement of its run, just before): a page says so
    instead of waiting."""
    return streams.live_health.down
