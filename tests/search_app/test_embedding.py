"""Embedding messages: what gets embedded, batches within the limits, long texts in
chunks, nothing paid twice, re-embedding when the text, model or size changes, retries."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest

from assistants_app.models import Message
from project.providers.models import ProviderKind
from search_app import services
from search_app.chunking import Chunk, text_chunks
from search_app.embedding import MAX_INPUTS_PER_REQUEST, MAX_TOKENS_PER_REQUEST, messages_embed, request_batches
from search_app.models import EmbeddingSpend, MessageEmbedding
from search_app.selectors import team_embedding_config
from search_app.tasks import messages_embed_task
from tests import factories
from tests.search_app.conftest import embed_all, make_conversation

pytestmark = pytest.mark.django_db


def test_it_embeds_the_text_of_user_and_assistant_messages_only(team, search_connection) -> None:
    thread = make_conversation(team, "Mixed", "Where is my parcel?", "It ships today.")
    factories.make_message(thread, "{\"stock\": 7}", role="tool", tool_call_id="call_1")
    factories.make_message(thread, "   ", role="assistant")
    assert embed_all(team) == 2
    rows = MessageEmbedding.objects.filter(team=team)
    assert {row.message.role for row in rows} == {"user", "assistant"}
    assert all(row.dimensions == 256 and len(row.embedding) == 256 and row.model == "text-embedding-3-small"
               for row in rows)
    spend = EmbeddingSpend.objects.get(team=team)
    assert spend.inputs == 2 and spend.tokens > 0 and spend.cost_usd is not None


def test_a_message_embedded_once_is_never_paid_for_again(team, search_connection) -> None:
    make_conversation(team, "Once", "Hello there", "Hi! How can I help?")
    assert embed_all(team) == 2
    assert embed_all(team) == 0
    assert EmbeddingSpend.objects.filter(team=team).count() == 1
    assert MessageEmbedding.objects.filter(team=team).count() == 2


def test_an_edited_text_is_embedded_again_and_replaces_the_old_vector(team, search_connection) -> None:
    thread = make_conversation(team, "Edit", "first words")
    embed_all(team)
    message = Message.objects.get(thread=thread)
    before = list(MessageEmbedding.objects.get(message=message).embedding)
    message.text = "entirely different sentence"
    message.save()
    assert embed_all(team) == 1
    row = MessageEmbedding.objects.get(message=message)
    assert list(row.embedding) != before


def test_a_long_message_is_split_into_chunks_each_its_own_vector(team, search_connection) -> None:
    thread = make_conversation(team, "Long", " ".join(f"word{i}" for i in range(3000)))
    embed_all(team)
    chunks = MessageEmbedding.objects.filter(message__thread=thread).order_by("chunk")
    assert chunks.count() > 1
    assert [c.chunk for c in chunks] == list(range(chunks.count()))
    assert all(0 < c.tokens <= 512 for c in chunks)


def test_chunks_cover_the_text_in_order_and_keep_newlines() -> None:
    text = "line one\nline two\n" * 400
    chunks = text_chunks(text, model="text-embedding-3-small", limit=100)
    assert len(chunks) > 1 and all(c.tokens <= 100 for c in chunks)
    assert chunks[0].text.startswith("line one\nline two\n")
    assert text_chunks("short\ntext", model="text-embedding-3-small") == [Chunk(0, "short\ntext", 3)]
    assert text_chunks("", model="text-embedding-3-small") == []


def test_requests_hold_at_most_2048_inputs_and_the_token_limit() -> None:
    small = [(i, Chunk(0, "x", 10)) for i in range(5000)]
    assert [len(b) for b in request_batches(small)] == [MAX_INPUTS_PER_REQUEST, MAX_INPUTS_PER_REQUEST, 904]
    big = [(i, Chunk(0, "x", 500)) for i in range(1000)]
    batches = list(request_batches(big))
    assert all(sum(c.tokens for _, c in b) <= MAX_TOKENS_PER_REQUEST for b in batches)
    assert [len(b) for b in batches] == [600, 400]


def test_many_messages_go_in_as_few_requests_as_the_limit_allows(team, search_connection, monkeypatch) -> None:
    # The limit is lowered so the test stays quick; test_requests_hold_at_most_2048... checks 2,048 itself.
    monkeypatch.setattr("search_app.embedding.MAX_INPUTS_PER_REQUEST", 40)
    thread = factories.make_thread(team, title="Busy")
    Message.objects.bulk_create([Message(thread=thread, team=team, role="user", text=f"note {i}") for i in range(90)])
    assert embed_all(team) == 90
    assert sorted(EmbeddingSpend.objects.filter(team=team).values_list("inputs", flat=True)) == [10, 40, 40]


def test_changing_the_model_size_re_embeds_and_drops_the_old_vectors(team, search_connection) -> None:
    make_conversation(team, "Sizes", "a message about routers")
    embed_all(team)
    services.embedding_settings_save(team=team, actor=None, connection=None, model="text-embedding-3-small", dimensions=512,
                                     enabled=True)
    assert embed_all(team) == 1
    assert list(MessageEmbedding.objects.filter(team=team).values_list("dimensions", flat=True)) == [512]


def test_nothing_is_embedded_when_the_team_turned_it_off(team, search_connection) -> None:
    make_conversation(team, "Off", "a message")
    services.embedding_settings_save(team=team, actor=None, connection=None, model="text-embedding-3-small", dimensions=256,
                                     enabled=False)
    assert embed_all(team) == 0 and not EmbeddingSpend.objects.exists()


def test_a_saved_message_is_queued_for_embedding_after_the_commit(team, django_capture_on_commit_callbacks) -> None:
    from search_app.pending import pending_take

    pending_take(10_000)  # what other tests left
    thread = factories.make_thread(team)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message = factories.make_message(thread, "queued once committed")
        factories.make_message(thread, "", role="assistant", tool_calls=[{"id": "c"}])  # nothing to embed
    assert pending_take() == {}  # nothing before the commit
    for callback in callbacks:
        callback()
    assert pending_take() == {team.pk: [message.pk]}


class FlakyProvider(BaseHTTPRequestHandler):
    """Answers 429 to the first `failures` embedding requests, then passes them to the sandbox."""

    failures = 0
    seen = 0
    upstream = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        FlakyProvider.seen += 1
        if FlakyProvider.seen <= FlakyProvider.failures:
            status, payload = 429, json.dumps({"error": {"message": "Rate limit reached", "type": "requests",
                                                         "code": "rate_limit_exceeded", "param": None}}).encode()
            headers = {"retry-after-ms": "1"}
        else:
            answer = httpx2.post(FlakyProvider.upstream + self.path.removeprefix("/v1"), content=body,
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer sk-x"})
            status, payload, headers = answer.status_code, answer.content, {}
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_provider(sandbox_url: str) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyProvider)
    FlakyProvider.failures, FlakyProvider.seen, FlakyProvider.upstream = 0, 0, sandbox_url
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_the_task_retries_a_rate_limited_request_and_then_embeds(team, flaky_provider) -> None:
    factories.make_connection(team, base_url=flaky_provider, kind=ProviderKind.COMPATIBLE)
    thread = make_conversation(team, "Retry", "please embed me")
    # The SDK tries three times itself; the fourth request comes from the task's own retry.
    FlakyProvider.failures = 3
    messages_embed_task.apply(args=(team.pk, list(Message.objects.filter(thread=thread).values_list("id", flat=True))))
    assert FlakyProvider.seen == 4
    assert MessageEmbedding.objects.filter(team=team).count() == 1


def test_a_provider_that_keeps_failing_leaves_nothing_half_done(team, flaky_provider) -> None:
    factories.make_connection(team, base_url=flaky_provider, kind=ProviderKind.COMPATIBLE)
    make_conversation(team, "Down", "please embed me")
    FlakyProvider.failures = 10_000
    config = team_embedding_config(team=team)
    ids = list(Message.objects.filter(team=team).values_list("id", flat=True))
    with pytest.raises(Exception, match="Rate limit"):
        messages_embed(team=team, config=config, message_ids=ids)
    assert not MessageEmbedding.objects.exists() and not EmbeddingSpend.objects.exists()
