"""Building batches from each source, and every kind of bad input reported with its line or column."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from assistants_app.conversation import assistant_request_spec
from assistants_app.models import Assistant
from assistants_app.services import assistant_update
from jobs_app.batches.build import (
    BodySpec,
    body_for_prompt,
    items_from_conversations,
    items_from_csv,
    items_from_jsonl,
    thread_conversation,
)
from jobs_app.batches.models import Batch, BatchGroup, BatchRequest
from jobs_app.batches.services import batch_group_build
from jobs_app.batches.threads import batch_group_build_from_threads
from jobs_app.batches.validation import BatchInputInvalid, InputProblems
from project.teams.models import Team
from project.tokens import count_messages
from tests.factories import batch_chat_line, make_assistant, make_connection, make_message, make_thread

pytestmark = pytest.mark.django_db
CHAT = "/v1/chat/completions"


def jsonl(*lines: Any) -> list[bytes]:
    return [(line if isinstance(line, str) else json.dumps(line)).encode() + b"\n" for line in lines]


def build_jsonl(team: Team, raw: list[bytes], endpoint: str = CHAT) -> BatchGroup:
    problems = InputProblems()
    return batch_group_build(team=team, connection=make_connection(team), actor=None, name="t", endpoint=endpoint,
                             source="jsonl", items=items_from_jsonl(raw, endpoint=endpoint, problems=problems),
                             problems=problems)


def build_csv(team: Team, text: str, template: str, spec: BodySpec | None = None, endpoint: str = CHAT) -> BatchGroup:
    problems = InputProblems()
    items = items_from_csv(io.StringIO(text), template=template, spec=spec or BodySpec(model="gpt-4.1-mini"),
                           endpoint=endpoint, problems=problems)
    return batch_group_build(team=team, connection=make_connection(team), actor=None, name="t", endpoint=endpoint,
                             source="csv", items=items, problems=problems)


def problems_of(call: Any) -> list[str]:
    with pytest.raises(BatchInputInvalid) as caught:
        call()
    assert not BatchGroup.objects.exists() and not Batch.objects.exists() and not BatchRequest.objects.exists()
    return [str(p) for p in caught.value.problems.problems]


def test_a_jsonl_becomes_a_draft_with_one_row_per_request_and_an_estimate(team: Team) -> None:
    lines = [batch_chat_line(f"q{i}", f"question {i}") for i in range(4)]
    group = build_jsonl(team, jsonl(*lines))
    assert group.request_count == 4 and group.model == "gpt-4o-mini"
    expected_tokens = sum(count_messages([{"role": "user", "content": f"question {i}"}], "gpt-4o-mini") for i in range(4))
    assert group.estimated_input_tokens == expected_tokens
    assert group.estimated_cost_usd is not None and group.estimated_cost_usd > 0
    rows = list(BatchRequest.objects.filter(batch__group=group).order_by("line_no"))
    assert [r.custom_id for r in rows] == ["q0", "q1", "q2", "q3"]
    assert rows[1].body == lines[1]["body"] and rows[1].input_text == "question 1"


@pytest.mark.parametrize(("line", "expected"), [
    ("{not json", "line 2: not valid JSON"),
    ('["a list"]', "line 2: not a JSON object"),
    (batch_chat_line("a", "dup"), "line 2: duplicate custom_id 'a'"),
    ({**batch_chat_line("b", "x"), "method": "GET"}, 'line 2: method must be POST, not "GET"'),
    ({**batch_chat_line("b", "x"), "url": "/v1/embeddings"}, "line 2: url \"/v1/embeddings\" does not match"),
    ({"custom_id": "b", "method": "POST", "url": CHAT}, "line 2: 'body' is missing"),
    (batch_chat_line("b", "x", model="gpt-4.1"), "line 2: model 'gpt-4.1' differs from 'gpt-4o-mini' on line 1"),
    ({**batch_chat_line("b", "x"), "body": {"model": "gpt-4o-mini", "messages": []}}, "line 2: body.messages must be"),
    (batch_chat_line("b", "x", response_format={"type": "json_object"}), "line 2: response_format json_object needs"),
])
def test_it_rejects_a_bad_jsonl_line_with_its_line_number(team: Team, line: Any, expected: str) -> None:
    problems = problems_of(lambda: build_jsonl(team, jsonl(batch_chat_line("a", "first"), line)))
    assert any(p.startswith(expected) for p in problems), problems


def test_it_reports_every_bad_line_at_once(team: Team) -> None:
    problems = problems_of(lambda: build_jsonl(team, jsonl(batch_chat_line("a", "1"), "oops", batch_chat_line("a", "2"))))
    assert [p.split(":")[0] for p in problems] == ["line 2", "line 3"]


def test_it_rejects_an_empty_input(team: Team) -> None:
    assert problems_of(lambda: build_jsonl(team, [b"\n"])) == ["the input has no requests."]


def test_a_csv_with_a_template_makes_chat_requests_with_instructions_and_response_format(team: Team) -> None:
    spec = BodySpec(model="gpt-4.1-mini", instructions="Be brief. Answer in JSON.", response_format={"type": "json_object"})
    group = build_csv(team, "custom_id,city,country\nc1,Paris,France\nc2,\"Lyon, centre\",France\n",
                      "Describe {city} in {country}. {{literal}}", spec)
    rows = list(BatchRequest.objects.filter(batch__group=group).order_by("line_no"))
    assert [r.custom_id for r in rows] == ["c1", "c2"]
    assert rows[1].body == {"model": "gpt-4.1-mini", "response_format": {"type": "json_object"}, "messages": [
        {"role": "system", "content": "Be brief. Answer in JSON."},
        {"role": "user", "content": "Describe Lyon, centre in France. {literal}"}]}
    # The per-row shortcut of the token count matches counting each request in full.
    assert group.estimated_input_tokens == sum(count_messages(r.body["messages"], "gpt-4.1-mini") for r in rows)


def test_it_rejects_json_object_output_without_asking_for_json(team: Team) -> None:
    spec = BodySpec(model="gpt-4.1-mini", instructions="Be brief.", response_format={"type": "json_object"})
    problems = problems_of(lambda: build_csv(team, "city\nParis\n", "Describe {city}.", spec))
    assert problems == ["response_format json_object needs the word JSON somewhere in the instructions or the template "
                        "(the API refuses the request otherwise)."]


def test_a_csv_without_custom_id_numbers_its_rows_and_builds_embeddings(team: Team) -> None:
    group = build_csv(team, "text\nhello\nworld\n", "{text}", BodySpec(model="text-embedding-3-small"),
                      endpoint="/v1/embeddings")
    bodies = dict(BatchRequest.objects.filter(batch__group=group).values_list("custom_id", "body"))
    assert bodies == {"row-1": {"model": "text-embedding-3-small", "input": "hello"},
                      "row-2": {"model": "text-embedding-3-small", "input": "world"}}


def test_it_rejects_a_csv_missing_a_template_column_naming_the_column(team: Team) -> None:
    problems = problems_of(lambda: build_csv(team, "city\nParis\n", "Describe {city} in {country}."))
    assert problems == ["column 'country': the template uses {country} but the CSV has no such column (columns: city)."]


def test_it_rejects_short_csv_rows_and_duplicate_ids_with_their_line(team: Team) -> None:
    problems = problems_of(lambda: build_csv(team, "custom_id,city,country\na,Paris,France\na,Rome,Italy\nb,Oslo\n",
                                             "{city} {country}"))
    assert problems == ["line 3, column 'custom_id': duplicate custom_id 'a'.",
                        "line 4, column 'country': the row has 2 value(s) but the header has 3."]


def test_it_refuses_template_placeholders_that_are_not_plain_columns(team: Team) -> None:
    problems = problems_of(lambda: build_csv(team, "city\nParis\n", "{city.__class__}"))
    assert "must be a plain column name" in problems[0]


def test_input_over_the_per_batch_limits_is_split_into_parts(team: Team, settings: Any) -> None:
    settings.BATCH_MAX_REQUESTS = 4
    group = build_csv(team, "q\n" + "".join(f"question {i}\n" for i in range(10)), "{q}")
    assert [(p.part, p.request_count) for p in group.parts.all()] == [(1, 4), (2, 4), (3, 2)]
    assert group.request_count == 10
    settings.BATCH_MAX_REQUESTS = 1000
    settings.BATCH_MAX_BYTES = 400  # a few lines of ~110 bytes each
    group = build_csv(team, "q\n" + "".join(f"question {i}\n" for i in range(10)), "{q}")
    parts = list(group.parts.all())
    assert len(parts) > 2 and all(0 < p.input_bytes <= 400 for p in parts)
    assert sum(p.request_count for p in parts) == 10


def test_it_refuses_input_needing_more_batches_than_a_group_holds(team: Team, settings: Any) -> None:
    settings.BATCH_MAX_REQUESTS = 2
    settings.BATCH_MAX_PARTS = 3
    problems = problems_of(lambda: build_csv(team, "q\n" + "".join(f"{i}\n" for i in range(7)), "{q}"))
    assert problems[0].startswith("line 8: the input needs more than 3 batches")


def test_a_single_request_over_the_byte_limit_is_reported_by_line(team: Team, settings: Any) -> None:
    settings.BATCH_MAX_BYTES = 300
    problems = problems_of(lambda: build_csv(team, "q\nshort\n" + "x" * 400 + "\n", "{q}"))
    assert problems[0].startswith("line 3: this request is")


SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False}
HTTP_TOOL = {"name": "lookup", "description": "Find a word", "binding": "http", "url": "https://tools.example/lookup",
             "timeout": 10.0, "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}


def test_an_assistants_current_version_makes_the_body(team: Team) -> None:
    assistant = make_assistant(team, model="gpt-4.1", instructions="Old.", tools=[])
    assistant_update(assistant=assistant, actor=None, name=assistant.name, description="", connection=None, config={
        "model": "gpt-4.1", "instructions": "You are terse.", "temperature": 0.2, "top_p": None, "reasoning_effort": "",
        "max_output_tokens": 100, "tools": [HTTP_TOOL], "response_schema": SCHEMA})
    assistant = Assistant.objects.get(pk=assistant.pk)
    spec = assistant_request_spec(assistant)
    # The current (second) version, and only function definitions: binding, URL and timeout stay on the site.
    assert spec == BodySpec(
        model="gpt-4.1", instructions="You are terse.",
        response_format={"type": "json_schema", "json_schema": {"name": "reply", "strict": True, "schema": SCHEMA}},
        tools=[{"type": "function", "function": {"name": "lookup", "description": "Find a word",
                                                 "parameters": HTTP_TOOL["parameters"]}}],
        extra={"temperature": 0.2, "max_completion_tokens": 100, "parallel_tool_calls": True})
    body = body_for_prompt(spec, CHAT, "hi")
    assert "https://tools.example" not in json.dumps(body)
    reasoning = make_assistant(team, model="o4-mini", instructions="", temperature=0.5, reasoning_effort="high")
    assert assistant_request_spec(reasoning) == BodySpec(model="o4-mini", extra={"reasoning_effort": "high"})


def test_a_threads_conversation_ends_at_its_last_user_message(team: Team) -> None:
    thread = make_thread(team)
    make_message(thread, "what is 6*7?")
    make_message(thread, "", role="assistant", tool_calls=[{"id": "c1", "type": "function",
                                                           "function": {"name": "calculator", "arguments": "{}"}}])
    make_message(thread, "42", role="tool", tool_call_id="c1", tool_name="calculator")
    make_message(thread, "It is 42.", role="assistant")
    make_message(thread, "and 6*8?", attachments=[{"type": "image", "data_url": "data:image/png;base64,AAAA"}])
    make_message(thread, "", role="assistant", tool_calls=[{"id": "c2", "type": "function",
                                                           "function": {"name": "calculator", "arguments": "{}"}}])
    make_message(thread, "", role="tool", tool_call_id="c2", pending=True)
    custom_id, messages = thread_conversation(thread)
    assert custom_id == f"thread-{thread.pk}"
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert messages[1]["tool_calls"][0]["id"] == "c1" and messages[2] == {"role": "tool", "tool_call_id": "c1",
                                                                           "content": "42"}
    assert messages[-1]["content"] == [{"type": "text", "text": "and 6*8?"},
                                       {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]


def test_a_tool_call_left_unanswered_is_kept_as_text_only(team: Team) -> None:
    thread = make_thread(team)
    make_message(thread, "ask Ann")
    make_message(thread, "Asking.", role="assistant", tool_calls=[{"id": "c9", "type": "function",
                                                                   "function": {"name": "ask", "arguments": "{}"}}])
    make_message(thread, "never mind, hello")
    _, messages = thread_conversation(thread)
    assert messages == [{"role": "user", "content": "ask Ann"}, {"role": "assistant", "content": "Asking."},
                        {"role": "user", "content": "never mind, hello"}]


def test_a_long_thread_is_trimmed_from_its_oldest_messages_to_fit_the_model(team: Team) -> None:
    from assistants_app.conversation import history_budget
    from project.providers.model_facts import model_facts
    from project.tokens import count_message, encoding_for_model

    # gpt-3.5-turbo's window is taken as 8,192 tokens: 40 turns of ~800 tokens do not fit.
    assistant = make_assistant(team, model="gpt-3.5-turbo", max_output_tokens=500, instructions="Be brief.")
    thread = make_thread(team, assistant)
    filler = " ".join(["river"] * 800)
    for i in range(20):
        make_message(thread, f"old question {i} {filler}")
        make_message(thread, f"old answer {i} {filler}", role="assistant")
    make_message(thread, "the question now")
    _, messages = thread_conversation(thread)
    encoding = encoding_for_model("gpt-3.5-turbo")
    version = assistant.current_version
    assert version is not None
    assert messages[-1] == {"role": "user", "content": "the question now"}
    assert 2 < len(messages) < 41  # the oldest were left out, the newest kept
    assert messages[0]["content"].startswith("old ") and "old question 19" in messages[-3]["content"]
    assert sum(count_message(m, encoding) for m in messages) <= history_budget(version, model_facts("gpt-3.5-turbo"))


def test_threads_run_again_under_their_assistants_current_version(team: Team) -> None:
    assistant = make_assistant(team, model="gpt-4o-mini", instructions="Answer in French.")
    first, second = make_thread(team, assistant, "One"), make_thread(team, assistant, "Two")
    for thread, word in ((first, "cat"), (second, "dog")):
        make_message(thread, f"translate {word}")
        make_message(thread, "chat" if word == "cat" else "chien", role="assistant")
        make_message(thread, f"and {word}s?")
        make_message(thread, "an answer the batch asks for again", role="assistant")
    group = batch_group_build_from_threads(team=team, connection=make_connection(team), actor=None, name="",
                                           threads=[first, second])
    assert group.source == "threads" and group.model == "gpt-4o-mini" and group.request_count == 2
    rows = list(BatchRequest.objects.filter(batch__group=group).order_by("line_no"))
    assert [r.custom_id for r in rows] == [f"thread-{first.pk}", f"thread-{second.pk}"]
    assert rows[0].input_text == "and cats?"
    assert rows[0].body["messages"] == [
        {"role": "system", "content": "Answer in French."}, {"role": "user", "content": "translate cat"},
        {"role": "assistant", "content": "chat"}, {"role": "user", "content": "and cats?"}]
    assert rows[0].body["model"] == "gpt-4o-mini"
    expected = sum(count_messages(r.body["messages"], "gpt-4o-mini") for r in rows)
    assert group.estimated_input_tokens == expected


def test_threads_of_assistants_with_different_models_are_refused_and_nothing_is_left(team: Team) -> None:
    threads = []
    for name, model in (("Mini", "gpt-4o-mini"), ("Big", "gpt-4.1-mini")):
        thread = make_thread(team, make_assistant(team, name=name, model=model))
        make_message(thread, "hi")
        threads.append(thread)
    with pytest.raises(BatchInputInvalid) as raised:
        batch_group_build_from_threads(team=team, connection=make_connection(team), actor=None, name="x", threads=threads)
    assert [str(p) for p in raised.value.problems.problems] == [
        "the chosen threads' assistants use different models (Mini: gpt-4o-mini; Big: gpt-4.1-mini); "
        "a batch runs one model, so choose threads of assistants with the same model."]
    assert not BatchGroup.objects.exists()


def test_a_thread_without_a_user_message_is_reported_and_nothing_is_left(team: Team) -> None:
    assistant = make_assistant(team, model="gpt-4o-mini")
    asked = make_thread(team, assistant)
    make_message(asked, "hi")
    empty = make_thread(team, assistant, title="Empty")
    with pytest.raises(BatchInputInvalid) as raised:
        batch_group_build_from_threads(team=team, connection=make_connection(team), actor=None, name="x",
                                       threads=[asked, empty])
    assert [str(p) for p in raised.value.problems.problems] == [
        f"thread-{empty.pk} has no user message to run again."]
    assert not BatchGroup.objects.exists()


def test_conversations_replace_stored_system_messages_with_the_specs_instructions(team: Team) -> None:
    problems = InputProblems()
    history = [{"role": "system", "content": "old"}, {"role": "user", "content": "hi"},
               {"role": "assistant", "content": "hello"}, {"role": "user", "content": "again"}]
    items = items_from_conversations([("thread-7", history, BodySpec(model="gpt-4o-mini", instructions="new"))],
                                     endpoint=CHAT, problems=problems)
    group = batch_group_build(team=team, connection=make_connection(team), actor=None, name="threads", endpoint=CHAT,
                              source="threads", items=items, problems=problems)
    row = BatchRequest.objects.get(batch__group=group)
    assert row.custom_id == "thread-7" and row.input_text == "again"
    assert row.body["messages"] == [{"role": "system", "content": "new"}, *history[1:]]
