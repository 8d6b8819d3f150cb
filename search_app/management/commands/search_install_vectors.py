"""Make the pgvector part of search's schema on a server that got pgvector after `migrate`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from search_app import vector_schema
from search_app.models import MessageEmbedding


class Command(BaseCommand):
    help = "Create the pgvector extension, the embeddings table and its HNSW indexes (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        with connection.schema_editor() as editor:
            if not vector_schema.install(connection, MessageEmbedding, editor):
                raise CommandError(vector_schema.MISSING_MESSAGE)
        self.stdout.write(self.style.SUCCESS("Semantic search is ready: start a backfill under Settings → Search."))
