"""The sandbox's embeddings carry meaning (hashed bag of words), so search tests can rank."""

from __future__ import annotations

import openai
from sandbox_helpers import Spec


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _embed(client: openai.OpenAI, texts: list[str], dimensions: int = 256) -> list[list[float]]:
    response = client.embeddings.create(model="text-embedding-3-small", input=texts, dimensions=dimensions,
                                        encoding_format="float")
    return [item.embedding for item in response.data]


def test_texts_sharing_words_are_closer_than_texts_that_do_not(client: openai.OpenAI) -> None:
    query, shares, unrelated = _embed(client, ["reset the router", "how do I reset my router at home",
                                               "the quarterly sales figures"])
    assert _cosine(query, shares) > 0.5
    assert abs(_cosine(query, unrelated)) < 0.1


def test_words_of_one_meaning_meet_through_the_thesaurus(client: openai.OpenAI) -> None:
    query, money_back, weather = _embed(client, ["refund policy", "Can I get my money back?", "Is it going to rain?"])
    assert _cosine(query, money_back) > _cosine(query, weather) + 0.3


def test_the_same_text_gives_the_same_vector_and_case_and_plurals_do_not_matter(client: openai.OpenAI) -> None:
    a, b, c = _embed(client, ["Invoices overdue", "invoice OVERDUE", "Invoices overdue"])
    assert a == c
    assert _cosine(a, b) > 0.999


def test_a_text_without_words_still_gets_a_unit_vector(client: openai.OpenAI, spec: Spec) -> None:
    (vector,) = _embed(client, ["?!"], dimensions=512)
    assert len(vector) == 512 and abs(sum(v * v for v in vector) - 1.0) < 1e-6
