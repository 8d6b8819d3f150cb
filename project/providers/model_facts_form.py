"""The form an admin sets one model's facts with, for one connection."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from project.providers.connection_facts import ENCODINGS
from project.providers.models import ConnectionModelFacts

_PRICE_HELP = "USD per million tokens."


def _price(label: str) -> forms.DecimalField:
    return forms.DecimalField(label=label, required=False, min_value=Decimal(0), max_digits=12, decimal_places=6,
                              help_text=_PRICE_HELP)


class ModelFactsForm(forms.Form):
    context_window = forms.IntegerField(
        required=False, min_value=16, max_value=100_000_000,
        help_text="Tokens the server takes per request, prompt and reply together (llama.cpp's n_ctx, "
                  "vLLM's max_model_len). Blank: unknown.")
    max_output_tokens = forms.IntegerField(required=False, min_value=1, max_value=10_000_000,
                                           label="Output limit", help_text="Most tokens in one reply. Blank: unknown.")
    free = forms.BooleanField(required=False, label="Free / self-hosted (no price per token)")
    input_price = _price("Input price")
    cached_input_price = _price("Cached input price")
    output_price = _price("Output price")
    encoding = forms.ChoiceField(
        required=False, choices=[("", "the model's (o200k_base when unknown)")] + [(e, e) for e in ENCODINGS],
        help_text="The tiktoken encoding Switchboard counts this model's tokens with when the server reports none.")

    @classmethod
    def initial_from(cls, saved: ConnectionModelFacts | None) -> dict[str, Any]:
        if saved is None:
            return {}
        return {name: getattr(saved, name) for name in cls.base_fields}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("free"):
            return data
        given = [data.get("input_price") is not None, data.get("output_price") is not None]
        if any(given) and not all(given):
            self.add_error("output_price" if given[0] else "input_price",
                           "Give both the input and the output price (or neither: the cost stays unknown).")
        window, output = data.get("context_window"), data.get("max_output_tokens")
        if window and output and output >= window:
            self.add_error("max_output_tokens", "The output limit must be smaller than the context window.")
        return data
