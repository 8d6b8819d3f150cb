"""Writes: assistants and versions, threads, messages, runs and their control."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, partial
from typing import Any

from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from assistants_app import streams
from assistants_app.images import MAX_IMAGE_BYTES, ImageRejected, chat_image_store, image_attachment, image_ids_in
from assistants_app.models import (
    ACTIVE_STATUSES,
    Assistant,
    AssistantVersion,
    Message,
    Role,
    Run,
    RunStatus,
    Thread,
)
from assistants_app.spend import run_budget_reserve, run_reservation_key
from project import crypto
from project.files.services import file_upload
from project.joined_rows import JoinedModel, insert_columns, inserted, pipelined
from project.outages import REDIS, REDIS_ERRORS
from project.providers.capabilities import REFUSALS, RequestNeeds, connection_capabilities, request_refusal, supports
from project.providers.client import ProviderError
from project.providers.connection_facts import connection_price_facts_given
from project.providers.models import ConnectionModelFacts, ProviderConnection
from project.providers.remote_models import connection_has_model
from project.providers.team_models import FINE_TUNED_PREFIX, team_model_lookup
from project.queue import task_send
from project.server_timing import timed
from project.spend.budgets import BudgetExceeded, reservation_release
from project.teams.models import Team
from project.teams.services import audit_record
from project.tokens import count_message, encoding_for_model
from project.vision import image_tokens
from project.workloads import BROKER_ERRORS

log = logging.getLogger(__name__)

VERSION_FIELDS = ("model", "instructions", "temperature", "top_p", "reasoning_effort", "max_output_tokens", "tools",
                  "response_schema", "long_running")


class ChatError(Exception):
    """A request the user can fix; the message is shown on the page."""


def _config_of(version: AssistantVersion) -> dict[str, Any]:
    return {field: getattr(version, field) for field in VERSION_FIELDS}


def _version_add(*, assistant: Assistant, actor: User | None, config: dict[str, Any], note: str) -> AssistantVersion:
    last = assistant.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = AssistantVersion.objects.create(assistant=assistant, number=last + 1, created_by=actor, note=note,
                                              **config)
    assistant.current_version = version
    assistant.save(update_fields=["current_version"])
    return version


@transaction.atomic
def assistant_create(*, team: Team, actor: User | None, name: str, description: str = "",
                     connection: ProviderConnection | None, config: dict[str, Any]) -> Assistant:
    assistant = Assistant.objects.create(team=team, name=name, description=description, connection=connection,
                                         tool_secret_encrypted=crypto.encrypt(secrets.token_urlsafe(32)))
    _version_add(assistant=assistant, actor=actor, config=config, note="created")
    audit_record(team=team, actor=actor, action="assistant.create", target=str(assistant.pk), name=name)
    return assistant


@transaction.atomic
def assistant_update(*, assistant: Assistant, actor: User | None, name: str, description: str,
                     connection: ProviderConnection | None, config: dict[str, Any]) -> AssistantVersion | None:
    """Save an edit. A change to the configuration makes a new version; an edit of only
    the name or description does not (versions are about what the model sees)."""
    assistant.name, assistant.description, assistant.connection = name, description, connection
    assistant.save(update_fields=["name", "description", "connection"])
    current = assistant.current_version
    if current is not None and _config_of(current) == config:
        return None
    version = _version_add(assistant=assistant, actor=actor, config=config, note="edited")
    audit_record(team=assistant.team, actor=actor, action="assistant.version", target=str(assistant.pk),
                 version=version.number, name=assistant.name)
    return version


@transaction.atomic
def assistant_rollback(*, assistant: Assistant, version: AssistantVersion, actor: User | None) -> AssistantVersion:
    """Make an old version current again, as a new version that copies it (history only grows)."""
    if version.assistant_id != assistant.pk:
        raise ChatError("That version belongs to another assistant.")
    new = _version_add(assistant=assistant, actor=actor, config=_config_of(version),
                       note=f"rolled back to v{version.number}")
    audit_record(team=assistant.team, actor=actor, action="assistant.rollback", target=str(assistant.pk),
                 to=version.number, name=assistant.name)
    return new


@transaction.atomic
def assistant_switch_model(*, assistant: Assistant, model: str, actor: User | None, note: str) -> AssistantVersion:
    """A new current version that is the current one with another model (the migration
    assistant's "Switch to this model"); `note` says why, naming the evidence."""
    current = assistant.current_version
    if current is None:
        raise ChatError(f"{assistant.name} has no saved version yet.")
    if current.model == model:
        raise ChatError(f"{assistant.name} already uses {model}.")
    version = _version_add(assistant=assistant, actor=actor, config={**_config_of(current), "model": model},
                           note=note[:200])
    audit_record(team=assistant.team, actor=actor, action="assistant.version", target=str(assistant.pk),
                 version=version.number, name=assistant.name, model=model)
    return version


@transaction.atomic
def assistant_duplicate(*, assistant: Assistant, actor: User | None) -> Assistant:
    current = assistant.current_version
    assert current is not None
    return assistant_create(team=assistant.team, actor=actor, name=f"{assistant.name} (copy)"[:120],
                            description=assistant.description, connection=assistant.connection,
                            config=_config_of(current))


def assistant_archive(*, assistant: Assistant, actor: User | None, archived: bool = True) -> Assistant:
    assistant.archived_at = timezone.now() if archived else None
    assistant.save(update_fields=["archived_at"])
    audit_record(team=assistant.team, actor=actor, action="assistant.archive" if archived else "assistant.restore",
                 target=str(assistant.pk), name=assistant.name)
    return assistant


def thread_create(*, team: Team, assistant: Assistant, actor: User | None, title: str = "") -> Thread:
    if assistant.team_id != team.pk:
        raise ChatError("Unknown assistant.")
    if assistant.archived_at is not None:
        raise ChatError("This assistant is archived; restore it to chat with it.")
    return Thread.objects.create(team=team, assistant=assistant, title=title or "New conversation", created_by=actor)


def run_dispatch(run_id: int, thread_id: int, *, again: bool = False, html: str = "") -> bool:
    """Send the run to a worker, then tell the thread's open pages. False when Redis or
    the broker could not be reached: the run stays queued, saved, and the stale-run sweep
    sends it again (again=True: its stream is left as it is) or fails it with a reason.
    The worker first: the pages' reading of the new run (a query and a template in every
    web process with the thread open) then overlaps the worker's start instead of
    delaying it, and a page reads the run's stream from its start, so it misses nothing."""
    return run_send(run_id, again=again) and run_announce(run_id, thread_id, html=html)


def run_send(run_id: int, *, again: bool = False, posted_in: int | None = None) -> bool:
    """Send the run to a worker (run_dispatch's first half); False when the broker or Redis
    could not be reached (the sweep sends it later). `posted_in`: the run is not committed
    yet, and the worker waits for the lock its POST holds on that thread (run_loop.run_claim)."""
    with timed("enqueue"):
        try:
            if not again:
                streams.run_clear(run_id)
            if posted_in is None:
                task_send("assistants_app.run_execute", run_id)
            else:
                task_send("assistants_app.run_execute", run_id, posted_in)
        except BROKER_ERRORS as error:
            streams.live_health.failed()
            log.warning("run %s: could not be sent to a worker yet (%s); the sweep will retry", run_id, error)
            return False
    return True


def run_announce(run_id: int, thread_id: int, *, html: str = "") -> bool:
    """Tell the thread's open pages of a run sent to a worker (run_dispatch's second half);
    `html`: its block, as streams.announce_run takes it. True even when they could not be
    told: the run was sent."""
    try:
        streams.announce_run(thread_id, run_id, html)
    except BROKER_ERRORS as error:
        streams.live_health.failed()
        log.warning("run %s: sent to a worker, but its thread's open pages were not told (%s)", run_id, error)
        return True
    streams.live_health.answered()
    return True


def _enqueue(run: Run) -> None:
    transaction.on_commit(partial(run_dispatch, run.pk, run.thread_id))


def _reply_in_progress(thread: Thread) -> bool:
    return Run.objects.filter(thread=thread, status__in=ACTIVE_STATUSES).exists()


def _check_can_post(thread: Thread, *, text: str, has_attachments: bool) -> AssistantVersion:
    if not text and not has_attachments:
        raise ChatError("Write a message or attach an image or file.")
    assistant = thread.assistant
    version = assistant.current_version
    if version is None or assistant.archived_at is not None:
        raise ChatError("This assistant cannot run: it is archived or has no version.")
    if assistant.connection is None:
        raise ChatError("This assistant has no provider connection; choose one in its settings.")
    _check_server_supports(assistant.connection, RequestNeeds(tools=bool(version.tools),
                                                              json_schema=bool(version.response_schema)))
    return version


def _check_server_supports(connection: ProviderConnection, needs: RequestNeeds, *, files: bool = False) -> None:
    """Refuse, before anything is stored or sent, what the server was probed not to support."""
    if not needs.names and not files:
        return  # plain chat: every server serves it, no need to read what was probed
    capabilities = connection_capabilities(connection)
    refusal = request_refusal(capabilities, needs)
    if not refusal and files and supports(capabilities, "files") is False:
        refusal = REFUSALS["files"]
    if refusal:
        raise ChatError(refusal)


type RunBlock = Callable[[Message, Run], str]


def thread_post(*, thread: Thread, actor: User | None, text: str, images: Sequence[UploadedFile] = (),
                files: Sequence[UploadedFile] = (), run_block: RunBlock | None = None) -> tuple[Message, Run]:
    """Post what a person sent from the thread page. Whether the post is allowed is decided
    before anything is stored or sent to the provider: a refused post uploads nothing.
    `run_block`: see thread_post_message."""
    text = text.strip()
    if not images and not files:
        # Nothing to upload first: thread_post_message checks everything, once.
        return thread_post_message(thread=thread, actor=actor, text=text, run_block=run_block)
    _check_can_post(thread, text=text, has_attachments=True)
    assert thread.assistant.connection is not None  # _check_can_post
    _check_server_supports(thread.assistant.connection, RequestNeeds(images=bool(images)), files=bool(files))
    if _reply_in_progress(thread):
        raise ChatError("A reply is still being written in this thread; wait for it or stop it.")
    attachments: list[dict[str, Any]] = []
    for upload in images:
        name = upload.name or "image"
        try:
            image = chat_image_store(team=thread.team, data=upload.read(MAX_IMAGE_BYTES + 1), name=name)
        except ImageRejected as error:
            raise ChatError(str(error)) from error
        attachments.append(image_attachment(image, name))
    connection = thread.assistant.connection
    assert connection is not None  # _check_can_post
    for upload in files:
        stored = file_upload(team=thread.team, connection=connection, purpose="user_data", name=upload.name or "file",
                             chunks=upload.chunks(), actor=actor)
        attachments.append({"type": "file", "file_id": stored.pk, "remote_id": stored.remote_id, "name": stored.name})
    return thread_post_message(thread=thread, actor=actor, text=text, attachments=attachments, run_block=run_block)


def thread_post_message(*, thread: Thread, actor: User | None, text: str,
                        attachments: list[dict[str, Any]] | None = None,
                        run_block: RunBlock | None = None) -> tuple[Message, Run]:
    """Store the user's message and a queued run in one transaction, the run sent to a worker
    as soon as it is written (see below) and the thread's open pages told on commit.
    `run_block`: renders the message and the run's block as every page open on the thread
    is to show them; called once committed, its HTML goes with the announcement."""
    text = text.strip()
    attachments = attachments or []
    version = _check_can_post(thread, text=text, has_attachments=bool(attachments))
    assistant = thread.assistant
    # A new conversation is named after its first message.
    title = text[:80] if thread.title == "New conversation" and text else None
    # The run goes to a worker as soon as its row is written, before the commit: the worker's
    # start (the broker's delivery, its thread) then overlaps the rest of this transaction, and
    # its claim waits for the lock on the thread's row taken below, so it reads the run once
    # committed (or nothing, if the post is refused and rolled back). Inside a caller's own
    # transaction the commit is not this function's to wait for: the run is sent after it.
    send_early = not transaction.get_connection().in_atomic_block
    sent_early = False  # set below; read once the transaction commits (the run is stored then)

    def committed() -> None:
        html = ""
        if run_block is not None:
            try:
                html = run_block(message, run)
            except Exception:  # the pages render it themselves, as for any other run
                log.exception("run %s: its block could not be rendered for the announcement", run.pk)
        if not send_early:
            run_dispatch(run.pk, run.thread_id, html=html)
        elif sent_early:  # else the broker was out of reach: the sweep sends it
            run_announce(run.pk, run.thread_id, html=html)

    # Pictures count too (from their stored size), so trimming leaves room for them.
    tokens = count_message({"role": "user", "content": text}, encoding_for_model(version.model))
    tokens += sum(image_tokens(int(a.get("width") or 0), int(a.get("height") or 0))
                  for a in attachments if a.get("type") == "image")
    message = Message(thread=thread, team_id=thread.team_id, role=Role.USER, text=text, attachments=attachments,
                      author=actor, token_count=tokens)
    run = Run(thread=thread, team_id=thread.team_id, assistant=assistant, version=version, model=version.model)
    with transaction.atomic():
        # Registered first, so it runs first once the transaction commits: the run is sent
        # (or its pages told) before what the message's saving asks for (search's waiting list).
        transaction.on_commit(committed)
        saved_facts = _post_store(thread, message, run, title=title, now=timezone.now())
        sent_early = send_early and run_send(run.pk, posted_in=thread.pk)
        try:
            run_budget_reserve(team=thread.team, thread=thread, run=run,
                               facts=connection_price_facts_given(run.model, saved_facts))
        except BudgetExceeded as error:
            raise ChatError(str(error)) from error
    return message, run


_SAVED_FACTS = JoinedModel(ConnectionModelFacts, "f")


@cache
def _post_sql() -> tuple[str, str, str, str]:
    """thread_post_message's statements (_post_store); only the models' own table and column
    names are formatted in, every value is a parameter."""
    message_columns, _ = insert_columns(Message())
    run_columns, _ = insert_columns(Run(), leave_out=("user_message_id",))
    thread_table, run_table, message_table = Thread._meta.db_table, Run._meta.db_table, Message._meta.db_table
    lock = f"UPDATE {thread_table} SET updated_at = %s, title = coalesce(%s, title) WHERE id = %s"  # noqa: S608
    busy = f"SELECT EXISTS (SELECT 1 FROM {run_table} WHERE thread_id = %s AND status = ANY(%s))"  # noqa: S608
    store = (f"WITH m AS (INSERT INTO {message_table} ({', '.join(message_columns)}) "  # noqa: S608
             f"VALUES ({', '.join(['%s'] * len(message_columns))}) RETURNING id) "
             f"INSERT INTO {run_table} ({', '.join(run_columns)}, user_message_id) "
             f"SELECT {', '.join(['%s'] * len(run_columns))}, m.id FROM m RETURNING user_message_id, id")
    facts = (f"SELECT {_SAVED_FACTS.columns} FROM {ConnectionModelFacts._meta.db_table} f "  # noqa: S608
             "WHERE f.connection_id = %s AND f.model_id = %s")
    return lock, busy, store, facts


def _post_store(thread: Thread, message: Message, run: Run, *, title: str | None,
                now: datetime) -> ConnectionModelFacts | None:
    """Store the posted message and its queued run (unsaved instances; saved here, ids and
    all), in the caller's transaction, in one round trip after its BEGIN where the ORM took
    six: the thread's row locked (two messages posted at the same moment cannot both start
    a run, and a worker sent the run early waits on the lock, run_loop.run_claim), then,
    seeing what committed before that lock, whether a reply is in progress, the message and
    the run written, and the connection's saved facts for the run's model read (the budget
    hold is priced by them; returned, None when it has none). A reply in progress raises
    ChatError: the caller's transaction is rolled back, the writes with it. The message's
    post_save and the run's are sent as the ORM would."""
    lock, busy, store, facts = _post_sql()
    _, message_values = insert_columns(message)
    _, run_values = insert_columns(run, leave_out=("user_message_id",))
    _, in_progress, stored, saved_facts = pipelined([
        (lock, (now, title, thread.pk)),
        (busy, (thread.pk, [str(status) for status in ACTIVE_STATUSES])),
        (store, (*message_values, *run_values)),
        (facts, (thread.assistant.connection_id, run.model))])
    assert in_progress is not None and stored is not None
    if in_progress[0]:
        raise ChatError("A reply is still being written in this thread; wait for it or stop it.")
    inserted(message, stored[0])
    run.user_message = message
    inserted(run, stored[1])
    found = _SAVED_FACTS.build(saved_facts) if saved_facts is not None else None
    assert found is None or isinstance(found, ConnectionModelFacts)
    return found


def run_cancel(*, run: Run, actor: User | None) -> Run:
    """Stop a run. A queued or waiting run ends here; a running one is told through Redis
    and the worker stops at its next delta, keeping what was written so far."""
    ended = Run.objects.filter(pk=run.pk, status__in=(RunStatus.QUEUED, RunStatus.WAITING)).update(
        status=RunStatus.CANCELLED, finished_at=timezone.now(), error="Stopped before it started.")
    try:
        if ended:
            reservation_release(key=run_reservation_key(run.pk))
            Message.objects.filter(run=run, pending=True).update(pending=False, text="(stopped: no answer was given)")
            streams.publish_end(run.pk)
        elif run.status == RunStatus.RUNNING:
            streams.cancel_request(run.pk)
            # No worker reads the stop of a run awaiting the provider: a fetch does, now.
            run_fetch_now(run_ids=[run.pk])
    except REDIS_ERRORS as error:
        if not ended:  # the worker learns of a stop only through Redis
            raise ChatError(f"The reply cannot be stopped right now: {REDIS} is unreachable. "
                            "Try again in a moment.") from error
        log.warning("run %s: stopped, but its pages could not be told (%s)", run.pk, error)
    run.refresh_from_db()
    return run


def run_fetch_now(*, run_ids: Sequence[int]) -> int:
    """Background responses beat polls (responses_poll) that must be looked at now: a
    response.* webhook said one ended, or a person pressed Stop. Each is marked due at once
    (a fetch under way looks again when it is done) and a fetch is sent to a worker; if the
    broker is out of reach, beat's next tick finds it due. Returns how many were marked."""
    marked = 0
    for run_id in run_ids:
        if Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, poll_at__isnull=False).update(
                poll_at=timezone.now()):
            marked += 1
            try:
                task_send("assistants_app.response_fetch", run_id)
            except BROKER_ERRORS as error:
                log.warning("run %s: its response fetch waits for beat (%s)", run_id, error)
    return marked


