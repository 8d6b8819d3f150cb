from __future__ import annotations

import json
from typing import Any

from django import forms
from django.urls import reverse
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from assistants_app.models import Assistant
from assistants_app.tools import ToolDefinitionError, validate_tools
from project.providers.capabilities import RequestNeeds, capabilities_known, request_refusal
from project.providers.client import ProviderError
from project.providers.model_facts import model_facts
from project.providers.models import ProviderConnection, ProviderKind
from project.providers.remote_models import connection_has_model, connection_models
from project.providers.team_models import team_model_lookup
from project.user_input import UserJSONError, loads_user_json

# Every effort some reasoning model takes (gpt-5.4 and later: none … xhigh; gpt-5.6: max; gpt-5: minimal);
# clean() checks the one chosen against the model's own list in the model facts.
REASONING_EFFORTS = [("", "default"), ("none", "none"), ("minimal", "minimal"), ("low", "low"), ("medium", "medium"),
                     ("high", "high"), ("xhigh", "xhigh"), ("max", "max")]


def _json_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(label=label, required=False, help_text=help_text,
                           widget=forms.Textarea(attrs={"rows": 6, "class": "mono", "spellcheck": "false"}))


class AssistantForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    connection = forms.ModelChoiceField(queryset=ProviderConnection.objects.none(), required=True)
    model = forms.CharField(max_length=200, help_text="Pick from the list below or type a model id (fine-tuned too).")
    instructions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}))
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    top_p = forms.FloatField(required=False, min_value=0, max_value=1)
    reasoning_effort = forms.ChoiceField(choices=REASONING_EFFORTS, required=False,
                                         help_text="Used for reasoning models instead of temperature and top_p.")
    max_output_tokens = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)
    tools = _json_field("Tools (JSON)", 'A list such as [{"name": "calculator", "binding": "builtin"}, {"name": "lookup", '
                        '"binding": "http", "url": "https://…", "parameters": {…}}, {"name": "approve", "binding": "human"}]. '
                        "Built-ins: current_time, calculator, search_threads.")
    response_schema = _json_field("Reply JSON schema (structured output)", "Optional strict JSON schema the reply must follow.")
    long_running = forms.BooleanField(
        required=False, label="Long-running (background mode)",
        help_text="On a Responses connection the provider writes each reply in the background: a worker that restarts "
                  "picks it up where it was, and Stop cancels it on the provider.")

    def __init__(self, *args: Any, connections: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = connections  # type: ignore[attr-defined]
        # Choosing another connection swaps in its models (assistants_app.views_models).
        self.fields["connection"].widget.attrs.update({
            "hx-get": reverse("assistant_model_picker"), "hx-target": "#model-picker", "hx-swap": "outerHTML",
            "hx-include": "#id_model", "hx-trigger": "change"})

    def chosen_connection(self) -> ProviderConnection | None:
        """The connection the form names (what was posted, else its initial value), if it is one offered."""
        raw = self.data.get("connection") if self.is_bound else self.initial.get("connection")
        try:
            return self.fields["connection"].queryset.filter(pk=int(raw)).first() if raw else None  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            return None

    def clean_tools(self) -> list[dict[str, Any]]:
        raw = self.cleaned_data["tools"].strip()
        if not raw:
            return []
        try:
            parsed = loads_user_json(raw)
        except UserJSONError as error:
            raise forms.ValidationError(f"Tools are not valid JSON: {error}") from None
        try:
            return validate_tools(parsed)
        except ToolDefinitionError as error:
            raise forms.ValidationError(str(error)) from None

    def clean_response_schema(self) -> dict[str, Any]:
        raw = self.cleaned_data["response_schema"].strip()
        if not raw:
            return {}
        try:
            schema = loads_user_json(raw)
        except UserJSONError as error:
            raise forms.ValidationError(f"The schema is not valid JSON: {error}") from None
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise forms.ValidationError('The reply schema must be a JSON schema object with "type": "object".')
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            raise forms.ValidationError(f"Not a valid JSON Schema: {error.message}") from None
        if schema.get("additionalProperties") is not False:
            raise forms.ValidationError('Strict structured output needs "additionalProperties": false.')
        return schema

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        connection = data.get("connection")
        if isinstance(connection, ProviderConnection):
            model = str(data.get("model") or "").strip()
            self._check_model_served(connection, model)
            if "model" not in self.errors:
                self._check_server_supports(connection, data, model)
        effort, model = data.get("reasoning_effort"), str(data.get("model") or "").strip()
        accepted = model_facts(model).reasoning_efforts if model else ()
        if effort and accepted and effort not in accepted:
            self.add_error("reasoning_effort", f"{model} takes the efforts {', '.join(accepted)}.")
        return data

    def _check_server_supports(self, connection: ProviderConnection, data: dict[str, Any], model: str) -> None:
        """What the connection's server does not support is refused here, not at the first run:
        a capability never probed is asked now (a small request or two, with this model)."""
        needs = RequestNeeds(tools=bool(data.get("tools")), json_schema=bool(data.get("response_schema")))
        if not needs.any:
            return
        capabilities = capabilities_known(connection=connection, needs=needs, model=model)
        for field, need in (("tools", RequestNeeds(tools=needs.tools)),
                            ("response_schema", RequestNeeds(json_schema=needs.json_schema))):
            refusal = request_refusal(capabilities, need)
            if refusal:
                self.add_error(field, refusal)

    def _check_model_served(self, connection: ProviderConnection, model: str) -> None:
        """A model the connection does not list would be sized and priced as another server's
        model of that name (llama.cpp answers any name). Azure lists base models, not the
        deployments named here; a team's own model (a checkpoint) is in no list."""
        if not model or connection.kind == ProviderKind.AZURE:
            return
        try:
            served = connection_has_model(connection, model)
        except ProviderError:
            return  # the list could not be read: the name is taken as typed
        if not served and team_model_lookup(team=connection.team, model=model, connection=connection) is None:
            names = [m.id for m in connection_models(connection)][:5]
            self.add_error("model", f"{connection.name} does not serve {model}. Its models: {', '.join(names)}"
                           f"{'…' if len(names) == 5 else ''}.")

    def config(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {"model": data["model"].strip(), "instructions": data["instructions"], "temperature": data["temperature"],
                "top_p": data["top_p"], "reasoning_effort": data["reasoning_effort"] or "",
                "max_output_tokens": data["max_output_tokens"], "tools": data["tools"],
                "response_schema": data["response_schema"], "long_running": bool(data.get("long_running"))}

    @staticmethod
    def initial_for(assistant: Assistant) -> dict[str, Any]:
        version = assistant.current_version
        assert version is not None
        return {"name": assistant.name, "description": assistant.description, "connection": assistant.connection_id,
                "model": version.model, "instructions": version.instructions, "temperature": version.temperature,
                "top_p": version.top_p, "reasoning_effort": version.reasoning_effort,
                "max_output_tokens": version.max_output_tokens,
                "tools": json.dumps(version.tools, indent=2) if version.tools else "",
                "response_schema": json.dumps(version.response_schema, indent=2) if version.response_schema else "",
                "long_running": version.long_running}
