"""Models, auth, the error envelope, rate-limit headers and faults on demand."""

from __future__ import annotations

from pathlib import Path

import httpx2
import openai
import pytest
from sandbox_helpers import Spec

from sandbox.testing import running_sandbox


def test_it_lists_current_models_with_shutdown_dates(client: openai.OpenAI, api: httpx2.Client, spec: Spec) -> None:
    body = api.get("/models").json()
    spec.validate("ListModelsResponse", body)
    ids = {m.id for m in client.models.list()}
    assert {"gpt-5", "gpt-5-mini", "gpt-4.1", "gpt-4o", "gpt-4o-mini", "o3", "text-embedding-3-small"} <= ids
    mini = client.models.retrieve("gpt-4o-mini")
    assert mini.shutdown_date is not None and mini.shutdown_date.startswith("2027")
    assert client.models.retrieve("gpt-5").shutdown_date == "2026-12-11"
    assert client.models.retrieve("gpt-5.5").shutdown_date is None


def test_it_answers_an_unknown_model_with_404_model_not_found(client: openai.OpenAI, api: httpx2.Client,
                                                               spec: Spec) -> None:
    r = api.get("/models/gpt-nonexistent")
    assert r.status_code == 404
    spec.validate("ErrorResponse", r.json())
    with pytest.raises(openai.NotFoundError) as exc:
        client.chat.completions.create(model="gpt-nonexistent", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.code == "model_not_found"


def test_it_refuses_to_delete_a_base_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete("gpt-4o")


def test_it_rejects_a_request_without_a_key_with_401(sandbox_url: str, spec: Spec) -> None:
    r = httpx2.get(sandbox_url + "/models")
    assert r.status_code == 401
    spec.validate("ErrorResponse", r.json())
    assert "didn't provide an API key" in r.json()["error"]["message"]
    assert r.headers["x-request-id"].startswith("req_")


def test_it_requires_the_configured_key_when_one_is_set(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, api_key="sk-right") as url:
        with pytest.raises(openai.AuthenticationError) as exc:
            openai.OpenAI(base_url=url, api_key="sk-wrong-key", max_retries=0).models.list()
        assert exc.value.code == "invalid_api_key"
        assert openai.OpenAI(base_url=url, api_key="sk-right", max_retries=0).models.list().data


def test_it_puts_request_id_and_rate_limit_headers_on_every_response(api: httpx2.Client) -> None:
    for r in (api.get("/models"), api.get("/files/file-missing")):
        assert r.headers["x-request-id"].startswith("req_")
        for kind in ("requests", "tokens"):
            assert int(r.headers[f"x-ratelimit-limit-{kind}"]) > 0
            assert int(r.headers[f"x-ratelimit-remaining-{kind}"]) >= 0
            assert r.headers[f"x-ratelimit-reset-{kind}"]


def test_it_answers_unknown_routes_in_the_error_envelope(api: httpx2.Client, spec: Spec) -> None:
    r = api.post("/nothing-here")
    assert r.status_code == 404
    spec.validate("ErrorResponse", r.json())
    assert r.json()["error"]["message"] == "Invalid URL (POST /v1/nothing-here)"


def test_it_rejects_invalid_json_bodies(api: httpx2.Client) -> None:
    r = api.post("/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "could not parse the JSON body" in r.json()["error"]["message"]


def test_it_returns_429_with_retry_after_when_over_the_request_limit(tmp_path: Path, spec: Spec) -> None:
    with running_sandbox(tmp_path, rpm=2) as url:
        c = openai.OpenAI(base_url=url, api_key="sk-limited", max_retries=0)
        c.models.list()
        c.models.list()
        with pytest.raises(openai.RateLimitError) as exc:
            c.models.list()
        assert exc.value.code == "rate_limit_exceeded"
        assert int(exc.value.response.headers["retry-after"]) >= 1
        spec.validate("ErrorResponse", exc.value.response.json())
        # Limits are per key: another key is not affected.
        openai.OpenAI(base_url=url, api_key="sk-other", max_retries=0).models.list()


def test_it_returns_429_when_over_the_token_limit(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, tpm=40) as url:
        c = openai.OpenAI(base_url=url, api_key="sk-limited", max_retries=0)
        with pytest.raises(openai.RateLimitError) as exc:
            c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "please write 60 words"}])
        assert "tokens per min (TPM)" in exc.value.message


def test_it_injects_a_500_on_demand(client: openai.OpenAI, spec: Spec) -> None:
    with pytest.raises(openai.InternalServerError) as exc:
        client.models.list(extra_headers={"X-Sandbox-Fault": "500"})
    spec.validate("ErrorResponse", exc.value.response.json())


def test_it_injects_a_429_on_demand(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as exc:
        client.models.list(extra_headers={"X-Sandbox-Fault": "429"})
    assert exc.value.response.headers["retry-after"] == "1"


def test_it_holds_a_timeout_fault_until_the_client_gives_up(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).models.list(extra_headers={"X-Sandbox-Fault": "timeout"})


def test_it_slows_a_response_on_demand(client: openai.OpenAI) -> None:
    import time

    started = time.monotonic()
    client.models.list(extra_headers={"X-Sandbox-Fault": "slow:0.3"})
    assert time.monotonic() - started >= 0.3


def test_it_injects_faults_at_a_configured_rate(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, fault_rate_500=1.0) as url, pytest.raises(openai.InternalServerError):
        openai.OpenAI(base_url=url, api_key="sk-x", max_retries=0).models.list()


def test_the_sdk_retry_gets_through_a_fault_limited_to_the_first_attempt(sandbox_url: str) -> None:
    c = openai.OpenAI(base_url=sandbox_url, api_key="sk-retry", max_retries=2)
    raw = c.models.with_raw_response.list(extra_headers={"X-Sandbox-Fault": "500:1"})
    assert raw.retries_taken == 1
    assert raw.parse().data


def test_it_refuses_bad_settings_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.config import ConfigError, SandboxConfig

    monkeypatch.setenv("SANDBOX_RPM", "lots")
    with pytest.raises(ConfigError, match="SANDBOX_RPM"):
        SandboxConfig.from_env()
    monkeypatch.setenv("SANDBOX_RPM", "10")
    monkeypatch.setenv("SANDBOX_TIME_SCALE", "0")
    with pytest.raises(ConfigError, match="SANDBOX_TIME_SCALE"):
        SandboxConfig.from_env()
    monkeypatch.setenv("SANDBOX_TIME_SCALE", "250")
    assert SandboxConfig.from_env().time_scale == 250