def response_webhook_received(connection: ProviderConnection, event: Any) -> None:
    """A response.completed|failed|cancelled|incomplete webhook: the run awaiting that
    background response is fetched now instead of at its next poll. Responses no run of the
    connection is polling (a worker streams them, or nobody waits) are ignored."""
    response_id = str(getattr(getattr(event, "data", None), "id", ""))
    if not response_id:
        return
    run_fetch_now(run_ids=list(Run.objects.filter(
        assistant__connection=connection, team_id=connection.team_id, response_id=response_id,
        status=RunStatus.RUNNING, poll_at__isnull=False).values_list("pk", flat=True)))


def tool_answer(*, run: Run, message: Message, actor: User | None, answer: str) -> Run:
    """A person answers an ask-a-person tool call; when none is left waiting the run goes on."""
    if message.run_id != run.pk or not message.pending:
        raise ChatError("That question was already answered.")
    if not answer.strip():
        raise ChatError("Write an answer.")
    with transaction.atomic():
        message.text, message.pending, message.author = answer.strip(), False, actor
        message.save(update_fields=["text", "pending", "author"])
        if not Message.objects.filter(run=run, pending=True).exists():
            resumed = Run.objects.filter(pk=run.pk, status=RunStatus.WAITING).update(status=RunStatus.QUEUED,
                                                                                     heartbeat_at=timezone.now())
            if resumed:
                # The stream of the first half ended with "done"; the second half starts
                # clean (the announcement clears it) and every open page follows it again.
                _enqueue(run)
    run.refresh_from_db()
    return run


