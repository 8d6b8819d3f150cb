from __future__ import annotations

from typing import Any

from django import forms

from project.providers.models import ProviderConnection, ProviderKind


class ConnectionForm(forms.Form):
    kind = forms.ChoiceField(choices=ProviderKind.choices, initial=ProviderKind.OPENAI)
    name = forms.CharField(max_length=120)
    base_url = forms.URLField(
        required=False, max_length=500, assume_scheme="https",
        help_text="Leave blank for OpenAI. Azure: https://<resource>.openai.azure.com. Others: the URL ending in /v1.",
    )
    api_key = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted; never shown again. Leave blank to keep the saved key.",
    )
    organization = forms.CharField(required=False, max_length=120)
    project = forms.CharField(required=False, max_length=120)
    api_version = forms.CharField(required=False, max_length=40, help_text="Azure OpenAI only, e.g. 2024-10-21.")
    webhook_secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="The whsec_… secret from the provider's webhook settings. Leave blank to keep the saved one.",
    )
    make_default = forms.BooleanField(required=False, label="Use as the team's default connection")

    def __init__(self, *args: Any, instance: ProviderConnection | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "kind": instance.kind, "name": instance.name, "base_url": instance.base_url,
                "organization": instance.organization, "project": instance.project,
                "api_version": instance.api_version, "make_default": instance.is_default,
            }
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        if kind in {ProviderKind.AZURE, ProviderKind.COMPATIBLE, ProviderKind.SANDBOX} and not data.get("base_url"):
            self.add_error("base_url", "This kind of connection needs a base URL.")
        has_saved_key = self.instance is not None and bool(self.instance.api_key_encrypted)
        if kind in {ProviderKind.OPENAI, ProviderKind.AZURE} and not data.get("api_key") and not has_saved_key:
            self.add_error("api_key", "An API key is required for this provider.")
        return data
