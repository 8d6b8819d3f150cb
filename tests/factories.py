"""Test data, made in one place. Plain functions: each returns a saved object."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User

from jobs_app.finetune.models import Dataset, FineTuneJob
from project.providers.models import ProviderConnection, ProviderKind
from project.providers.services import connection_save
from project.teams.models import Membership, Role, Team
from project.teams.services import team_create

if TYPE_CHECKING:
    from assistants_app.models import Assistant, Message, Run, Thread
    from project.files.models import File

PASSWORD = "correct horse battery staple"
_sequence = itertools.count(1)


def make_user(username: str | None = None, **extra: object) -> User:
    username = username or f"user{next(_sequence)}"
    return User.objects.create_user(username=username, password=PASSWORD, email=f"{username}@example.com", **extra)


def make_team(name: str | None = None, owner: User | None = None) -> Team:
    return team_create(name=name or f"Team {next(_sequence)}", owner=owner or make_user())


def add_member(team: Team, user: User | None = None, role: str = Role.MEMBER) -> Membership:
    return Membership.objects.create(team=team, user=user or make_user(), role=role)


def make_connection(team: Team, *, base_url: str = "http://127.0.0.1:9/v1", api_key: str | None = None,
                    kind: str = ProviderKind.COMPATIBLE, name: str | None = None, webhook_secret: str = "") -> ProviderConnection:
    """api_key None: a sandbox connection gets a random key of its own (as the site gives one), others sk-test-1234."""
    if api_key is None:
        api_key = "" if kind == ProviderKind.SANDBOX else "sk-test-1234"
    return connection_save(team=team, actor=None, kind=kind, name=name or f"Connection {next(_sequence)}",
                           base_url=base_url, api_key=api_key, webhook_secret=webhook_secret)


# -- fine-tuning -------------------------------------------------------------------------------

def chat_example(i: int = 0, *, system: bool = True) -> dict[str, object]:
    messages: list[dict[str, object]] = [{"role": "system", "content": "You answer in one short sentence."}] if system else []
    messages += [{"role": "user", "content": f"What is {i} plus {i}?"},
                 {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]
    return {"messages": messages}


def jsonl(examples: Iterable[object]) -> bytes:
    import json

    return "".join(json.dumps(example) + "\n" for example in examples).encode()


def make_dataset(team: Team, *, content: bytes | None = None, method: str = "supervised", model_id: str = "gpt-4.1-mini",
                 validation: bytes | None = None, validate: bool = True, name: str = "train.jsonl") -> Dataset:
    """A Dataset kept here (validated at once unless validate=False)."""
    from jobs_app.finetune.services import dataset_upload, dataset_validate

    content = content if content is not None else jsonl([chat_example(i) for i in range(12)])
    dataset = dataset_upload(team=team, method=method, model_id=model_id, training_name=name, training_chunks=[content],
                             validation_name="valid.jsonl", validation_chunks=[validation] if validation else None,
                             actor=None)
    if validate:
        dataset_validate(dataset=dataset)
        if dataset.validation_dataset is not None:
            dataset_validate(dataset=dataset.validation_dataset)
    return dataset


def make_finetune_job(team: Team, *, connection: ProviderConnection | None = None, remote_id: str | None = None,
                      status: str = "running") -> FineTuneJob:
    return FineTuneJob.objects.create(team=team, connection=connection or make_connection(team),
                                      remote_id=remote_id or f"ftjob-{next(_sequence)}", base_model="gpt-4.1-mini",
                                      status=status)


def make_file(team: Team, *, connection: ProviderConnection | None = None, name: str = "data.jsonl",
              purpose: str = "user_data", content: bytes = b'{"a": 1}\n', remote_id: str | None = None) -> File:
    """A library row with a local copy, made without a provider (for pages and isolation)."""
    import hashlib

    from django.core.files.base import ContentFile

    from project.files.models import File

    record = File(team=team, connection=connection or make_connection(team), remote_id=remote_id or f"file-test{next(_sequence)}",
                  purpose=purpose, name=name, bytes=len(content), sha256=hashlib.sha256(content).hexdigest())
    record.content.save(name, ContentFile(content), save=False)
    record.save()
    return record


# -- batches -----------------------------------------------------------------------------------------

def batch_chat_line(custom_id: str, text: str, *, model: str = "gpt-4o-mini", **body: object) -> dict[str, object]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": text}], **body}}


def make_batch_group(team: Team, connection: ProviderConnection | None = None, *, lines: list[dict[str, object]] | None = None,
                     endpoint: str = "/v1/chat/completions", metadata: dict[str, str] | None = None) -> object:
    """A draft batch group built from JSONL lines through the real build service."""
    import json

    from jobs_app.batches.build import items_from_jsonl
    from jobs_app.batches.services import batch_group_build
    from jobs_app.batches.validation import InputProblems

    connection = connection or make_connection(team)
    lines = lines if lines is not None else [batch_chat_line(f"req-{i}", f"echo: answer {i}") for i in range(3)]
    problems = InputProblems()
    raw = [json.dumps(line).encode() + b"\n" for line in lines]
    return batch_group_build(team=team, connection=connection, actor=None, name=f"Batch {next(_sequence)}",
                             endpoint=endpoint, source="jsonl", items=items_from_jsonl(raw, endpoint=endpoint, problems=problems),
                             problems=problems, metadata=metadata)
# -- chat (assistants_app) -------------------------------------------------------------------

def make_assistant(team: Team, connection: ProviderConnection | None = None, *, name: str | None = None,
                   actor: User | None = None, **config: object) -> Assistant:
    from assistants_app.services import assistant_create

    settings: dict[str, object] = {"model": "gpt-4.1-mini", "instructions": "Be brief.", "temperature": None,
                                   "top_p": None, "reasoning_effort": "", "max_output_tokens": None, "tools": [],
                                   "response_schema": {}}
    settings.update(config)
    return assistant_create(team=team, actor=actor, name=name or f"Assistant {next(_sequence)}", description="",
                            connection=connection, config=settings)


def make_thread(team: Team, assistant: Assistant | None = None, title: str = "A thread") -> Thread:
    from assistants_app.models import Thread as ThreadModel

    return ThreadModel.objects.create(team=team, assistant=assistant or make_assistant(team), title=title)


def make_message(thread: Thread, text: str = "hello", role: str = "user", **extra: object) -> Message:
    from assistants_app.models import Message as MessageModel

    return MessageModel.objects.create(thread=thread, team_id=thread.team_id, role=role, text=text, **extra)


def make_run(thread: Thread, *, user_message: Message | None = None, **fields: object) -> Run:
    """A run of the thread's assistant's current version (queued unless `status` says otherwise)."""
    from assistants_app.models import Run as RunModel

    version = thread.assistant.current_version
    assert version is not None
    fields.setdefault("model", version.model)
    return RunModel.objects.create(thread=thread, team_id=thread.team_id, assistant=thread.assistant, version=version,
                                   user_message=user_message, **fields)


# -- chat with fine-tuned models ----------------------------------------------------------------

def make_finished_finetune_job(team: Team, *, connection: ProviderConnection | None = None, suffix: str = "support",
                               fine_tuned_model: str | None = None, checkpoint_steps: tuple[int, ...] = ()) -> FineTuneJob:
    """A succeeded job row with its model (and checkpoints), made without a provider."""
    from datetime import UTC, datetime

    from jobs_app.finetune.models import FineTuneCheckpoint

    job = make_finetune_job(team, connection=connection, status="succeeded")
    job.suffix = suffix
    job.fine_tuned_model = fine_tuned_model or f"ft:gpt-4.1-mini:org-test:{suffix}:{job.remote_id[-8:]}"
    job.save(update_fields=["suffix", "fine_tuned_model"])
    for step in checkpoint_steps:
        FineTuneCheckpoint.objects.create(job=job, remote_id=f"ftckpt-{job.pk}-{step}", step=step,
                                          model_name=f"{job.fine_tuned_model}:ckpt-step-{step}",
                                          created_at=datetime.now(UTC))
    return job


def log_in(page: Any, base_url: str, username: str, *, expect_heading: str | None = None) -> None:
    """Log a Playwright page in through the login form (password PASSWORD); wait for the
    dashboard's heading when one is named."""
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    if expect_heading is not None:
        page.wait_for_selector(f"h1:has-text('{expect_heading}')")
    else:
        page.wait_for_selector("nav.mainnav")  # shown only to a member who is logged in


def send_with_enter(page: Any, text: str, box: str = "#composer-text") -> None:
    """Type a chat message and press Enter, as a person does. Waits for the page to have
    loaded first: Enter sends only once chat.js (a deferred script) runs; before that it
    types a new line."""
    page.wait_for_load_state("load")
    page.fill(box, text)
    page.keyboard.press("Enter")