def thread_delete(*, thread: Thread, actor: User | None) -> None:
    runs = list(thread.runs.filter(status__in=(RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING)))
    for run in runs:
        run_cancel(run=run, actor=actor)
    audit_record(team=thread.team, actor=actor, action="thread.delete", target=str(thread.pk), title=thread.title)
    shown = image_ids_in(list(thread.messages.exclude(attachments=[]).values_list("attachments", flat=True)))
    team_id = thread.team_id
    thread.delete()
    if shown:
        # Pictures are stored once per team: those no other message shows go too.
        transaction.on_commit(partial(_forget_pictures, team_id, sorted(shown)))


def _forget_pictures(team_id: int, image_ids: list[int]) -> None:
    try:
        task_send("assistants_app.chat_images_forget_unused", team_id, image_ids)
    except BROKER_ERRORS as error:  # the thread is gone either way; its unused pictures stay stored (logged)
        log.warning("could not send the cleanup of pictures %s of team %s: %s", image_ids, team_id, error)


# -- threads with a given model (a fine-tuned one, beside its base model) ----------------------

MAX_MODEL_ID = 200  # AssistantVersion.model
BASE_PREFIX = "Base model: "


@dataclass(frozen=True)
class ModelThreads:
    thread: Thread
    compare: Thread | None


