"""Background responses awaiting the provider: beat polls them, no worker waits on them.

A long-running version's response whose stream cannot be followed (the provider refuses
to stream it, or the stream broke and could not be resumed) is handed here by the run
loop (responses_loop.polling_start): the run stays running with `poll_at` set and its
worker is let go. Beat's task fetches every due response (GET /v1/responses/{id}),
backing off between looks as the project's pollers do (poll_backoff_seconds), shows what
the provider has written so far, and when the response is over ends the run as the
streaming loop does (responses_loop.turn_end: the same reply, ledger row, usage and cost,
`incomplete` and `failed` in words). A response.* webhook, and Stop, ask for a fetch at
once (services.run_fetch_now); Stop cancels the response on the provider.

One fetch at a time: a fetch claims the run with a conditional update that sets a lease
(`poll_lease_until`), so two beat ticks, or a webhook's fetch and a tick, never fetch or
show a response together; and every end goes through run_attempt.run_finish, which locks the
run and writes only while it is still running, so a run is finished once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from assistants_app import streams
from assistants_app.live import LiveDisplay
from assistants_app.models import Run, RunStatus
from assistants_app.responses_loop import cancel_background, turn_end, usage_save_part
from assistants_app.responses_stream import (
    ResponseTurn,
    error_event,
    final_output,
    first_output,
    resume_point,
    shown_text,
    turn_calls,
    usage_as_chat,
)
from assistants_app.run_attempt import (
    Clock,
    RunCancelled,
    RunStopped,
    RunSuperseded,
    Usage,
    attempt_failed,
    ensure_owned,
    provider_client,
    release_database_connection,
)
from project.outages import REDIS_ERRORS
from project.providers.client import ProviderError, poll_backoff_seconds, provider_errors
from project.providers.connection_facts import connection_model_facts
from project.providers.model_facts import ModelFacts
from project.queue import task_send_on_commit

log = logging.getLogger(__name__)

# Between two looks at a response still being written: doubling from 1 s to 30 s.
POLL_BASE_SECONDS = 1.0
POLL_CAP_SECONDS = 30.0
# A fetch holds the run this long at most; a fetcher that died is replaced after it.
LEASE_SECONDS = 120.0
# A response the provider has not finished after this long is cancelled and the run failed.
POLL_GIVE_UP_AFTER = timedelta(hours=6)
# One beat tick fetches for at most this long (the rest are due at the next tick), this
# many at a time.
TICK_SECONDS = 20.0
FETCHERS = 8
TERMINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})


@dataclass(frozen=True)
class _Claim:
    run_id: int
    at: datetime  # the run's poll_at while claimed: changed under us means "fetch again now"
    lease: datetime


def _claim(run_id: int, *, now_too: bool) -> _Claim | None:
    """Take the run's next fetch: it is awaiting the provider, due (or `now_too`: asked for
    at once), and no other fetch holds it. None when another has it or it is not polled."""
    now = timezone.now()
    due = Q() if now_too else Q(poll_at__lte=now)
    lease = now + timedelta(seconds=LEASE_SECONDS)
    claimed = Run.objects.filter(due, Q(poll_lease_until__isnull=True) | Q(poll_lease_until__lt=now), pk=run_id,
                                 status=RunStatus.RUNNING, poll_at__isnull=False).update(
        poll_at=now, poll_lease_until=lease, poll_attempts=F("poll_attempts") + 1)
    return _Claim(run_id, now, lease) if claimed else None


def _release(claim: _Claim, *, wait: float) -> bool:
    """Give the run back to beat, next due in `wait` seconds. False when a fetch was asked for
    while this one was under way (poll_at moved) and the run is still polled: the caller
    fetches again at once."""
    base = Run.objects.filter(pk=claim.run_id, poll_lease_until=claim.lease)
    if base.filter(poll_at=claim.at).update(poll_at=timezone.now() + timedelta(seconds=wait), poll_lease_until=None):
        return True
    base.update(poll_lease_until=None)
    return not Run.objects.filter(pk=claim.run_id, status=RunStatus.RUNNING, poll_at__isnull=False).exists()


def _display(run: Run) -> LiveDisplay:
    """The run's live display, knowing what its stream shows already (so a Redis outage
    during a fetch writes the whole display back, not only this fetch's part)."""
    live = LiveDisplay(run.pk)
    with contextlib.suppress(*REDIS_ERRORS):  # out of reach: the display starts from this fetch's part
        live.shown = streams.fold(streams.redis_client().xrange(streams.stream_key(run.pk)))[0]
    return live


