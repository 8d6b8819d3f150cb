"""Forms: a set, a case by hand, a grader, the pass threshold, an upload, a run."""

from __future__ import annotations

import contextlib
from typing import Any

from django import forms

from evals_app import graders as g
from evals_app.models import RunMode
from project.user_input import UserJSONError, loads_user_json


def _json_text(label: str, help_text: str = "", rows: int = 3) -> forms.CharField:
    return forms.CharField(label=label, required=False, help_text=help_text,
                           widget=forms.Textarea(attrs={"rows": rows, "class": "mono", "spellcheck": "false"}))


def _parse_json(form: forms.Form, name: str, *, want: type | None = None) -> Any:
    raw = form.cleaned_data.get(name, "").strip()
    if not raw:
        return None
    try:
        value = loads_user_json(raw)
    except UserJSONError as error:
        raise forms.ValidationError(f"Not valid JSON: {error}") from None
    if want is not None and not isinstance(value, want):
        raise forms.ValidationError(f"Must be a JSON {'object' if want is dict else 'list'}.")
    return value


class TestSetForm(forms.Form):
    __test__ = False

    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    assistant: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="(none)", help_text="The assistant whose answers the set checks.")

    def __init__(self, *args: Any, assistants: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assistant"].queryset = assistants  # type: ignore[attr-defined]


class HandCaseForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    question = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="The user's message.")
    expected_text = forms.CharField(label="Expected text", required=False, widget=forms.Textarea(attrs={"rows": 2}))
    expected_json = _json_text("Expected JSON")
    expected_tool_call = _json_text("Expected tool call", '{"name": "get_weather", "arguments": {"city": "Paris"}}')
    tool_results = _json_text("Tool results to replay", '{"get_weather": "18°C, clear"}')
    rubric = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="For a judge grader.")

    def clean_expected_json(self) -> Any:
        return _parse_json(self, "expected_json")

    def clean_expected_tool_call(self) -> Any:
        return _parse_json(self, "expected_tool_call", want=dict)

    def clean_tool_results(self) -> Any:
        value = _parse_json(self, "tool_results", want=dict) or {}
        if not all(isinstance(v, str) for v in value.values()):
            raise forms.ValidationError("Map each tool's name to its result text.")
        return value


class GraderForm(forms.Form):
    kind = forms.ChoiceField(choices=list(g.KINDS.items()))
    weight = forms.FloatField(initial=1.0, min_value=0.01, max_value=100)
    value = forms.CharField(required=False, help_text="Exact / contains / does not contain / number: the value "
                            "(empty: the case's expected text). JSON path: the expected value as JSON "
                            "(empty: the case's expected JSON).")
    ignore_case = forms.BooleanField(required=False)
    pattern = forms.CharField(required=False, help_text="Regular expression.")
    path = forms.CharField(required=False, help_text="JSON path such as $.answer or $.items[0].id.")
    tolerance = forms.FloatField(required=False, min_value=0)
    schema = _json_text("JSON schema", "For 'valid against a JSON schema'.")
    name = forms.CharField(required=False, help_text="Tool call: the tool's name (empty: the case's expected tool call).")
    arguments = _json_text("Tool arguments (values)", "Tool call: the argument values to match (empty: the case's).")
    arguments_schema = _json_text("Tool arguments (schema)", "Tool call: a JSON schema the arguments must match.")
    threshold = forms.FloatField(required=False, min_value=-1, max_value=1, help_text="Embeddings: cosine at or above (0.8).")
    dimensions = forms.IntegerField(required=False, min_value=1, max_value=4096)
    model = forms.CharField(required=False,
                            help_text=f"Embeddings: {g.DEFAULT_EMBEDDING_MODEL}; judge: {g.DEFAULT_JUDGE_MODEL}.")
    rubric = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Judge: the rubric (empty: each case's own).")

    def clean_schema(self) -> Any:
        return _parse_json(self, "schema", want=dict)

    def clean_arguments(self) -> Any:
        return _parse_json(self, "arguments", want=dict)

    def clean_arguments_schema(self) -> Any:
        return _parse_json(self, "arguments_schema", want=dict)

    def grader(self) -> dict[str, Any]:
        """The grader as stored; only the settings its kind takes are kept."""
        data = dict(self.cleaned_data)
        kind = data["kind"]
        if kind == "json_path" and data.get("value"):
            with contextlib.suppress(UserJSONError):  # plain text compares as a string
                data["value"] = loads_user_json(data["value"])
        if kind == "number" and data.get("value"):
            try:
                data["value"] = float(data["value"])
            except ValueError:
                raise forms.ValidationError("The number grader's value must be a number.") from None
        if not data.get("ignore_case"):
            data.pop("ignore_case", None)
        keep = g.SETTINGS[kind]
        return {"kind": kind, "weight": data["weight"],
                **{k: v for k, v in data.items() if k in keep and v not in (None, "", False)}}


class ThresholdForm(forms.Form):
    pass_threshold = forms.FloatField(min_value=0, max_value=1, help_text="A case passes when its weighted score "
                                      "(0 to 1) is at least this.")


class UploadForm(forms.Form):
    file = forms.FileField(help_text="A .csv (a header row, one case per row) or a .jsonl (one case per line).")
    template = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                               help_text="CSV: the question, with {column} placeholders, e.g. “Translate to French: {text}”.")
    expected_column = forms.CharField(required=False, max_length=100, help_text="CSV: the column of expected answers.")
    expected_json_column = forms.CharField(required=False, max_length=100)
    rubric_column = forms.CharField(required=False, max_length=100)
    name_column = forms.CharField(required=False, max_length=100)

    MAX_BYTES = 50 * 1024 * 1024

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is not None:
            if upload.size > self.MAX_BYTES:
                raise forms.ValidationError("The file is over 50 MB: split it.")
            name = (upload.name or "").lower()
            if not name.endswith((".csv", ".jsonl")):
                raise forms.ValidationError("Upload a .csv or a .jsonl file.")
            if name.endswith(".csv") and not data.get("template", "").strip():
                raise forms.ValidationError("A CSV needs a template: the question with {column} placeholders.")
        return data


class RunForm(forms.Form):
    connection: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        queryset=None, help_text="Where every target and the judge are asked.")
    mode = forms.ChoiceField(choices=RunMode.choices, initial=RunMode.LIVE, widget=forms.RadioSelect)
    concurrency = forms.IntegerField(initial=16, min_value=1, max_value=64,
                                     help_text="Requests at once; a 429 from the provider slows the run down.")

    def __init__(self, *args: Any, connections: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["connection"]
        field.queryset = connections  # type: ignore[attr-defined]
        first = connections.first()
        if first is not None:
            field.initial = first.pk

