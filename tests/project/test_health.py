from __future__ import annotations

from django.test import Client


def test_healthz_reports_every_service_up(db) -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {"database": True, "redis": True, "broker": True}


def test_healthz_is_503_and_names_redis_when_it_is_down(db, settings) -> None:
    # Port 9 on loopback has no listener: a real refused connection, nothing mocked.
    settings.REDIS_URL = "redis://127.0.0.1:9/0"
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is False and "Connection" in body["checks"]["redis"]["error"]
    assert body["checks"]["broker"]["ok"] is False