def _stop_asked(run: Run) -> bool:
    """Whether a person pressed Stop (no worker watches a polled run for it). While Redis is
    down nobody can have asked: the stop button writes to Redis."""
    try:
        return bool(streams.cancels_requested([run.pk]))
    except REDIS_ERRORS:
        return False


def _clock(run: Run) -> Clock:
    """A clock that counts from the attempt's start and knows its first token, so the run's
    times read as the streaming loop's would."""
    clock = Clock(_display(run))
    if run.started_at is not None:
        clock.started = time.monotonic() - (timezone.now() - run.started_at).total_seconds()
    if run.ttft_ms is not None:
        clock.first_token = clock.started + run.ttft_ms / 1000
    return clock


def _show_progress(run: Run, clock: Clock, text: str, *, final: bool) -> None:
    """Show the text the response holds beyond what the page shows. Only a finished
    response's text may replace a display it does not continue."""
    resume = resume_point(run)
    shown = resume.shown_text if resume else ""
    if text.startswith(shown):
        if text != shown:
            clock.live.publish("delta", text[len(shown):])
    elif final:
        clock.live.publish("reset")
        clock.live.publish("delta", text)
    if text:
        first_output(clock)


def _end_run(run: Run, final: dict[str, Any], *, facts: ModelFacts, clock: Clock) -> None:
    """The response is over: end the run as the streaming loop ends it."""
    usage = Usage()
    status = str(final.get("status"))
    try:
        if status == "failed":
            raise error_event(final.get("error") or {})
        if status == "cancelled":
            if _stop_asked(run):
                raise RunCancelled()
            raise RunStopped("The provider cancelled the reply.")
        turn = ResponseTurn(response_id=run.response_id, status=status,
                            incomplete_reason=str((final.get("incomplete_details") or {}).get("reason") or ""))
        final_output(turn, final)
        turn_calls(turn)
        usage.add(usage_as_chat(final["usage"]) if final.get("usage") else None)
        _show_progress(run, clock, turn.text, final=True)
        if turn_end(run, turn, usage=usage, facts=facts, clock=clock, request_id=run.request_id,
                    trimmed=run.trimmed_messages):
            return
        _next_round(run, usage, facts=facts, clock=clock)
    except RunSuperseded:
        raise
    except Exception as error:  # noqa: BLE001 - each kind ends the run in words (run_attempt.attempt_failed)
        attempt_failed(run, error, usage=usage, facts=facts, clock=clock, request_id=run.request_id,
                       trimmed=run.trimmed_messages, shown=lambda: shown_text(run) or clock.live.text())


def _next_round(run: Run, usage: Usage, *, facts: ModelFacts, clock: Clock) -> None:
    """The polled response called tools, whose results are saved: a worker asks the model
    again (a new response), as for a run sent again after a person answered."""
    with transaction.atomic():
        ensure_owned(run)
        usage_save_part(run, usage, facts=facts, clock=clock)
        Run.objects.filter(pk=run.pk).update(status=RunStatus.QUEUED, heartbeat_at=timezone.now(), poll_at=None,
                                             poll_lease_until=None, poll_attempts=0)
        task_send_on_commit("assistants_app.run_execute", run.pk)


def _give_up(run: Run, *, facts: ModelFacts, clock: Clock) -> None:
    cancel_background(run)
    hours = POLL_GIVE_UP_AFTER.total_seconds() / 3600
    attempt_failed(run, RunStopped(f"The provider had not finished the reply after {hours:.0f} hours; it was "
                                   "cancelled."), usage=Usage(), facts=facts, clock=clock, request_id=run.request_id,
                   trimmed=run.trimmed_messages, shown=clock.live.text)


def _past_give_up(run: Run) -> bool:
    return run.started_at is not None and timezone.now() - run.started_at > POLL_GIVE_UP_AFTER


