"""The pages: the thread list's search box, results, "more like this", the settings page
with its estimate and backfill controls, and who may change what."""

from __future__ import annotations

import pytest
from django.urls import reverse

from project.spend.models import Feature, SpendEntry
from project.teams.models import AuditEvent, Role
from search_app import services, vector_schema
from search_app.models import BackfillStatus, EmbeddingBackfill, EmbeddingSettings, EmbeddingSpend
from tests import factories
from tests.conftest import client_for
from tests.search_app.conftest import Corpus, embed_all

pytestmark = pytest.mark.django_db


def test_the_thread_lists_search_box_offers_the_modes_and_sends_to_search(owner_client, team, corpus: Corpus) -> None:
    embed_all(team)
    page = owner_client.get(reverse("thread_list")).content.decode()
    assert f'action="{reverse("message_search")}"' in page
    assert '<option value="hybrid" selected>' in page


def test_a_search_shows_the_thread_the_message_its_neighbours_and_the_similarity(owner_client, team,
                                                                                 corpus: Corpus) -> None:
    embed_all(team)
    page = owner_client.get(reverse("message_search"), {"q": "Can I get my money back?", "mode": "semantic"}).content.decode()
    assert "Kettle trouble" in page and "similarity" in page
    assert "Sorry to hear that" in page and "we reimburse within 30 days" in page  # the neighbours
    assert reverse("message_similar", args=[corpus.money_back.messages.order_by("id")[2].pk]) in page


def test_a_keyword_search_marks_the_words(owner_client, team, corpus: Corpus) -> None:
    page = owner_client.get(reverse("message_search"), {"q": "router", "mode": "keyword"}).content.decode()
    assert "<mark>router</mark>" in page


def test_a_search_without_words_is_the_thread_list_with_its_filters(owner_client, team, corpus: Corpus) -> None:
    response = owner_client.get(reverse("message_search"), {"q": " ", "since": "2026-01-01", "mode": "hybrid"})
    assert response.status_code == 302 and response["Location"] == reverse("thread_list") + "?since=2026-01-01"


def test_more_like_this_is_on_every_message_and_lists_other_threads(owner_client, team, corpus: Corpus) -> None:
    embed_all(team)
    detail = owner_client.get(reverse("thread_detail", args=[corpus.router.pk])).content.decode()
    message = corpus.router.messages.order_by("id")[0]
    assert reverse("message_similar", args=[message.pk]) in detail
    page = owner_client.get(reverse("message_similar", args=[message.pk])).content.decode()
    assert "More like this" in page and "Router reset</a>" in page  # named as the source, not as a result


def test_the_settings_page_shows_the_estimate_and_starts_pauses_and_resumes_a_backfill(owner_client, team,
                                                                                        corpus: Corpus) -> None:
    page = owner_client.get(reverse("search_settings")).content.decode()
    assert "12</strong> messages" in page and "through the Batch API (half price" in page
    owner_client.post(reverse("search_backfill_start"))
    backfill = EmbeddingBackfill.objects.get(team=team)
    assert backfill.status == BackfillStatus.RUNNING and backfill.total_messages == 12
    progress = owner_client.get(reverse("search_backfill_progress", args=[backfill.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in progress and "0 of 12 messages" in progress
    owner_client.post(reverse("search_backfill_pause", args=[backfill.pk]))
    backfill.refresh_from_db()
    assert backfill.status == BackfillStatus.PAUSED
    assert "Resume" in owner_client.get(reverse("search_settings")).content.decode()
    owner_client.post(reverse("search_backfill_resume", args=[backfill.pk]))
    services.backfill_step(backfill_id=backfill.pk)
    services.backfill_step(backfill_id=backfill.pk)
    progress = owner_client.get(reverse("search_backfill_progress", args=[backfill.pk])).content.decode()
    assert "Done" in progress and "every 2s" not in progress  # polling stops


def test_an_admin_changes_the_model_and_sees_a_new_estimate(owner_client, team, corpus: Corpus) -> None:
    embed_all(team)
    assert "0</strong> messages" in owner_client.get(reverse("search_settings")).content.decode()
    response = owner_client.post(reverse("search_settings"), {"enabled": "on", "model": "text-embedding-3-small",
                                                              "dimensions": "512", "connection": ""}, follow=True)
    page = response.content.decode()
    assert "need embedding again" in page and "12</strong> messages" in page
    assert EmbeddingSettings.objects.get(team=team).dimensions == 512
    assert AuditEvent.objects.filter(team=team, action="search.settings_changed", details__dimensions=512).exists()


def test_bad_dimensions_get_a_clear_error(owner_client, team, corpus: Corpus) -> None:
    page = owner_client.post(reverse("search_settings"), {"enabled": "on", "model": "text-embedding-3-small",
                                                          "dimensions": "4096"}).content.decode()
    assert "at most 1536 dimensions" in page
    page = owner_client.post(reverse("search_settings"), {"model": "text-embedding-3-small",
                                                          "dimensions": "12"}).content.decode()
    assert "greater than or equal to 256" in page
    assert not EmbeddingSettings.objects.filter(team=team).exists()


def test_members_search_but_only_admins_change_settings_or_run_backfills(team, corpus: Corpus) -> None:
    member = factories.add_member(team, role=Role.MEMBER).user
    client = client_for(member)
    assert client.get(reverse("message_search"), {"q": "router"}).status_code == 200
    assert client.get(reverse("search_settings")).status_code == 200
    assert client.post(reverse("search_settings"), {"model": "text-embedding-3-large", "dimensions": "256"}).status_code == 403
    assert client.post(reverse("search_backfill_start")).status_code == 403
    assert not EmbeddingBackfill.objects.exists() and not EmbeddingSettings.objects.exists()


def test_without_pgvector_the_settings_page_says_what_to_install(owner_client, team, monkeypatch) -> None:
    monkeypatch.setattr("search_app.views.vectors_ready", lambda: False)
    page = owner_client.get(reverse("search_settings")).content.decode()
    assert "no pgvector extension" in page and "search_install_vectors" in page


def test_the_migration_step_skips_the_vectors_on_a_server_without_pgvector(monkeypatch, capsys) -> None:
    from django.db import connection

    from search_app.models import MessageEmbedding

    monkeypatch.setattr(vector_schema, "extension_installable", lambda db: False)
    with connection.schema_editor() as editor:
        assert vector_schema.install(connection, MessageEmbedding, editor) is False
    assert "no pgvector extension" in capsys.readouterr().out


def test_the_usage_page_shows_what_embeddings_cost(owner_client, team, corpus: Corpus) -> None:
    embed_all(team)
    entries = SpendEntry.objects.filter(team=team, feature=Feature.EMBEDDINGS)
    assert entries.exists() and all(e.model == "text-embedding-3-small" and e.input_tokens > 0 for e in entries)
    assert sum(e.input_tokens for e in entries) == sum(EmbeddingSpend.objects.filter(team=team)
                                                       .values_list("tokens", flat=True))
    page = owner_client.get(reverse("usage")).content.decode()
    assert "Embeddings" in page and "text-embedding-3-small" in page
