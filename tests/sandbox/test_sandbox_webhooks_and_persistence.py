"""Signed webhooks the SDK can unwrap, and state that survives a restart."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx2
import openai
from sandbox_helpers import WebhookReceiver, wait_for

from sandbox.testing import running_sandbox

SECRET = "whsec_" + base64.b64encode(b"sandbox-webhook-secret-0123456789").decode()


def jsonl(lines: list[dict[str, object]]) -> io.BytesIO:
    return io.BytesIO("\n".join(json.dumps(x) for x in lines).encode())


def chat_lines(n: int) -> list[dict[str, object]]:
    return [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}} for i in range(n)]


def training_lines(n: int) -> list[dict[str, object]]:
    return [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
            for i in range(n)]


def test_it_sends_signed_events_the_sdk_unwraps(sandbox_url: str, webhook_receiver: WebhookReceiver) -> None:
    key = "sk-webhook-owner"
    client = openai.OpenAI(base_url=sandbox_url, api_key=key, max_retries=0, webhook_secret=SECRET)
    registered = httpx2.post(sandbox_url.removesuffix("/v1") + "/sandbox/webhooks",
                             headers={"Authorization": f"Bearer {key}"},
                             json={"url": webhook_receiver.url, "secret": SECRET})
    assert registered.status_code == 200
    webhook_receiver.fail_first = 1  # the first delivery fails and is retried

    batch_file = client.files.create(file=("b.jsonl", jsonl(chat_lines(2))), purpose="batch")
    completed = client.batches.create(input_file_id=batch_file.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
    cancelled = client.batches.create(input_file_id=client.files.create(
        file=("c.jsonl", jsonl(chat_lines(3000))), purpose="batch").id,
        endpoint="/v1/chat/completions", completion_window="24h")
    client.batches.cancel(cancelled.id)
    train = client.files.create(file=("t.jsonl", jsonl(training_lines(10))), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train.id)
    bad = client.files.create(file=("bad.jsonl", jsonl([{"nope": 1}] * 10)), purpose="fine-tune")
    failed_job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=bad.id)
    cancelled_job = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=train.id)
    client.fine_tuning.jobs.cancel(cancelled_job.id)
    failed_batch = client.batches.create(
        input_file_id=client.files.create(file=("f.jsonl", io.BytesIO(b"{broken\n")), purpose="batch").id,
        endpoint="/v1/chat/completions", completion_window="24h")

    wanted = {
        ("batch.completed", completed.id), ("batch.cancelled", cancelled.id),
        ("fine_tuning.job.succeeded", job.id), ("fine_tuning.job.failed", failed_job.id),
        ("fine_tuning.job.cancelled", cancelled_job.id), ("batch.failed", failed_batch.id),
    }
    wait_for(lambda: {(e["type"], e["data"]["id"]) for e in webhook_receiver.events()}, lambda got: wanted <= got)
    time.sleep(0.3)  # anything sent twice would arrive by now
    for headers, body in webhook_receiver.received:
        event: Any = client.webhooks.unwrap(body, headers)
        assert (event.type, event.data.id) in wanted
        assert headers["webhook-signature"].startswith("v1,")
    seen = [(e["type"], e["data"]["id"]) for e in webhook_receiver.events()]
    assert sorted(seen) == sorted(wanted)  # each state change delivered exactly once
    log = httpx2.get(sandbox_url.removesuffix("/v1") + "/sandbox/webhooks/deliveries",
                     headers={"Authorization": f"Bearer {key}"}).json()["data"]
    assert max(d["attempts"] for d in log) == 2 and all(d["status"] == 200 for d in log)


def test_it_rejects_a_registration_without_a_secret(sandbox_url: str) -> None:
    r = httpx2.post(sandbox_url.removesuffix("/v1") + "/sandbox/webhooks",
                    headers={"Authorization": "Bearer sk-x"}, json={"url": "http://127.0.0.1:9/x"})
    assert r.status_code == 400


def test_it_sends_the_expired_event_to_the_environment_endpoint(tmp_path: Path,
                                                                 webhook_receiver: WebhookReceiver) -> None:
    with running_sandbox(tmp_path, time_scale=1000, webhook_url=webhook_receiver.url, webhook_secret=SECRET,
                         tick_seconds=0.05) as url:
        client = openai.OpenAI(base_url=url, api_key="sk-env", max_retries=0, webhook_secret=SECRET)
        f = client.files.create(file=("e.jsonl", jsonl(chat_lines(20))), purpose="batch")
        batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                                      metadata={"sandbox_expire": "true"})
        wait_for(lambda: webhook_receiver.received, lambda r: len(r) >= 1)
        headers, body = webhook_receiver.received[0]
        event = client.webhooks.unwrap(body, headers)
        assert event.type == "batch.expired" and event.data.id == batch.id


def test_state_survives_a_restart(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, time_scale=1000) as url:
        client = openai.OpenAI(base_url=url, api_key="sk-a", max_retries=0)
        kept = client.files.create(file=("keep.txt", io.BytesIO(b"kept bytes")), purpose="user_data")
        train = client.files.create(file=("t.jsonl", jsonl(training_lines(10))), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="gpt-4.1-mini", training_file=train.id, suffix="keep")
        batch = client.batches.create(
            input_file_id=client.files.create(file=("b.jsonl", jsonl(chat_lines(3))), purpose="batch").id,
            endpoint="/v1/chat/completions", completion_window="24h")
        model = wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id), lambda j: j.status == "succeeded")
    with running_sandbox(tmp_path, time_scale=1000) as url:
        client = openai.OpenAI(base_url=url, api_key="sk-a", max_retries=0)
        assert client.files.content(kept.id).read() == b"kept bytes"
        again = client.fine_tuning.jobs.retrieve(job.id)
        assert again.status == "succeeded" and again.fine_tuned_model == model.fine_tuned_model
        assert again.fine_tuned_model in {m.id for m in client.models.list()}
        done = wait_for(lambda: client.batches.retrieve(batch.id), lambda b: b.status == "completed")
        assert done.output_file_id and len(client.files.content(done.output_file_id).text.splitlines()) == 3


def test_python_dash_m_sandbox_serves_on_the_given_port(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from devtools.asgi_thread import free_port

    port = free_port()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SANDBOX_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port)], cwd=root, env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert f"http://127.0.0.1:{port}/v1" in proc.stdout.readline()
        models = wait_for(lambda: _try_models(f"http://127.0.0.1:{port}/v1"), lambda m: m is not None)
        assert "gpt-5" in models
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _try_models(base: str) -> list[str] | None:
    try:
        return [m.id for m in openai.OpenAI(base_url=base, api_key="sk-cli", max_retries=0).models.list()]
    except openai.APIConnectionError:
        return None
