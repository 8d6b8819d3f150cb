"""The stale-run sweep of the fault drill, in a process of its own, on a short threshold.

    python -m bench._sweeper      (FAULT_DRILL_STALE_SECONDS, default 8)
"""

from __future__ import annotations

import logging
import os
import time

from django.db import connection

import bench  # noqa: F401 - sets Django up
from assistants_app.recovery import runs_recover_stale

log = logging.getLogger("bench.sweeper")


def main() -> None:
    stale = float(os.environ.get("FAULT_DRILL_STALE_SECONDS", "8"))
    while True:
        try:
            requeued, failed = runs_recover_stale(stale_after_seconds=stale)
            if requeued or failed:
                print(f"sweep: {requeued} sent again, {failed} failed", flush=True)
        except Exception:
            log.exception("sweep failed; next round in a second")
        finally:
            # As a Celery task's end does: the connection goes back to the pool, and one that
            # PostgreSQL's restart broke is dropped instead of failing every round after it.
            connection.close()
        time.sleep(1.0)


if __name__ == "__main__":
    main()