def chat_model_check(*, team: Team, connection: ProviderConnection, model: str) -> None:
    """Refuse a model the team cannot chat with on this connection. Allowed: one made by the
    team's own fine-tuning jobs there (a fine-tuned model or a checkpoint; checkpoints are not
    in model lists), or one the connection lists. A fine-tuned model exists only on the
    connection (the provider account) that trained it, so it is checked there."""
    if not model:
        raise ChatError("Choose a model to chat with.")
    if len(model) > MAX_MODEL_ID or any(ch.isspace() for ch in model):
        raise ChatError("That is not a model id.")
    if connection.team_id != team.pk:
        raise ChatError("Unknown connection.")
    if team_model_lookup(team=team, model=model, connection=connection) is not None:
        return
    try:
        listed = connection_has_model(connection, model)
    except ProviderError as error:
        raise ChatError(f"Could not check the models of {connection.name}: {error.message}") from None
    if not listed:
        raise ChatError(f"The model {model} is not available on {connection.name}: it is neither made by one of "
                        "this team's fine-tuning jobs there nor in the connection's model list.")


def model_assistant_name(*, team: Team, connection: ProviderConnection, model: str) -> str:
    """What an assistant made to chat with a model is called (and found again by): the name
    the feature that made the model gives it, else one from the model id."""
    made = team_model_lookup(team=team, model=model, connection=connection)
    if made is not None:
        return made.assistant_name
    return f"{FINE_TUNED_PREFIX if model.startswith('ft:') else BASE_PREFIX}{model}"[:120]


