"""Files: how long uploads (single request and in parts), JSONL validation, previews and a sync take
against the sandbox over real HTTP, and how much memory a big upload holds.

Needs DATABASE_URL / REDIS_URL (and the usual settings env); everything it writes is rolled back
and its media go to a temporary folder. `python -m bench files_upload [--mb=200]`
"""

from __future__ import annotations

import io
import json
import os
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _jsonl_chunks(total_bytes: int) -> Iterator[bytes]:
    line = (json.dumps({"messages": [{"role": "user", "content": "q" * 200}, {"role": "assistant", "content": "a" * 200}]})
            + "\n").encode()
    block = line * (1024 * 1024 // len(line))
    sent = 0
    while sent + len(line) <= total_bytes:
        piece = block[: (total_bytes - sent) // len(line) * len(line)]  # whole lines only: the file stays valid JSONL
        sent += len(piece)
        yield piece


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    big_mb = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--mb=")), 200)
    media = tempfile.mkdtemp(prefix="bench-media-")
    os.environ["MEDIA_ROOT"] = media
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import transaction

    from project.files.models import FileUpload
    from project.files.preview import build_preview
    from project.files.services import file_open, file_upload, files_sync_connection
    from project.providers.services import connection_save
    from project.teams.services import team_create
    from sandbox.testing import running_sandbox

    with tempfile.TemporaryDirectory() as data, running_sandbox(Path(data)) as url, transaction.atomic():
        owner = User.objects.create_user(username=f"bench-{time.time_ns()}")
        team = team_create(name="Bench", owner=owner)
        connection = connection_save(team=team, actor=None, kind="sandbox", name="Bench sandbox", base_url=url,
                                     api_key="sk-bench", webhook_secret="")

        started = time.perf_counter()
        small = file_upload(team=team, connection=connection, purpose="fine-tune", name="small.jsonl",
                            chunks=_jsonl_chunks(32 * 1024 * 1024), actor=None)
        single = time.perf_counter() - started
        print(f"single request, 32 MB JSONL (validated, sent, stored): {single:.2f} s = {32 / single:.0f} MB/s")

        started = time.perf_counter()
        file_upload(team=team, connection=connection, purpose="fine-tune", name="again.jsonl",
                    chunks=_jsonl_chunks(32 * 1024 * 1024), actor=None)
        print(f"same 32 MB again (hashed, reused, nothing sent): {time.perf_counter() - started:.2f} s")

        rss_before = _rss_mb()
        started = time.perf_counter()
        big = file_upload(team=team, connection=connection, purpose="fine-tune", name="big.jsonl",
                          chunks=_jsonl_chunks(big_mb * 1024 * 1024), actor=None)
        parts = time.perf_counter() - started
        upload = FileUpload.objects.get(file=big)
        print(f"Uploads API, {big_mb} MB in {len(upload.part_ids)} parts: {parts:.2f} s = {big_mb / parts:.0f} MB/s; "
              f"peak RSS {rss_before:.0f} -> {_rss_mb():.0f} MB")

        started = time.perf_counter()
        with file_open(file=big) as stream:
            preview = build_preview(name=big.name, mime_type=big.mime_type, stream=stream)
        print(f"preview of the {big_mb} MB file ({len(preview.lines)} lines): {(time.perf_counter() - started) * 1000:.1f} ms")

        import openai

        direct = openai.OpenAI(base_url=url, api_key="sk-bench")
        for i in range(500):
            direct.files.create(file=(f"elsewhere-{i}.txt", io.BytesIO(b"x")), purpose="user_data")
        started = time.perf_counter()
        result = files_sync_connection(connection=connection)
        print(f"sync listing {result['listed']} provider files, importing {result['imported']}: "
              f"{time.perf_counter() - started:.2f} s")
        del small
        transaction.set_rollback(True)
    return 0
