"""Fine-tuning jobs: validation, progress, metrics, checkpoints, results, the model they make."""

from __future__ import annotations

import io
import json
import time
from typing import Any, cast

import httpx2
import openai
import pytest
from sandbox_helpers import Spec, wait_for


def training_file(client: openai.OpenAI, examples: int = 12, broken: bool = False, dpo: bool = False) -> str:
    lines: list[Any] = []
    for i in range(examples):
        if dpo:
            lines.append({"input": {"messages": [{"role": "user", "content": f"q{i}"}]},
                          "preferred_output": [{"role": "assistant", "content": "good"}],
                          "non_preferred_output": [{"role": "assistant", "content": "bad"}]})
        else:
            lines.append({"messages": [{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": f"Question {i}?"},
                                       {"role": "assistant", "content": f"Answer {i}."}]})
    if broken:
        lines[4]["messages"][1]["role"] = "robot"
    data = "\n".join(json.dumps(x) for x in lines).encode()
    return client.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune").id


def until(client: openai.OpenAI, job_id: str, statuses: tuple[str, ...]) -> Any:
    return wait_for(lambda: client.fine_tuning.jobs.retrieve(job_id), lambda j: j.status in statuses)


def test_it_trains_a_model_that_then_serves_chat_and_batches(client: openai.OpenAI, api: httpx2.Client,
                                                             spec: Spec) -> None:
    created = api.post("/fine_tuning/jobs", json={"model": "gpt-4o-mini", "training_file": training_file(client),
                                                  "suffix": "support", "seed": 42,
                                                  "metadata": {"ticket": "T-1"}}).json()
    spec.validate("FineTuningJob", created)
    assert created["status"] == "validating_files"
    job = until(client, created["id"], ("succeeded",))
    spec.validate("FineTuningJob", api.get(f"/fine_tuning/jobs/{job.id}").json())
    assert job.fine_tuned_model == f"ft:gpt-4o-mini:sandbox-org:support:{job.id[-8:]}"
    assert job.trained_tokens and job.trained_tokens > 0 and job.finished_at
    assert job.hyperparameters.n_epochs == 3 and job.seed == 42
    assert job.result_files
    csv = client.files.content(job.result_files[0]).text.splitlines()
    assert csv[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"
    losses = [float(row.split(",")[1]) for row in csv[1:]]
    assert losses[-1] < losses[0]
    assert client.files.retrieve(job.result_files[0]).purpose == "fine-tune-results"

    model = client.models.retrieve(job.fine_tuned_model)
    assert model.owned_by == "sandbox-org" and model.shutdown_date == "2027-01-14"
    assert job.fine_tuned_model in {m.id for m in client.models.list()}
    reply = client.chat.completions.create(model=job.fine_tuned_model,
                                           messages=[{"role": "user", "content": "echo: tuned"}])
    assert reply.choices[0].message.content == "tuned" and reply.model == job.fine_tuned_model

    assert client.models.delete(job.fine_tuned_model).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(job.fine_tuned_model)


def test_it_reports_metric_events_newest_first_and_checkpoints(client: openai.OpenAI, api: httpx2.Client,
                                                               spec: Spec) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4.1-mini", training_file=training_file(client),
                                         hyperparameters={"n_epochs": 2, "batch_size": 3})
    job = until(client, job.id, ("succeeded",))
    body = api.get(f"/fine_tuning/jobs/{job.id}/events", params={"limit": 5}).json()
    spec.validate("ListFineTuningJobEventsResponse", body)
    assert body["has_more"] is True
    assert body["data"][0]["message"] == "The job has successfully completed"
    stamps = [e["created_at"] for e in body["data"]]
    assert stamps == sorted(stamps, reverse=True)
    everything = list(client.fine_tuning.jobs.list_events(job.id, limit=7))  # auto-paginated
    assert everything[-1].message.startswith("Created fine-tuning job")
    metrics = [e for e in everything if e.type == "metrics"]
    assert len(metrics) == 8  # 12 examples / batch 3 = 4 steps per epoch, 2 epochs
    assert {"step", "train_loss", "train_mean_token_accuracy", "valid_loss"} <= set(cast(dict[str, Any], metrics[0].data))
    ckpts = api.get(f"/fine_tuning/jobs/{job.id}/checkpoints").json()
    spec.validate("ListFineTuningJobCheckpointsResponse", ckpts)
    assert [c["step_number"] for c in ckpts["data"]] == [8, 4]
    assert ckpts["data"][0]["fine_tuned_model_checkpoint"].endswith(":ckpt-step-8")
    assert ckpts["data"][0]["metrics"]["train_loss"] < ckpts["data"][1]["metrics"]["train_loss"] * 1.5


def test_it_fails_a_job_whose_training_file_is_malformed(client: openai.OpenAI, api: httpx2.Client,
                                                         spec: Spec) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file(client, broken=True))
    job = until(client, job.id, ("failed",))
    spec.validate("FineTuningJob", api.get(f"/fine_tuning/jobs/{job.id}").json())
    assert job.error is not None
    assert job.error.code == "invalid_training_file" and job.error.param == "training_file"
    assert "Unrecognized role: robot" in job.error.message
    assert job.fine_tuned_model is None


def test_it_fails_a_job_with_too_few_examples(client: openai.OpenAI) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file(client, examples=3))
    job = until(client, job.id, ("failed",))
    assert job.error is not None and "at least 10 examples" in job.error.message


def test_it_rejects_a_job_for_a_model_that_cannot_be_fine_tuned(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.fine_tuning.jobs.create(model="o3", training_file=training_file(client))
    assert exc.value.param == "model"


def test_it_runs_dpo_jobs(client: openai.OpenAI) -> None:
    job = client.fine_tuning.jobs.create(
        model="gpt-4.1-nano", training_file=training_file(client, dpo=True),
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}},
    )
    assert job.method is not None and job.method.type == "dpo"
    assert until(client, job.id, ("succeeded",)).fine_tuned_model


def test_it_cancels_a_job(client: openai.OpenAI) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file(client, examples=200))
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    time.sleep(0.2)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)


def test_a_paused_job_stops_and_a_resumed_one_finishes(client: openai.OpenAI) -> None:
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training_file(client, examples=100),
                                         hyperparameters={"n_epochs": 4, "batch_size": 1})
    until(client, job.id, ("running",))
    paused = client.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"
    events_then = len(list(client.fine_tuning.jobs.list_events(job.id, limit=1000)))
    time.sleep(0.3)
    assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
    assert len(list(client.fine_tuning.jobs.list_events(job.id, limit=1000))) == events_then
    assert client.fine_tuning.jobs.resume(job.id).status in ("running", "succeeded")
    done = until(client, job.id, ("succeeded",))
    messages = [e.message for e in client.fine_tuning.jobs.list_events(done.id, limit=1000)]
    assert "Fine-tuning job paused" in messages and "Fine-tuning job resumed" in messages


def test_it_lists_jobs_filtered_by_metadata(client: openai.OpenAI, api: httpx2.Client, spec: Spec) -> None:
    file_id = training_file(client)
    tagged = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id,
                                            metadata={"project": "filter-me"})
    client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
    page = client.fine_tuning.jobs.list(metadata={"project": "filter-me"})
    assert [j.id for j in page.data] == [tagged.id]
    body = api.get("/fine_tuning/jobs", params={"limit": 1}).json()
    spec.validate("ListPaginatedFineTuningJobsResponse", body)
    assert body["has_more"] is True