def model_assistant_find(*, team: Team, connection: ProviderConnection, model: str, name: str) -> Assistant | None:
    return (Assistant.objects.filter(team=team, connection=connection, name=name, archived_at__isnull=True,
                                     current_version__model=model)
            .select_related("current_version").order_by("id").first())


@transaction.atomic
def model_assistant_get_or_create(*, team: Team, connection: ProviderConnection, model: str, name: str,
                                  instructions: str, actor: User | None) -> Assistant:
    """The team's assistant for this model on this connection, made on first use. Asked again
    with other instructions, it gets a new version (so its history says what changed)."""
    assistant = model_assistant_find(team=team, connection=connection, model=model, name=name)
    if assistant is None:
        config: dict[str, Any] = {"model": model, "instructions": instructions, "temperature": None, "top_p": None,
                                  "reasoning_effort": "", "max_output_tokens": None, "tools": [], "response_schema": {}}
        return assistant_create(team=team, actor=actor, name=name, connection=connection, config=config,
                                description=f"Chats with {model} on {connection.name}.")
    current = assistant.current_version
    assert current is not None
    if current.instructions != instructions:
        _version_add(assistant=assistant, actor=actor, config={**_config_of(current), "instructions": instructions},
                     note="instructions changed to start a thread")
    return assistant


