"""Per-connection model facts (issue #15, item 6): a model the catalog does not know is
unknown until the server's list or an admin says; an admin sets a local model's window and
price for one connection; the picker offers the chosen connection's own models."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from assistants_app.models import Run
from assistants_app.spend import run_spend_record
from project.providers.capabilities import capabilities_probe
from project.providers.connection_facts import connection_model, connection_model_facts
from project.providers.models import ConnectionModelFacts, ProviderKind
from tests.compatible import LLAMA_MODEL, VLLM_MODEL, llamacpp, vllm
from tests.factories import make_connection, make_thread

pytestmark = pytest.mark.django_db


def test_a_model_the_catalog_does_not_know_has_unknown_facts_not_another_models(team, sandbox_url) -> None:
    model = connection_model(llamacpp(team, sandbox_url), LLAMA_MODEL)
    assert not model.context_known and not model.prices_known
    assert model.facts.price("input") is None
    # llama.cpp lists the training context, which is not the window it serves.
    assert model.remote is not None and model.remote.trained_context == 8192


def test_vllms_max_model_len_is_the_context_window(team, sandbox_url) -> None:
    model = connection_model(vllm(team, sandbox_url, "n_ctx=16384"), VLLM_MODEL)
    assert model.context_known and model.context_source == "the server's model list"
    assert model.facts.context_window == 16384


def test_an_admin_sets_a_local_models_window_and_marks_it_free(owner_client, team, sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url)
    url = f"/settings/connections/{connection.pk}/model-facts/?model={LLAMA_MODEL}"
    assert LLAMA_MODEL in owner_client.get(url).content.decode()
    answer = owner_client.post(url, {"model": LLAMA_MODEL, "context_window": "4096", "max_output_tokens": "512",
                                     "free": "on", "encoding": "cl100k_base"})
    assert answer.status_code == 302
    facts = connection_model_facts(connection, LLAMA_MODEL)
    assert (facts.context_window, facts.max_output_tokens, facts.encoding) == (4096, 512, "cl100k_base")
    assert facts.price("input") == 0 and facts.price("output") == 0
    page = owner_client.get(f"/settings/connections/{connection.pk}/server/").content.decode()
    assert "4096 <small class=\"muted\">(set for this connection)</small>" in page and "free / self-hosted" in page
    # Only this connection: another server's model of the same name stays unknown.
    other = llamacpp(team, sandbox_url)
    assert not connection_model(other, LLAMA_MODEL).context_known


def test_model_facts_need_both_prices_or_none(owner_client, team, sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url)
    url = f"/settings/connections/{connection.pk}/model-facts/?model={LLAMA_MODEL}"
    answer = owner_client.post(url, {"model": LLAMA_MODEL, "input_price": "0.10"})
    assert answer.status_code == 200 and "Give both the input and the output price" in answer.content.decode()
    assert not ConnectionModelFacts.objects.exists()
    owner_client.post(url, {"model": LLAMA_MODEL, "input_price": "0.10", "output_price": "0.30"})
    assert connection_model_facts(connection, LLAMA_MODEL).price("output") == Decimal("0.30")


def test_the_picker_offers_the_chosen_connections_models(owner_client, team, sandbox_url) -> None:
    make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)  # the default
    connection = llamacpp(team, sandbox_url, name="Local llama")
    fragment = owner_client.get(f"/assistants/models/?connection={connection.pk}&model=gpt-4.1-mini",
                                HTTP_HX_REQUEST="true").content.decode()
    assert f'<option value="{LLAMA_MODEL}">' in fragment and "gpt-4.1-mini\">" not in fragment
    assert f'value="{LLAMA_MODEL}" required' in fragment  # the sandbox's model is not kept
    assert "Models on Local llama" in fragment and "unknown" in fragment


def test_the_picker_refuses_another_teams_connection(owner_client, other_team) -> None:
    foreign = make_connection(other_team)
    assert owner_client.get(f"/assistants/models/?connection={foreign.pk}").status_code == 404


def test_an_assistant_on_a_model_its_connection_does_not_serve_is_refused(owner_client, team, sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url, name="Local llama")
    data = {"name": "Helper", "connection": str(connection.pk), "model": "gpt-4.1-mini", "instructions": "",
            "tools": "", "response_schema": ""}
    answer = owner_client.post("/assistants/new/", data)
    assert answer.status_code == 200
    assert f"Local llama does not serve gpt-4.1-mini. Its models: {LLAMA_MODEL}." in answer.content.decode()
    assert owner_client.post("/assistants/new/", {**data, "model": LLAMA_MODEL}).status_code == 302


def test_saving_an_assistant_that_needs_what_the_server_lacks_says_so(owner_client, team, sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url)
    capabilities_probe(connection=connection, names=["tools", "forced_tool_choice", "json_schema"], model=LLAMA_MODEL)
    data = {"name": "Helper", "connection": str(connection.pk), "model": LLAMA_MODEL, "instructions": "",
            "tools": '[{"name": "current_time", "binding": "builtin"}]',
            "response_schema": '{"type": "object", "properties": {}, "additionalProperties": false}'}
    text = owner_client.post("/assistants/new/", data).content.decode()
    assert "This server ignores tools unless one is forced" in text
    assert "This server does not accept JSON-schema output" in text


def test_usage_does_not_say_zero_dollars_when_costs_are_unknown(owner_client, team) -> None:
    thread = make_thread(team)
    version = thread.assistant.current_version
    assert version is not None
    usage = SimpleNamespace(input=100, cached=0, output=50, reasoning=0, calls=1, estimated=False)
    unpriced = Run.objects.create(thread=thread, team=team, assistant=thread.assistant, version=version,
                                  model=LLAMA_MODEL, status="succeeded", input_tokens=100, output_tokens=50,
                                  provider_calls=1, cost_usd=None)
    run_spend_record(run=unpriced, usage=usage)
    html = owner_client.get("/usage/").content.decode()
    headline = html.split("data-usage-total>")[1].split("</p>")[0]
    assert "$0.00" not in headline
    assert "<strong>unknown</strong>" in headline and "1 call of unknown cost" in headline
    priced = Run.objects.create(thread=thread, team=team, assistant=thread.assistant, version=version,
                                model="gpt-4.1-mini", status="succeeded", input_tokens=100, output_tokens=50,
                                provider_calls=1)
    run_spend_record(run=priced, usage=usage)
    headline = owner_client.get("/usage/").content.decode().split("data-usage-total>")[1].split("</p>")[0]
    assert "unknown</strong>" not in headline and "<strong>$0.0001" in headline
    assert "1 call of unknown cost (no price is known for the model), not counted" in headline



def test_saving_tools_for_a_server_never_probed_asks_it_first(owner_client, team, sandbox_url) -> None:
    connection = llamacpp(team, sandbox_url)
    data = {"name": "Helper", "connection": str(connection.pk), "model": LLAMA_MODEL, "instructions": "",
            "tools": '[{"name": "current_time", "binding": "builtin"}]', "response_schema": ""}
    text = owner_client.post("/assistants/new/", data).content.decode()
    assert "This server ignores tools unless one is forced" in text
    sandbox = make_connection(team, base_url=sandbox_url, kind=ProviderKind.SANDBOX)
    assert owner_client.post("/assistants/new/", {**data, "connection": str(sandbox.pk),
                                                  "model": "gpt-4.1-mini"}).status_code == 302
