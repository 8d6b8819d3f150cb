"""How many provider calls one fine-tune sync tick makes with 1,000 active jobs.

Run (uses a test database "test_<name of DATABASE_URL's db>", kept between runs):
  DATABASE_URL=... REDIS_URL=... python -m bench.finetune_sync [jobs]
A real sandbox (real-time clock, so every job stays active) serves the jobs over HTTP.
Calls are counted by wrapping provider_call; they all still go over HTTP.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="bench-media-"))
django.setup()

import openai  # noqa: E402
from django.db import connection as db  # noqa: E402

from jobs_app.finetune import services, sync  # noqa: E402
from jobs_app.finetune.models import FineTuneJob, JobStatus  # noqa: E402
from project.files.services import file_upload  # noqa: E402
from project.providers.models import ProviderKind  # noqa: E402
from sandbox.testing import running_sandbox  # noqa: E402
from tests.factories import chat_example, jsonl, make_connection, make_team, make_user  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    count = next((int(arg.split("=")[1]) for arg in argv if arg.startswith("--jobs=")), 1000)
    old_name = db.creation.create_test_db(verbosity=0, keepdb=True)
    calls: Counter[str] = Counter()
    for module in (sync, services):
        original = module.provider_call

        def counted(conn: Any, call: Any, *args: Any, _original: Any = original, _name: str = module.__name__,
                    **kwargs: Any) -> Any:
            calls[_name.rsplit(".", 1)[-1]] += 1
            return _original(conn, call, *args, **kwargs)

        module.provider_call = counted  # type: ignore[attr-defined]
    try:
        with tempfile.TemporaryDirectory() as tmp, running_sandbox(Path(tmp), time_scale=1.0) as url:
            owner = make_user(f"bench-{uuid.uuid4().hex[:8]}")
            team = make_team(f"Bench {owner.username}", owner=owner)
            connection = make_connection(team, base_url=url, kind=ProviderKind.SANDBOX, api_key="sk-bench-sync")
            training = file_upload(team=team, connection=connection, purpose="fine-tune", name="t.jsonl",
                                   chunks=[jsonl([chat_example(i) for i in range(10)])], actor=None)
            client = openai.OpenAI(base_url=url, api_key="sk-bench-sync")
            start = time.perf_counter()
            remote_ids = [client.fine_tuning.jobs.create(model="gpt-4.1-mini", training_file=training.remote_id).id
                          for _ in range(count)]
            made = time.perf_counter() - start
            FineTuneJob.objects.bulk_create([
                FineTuneJob(team=team, connection=connection, remote_id=rid, base_model="gpt-4.1-mini",
                            status=JobStatus.VALIDATING_FILES) for rid in remote_ids
            ])
            print(f"created {count} active jobs on the sandbox in {made:.1f} s")
            for tick in (1, 2):
                calls.clear()
                start = time.perf_counter()
                result = sync.sync_connection(connection, force=True)
                took = time.perf_counter() - start
                print(f"tick {tick}: {result.list_calls} list calls + {result.event_calls} event calls = "
                      f"{sum(calls.values())} provider calls for {count} active jobs ({took:.2f} s); "
                      f"{result.updated} jobs changed")
            calls.clear()
            start = time.perf_counter()
            for rid in remote_ids:
                client.fine_tuning.jobs.retrieve(rid)
            naive = time.perf_counter() - start
            print(f"for comparison, one retrieve per job: {count} calls ({naive:.2f} s)")
            team.delete()
            owner.delete()
    finally:
        db.creation.destroy_test_db(old_name, verbosity=0, keepdb=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