@transaction.atomic
def model_threads_start(*, team: Team, actor: User | None, connection: ProviderConnection, model: str,
                        compare_model: str = "", instructions: str = "") -> ModelThreads:
    """Start a thread with `model` on `connection` and, given compare_model, a second one with
    that model and the same instructions, to send both the same messages side by side."""
    model, compare_model = model.strip(), compare_model.strip()
    chat_model_check(team=team, connection=connection, model=model)
    if compare_model:
        if compare_model == model:
            raise ChatError("Compare with a different model.")
        chat_model_check(team=team, connection=connection, model=compare_model)
    assistant = model_assistant_get_or_create(team=team, connection=connection, model=model, actor=actor,
                                              name=model_assistant_name(team=team, connection=connection, model=model),
                                              instructions=instructions)
    if not compare_model:
        thread = thread_create(team=team, assistant=assistant, actor=actor, title=f"Chat with {model}"[:200])
        audit_record(team=team, actor=actor, action="thread.start_with_model", target=str(thread.pk), model=model)
        return ModelThreads(thread=thread, compare=None)
    other = model_assistant_get_or_create(team=team, connection=connection, model=compare_model, actor=actor,
                                          name=model_assistant_name(team=team, connection=connection, model=compare_model),
                                          instructions=instructions)
    title = f"{model} vs {compare_model}"[:200]
    thread = thread_create(team=team, assistant=assistant, actor=actor, title=title)
    compare = thread_create(team=team, assistant=other, actor=actor, title=title)
    audit_record(team=team, actor=actor, action="thread.start_with_model", target=str(thread.pk), model=model,
                 compare_thread=compare.pk, compare_model=compare_model)
    return ModelThreads(thread=thread, compare=compare)


def threads_post_message(*, threads: Sequence[Thread], actor: User | None, text: str) -> list[tuple[Message, Run]]:
    """Send the same message to several threads (a comparison): all get a run, or none does."""
    if len({thread.pk for thread in threads}) != len(threads):
        raise ChatError("A comparison needs two different threads.")
    with transaction.atomic():
        return [thread_post_message(thread=thread, actor=actor, text=text) for thread in threads]
