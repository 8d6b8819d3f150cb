from __future__ import annotations

from typing import Any

from django import forms

from project.files.models import UPLOAD_PURPOSES, FilePurpose
from project.providers.capabilities import connection_lacks
from project.providers.models import ProviderConnection
from project.providers.selectors import team_connections
from project.teams.models import Team


class UploadForm(forms.Form):
    connection = forms.ModelChoiceField(queryset=ProviderConnection.objects.none(), empty_label=None)
    purpose = forms.ChoiceField(choices=[(p.value, p.label) for p in UPLOAD_PURPOSES], initial=FilePurpose.USER_DATA)
    file = forms.FileField(help_text="Up to 512 MB. Fine-tune and batch files are JSONL; vision files PNG, JPEG, GIF or WebP.")

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = team_connections(team=team)  # type: ignore[attr-defined]

    def clean_connection(self) -> ProviderConnection:
        connection: ProviderConnection = self.cleaned_data["connection"]
        lacking = connection_lacks(connection, "files", probe_unknown=True)
        if lacking:
            raise forms.ValidationError(lacking)
        return connection


class FileFilterForm(forms.Form):
    purpose = forms.ChoiceField(required=False, choices=[("", "All purposes"), *FilePurpose.choices])
    connection = forms.ModelChoiceField(queryset=ProviderConnection.objects.none(), required=False,
                                        empty_label="All connections")
    sort = forms.ChoiceField(required=False, choices=[
        ("-created", "Newest first"), ("created", "Oldest first"), ("name", "Name A–Z"), ("-name", "Name Z–A"),
        ("-size", "Largest first"), ("size", "Smallest first"), ("expires", "Expiring soonest"), ("purpose", "Purpose"),
    ])

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = team_connections(team=team)  # type: ignore[attr-defined]
