"""How many tokens a version's reply may take: one rule shared by the request builder,
history trimming (assistants_app.conversation) and the spend reservation
(assistants_app.spend), kept apart so neither has to import the other."""

from __future__ import annotations

from assistants_app.models import AssistantVersion
from project.providers.model_facts import ModelFacts


def output_budget(version: AssistantVersion, facts: ModelFacts) -> int:
    return version.max_output_tokens or min(facts.max_output_tokens, facts.context_window // 4)
