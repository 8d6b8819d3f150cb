"""The base models the sandbox serves, kept as plain data so it reads like a table.

shutdown_date is the 2026 API's field for deprecated models (None = not announced).
Figures and dates were checked on 2026-11-29; project/providers/model_facts.json gives
the source of each one. Models already past their shutdown date are still served, so an
old assistant or test keeps working here; the dashboard marks them from shutdown_date.
"""

from __future__ import annotations

from dataclasses import dataclass

# Reasoning efforts by generation, as OpenAI's model pages list them.
GPT5_EFFORTS = ("minimal", "low", "medium", "high")
GPT54_EFFORTS = ("none", "low", "medium", "high", "xhigh")
GPT56_EFFORTS = ("none", "low", "medium", "high", "xhigh", "max")
O_SERIES_EFFORTS = ("low", "medium", "high")
REFUSAL_HINT_54 = "Please use /v1/responses instead."
REFUSAL_HINT_56 = "To use function tools, use /v1/responses or set reasoning_effort to 'none'."


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
    # Reasoning efforts the model accepts (empty: not checked) and the one it uses when none is sent.
    efforts: tuple[str, ...] = ()
    default_effort: str = "medium"
    # gpt-5.4 and later: Chat Completions refuses function tools together with a reasoning effort
    # other than "none"; the message ends with this hint. None: the combination is accepted.
    chat_tools_effort_refusal: str | None = None
    # The API endpoints that serve the model ("chat" = /v1/chat/completions, "responses", "batch",
    # "embeddings", "fine_tuning").
    endpoints: tuple[str, ...] = ("chat", "responses", "batch")


def _dated(spec: ModelSpec, snapshot: str, created: int) -> ModelSpec:
    return ModelSpec(**{**spec.__dict__, "id": snapshot, "created": created})


_FT = ("chat", "responses", "batch", "fine_tuning")
GPT5_SHUTDOWN = "2026-12-11"  # gpt-5, gpt-5-mini, gpt-5-nano and o3
GPT4_SHUTDOWN = "2027-01-14"  # the gpt-4o and gpt-4.1 families and their fine-tunes
EARLY_SHUTDOWN = "2026-10-23"  # o4-mini, gpt-4.1-nano, gpt-3.5-turbo: already shut down


def _gpt54(model_id: str, created: int, context_window: int) -> ModelSpec:
    """gpt-5.4 and gpt-5.5: efforts none..xhigh, no reasoning unless asked, chat refuses tools with an effort."""
    return ModelSpec(model_id, created, "chat", "o200k_base", context_window, 128_000, reasoning=True,
                     efforts=GPT54_EFFORTS, default_effort="none", chat_tools_effort_refusal=REFUSAL_HINT_54)


def _gpt56(model_id: str) -> ModelSpec:
    """gpt-5.6: efforts none..max, medium by default, so chat refuses tools unless the effort is none."""
    return ModelSpec(model_id, 1783620000, "chat", "o200k_base", 1_050_000, 128_000, reasoning=True,
                     efforts=GPT56_EFFORTS, default_effort="medium", chat_tools_effort_refusal=REFUSAL_HINT_56)


def _gpt5(model_id: str, created: int) -> ModelSpec:
    return ModelSpec(model_id, created, "chat", "o200k_base", 400_000, 128_000, reasoning=True,
                     efforts=GPT5_EFFORTS, shutdown_date=GPT5_SHUTDOWN)


def _gpt4(model_id: str, created: int, context_window: int, max_output: int, shutdown: str = GPT4_SHUTDOWN
          ) -> ModelSpec:
    """The fine-tunable gpt-4o and gpt-4.1 families."""
    return ModelSpec(model_id, created, "chat", "o200k_base", context_window, max_output, fine_tunable=True,
                     shutdown_date=shutdown, endpoints=_FT)


GPT_5_5 = _gpt54("gpt-5.5", 1776967200, 1_050_000)
GPT_5_4 = _gpt54("gpt-5.4", 1772733600, 1_050_000)
GPT_5_4_MINI = _gpt54("gpt-5.4-mini", 1773770400, 400_000)
GPT_5_4_NANO = _gpt54("gpt-5.4-nano", 1773770400, 400_000)
GPT_5_6_TERRA = _gpt56("gpt-5.6-terra")
GPT_5_6_LUNA = _gpt56("gpt-5.6-luna")


BASE_MODELS: tuple[ModelSpec, ...] = (
    # Today's models.
    GPT_5_5,
    _dated(GPT_5_5, "gpt-5.5-2026-04-23", 1776967200),
    GPT_5_4,
    _dated(GPT_5_4, "gpt-5.4-2026-03-05", 1772733600),
    GPT_5_4_MINI,
    _dated(GPT_5_4_MINI, "gpt-5.4-mini-2026-03-17", 1773770400),
    GPT_5_4_NANO,
    _dated(GPT_5_4_NANO, "gpt-5.4-nano-2026-03-17", 1773770400),
    GPT_5_6_TERRA,
    GPT_5_6_LUNA,
    # Retiring and retired models.
    _gpt5("gpt-5", 1754425777),
    _gpt5("gpt-5-mini", 1754425928),
    _gpt5("gpt-5-nano", 1754426384),
    _gpt4("gpt-4.1", 1744316542, 1_047_576, 32_768),
    _gpt4("gpt-4.1-2025-04-14", 1744315746, 1_047_576, 32_768),
    _gpt4("gpt-4.1-mini", 1744318173, 1_047_576, 32_768),
    _gpt4("gpt-4.1-mini-2025-04-14", 1744317547, 1_047_576, 32_768),
    _gpt4("gpt-4.1-nano", 1744321707, 1_047_576, 32_768, EARLY_SHUTDOWN),
    _gpt4("gpt-4.1-nano-2025-04-14", 1744321025, 1_047_576, 32_768, EARLY_SHUTDOWN),
    _gpt4("gpt-4o", 1715367049, 128_000, 16_384),
    _gpt4("gpt-4o-2024-08-06", 1722814719, 128_000, 16_384),
    _gpt4("gpt-4o-mini", 1721172741, 128_000, 16_384),
    _gpt4("gpt-4o-mini-2024-07-18", 1721172717, 128_000, 16_384),
    ModelSpec("o4-mini", 1744225351, "chat", "o200k_base", 200_000, 100_000, reasoning=True, fine_tunable=True,
              efforts=O_SERIES_EFFORTS, shutdown_date=EARLY_SHUTDOWN, endpoints=_FT),
    ModelSpec("o3", 1744225308, "chat", "o200k_base", 200_000, 100_000, reasoning=True, efforts=O_SERIES_EFFORTS,
              shutdown_date=GPT5_SHUTDOWN),
    ModelSpec("gpt-3.5-turbo", 1677610602, "chat", "cl100k_base", 16_385, 4_096, fine_tunable=True,
              shutdown_date=EARLY_SHUTDOWN, owned_by="openai", endpoints=("chat", "batch", "fine_tuning")),
    # Embeddings.
    ModelSpec("text-embedding-3-small", 1705948997, "embedding", "cl100k_base", 8_191, 0, embedding_dimensions=1536,
              endpoints=("embeddings", "batch")),
    ModelSpec("text-embedding-3-large", 1705953180, "embedding", "cl100k_base", 8_191, 0, embedding_dimensions=3072,
              endpoints=("embeddings", "batch")),
)

BASE_MODELS_BY_ID: dict[str, ModelSpec] = {m.id: m for m in BASE_MODELS}
