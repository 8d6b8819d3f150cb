"""Test sets: versions, and cases from threads, CSV, JSONL and by hand."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from evals_app import services
from evals_app.cases import CasesInvalid, CsvMapping, cases_from_csv, cases_from_jsonl, text_stream
from evals_app.models import TestCase
from tests.evals_app.conftest import make_set, question
from tests.factories import make_assistant, make_message, make_thread

pytestmark = pytest.mark.django_db


def test_editing_a_set_makes_a_new_version_and_keeps_the_old_one(team) -> None:
    test_set = make_set(team, question("echo: Paris", expected_text="Paris"))
    first = test_set.current_version
    assert first is not None and first.number == 2 and first.case_count == 1
    services.test_set_add_cases(test_set=test_set, actor=None, drafts=[question("echo: Rome", expected_text="Rome")],
                                note="one more")
    second = test_set.current_version
    assert second is not None and second.number == 3 and second.case_count == 2
    key = second.cases.get(position=1).key
    assert first.cases.get().key == key  # the same case, carried over
    services.test_set_remove_case(test_set=test_set, actor=None, case_key=key)
    third = test_set.current_version
    assert third is not None and [c.expected_text for c in third.cases.all()] == ["Rome"]
    assert [c.expected_text for c in second.cases.order_by("position")] == ["Paris", "Rome"]  # untouched
    services.test_set_set_graders(test_set=test_set, actor=None, graders=[{"kind": "contains", "weight": 2}],
                                  pass_threshold=0.5)
    assert test_set.current_version.number == 5 and test_set.current_version.graders == [{"kind": "contains", "weight": 2.0}]  # type: ignore[union-attr]
    assert third.graders == [{"kind": "exact", "weight": 1.0}]


def test_a_case_from_a_thread_is_its_history_up_to_the_chosen_reply(team) -> None:
    thread = make_thread(team, title="Refunds")
    make_message(thread, "Hi, I want a refund")
    first = make_message(thread, "Sure: what is the order number?", role="assistant")
    make_message(thread, "It is 1234")
    make_message(thread, "Refund for order 1234 is on its way.", role="assistant")
    test_set = make_set(team)
    services.test_set_from_threads(test_set=test_set, actor=None, picks=[(thread, None), (thread, first.pk)])
    last, earlier = test_set.current_version.cases.order_by("position")  # type: ignore[union-attr]
    assert [m["content"] for m in last.messages] == ["Hi, I want a refund", "Sure: what is the order number?", "It is 1234"]
    assert last.expected_text == "Refund for order 1234 is on its way."
    assert earlier.messages == [{"role": "user", "content": "Hi, I want a refund"}]
    assert earlier.expected_text == "Sure: what is the order number?"
    assert last.source == "thread" and f"thread {thread.pk}" in last.source_ref


def test_a_reply_that_called_a_tool_expects_that_call_and_replays_its_result(team) -> None:
    thread = make_thread(team)
    make_message(thread, "use calculator expression=6*7")
    calls = [{"id": "call_9", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "6*7"}'}}]
    make_message(thread, "", role="assistant", tool_calls=calls)
    make_message(thread, "6*7 = 42", role="tool", tool_call_id="call_9", tool_name="calculator")
    test_set = make_set(team)
    services.test_set_from_threads(test_set=test_set, actor=None, picks=[(thread, None)])
    case = test_set.current_version.cases.get()  # type: ignore[union-attr]
    assert case.expected_tool_call == {"name": "calculator", "arguments": {"expression": "6*7"}}
    assert case.tool_results == {"calculator": "6*7 = 42"}


def test_a_thread_without_a_reply_adds_no_case_and_says_why(team) -> None:
    thread = make_thread(team, title="Silent")
    make_message(thread, "anyone?")
    test_set = make_set(team)
    with pytest.raises(CasesInvalid, match="Silent” has no reply"):
        services.test_set_from_threads(test_set=test_set, actor=None, picks=[(thread, None)])
    assert test_set.current_version.case_count == 0  # type: ignore[union-attr]


def test_csv_columns_map_to_a_template() -> None:
    data = "country,capital,id\nFrance,Paris,c1\nItaly,Rome,c2\n\n"
    drafts = cases_from_csv(io.StringIO(data), CsvMapping(template="What is the capital of {country}?",
                                                          expected_column="capital", name_column="id"))
    assert [(d.messages[0]["content"], d.expected_text, d.name) for d in drafts] == [
        ("What is the capital of France?", "Paris", "c1"), ("What is the capital of Italy?", "Rome", "c2")]


@pytest.mark.parametrize(("data", "mapping", "problem"), [
    ("country\nFrance\n", CsvMapping(template="Capital of {land}?"), "The CSV has no column “land” (its columns: country)"),
    ("country\nFrance\n", CsvMapping(template="no placeholder"), "The template has no {column} placeholder."),
    ("country\nFrance\n", CsvMapping(template="{country.__class__}"), "must be a plain column name"),
    ("a,b\n1\n", CsvMapping(template="{a}"), "Line 2: 1 columns, the header has 2."),
    ("a,j\n1,{bad\n", CsvMapping(template="{a}", expected_json_column="j"), "Line 2: the column j is not JSON."),
    ("a\n", CsvMapping(template="{a}"), "The CSV has a header but no rows."),
])
def test_a_bad_csv_is_refused_whole_with_its_problem(data: str, mapping: CsvMapping, problem: str) -> None:
    with pytest.raises(CasesInvalid) as caught:
        cases_from_csv(io.StringIO(data), mapping)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_a_csv_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(CasesInvalid, match="not UTF-8"):
        cases_from_csv(text_stream(io.BytesIO("a\n\xe9t\xe9\n".encode("latin-1"))), CsvMapping(template="{a}"))


def test_jsonl_cases_with_messages_json_tool_calls_and_rubrics() -> None:
    lines = [
        json.dumps({"input": "echo: Paris", "expected": "Paris"}),
        json.dumps({"input": [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "age?"}],
                    "expected_json": {"age": 3}, "rubric": "JSON only", "name": "json"}),
        json.dumps({"input": "use calculator", "expected_tool_call": {"name": "calculator", "arguments": '{"expression": "1+1"}'},
                    "tool_results": {"calculator": "2"}}),
    ]
    drafts = cases_from_jsonl([line.encode() + b"\n" for line in lines])
    assert drafts[0].messages == [{"role": "user", "content": "echo: Paris"}] and drafts[0].expected_text == "Paris"
    assert drafts[1].expected_json == {"age": 3} and drafts[1].rubric == "JSON only" and len(drafts[1].messages) == 2
    assert drafts[2].expected_tool_call == {"name": "calculator", "arguments": {"expression": "1+1"}}


def test_a_bad_jsonl_names_each_bad_line() -> None:
    lines = [b'{"input": "ok"}\n', b"not json\n", b'{"input": []}\n', b'{"input": "x", "expect": "typo"}\n',
             b'[1, 2]\n', b'{"input": [{"role": "robot", "content": "x"}]}\n', b'{"input": "x", "expected": {"a": 1}}\n']
    with pytest.raises(CasesInvalid) as caught:
        cases_from_jsonl(lines)
    problems = caught.value.problems
    assert problems[0].startswith("Line 2: not JSON")
    assert problems[1] == 'Line 3: give "input": a question, or a list of messages.'
    assert problems[2].startswith("Line 4: unknown key expect")
    assert problems[3] == "Line 5: each line must be a JSON object."
    assert problems[4].startswith("Line 6: message 1 needs a role")
    assert problems[5].startswith('Line 7: "expected" must be text')


def test_uploading_a_bad_file_adds_nothing_and_shows_the_lines(owner_client, team) -> None:
    test_set = make_set(team, question("echo: a", expected_text="a"))
    before = test_set.current_version
    upload = SimpleUploadedFile("cases.jsonl", b'{"input": "fine"}\n{broken\n')
    response = owner_client.post(reverse("eval_set_upload", args=[test_set.pk]), {"file": upload})
    assert response.status_code == 400
    assert "cases.jsonl was not added: Line 2: not JSON" in response.content.decode()
    test_set.refresh_from_db()
    assert test_set.current_version == before
    csv_upload = SimpleUploadedFile("cases.csv", b"q,a\nhello,hi\n")
    response = owner_client.post(reverse("eval_set_upload", args=[test_set.pk]), {"file": csv_upload})
    assert response.status_code == 400 and "A CSV needs a template" in response.content.decode()


def test_uploading_csv_and_jsonl_through_the_page(owner_client, team) -> None:
    test_set = make_set(team)
    csv_upload = SimpleUploadedFile("capitals.csv", b"country,capital\nFrance,Paris\nPeru,Lima\n")
    response = owner_client.post(reverse("eval_set_upload", args=[test_set.pk]),
                                 {"file": csv_upload, "template": "Capital of {country}?", "expected_column": "capital"})
    assert response.status_code == 302
    jsonl = SimpleUploadedFile("more.jsonl", b'{"input": "echo: x", "expected": "x"}\n')
    owner_client.post(reverse("eval_set_upload", args=[test_set.pk]), {"file": jsonl})
    test_set.refresh_from_db()
    assert [c.expected_text for c in test_set.current_version.cases.all()] == ["Paris", "Lima", "x"]  # type: ignore[union-attr]


def test_a_case_and_graders_by_hand_through_the_page(owner_client, team) -> None:
    test_set = make_set(team, graders=[])
    url = reverse("eval_set_detail", args=[test_set.pk])
    response = owner_client.post(url, {"question": "What is 6*7?", "expected_text": "42",
                                       "expected_tool_call": '{"name": "calculator", "arguments": {"expression": "6*7"}}',
                                       "tool_results": '{"calculator": "42"}', "rubric": "gives the number"})
    assert response.status_code == 302
    case = TestCase.objects.get(set_version__test_set=test_set)
    assert case.expected_tool_call == {"name": "calculator", "arguments": {"expression": "6*7"}}
    bad = owner_client.post(url, {"question": "x", "expected_json": "{nope"})
    assert bad.status_code == 400 and "Not valid JSON" in bad.content.decode()
    add = reverse("eval_grader_add", args=[test_set.pk])
    assert owner_client.post(add, {"kind": "regex", "weight": "1", "pattern": "("}).status_code == 400
    assert owner_client.post(add, {"kind": "number", "weight": "2", "value": "42", "tolerance": "0.5"}).status_code == 302
    assert owner_client.post(add, {"kind": "json_path", "weight": "1", "path": "$.a", "value": "[1, 2]"}).status_code == 302
    owner_client.post(reverse("eval_threshold", args=[test_set.pk]), {"pass_threshold": "0.6"})
    test_set.refresh_from_db()
    version = test_set.current_version
    assert version is not None and version.pass_threshold == 0.6
    assert version.graders == [{"kind": "number", "weight": 2.0, "value": 42.0, "tolerance": 0.5},
                               {"kind": "json_path", "weight": 1.0, "path": "$.a", "value": [1, 2]}]
    owner_client.post(reverse("eval_grader_remove", args=[test_set.pk]), {"index": "1"})
    test_set.refresh_from_db()
    assert [gr["kind"] for gr in test_set.current_version.graders] == ["json_path"]  # type: ignore[union-attr]
    page = owner_client.get(url).content.decode()
    assert "JSON path equals" in page and "What is 6*7?" in page


def test_building_from_threads_through_the_page(owner_client, team) -> None:
    assistant = make_assistant(team, name="Helper")
    threads = []
    for text in ("first", "second"):
        thread = make_thread(team, assistant, title=f"About {text}")
        make_message(thread, f"echo: {text}")
        make_message(thread, text, role="assistant")
        threads.append(thread)
    test_set = make_set(team)
    url = reverse("eval_set_threads", args=[test_set.pk])
    page = owner_client.get(url).content.decode()
    assert "About first" in page and "About second" in page
    response = owner_client.post(url, {"threads": [str(t.pk) for t in threads]})
    assert response.status_code == 302
    test_set.refresh_from_db()
    assert sorted(c.expected_text for c in test_set.current_version.cases.all()) == ["first", "second"]  # type: ignore[union-attr]
    assert owner_client.post(url, {}).status_code == 400


def test_a_case_with_an_image_shows_its_text_and_names_the_image(owner_client, team) -> None:
    pixel = ("data:image/png;base64,"
             "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    line = json.dumps({"input": [{"role": "user", "content": [{"type": "text", "text": "What colour is this?"},
                                                               {"type": "image_url", "image_url": {"url": pixel}}]}],
                       "expected": "black"})
    test_set = make_set(team)
    services.test_set_add_cases(test_set=test_set, actor=None, drafts=cases_from_jsonl([line.encode()]), note="image")
    page = owner_client.get(reverse("eval_set_detail", args=[test_set.pk])).content.decode()
    assert "What colour is this? [image]" in page and "base64" not in page
