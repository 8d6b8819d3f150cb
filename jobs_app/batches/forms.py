from __future__ import annotations

from typing import Any

from django import forms

from assistants_app.conversation import Assistant, Thread, team_assistants, team_threads
from jobs_app.batches.models import BatchEndpoint
from project.providers.capabilities import connection_lacks
from project.providers.models import ProviderConnection
from project.providers.selectors import team_connections
from project.teams.models import Team
from project.user_input import UserJSONError, loads_user_json


class BatchBuildForm(forms.Form):
    SOURCES = [("jsonl", "JSONL in the Batch line format"), ("csv", "CSV + prompt template")]

    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the file name.")
    connection = forms.ModelChoiceField(queryset=ProviderConnection.objects.none(), empty_label=None)
    endpoint = forms.ChoiceField(choices=BatchEndpoint.choices)
    source = forms.ChoiceField(choices=SOURCES, widget=forms.RadioSelect, initial="csv")
    file = forms.FileField(help_text="A .jsonl of request lines, or a .csv with a header row.")
    template = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                               help_text="CSV only: the prompt, with {column} placeholders.")
    assistant = forms.ModelChoiceField(
        queryset=Assistant.objects.none(), required=False, empty_label="— none: use the model below —",
        help_text="CSV only: its current version's model, instructions, response format and tools make the request.")
    model = forms.CharField(required=False, max_length=200, help_text="CSV only, without an assistant: e.g. gpt-4.1-mini.")
    instructions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                   help_text="CSV only: the system message.")
    response_format = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                      help_text='CSV only, optional: a response_format object, e.g. {"type": "json_object"}.')

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["connection"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = team_connections(team=team)
        assistant = self.fields["assistant"]
        assert isinstance(assistant, forms.ModelChoiceField)
        assistant.queryset = team_assistants(team=team).filter(current_version__isnull=False)

    def clean_connection(self) -> ProviderConnection:
        connection: ProviderConnection = self.cleaned_data["connection"]
        lacking = connection_lacks(connection, "batches", probe_unknown=True)
        if lacking:
            raise forms.ValidationError(lacking)
        return connection

    def clean_response_format(self) -> dict[str, Any] | None:
        raw = self.cleaned_data["response_format"].strip()
        if not raw:
            return None
        try:
            value = loads_user_json(raw)
        except UserJSONError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}.") from None
        if not isinstance(value, dict) or "type" not in value:
            raise forms.ValidationError('A response_format is an object with a "type".')
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("source") == "csv":
            if not (data.get("template") or "").strip():
                self.add_error("template", "A CSV needs a prompt template.")
            explicit = [name for name in ("model", "instructions") if (data.get(name) or "").strip()]
            if data.get("response_format"):
                explicit.append("response_format")
            if data.get("assistant") is not None:
                if data.get("endpoint") == BatchEndpoint.EMBEDDINGS:
                    self.add_error("assistant", "An assistant makes chat requests; choose Chat Completions or Responses "
                                                "as the endpoint, or no assistant.")
                if explicit:
                    self.add_error("assistant", "Choose an assistant or write a model and instructions, not both: "
                                                "the assistant's current version sets them.")
            elif not (data.get("model") or "").strip():
                self.add_error("model", "A CSV needs an assistant or a model: choose an assistant, or enter a model "
                                        "(and instructions if you want a system message).")
        return data


class ThreadsBatchForm(forms.Form):
    """Threads to run again. Only the team's threads are valid choices; an id from elsewhere
    is a form error, so nothing is built from it."""

    name = forms.CharField(max_length=200, required=False, help_text="Defaults to “Threads run again”.")
    connection = forms.ModelChoiceField(queryset=ProviderConnection.objects.none(), empty_label=None)
    threads = forms.ModelMultipleChoiceField(
        queryset=Thread.objects.none(), error_messages={
            "required": "Choose at least one thread.",
            "invalid_choice": "Thread %(value)s is not one of this team's threads.",
        })

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        connection = self.fields["connection"]
        assert isinstance(connection, forms.ModelChoiceField)
        connection.queryset = team_connections(team=team)
        threads = self.fields["threads"]
        assert isinstance(threads, forms.ModelMultipleChoiceField)
        threads.queryset = team_threads(team=team)

    def clean_connection(self) -> ProviderConnection:
        connection: ProviderConnection = self.cleaned_data["connection"]
        lacking = connection_lacks(connection, "batches", probe_unknown=True)
        if lacking:
            raise forms.ValidationError(lacking)
        return connection
