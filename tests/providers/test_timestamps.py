from __future__ import annotations

from datetime import UTC, datetime

from project.providers.timestamps import provider_datetime


def test_a_provider_timestamp_is_a_utc_datetime_and_garbage_is_unknown() -> None:
    assert provider_datetime(1795940214) == datetime(2026, 11, 29, 8, 16, 54, tzinfo=UTC)
    assert provider_datetime(1795940214.5) is not None
    for garbage in (None, 0, -5, True, "1795940214", 1e400, 10**20):
        assert provider_datetime(garbage) is None
