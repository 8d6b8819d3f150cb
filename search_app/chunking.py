"""Splitting a message's text into pieces an embedding model takes well.

A chunk is at most CHUNK_TOKENS tokens of the model's tokenizer (far under the 8,191
the OpenAI embedding models take: a long reply embedded whole blurs its topics into one
vector); consecutive chunks overlap a little so a sentence cut in two is whole in one of
them. Text is sent as written, newlines included (the current models need no change).
"""

from __future__ import annotations

from dataclasses import dataclass

from project.providers.model_facts import model_facts
from project.tokens import encoding_for_model

CHUNK_TOKENS = 512
OVERLAP_TOKENS = 32


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    tokens: int


def chunk_limit(model: str) -> int:
    facts = model_facts(model)
    return min(CHUNK_TOKENS, facts.context_window) if facts.known else CHUNK_TOKENS


def text_chunks(text: str, *, model: str, limit: int | None = None) -> list[Chunk]:
    encoding = encoding_for_model(model)
    size = limit or chunk_limit(model)
    tokens = encoding.encode(text, disallowed_special=())
    if len(tokens) <= size:
        return [Chunk(0, text, len(tokens))] if tokens else []
    step = size - min(OVERLAP_TOKENS, size // 4)
    chunks: list[Chunk] = []
    for start in range(0, len(tokens), step):
        piece = tokens[start: start + size]
        chunks.append(Chunk(len(chunks), encoding.decode(piece, errors="replace"), len(piece)))
        if start + size >= len(tokens):
            break
    return chunks
