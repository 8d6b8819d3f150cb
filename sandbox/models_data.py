"""The base models the sandbox serves, kept as plain data so it reads like a table.

shutdown_date is the 2026 API's field for deprecated models (None = not announced).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    id: str
    created: int
    kind: str  # "chat" or "embedding"
    encoding: str  # tiktoken encoding name
    context_window: int
    max_output_tokens: int
    reasoning: bool = False
    fine_tunable: bool = False
    embedding_dimensions: int = 0
    shutdown_date: str | None = None
    owned_by: str = "system"


BASE_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("gpt-5", 1754425777, "chat", "o200k_base", 400_000, 128_000, reasoning=True),
    ModelSpec("gpt-5-mini", 1754425928, "chat", "o200k_base", 400_000, 128_000, reasoning=True),
    ModelSpec("gpt-5-nano", 1754426384, "chat", "o200k_base", 400_000, 128_000, reasoning=True),
    ModelSpec("gpt-4.1", 1744316542, "chat", "o200k_base", 1_047_576, 32_768, fine_tunable=True),
    ModelSpec("gpt-4.1-2025-04-14", 1744315746, "chat", "o200k_base", 1_047_576, 32_768, fine_tunable=True),
    ModelSpec("gpt-4.1-mini", 1744318173, "chat", "o200k_base", 1_047_576, 32_768, fine_tunable=True),
    ModelSpec("gpt-4.1-mini-2025-04-14", 1744317547, "chat", "o200k_base", 1_047_576, 32_768, fine_tunable=True),
    ModelSpec(
        "gpt-4.1-nano", 1744321707, "chat", "o200k_base", 1_047_576, 32_768, fine_tunable=True,
        shutdown_date="2027-02-17",
    ),
    ModelSpec(
        "gpt-4.1-nano-2025-04-14", 1744321025, "chat", "o200k_base", 1_047_576, 32_768, fine_tunable=True,
        shutdown_date="2027-02-17",
    ),
    ModelSpec("gpt-4o", 1715367049, "chat", "o200k_base", 128_000, 16_384, fine_tunable=True),
    ModelSpec("gpt-4o-2024-08-06", 1722814719, "chat", "o200k_base", 128_000, 16_384, fine_tunable=True),
    ModelSpec(
        "gpt-4o-mini", 1721172741, "chat", "o200k_base", 128_000, 16_384, fine_tunable=True,
        shutdown_date="2027-03-31",
    ),
    ModelSpec(
        "gpt-4o-mini-2024-07-18", 1721172717, "chat", "o200k_base", 128_000, 16_384, fine_tunable=True,
        shutdown_date="2027-03-31",
    ),
    ModelSpec("o4-mini", 1744225351, "chat", "o200k_base", 200_000, 100_000, reasoning=True, fine_tunable=True),
    ModelSpec("o3", 1744225308, "chat", "o200k_base", 200_000, 100_000, reasoning=True),
    ModelSpec(
        "gpt-3.5-turbo", 1677610602, "chat", "cl100k_base", 16_385, 4_096, fine_tunable=True,
        shutdown_date="2026-12-31", owned_by="openai",
    ),
    ModelSpec(
        "text-embedding-3-small", 1705948997, "embedding", "cl100k_base", 8_191, 0, embedding_dimensions=1536
    ),
    ModelSpec(
        "text-embedding-3-large", 1705953180, "embedding", "cl100k_base", 8_191, 0, embedding_dimensions=3072
    ),
)

BASE_MODELS_BY_ID: dict[str, ModelSpec] = {m.id: m for m in BASE_MODELS}
