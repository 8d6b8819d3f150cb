"""Provider timestamps (Unix seconds in API objects) as aware datetimes, in one place."""

from __future__ import annotations

from datetime import UTC, datetime


def provider_datetime(value: object) -> datetime | None:
    """A Unix timestamp from a provider as a UTC datetime; None when it is missing, zero,
    not a number, or out of range (a server's garbage is "unknown", never an error)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