def _fetch_claimed(claim: _Claim) -> bool:
    """One look at the claimed run's response. True when this call is done with the run (it
    ended, or waits for its next look); False when it is to look again at once."""
    run = Run.objects.select_related("thread__team", "assistant__connection", "version").get(pk=claim.run_id)
    connection = run.assistant.connection
    facts = connection_model_facts(connection, run.model)
    clock = _clock(run)
    if connection is None or not run.response_id:
        attempt_failed(run, RunStopped("The reply's connection was removed while it was being written."),
                       usage=Usage(), facts=facts, clock=clock, request_id=run.request_id,
                       trimmed=run.trimmed_messages, shown=clock.live.text)
        return True
    if _stop_asked(run):
        # Stop: the provider stops writing (it bills what it wrote); what was shown is kept.
        cancel_background(run)
        attempt_failed(run, RunCancelled(), usage=Usage(), facts=facts, clock=clock, request_id=run.request_id,
                       trimmed=run.trimmed_messages, shown=lambda: shown_text(run) or clock.live.text())
        return True
    # The GET may take up to the client's timeout: the pool's connection is not held meanwhile
    # (the io worker's runs share it), as the streaming loops do.
    release_database_connection()
    try:
        with provider_errors():
            final = provider_client(connection).responses.with_raw_response.retrieve(run.response_id).parse().model_dump(
                mode="json")
    except ProviderError as error:
        if error.transient and _past_give_up(run):
            # A provider that keeps failing is not asked for ever.
            _give_up(run, facts=facts, clock=clock)
            return True
        if error.transient:
            wait = poll_backoff_seconds(run.poll_attempts, error, base=POLL_BASE_SECONDS, cap=POLL_CAP_SECONDS)
            log.info("run %s: fetching response %s failed, again in %.0f s: %s", run.pk, run.response_id, wait,
                     error.message)
            return _release(claim, wait=wait)
        attempt_failed(run, error, usage=Usage(), facts=facts, clock=clock, request_id=run.request_id,
                       trimmed=run.trimmed_messages, shown=lambda: shown_text(run) or clock.live.text())
        return True
    if final.get("status") in TERMINAL_STATUSES:
        _end_run(run, final, facts=facts, clock=clock)
        return True
    if _past_give_up(run):
        _give_up(run, facts=facts, clock=clock)
        return True
    partial = ResponseTurn()
    final_output(partial, final)
    _show_progress(run, clock, partial.text, final=False)
    return _release(claim, wait=poll_backoff_seconds(run.poll_attempts, None, base=POLL_BASE_SECONDS,
                                                     cap=POLL_CAP_SECONDS))


def response_fetch(run_id: int, *, now_too: bool = False) -> bool:
    """Fetch the run's background response if it is due (or `now_too`: a webhook or Stop
    asked) and no other fetch holds it; end the run when the response is over. True when
    this call fetched."""
    fetched = False
    # Again at once when a fetch was asked for while this one was under way.
    for _ in range(3):
        claim = _claim(run_id, now_too=now_too or fetched)
        if claim is None:
            break
        fetched = True
        try:
            over = _fetch_claimed(claim)
        except RunSuperseded:
            log.info("run %s: ended by another fetch or attempt; this fetch writes nothing", run_id)
            over = True
        finally:
            # Whatever happened, the lease is this fetch's to give back (an ended run keeps none).
            Run.objects.filter(pk=run_id, poll_lease_until=claim.lease).exclude(status=RunStatus.RUNNING).update(
                poll_at=None, poll_lease_until=None)
        if over:
            break
    return fetched


def _fetch_in_pool(run_id: int, deadline: float) -> bool:
    if time.monotonic() > deadline:
        return False  # due again at the next tick
    try:
        return response_fetch(run_id)
    except Exception:  # one run's bug must not keep the others waiting; its lease lapses
        log.exception("run %s: fetching its background response crashed", run_id)
        return False
    finally:
        db_connection.close()  # this pool thread's connection goes back to the pool


def responses_poll_due(*, limit_seconds: float = TICK_SECONDS) -> int:
    """Beat's tick: fetch every background response that is due, oldest first, FETCHERS at a
    time (many ending together are not fetched one after another), for at most
    `limit_seconds`. Returns how many were fetched."""
    deadline = time.monotonic() + limit_seconds
    now = timezone.now()
    due = list(Run.objects.filter(status=RunStatus.RUNNING, poll_at__lte=now)
               .filter(Q(poll_lease_until__isnull=True) | Q(poll_lease_until__lt=now))
               .order_by("poll_at").values_list("pk", flat=True)[:500])
    if not due:
        return 0
    with ThreadPoolExecutor(max_workers=min(FETCHERS, len(due)), thread_name_prefix="poll") as pool:
        return sum(pool.map(lambda run_id: _fetch_in_pool(run_id, deadline), due))
