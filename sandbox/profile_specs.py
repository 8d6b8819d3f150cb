"""The servers the sandbox can behave like (see profiles.py for how): their names and
facts, in one place that the settings check (config.py) and the profiles both read.
Plain data, importing nothing of the sandbox, so config can import it."""

from __future__ import annotations

import dataclasses
from typing import Any

# The sandbox's own behaviour, OpenAI's: no profile.
OPENAI = "openai"


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    model: str
    n_ctx: int
    # The model list's entry for the model (besides id and object).
    model_facts: dict[str, Any]
    # Whether the server sends ": ping" comments while it waits before the first token.
    pings: bool


PROFILES: dict[str, Profile] = {
    "llamacpp": Profile(
        "llamacpp", "SmolLM2-135M-Instruct", 4096,
        # llama-cpp-python's entry, with llama.cpp's `meta` (the GGUF's training context, not n_ctx).
        {"owned_by": "me", "permissions": [], "meta": {
            "vocab_type": 2, "n_vocab": 49152, "n_ctx_train": 8192, "n_embd": 576, "n_params": 134515008,
            "size": 269030400}},
        pings=True,
    ),
    "vllm": Profile(
        "vllm", "Qwen/Qwen2.5-0.5B-Instruct", 32768,
        {"owned_by": "vllm", "root": "Qwen/Qwen2.5-0.5B-Instruct", "parent": None},
        pings=False,
    ),
}
