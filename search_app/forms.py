from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from project.providers.models import ProviderConnection
from search_app.models import DEFAULT_DIMENSIONS, DEFAULT_MODEL, MIN_DIMENSIONS

# The full size of the embedding models the site knows; a model not listed (a compatible
# server's own) is taken at the size it returns, which the settings must name.
FULL_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
# pgvector stores at most 16,000 dimensions.
MAX_DIMENSIONS = 16_000


class EmbeddingSettingsForm(forms.Form):
    enabled = forms.BooleanField(required=False, initial=True, label="Embed new messages")
    connection = forms.ModelChoiceField(queryset=ProviderConnection.objects.none(), required=False,
                                        empty_label="the team's default connection")
    model = forms.CharField(max_length=200, initial=DEFAULT_MODEL,
                            help_text="text-embedding-3-small, text-embedding-3-large, or a compatible server's model.")
    dimensions = forms.IntegerField(initial=DEFAULT_DIMENSIONS, min_value=MIN_DIMENSIONS, max_value=MAX_DIMENSIONS,
                                    help_text="256 up to the model's full size (1,536 for -small, 3,072 for -large). "
                                              "Fewer is smaller and faster, a little less precise.")

    def __init__(self, *args: Any, connections: QuerySet[ProviderConnection], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = connections  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        model, dims = (data.get("model") or "").strip(), data.get("dimensions")
        full = FULL_DIMENSIONS.get(model)
        if full is not None and dims is not None and dims > full:
            self.add_error("dimensions", f"{model} makes vectors of at most {full} dimensions.")
        if model == "text-embedding-ada-002" and dims not in (None, full):
            self.add_error("dimensions", f"{model} cannot shorten its vectors: use {full}.")
        data["model"] = model
        return data
