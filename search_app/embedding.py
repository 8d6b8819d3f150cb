"""Making embeddings: messages' chunks and search queries, through the team's connection.

Requests hold at most 2,048 inputs and 300,000 tokens (the OpenAI limits; each chunk is
far under the model's own 8,191). A message whose text was embedded before with the
same model and size is skipped, so running this twice for a message, or a backfill
over messages already done, costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db import transaction

from assistants_app.conversation import Message
from project.providers.client import ProviderError, provider_call
from project.providers.model_facts import cost_usd, model_facts
from project.providers.models import ProviderConnection
from project.spend.ledger import SpendLine, spend_record
from project.spend.models import Feature
from project.teams.models import Team
from search_app.chunking import Chunk, text_chunks
from search_app.models import EmbeddingSpend, MessageEmbedding
from search_app.selectors import EmbeddingConfig, embeddable_messages
from search_app.vector_schema import vectors_ready

log = logging.getLogger(__name__)

MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000


class EmbeddingUnavailable(Exception):
    """Semantic search cannot run for this team now; the message says why, for the page."""


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def takes_dimensions(model: str) -> bool:
    """Only the text-embedding-3 models shorten their vectors on request."""
    return model_facts(model).base_id.startswith("text-embedding-3")


def embedding_spend_record(*, team: Team, connection: ProviderConnection, model: str, purpose: str, inputs: int,
                           tokens: int) -> None:
    """The one place embedding spend is written: the request in search's own log (what each
    request embedded, and why: the backfill's accounting) and its cost in the team's ledger
    (project.spend), which the Usage page and budgets read."""
    with transaction.atomic():
        logged = EmbeddingSpend.objects.create(team=team, model=model, purpose=purpose, inputs=inputs, tokens=tokens,
                                               cost_usd=cost_usd(tokens, model_facts(model).price("input")))
        spend_record(SpendLine(team_id=team.pk, feature=Feature.EMBEDDINGS, model=model, source_kind="embeddings",
                               source_label=f"Search: {purpose}", key=f"embedding_request:{logged.pk}",
                               connection_id=connection.pk, connection_name=connection.name, input_tokens=tokens))


def request_batches[T](items: Iterable[tuple[T, Chunk]]) -> Iterator[list[tuple[T, Chunk]]]:
    """Inputs grouped into requests within the per-request limits, in order."""
    batch: list[tuple[T, Chunk]] = []
    tokens = 0
    for item in items:
        if batch and (len(batch) == MAX_INPUTS_PER_REQUEST or tokens + item[1].tokens > MAX_TOKENS_PER_REQUEST):
            yield batch
            batch, tokens = [], 0
        batch.append(item)
        tokens += item[1].tokens
    if batch:
        yield batch


def embed_texts(*, connection: ProviderConnection, model: str, dimensions: int,
                texts: list[str]) -> tuple[list[list[float]], int]:
    """The vectors for `texts` (one request) and the tokens the provider counted."""
    def call(client: object) -> bytes:
        extra = {"dimensions": dimensions} if takes_dimensions(model) else {}
        # The body as JSON, not the SDK's models: building a pydantic object per number of
        # every vector was most of what embedding a chat's messages cost the io worker.
        raw = client.embeddings.with_raw_response.create(  # type: ignore[attr-defined]
            model=model, input=texts, encoding_format="float", **extra)
        return bytes(raw.content)

    try:
        response = json.loads(provider_call(connection, call))
        data = sorted(response["data"], key=lambda item: item["index"])
        vectors = [item["embedding"] for item in data]
        if not all(isinstance(vector, list) for vector in vectors):
            raise TypeError("an embedding that is not a list of numbers")
    except (ValueError, TypeError, KeyError) as error:
        raise ProviderError(f"The provider's embeddings are not in the expected shape ({error!r}).") from error
    if len(vectors) != len(texts):
        raise ProviderError(f"The provider returned {len(vectors)} embeddings for {len(texts)} inputs.")
    if vectors and len(vectors[0]) != dimensions:
        raise ProviderError(f"{model} returned vectors of {len(vectors[0])} dimensions, not {dimensions}: set the "
                            f"search settings' dimensions to {len(vectors[0])}.")
    usage = response.get("usage") if isinstance(response, dict) else None
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return vectors, int(tokens or sum(len(t) // 4 for t in texts))


@dataclass(frozen=True)
class EmbedOutcome:
    messages: int  # embedded now (not counting those already done)
    tokens: int


def _needs_embedding(messages: list[Message], config: EmbeddingConfig) -> list[Message]:
    shas = dict(MessageEmbedding.objects.filter(message__in=messages, model=config.model, dimensions=config.dimensions,
                                                chunk=0).values_list("message_id", "text_sha256"))
    return [m for m in messages if shas.get(m.pk) != text_sha256(m.text)]


def messages_embed(*, team: Team, config: EmbeddingConfig, message_ids: list[int], purpose: str = "messages") -> EmbedOutcome:
    """Embed these messages of the team that have no current embedding. ProviderError
    propagates (the task retries a transient one); rows are written per request, so a
    retry pays only for what was not stored yet."""
    if not vectors_ready() or not config.usable or not message_ids:
        return EmbedOutcome(0, 0)
    assert config.connection is not None
    messages = _needs_embedding(list(embeddable_messages(team=team).filter(id__in=message_ids).order_by("id")), config)
    inputs = ((message, chunk) for message in messages for chunk in text_chunks(message.text, model=config.model))
    done_messages: set[int] = set()
    spent = 0
    for batch in request_batches(inputs):
        vectors, tokens = embed_texts(connection=config.connection, model=config.model, dimensions=config.dimensions,
                                      texts=[chunk.text for _, chunk in batch])
        # The vectors and what they cost appear together: nobody sees one without the other.
        with transaction.atomic():
            _store(team=team, config=config, batch=batch, vectors=vectors)
            embedding_spend_record(team=team, connection=config.connection, model=config.model, purpose=purpose,
                                   inputs=len(batch), tokens=tokens)
        done_messages |= {message.pk for message, _ in batch}
        spent += tokens
    return EmbedOutcome(len(done_messages), spent)


def _store(*, team: Team, config: EmbeddingConfig, batch: list[tuple[Message, Chunk]], vectors: list[list[float]]) -> None:
    message_ids = {message.pk for message, _ in batch}
    rows = [MessageEmbedding(team=team, message_id=message.pk, thread_id=message.thread_id, chunk=chunk.index,
                             model=config.model, dimensions=config.dimensions, text_sha256=text_sha256(message.text),
                             tokens=chunk.tokens, embedding=vector)
            for (message, chunk), vector in zip(batch, vectors, strict=True)]
    with transaction.atomic():
        # What these messages had before (another model or size, an older text) is replaced: the
        # team's search uses its current settings only. A message split across two requests keeps
        # the chunks of the first (same text, same model).
        stale = MessageEmbedding.objects.filter(message_id__in=message_ids).exclude(
            model=config.model, dimensions=config.dimensions, text_sha256__in={r.text_sha256 for r in rows})
        stale.delete()
        MessageEmbedding.objects.bulk_create(rows, ignore_conflicts=True)


def query_cache_key(config: EmbeddingConfig, text: str) -> str:
    return "sb:search:q:" + text_sha256(json.dumps([config.connection.pk if config.connection else 0, config.model,
                                                    config.dimensions, text]))


QUERY_CACHE_SECONDS = 60 * 60


def query_vector(*, team: Team, config: EmbeddingConfig, text: str) -> list[float]:
    """The search text's vector, kept an hour in Redis: paging through results or changing
    a filter asks the provider once. EmbeddingUnavailable says why there is none."""
    from search_app.pending import redis_client

    if not vectors_ready():
        raise EmbeddingUnavailable("Semantic search needs pgvector on the database server; searching by keyword.")
    if not config.usable or config.connection is None:
        raise EmbeddingUnavailable("Semantic search is off for this team, or it has no provider connection; "
                                   "searching by keyword.")
    key = query_cache_key(config, text)
    cached = redis_client().get(key)
    if cached:
        return [float(x) for x in json.loads(cached)]
    chunk = text_chunks(text, model=config.model)[:1]
    if not chunk:
        raise EmbeddingUnavailable("Nothing to search for.")
    try:
        vectors, tokens = embed_texts(connection=config.connection, model=config.model, dimensions=config.dimensions,
                                      texts=[chunk[0].text])
    except ProviderError as error:
        raise EmbeddingUnavailable(f"The embedding model could not be asked ({error.message}); searching by keyword.") from None
    embedding_spend_record(team=team, connection=config.connection, model=config.model, purpose="query",
                           inputs=1, tokens=tokens)
    redis_client().set(key, json.dumps(vectors[0]), ex=QUERY_CACHE_SECONDS)
    return vectors[0]
