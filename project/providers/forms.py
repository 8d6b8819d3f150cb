from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.html import escape

from project import netguard
from project.providers.models import Engine, ProviderConnection, ProviderKind

# Organization, project and API version go into request headers and the query string:
# printable ASCII without spaces, or the request cannot even be built.
HEADER_SAFE = re.compile(r"^[\x21-\x7e]*$")
HEADER_SAFE_MESSAGE = "Use letters, digits and punctuation only (no spaces or accented letters)."


class ConnectionForm(forms.Form):
    kind = forms.ChoiceField(choices=ProviderKind.choices, initial=ProviderKind.OPENAI)
    name = forms.CharField(max_length=120)
    base_url = forms.URLField(
        required=False, max_length=500, assume_scheme="https",
        # Django renders help text as HTML: the placeholder is escaped so it shows.
        help_text=escape("Leave blank for OpenAI. Azure: https://<resource>.openai.azure.com. Others: the URL ending in /v1."),
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
    admin_key = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        label="Admin key",
        help_text="OpenAI and sandbox only, optional: an organization admin key (sk-admin-…) lets the Usage page "
                  "reconcile the ledger with the provider's costs. Stored encrypted; leave blank to keep the saved one.",
    )
    remove_admin_key = forms.BooleanField(required=False, label="Remove the saved admin key")
    engine = forms.ChoiceField(
        required=False, choices=[("", "Detect it (Test connection)"), *Engine.choices], label="Engine",
        help_text="The API chats run on. Responses is needed by OpenAI's current models for tools with reasoning; "
                  "most llama.cpp, vLLM and LiteLLM servers speak only Chat Completions.",
    )
    make_default = forms.BooleanField(required=False, label="Use as the team's default connection")

    def __init__(self, *args: Any, instance: ProviderConnection | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "kind": instance.kind, "name": instance.name, "base_url": instance.base_url,
                "organization": instance.organization, "project": instance.project,
                "api_version": instance.api_version, "make_default": instance.is_default, "engine": instance.engine,
            }
        super().__init__(*args, **kwargs)

    def clean_base_url(self) -> str:
        url = str(self.cleaned_data.get("base_url") or "")
        typed = str(self.data.get(self.add_prefix("base_url"), "")).strip()
        if typed.startswith("//"):
            # URLField would quietly make "//169.254.169.254/" into https://169.254.169.254.
            raise forms.ValidationError("Write the URL with its scheme (http:// or https://).")
        if not url:
            return url
        try:
            netguard.check_url(url)
        except netguard.OutboundUnresolvable:
            pass  # it may resolve later; where it resolves to is checked at every call
        except netguard.OutboundRefused as error:
            raise forms.ValidationError(str(error)) from None
        return url

    def _header_safe(self, name: str) -> str:
        value = str(self.cleaned_data.get(name) or "").strip()
        if not HEADER_SAFE.match(value):
            raise forms.ValidationError(HEADER_SAFE_MESSAGE)
        return value

    def clean_organization(self) -> str:
        return self._header_safe("organization")

    def clean_project(self) -> str:
        return self._header_safe("project")

    def clean_api_version(self) -> str:
        return self._header_safe("api_version")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        needs_url = kind in {ProviderKind.AZURE, ProviderKind.COMPATIBLE, ProviderKind.SANDBOX}
        if needs_url and not data.get("base_url") and "base_url" not in self.errors:
            self.add_error("base_url", "This kind of connection needs a base URL.")
        has_saved_key = self.instance is not None and bool(self.instance.api_key_encrypted)
        if kind in {ProviderKind.OPENAI, ProviderKind.AZURE} and not data.get("api_key") and not has_saved_key:
            self.add_error("api_key", "An API key is required for this provider.")
        moved = self.instance is not None and self.instance.address_differs(
            kind=str(kind or ""), base_url=str(data.get("base_url") or ""))
        if data.get("admin_key") and kind not in {ProviderKind.OPENAI, ProviderKind.SANDBOX}:
            self.add_error("admin_key", "Only OpenAI and sandbox connections take an admin key.")
        if has_saved_key and moved and not data.get("api_key") and "base_url" not in self.errors and kind != ProviderKind.SANDBOX:
            # Otherwise an admin could send the saved key (perhaps the owner's) to a host of their choosing.
            # (A sandbox connection moved elsewhere is given a new random key instead; nobody knows its old one.)
            self.add_error("api_key", "Enter the API key again: the address changed.")
        return data
