"""GET /v1/organization/costs and /v1/organization/usage/completions: daily buckets of the
calling key's own chat completions, responses, batch lines and (in the costs) embeddings, in
the spec's UsageResponse shape."""

from __future__ import annotations

import io
import json
import secrets
import time
from decimal import Decimal
from pathlib import Path

import httpx2
import openai
from sandbox_helpers import Spec, wait_for

from sandbox.usage_log import PRICES

DAY = 86_400
MODEL_FACTS = Path(__file__).resolve().parents[2] / "project" / "providers" / "model_facts.json"


def _key_client(sandbox_url: str) -> tuple[str, openai.OpenAI, httpx2.Client]:
    key = "sk-usage-" + secrets.token_hex(8)
    sdk = openai.OpenAI(base_url=sandbox_url, api_key=key, max_retries=0)
    return key, sdk, httpx2.Client(base_url=sandbox_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _today() -> int:
    now = int(time.time())
    return now - now % DAY


def test_costs_and_usage_are_the_keys_own_calls_by_day_and_model(sandbox_url: str, spec: Spec) -> None:
    _, sdk, api = _key_client(sandbox_url)
    first = sdk.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "echo: one"}])
    stream = sdk.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "echo: two"}],
                                         stream=True, stream_options={"include_usage": True})
    [streamed] = [chunk.usage for chunk in stream if chunk.usage is not None]
    response = sdk.responses.create(model="gpt-4o-mini", input="echo: three")
    embedded = sdk.embeddings.create(model="text-embedding-3-small", input="billed but not a completion")
    assert first.usage is not None and response.usage is not None

    usage = api.get("/organization/usage/completions", params={"start_time": _today(), "group_by": "model"})
    assert usage.status_code == 200, usage.text
    spec.validate("UsageResponse", usage.json())
    [bucket] = usage.json()["data"]
    assert bucket["start_time"] == _today() and bucket["end_time"] == _today() + DAY
    by_model = {r["model"]: r for r in bucket["results"]}
    assert by_model["gpt-4.1-mini"]["num_model_requests"] == 2
    assert by_model["gpt-4.1-mini"]["input_tokens"] == first.usage.prompt_tokens + streamed.prompt_tokens
    assert by_model["gpt-4.1-mini"]["output_tokens"] == first.usage.completion_tokens + streamed.completion_tokens
    assert (by_model["gpt-4o-mini"]["input_tokens"], by_model["gpt-4o-mini"]["output_tokens"]) == (
        response.usage.input_tokens, response.usage.output_tokens)
    assert "text-embedding-3-small" not in by_model

    costs = api.get("/organization/costs", params={"start_time": _today(), "group_by[]": "line_item"})
    assert costs.status_code == 200, costs.text
    spec.validate("UsageResponse", costs.json())
    items = {r["line_item"]: Decimal(str(r["amount"]["value"])) for r in costs.json()["data"][0]["results"]}
    assert all(r["amount"]["currency"] == "usd" for r in costs.json()["data"][0]["results"])
    mini = PRICES["gpt-4.1-mini"]
    want_output = Decimal(str(mini.output)) * (first.usage.completion_tokens + streamed.completion_tokens) / 1_000_000
    assert abs(items["gpt-4.1-mini, output"] - want_output) < Decimal("1e-9")
    assert items["gpt-4o-mini, input"] > 0
    want_embedding = Decimal(str(PRICES["text-embedding-3-small"].input)) * embedded.usage.prompt_tokens / 1_000_000
    assert abs(items["text-embedding-3-small, input"] - want_embedding) < Decimal("1e-9")

    total = api.get("/organization/costs", params={"start_time": _today()}).json()["data"][0]["results"]
    assert len(total) == 1 and total[0]["line_item"] is None
    assert abs(Decimal(str(total[0]["amount"]["value"])) - sum(items.values())) < Decimal("1e-9")


def test_another_key_sees_none_of_it(sandbox_url: str) -> None:
    _, sdk, _ = _key_client(sandbox_url)
    sdk.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "echo: mine"}])
    _, _, stranger = _key_client(sandbox_url)
    for path in ("/organization/costs", "/organization/usage/completions"):
        body = stranger.get(path, params={"start_time": _today()}).json()
        assert body["data"][0]["results"] == [], path


def test_buckets_page_by_day_and_bad_queries_get_the_error_envelope(sandbox_url: str, spec: Spec) -> None:
    _, _, api = _key_client(sandbox_url)
    start = _today() - 2 * DAY
    page = api.get("/organization/costs", params={"start_time": start, "end_time": _today() + DAY, "limit": 2}).json()
    spec.validate("UsageResponse", page)
    assert [b["start_time"] for b in page["data"]] == [start, start + DAY]
    assert page["has_more"] is True and page["next_page"]
    rest = api.get("/organization/costs", params={"start_time": start, "end_time": _today() + DAY, "limit": 2,
                                                  "page": page["next_page"]}).json()
    assert [b["start_time"] for b in rest["data"]] == [_today()] and rest["has_more"] is False
    assert rest["next_page"] is None

    bad: list[dict[str, str | int]] = [{}, {"start_time": "soon"}, {"start_time": start, "limit": 500},
                                       {"start_time": start, "bucket_width": "1h"}]
    for params in bad:
        r = api.get("/organization/usage/completions", params=params)
        assert r.status_code == 400, params
        spec.validate("ErrorResponse", r.json())


def test_the_sandbox_prices_are_the_dashboards() -> None:
    facts = json.loads(MODEL_FACTS.read_text())["models"]
    for model, price in PRICES.items():
        listed = facts[model]["prices"]
        assert (price.input, price.cached_input, price.output, price.batch_input, price.batch_output,
                price.training) == (
            listed["input"], listed.get("cached_input"), listed.get("output", 0.0), listed.get("batch_input"),
            listed.get("batch_output"), listed.get("training")), model
    assert set(PRICES) == {m for m, f in facts.items() if "input" in f.get("prices", {})}


def test_batch_lines_are_billed_at_batch_rates(sandbox_url: str) -> None:
    _, sdk, api = _key_client(sandbox_url)
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"echo: line {i}"}]}}
             for i in range(3)]
    data = "\n".join(json.dumps(line) for line in lines).encode() + b"\n"
    file_id = sdk.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch").id
    batch = sdk.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    batch = wait_for(lambda: sdk.batches.retrieve(batch.id), lambda b: b.status == "completed")
    assert batch.usage is not None

    results = api.get("/organization/costs", params={"start_time": _today(), "group_by": "line_item"}
                      ).json()["data"][0]["results"]
    items = {r["line_item"]: Decimal(str(r["amount"]["value"])) for r in results}
    price = PRICES["gpt-4o-mini"]
    assert set(items) == {"gpt-4o-mini, batch input", "gpt-4o-mini, batch output"}
    assert abs(items["gpt-4o-mini, batch input"]
               - Decimal(str(price.batch_input)) * batch.usage.input_tokens / 1_000_000) < Decimal("1e-9")
    assert abs(items["gpt-4o-mini, batch output"]
               - Decimal(str(price.batch_output)) * batch.usage.output_tokens / 1_000_000) < Decimal("1e-9")
    usage = api.get("/organization/usage/completions", params={"start_time": _today(), "group_by": "model"}).json()
    assert usage["data"][0]["results"][0]["num_model_requests"] == 3
