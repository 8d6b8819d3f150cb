"""Provider connections: where a team's API calls go, with secrets encrypted at rest."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from django.db import models

from project import crypto
from project.netguard import url_origin
from project.teams.models import Team


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    AZURE = "azure", "Azure OpenAI"
    COMPATIBLE = "compatible", "OpenAI-compatible (llama.cpp, vLLM, proxy…)"
    SANDBOX = "sandbox", "Sandbox (built in, no key needed)"


DEFAULT_BASE_URLS: dict[str, str] = {ProviderKind.OPENAI: "https://api.openai.com/v1"}


def files_address_of(base_url: str) -> str:
    scheme, host, port = url_origin(base_url)
    path = urlsplit(base_url).path.rstrip("/") if scheme else ""
    return f"{scheme}://{host.lower()}:{port}{path}"


class Engine(models.TextChoices):
    """The API a connection's chats run on. OpenAI's current models need Responses for function
    tools with reasoning; compatible servers (llama.cpp, vLLM, LiteLLM) mostly speak only
    Chat Completions."""

    RESPONSES = "responses", "Responses"
    CHAT_COMPLETIONS = "chat_completions", "Chat Completions"


# Before "Test connection" has detected it: OpenAI and Azure answer /v1/responses; for any
# other server it is not known, and Chat Completions is what they all speak.
DEFAULT_ENGINES: dict[str, str] = {ProviderKind.OPENAI: Engine.RESPONSES, ProviderKind.AZURE: Engine.RESPONSES}


class ProviderConnection(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="connections")
    # Public id used in webhook URLs, so the numeric id sequence is not exposed.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=20, choices=ProviderKind.choices)
    name = models.CharField(max_length=120)
    base_url = models.URLField(max_length=500)
    api_version = models.CharField(max_length=40, blank=True, help_text="Azure OpenAI only, e.g. 2024-10-21.")
    organization = models.CharField(max_length=120, blank=True)
    project = models.CharField(max_length=120, blank=True)
    api_key_encrypted = models.TextField(blank=True)
    api_key_last4 = models.CharField(max_length=4, blank=True)
    webhook_secret_encrypted = models.TextField(blank=True)
    # An organization admin key (OpenAI, sandbox): reads the provider's costs and usage for reconciliation.
    admin_key_encrypted = models.TextField(blank=True)
    admin_key_last4 = models.CharField(max_length=4, blank=True)
    is_default = models.BooleanField(default=False)
    last_test_ok = models.BooleanField(null=True)
    last_test_message = models.TextField(blank=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    # The admin's choice of engine; blank follows what "Test connection" detected.
    engine = models.CharField(max_length=20, choices=Engine.choices, blank=True)
    engine_detected = models.CharField(max_length=20, choices=Engine.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="connection_unique_name_per_team"),
            models.UniqueConstraint(
                fields=["team"], condition=models.Q(is_default=True), name="connection_one_default_per_team"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    # Secrets: stored encrypted, never rendered back whole.
    def set_api_key(self, api_key: str) -> None:
        self.api_key_encrypted = crypto.encrypt(api_key) if api_key else ""
        self.api_key_last4 = api_key[-4:] if api_key else ""

    def get_api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""

    def set_admin_key(self, admin_key: str) -> None:
        self.admin_key_encrypted = crypto.encrypt(admin_key) if admin_key else ""
        self.admin_key_last4 = admin_key[-4:] if admin_key else ""

    def get_admin_key(self) -> str:
        return crypto.decrypt(self.admin_key_encrypted) if self.admin_key_encrypted else ""

    def set_webhook_secret(self, secret: str) -> None:
        self.webhook_secret_encrypted = crypto.encrypt(secret) if secret else ""

    def get_webhook_secret(self) -> str:
        return crypto.decrypt(self.webhook_secret_encrypted) if self.webhook_secret_encrypted else ""

    def address_differs(self, *, kind: str, base_url: str) -> bool:
        """Whether requests saved with this kind and base URL (blank: the kind's default)
        would go somewhere else: another kind, scheme, host or port. A saved key never
        follows a connection there; a new path on the same host keeps it."""
        new_url = base_url or DEFAULT_BASE_URLS.get(kind, "")
        return kind != self.kind or url_origin(new_url) != url_origin(self.base_url)

    @property
    def files_address(self) -> str:
        """Where the provider keeps this connection's files. A provider's file ids are unique
        at its address, so one remote id seen there is one file, whichever of the team's
        connections (two keys to one account, say) listed it."""
        return files_address_of(self.base_url)

    @property
    def run_engine(self) -> str:
        """The engine runs use: the admin's choice, else the detected one, else the kind's default."""
        return self.engine or self.engine_detected or DEFAULT_ENGINES.get(self.kind, Engine.CHAT_COMPLETIONS)

    @property
    def engine_description(self) -> str:
        how = "chosen" if self.engine else "detected" if self.engine_detected else "not detected yet"
        return f"{Engine(self.run_engine).label} ({how})"

    @property
    def masked_api_key(self) -> str:
        return f"••••{self.api_key_last4}" if self.api_key_encrypted else "(none)"

    @property
    def masked_admin_key(self) -> str:
        return f"••••{self.admin_key_last4}" if self.admin_key_encrypted else "(none)"

    @property
    def can_reconcile(self) -> bool:
        """Whether the provider's costs and usage can be read: OpenAI with an admin key; the
        sandbox answers any of its keys with that key's own requests."""
        return self.kind == ProviderKind.SANDBOX or (self.kind == ProviderKind.OPENAI and bool(self.admin_key_encrypted))

    @property
    def has_webhook_secret(self) -> bool:
        return bool(self.webhook_secret_encrypted)


class ConnectionCapabilities(models.Model):
    """What a connection's server was seen to support, probed by "Test connection" (or
    before a run that needs it, when never probed). `results` maps a capability name
    (project.providers.capabilities.CAPABILITIES) to {"ok": true | false | null, "detail": "..."}:
    null is "could not tell" (a timeout, no model to try), never "lacks"."""

    connection = models.OneToOneField(ProviderConnection, on_delete=models.CASCADE, primary_key=True,
                                      related_name="capabilities")
    results = models.JSONField(default=dict)
    probe_model = models.CharField(max_length=200, blank=True)
    checked_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"capabilities of {self.connection_id}"


class ConnectionModelFacts(models.Model):
    """An admin's facts for one model on one connection: what the catalog cannot know about
    a model a local server runs (its served context window, its price or that it is free)."""

    connection = models.ForeignKey(ProviderConnection, on_delete=models.CASCADE, related_name="model_facts")
    model_id = models.CharField(max_length=200)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    # USD per million tokens; `free` (self-hosted) makes every price zero.
    input_price = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    cached_input_price = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    output_price = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    free = models.BooleanField(default=False)
    encoding = models.CharField(max_length=40, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "model_id"],
                                               name="connection_model_facts_once")]

    def __str__(self) -> str:
        return f"{self.model_id} on {self.connection_id}"
