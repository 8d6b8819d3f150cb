from __future__ import annotations

import json
from typing import Any

from django import forms

from jobs_app.models_batches import BatchEndpoint
from project.providers.models import ProviderConnection
from project.providers.selectors import team_connections
from project.teams.models import Team


class BatchBuildForm(forms.Form):
    SOURCES = [("jsonl", "JSONL in the Batch line format"), ("csv", "CSV + prompt template")]

    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the file name.")
    connection = forms.ModelChoiceField(queryset=ProviderConnection.objects.none(), empty_label=None)
    endpoint = forms.ChoiceField(choices=BatchEndpoint.choices)
    source = forms.ChoiceField(choices=SOURCES, widget=forms.RadioSelect, initial="csv")
    file = forms.FileField(help_text="A .jsonl of request lines, or a .csv with a header row.")
    template = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                               help_text="CSV only: the prompt, with {column} placeholders.")
    model = forms.CharField(required=False, max_length=200, help_text="CSV only: e.g. gpt-4.1-mini.")
    instructions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                   help_text="CSV only: the system message.")
    response_format = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                      help_text='CSV only, optional: a response_format object, e.g. {"type": "json_object"}.')

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["connection"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = team_connections(team=team)

    def clean_response_format(self) -> dict[str, Any] | None:
        raw = self.cleaned_data["response_format"].strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except ValueError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}.") from error
        if not isinstance(value, dict) or "type" not in value:
            raise forms.ValidationError('A response_format is an object with a "type".')
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("source") == "csv":
            if not (data.get("template") or "").strip():
                self.add_error("template", "A CSV needs a prompt template.")
            if not (data.get("model") or "").strip():
                self.add_error("model", "A CSV needs a model.")
        return data
