"""/healthz: is the database, Redis and the Celery broker reachable?"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from kombu import Connection

from project.redis_connect import redis_client

CHECK_TIMEOUT_SECONDS = 2.0


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    client = redis_client(settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT_SECONDS,
                          socket_connect_timeout=CHECK_TIMEOUT_SECONDS)
    try:
        client.ping()
    finally:
        client.close()


def _check_broker() -> None:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=CHECK_TIMEOUT_SECONDS,
                    transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS) as broker:
        broker.ensure_connection(max_retries=1, timeout=int(CHECK_TIMEOUT_SECONDS))


CHECKS: dict[str, Callable[[], None]] = {"database": _check_database, "redis": _check_redis, "broker": _check_broker}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    report: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            report[name] = {"ok": True}
        except Exception as error:  # noqa: BLE001 - any failure means "down"; the reason is reported.
            report[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
        report[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    healthy = all(item["ok"] for item in report.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", "checks": report}, status=200 if healthy else 503)
