"""Deterministic embeddings that carry meaning: hashed bag-of-words unit vectors.

Each word (lower-cased, a plural's "s" dropped, a few common words left out) is hashed,
with the model's name, to one dimension and a sign; its weight grows with the log of its
count; the vector is normalised. So texts that share words are closer (by cosine) than
texts that do not, and a test can assert a ranking. A small thesaurus maps words of one
meaning to one feature ("refund", "money back", "reimbursement"), so a search by meaning
with none of a text's words can find it too. A text with no words at all gets a unit
vector seeded by the text, as before.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import re
import struct
from collections import Counter
from typing import Any

from . import tokens
from .errors import invalid, missing_param
from .models_data import ModelSpec

MAX_INPUTS = 2048
WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does", "for",
    "from", "get", "getting", "got", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me",
    "my", "no", "not", "of", "on", "or", "our", "so", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "to", "too", "was", "we", "were", "what", "when", "where", "which", "who", "why",
    "will", "with", "would", "you", "your",
})
# Words of one meaning share a feature: the sandbox's stand-in for what a real model learns.
THESAURUS: dict[str, str] = {
    word: concept
    for concept, words in {
        "refund": "refund reimburse reimbursement repay repayment chargeback money moneyback",
        "cancel": "cancel cancellation unsubscribe terminate termination",
        "price": "price pricing cost costs expensive cheap fee charge tariff",
        "bug": "bug error crash broken failure fault defect",
        "delivery": "delivery deliver shipping ship parcel package courier",
        "password": "password login credential signin locked",
        "weather": "weather rain sunny forecast umbrella storm",
        "invoice": "invoice receipt billing bill",
    }.items()
    for word in words.split()
}


def _word(raw: str) -> str | None:
    if raw in STOPWORDS:
        return None
    if len(raw) > 3 and raw.endswith("ies"):
        raw = raw[:-3] + "y"
    elif len(raw) > 3 and raw.endswith("s") and not raw.endswith("ss"):
        raw = raw[:-1]
    return THESAURUS.get(raw, raw)


def _features(text: str) -> Counter[str]:
    return Counter(word for raw in WORD.findall(text.lower()) if (word := _word(raw)) is not None)


def _seeded_vector(seed_text: str, model: str, dims: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(f"{model}\x00{seed_text}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _vector(text: str, model: str, dims: int) -> list[float]:
    features = _features(text)
    if not features:
        return _seeded_vector(text, model, dims)
    values = [0.0] * dims
    for word, count in features.items():
        digest = hashlib.sha256(f"{model}\x00{word}".encode()).digest()
        slot = int.from_bytes(digest[:8], "big") % dims
        sign = 1.0 if digest[8] & 1 else -1.0
        values[slot] += sign * (1.0 + math.log(count))
    norm = math.sqrt(sum(v * v for v in values))
    if norm == 0.0:  # words that cancelled out in one slot
        return _seeded_vector(text, model, dims)
    return [v / norm for v in values]


def _inputs(raw: Any, spec: ModelSpec) -> list[tuple[str, int]]:
    """(text used as the seed, token count) per input."""
    invalid_input = invalid(
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        param=None,
    )
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        items = [raw]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        raise invalid_input
    if len(items) > MAX_INPUTS:
        raise invalid(f"Too many inputs. The max number of inputs is {MAX_INPUTS}.", param="input")
    out = []
    for item in items:
        if isinstance(item, str):
            if item == "":
                raise invalid_input
            n = tokens.count(item, spec.encoding)
            out.append((item, n))
        elif isinstance(item, list) and item and all(isinstance(x, int) for x in item):
            # Token arrays embed like the text they decode to.
            text = tokens.encoding(spec.encoding).decode(item)
            out.append((text, len(item)))
        else:
            raise invalid_input
        if out[-1][1] > spec.context_window:
            raise invalid(
                f"This model's maximum context length is {spec.context_window} tokens, however you requested "
                f"{out[-1][1]} tokens ({out[-1][1]} in your prompt; 0 for the completion). Please reduce your "
                "prompt; or completion length.",
                param=None,
                code="context_length_exceeded",
            )
    return out


def embed(body: dict[str, Any], spec: ModelSpec, model_name: str) -> dict[str, Any]:
    if "input" not in body:
        raise missing_param("input")
    if spec.kind != "embedding":
        raise invalid(f"{model_name} does not support embeddings.", param="model", code="invalid_model")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise invalid(
            f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )
    dims = body.get("dimensions")
    if dims is None:
        dims = spec.embedding_dimensions
    elif isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= spec.embedding_dimensions:
        raise invalid(
            f"Invalid value for 'dimensions': must be an integer between 1 and {spec.embedding_dimensions}.",
            param="dimensions",
            code="invalid_value",
        )
    items = _inputs(body["input"], spec)
    data = []
    for index, (text, _) in enumerate(items):
        vector = _vector(text, spec.id, dims)
        embedding: Any = vector
        if fmt == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    used = sum(n for _, n in items)
    return {
        "object": "list",
        "data": data,
        "model": model_name,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    }
