"""Per-API-key token buckets for requests and tokens per minute, reported like the real headers."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .errors import ApiError

# Reported when no limit is configured, so clients that read the headers see sane numbers.
UNLIMITED_RPM = 10_000
UNLIMITED_TPM = 30_000_000


def duration(seconds: float) -> str:
    """The real headers' duration format: 20ms, 1.5s, 6m0s."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s"


@dataclass
class Bucket:
    capacity: float
    level: float
    updated: float

    def refill(self, now: float) -> None:
        rate = self.capacity / 60.0
        self.level = min(self.capacity, self.level + (now - self.updated) * rate)
        self.updated = now

    def seconds_until(self, amount: float) -> float:
        missing = amount - self.level
        return 0.0 if missing <= 0 else missing / (self.capacity / 60.0)

    def reset_seconds(self) -> float:
        return self.seconds_until(self.capacity)


class RateLimiter:
    def __init__(self, rpm: int, tpm: int, organization: str) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.organization = organization
        self._requests: dict[str, Bucket] = {}
        self._tokens: dict[str, Bucket] = {}

    def _bucket(self, table: dict[str, Bucket], key: str, capacity: int) -> Bucket:
        now = time.monotonic()
        bucket = table.get(key)
        if bucket is None:
            bucket = table[key] = Bucket(float(capacity), float(capacity), now)
        bucket.refill(now)
        return bucket

    def _error(self, kind: str, label: str, limit: int, used: int, requested: int, wait: float) -> ApiError:
        return ApiError(
            429,
            f"Rate limit reached for requests in organization {self.organization} on {kind} per min ({label}): "
            f"Limit {limit}, Used {used}, Requested {requested}. Please try again in {duration(wait)}. "
            "Visit https://platform.openai.com/account/rate-limits to learn more.",
            type=kind,
            param=None,
            code="rate_limit_exceeded",
            headers={"retry-after": str(max(1, math.ceil(wait))), "retry-after-ms": str(int(wait * 1000))},
        )

    def take_request(self, key: str) -> None:
        if self.rpm <= 0:
            return
        bucket = self._bucket(self._requests, key, self.rpm)
        if bucket.level < 1:
            wait = bucket.seconds_until(1)
            raise self._error("requests", "RPM", self.rpm, self.rpm - int(bucket.level), 1, wait)
        bucket.level -= 1

    def take_tokens(self, key: str, amount: int) -> None:
        if self.tpm <= 0 or amount <= 0:
            return
        bucket = self._bucket(self._tokens, key, self.tpm)
        if bucket.level < amount:
            wait = bucket.seconds_until(min(amount, self.tpm))
            raise self._error("tokens", "TPM", self.tpm, self.tpm - int(bucket.level), amount, wait)
        bucket.level -= amount

    def headers(self, key: str) -> list[tuple[bytes, bytes]]:
        if self.rpm > 0:
            rb = self._bucket(self._requests, key, self.rpm)
            r_limit, r_left, r_reset = self.rpm, int(rb.level), rb.reset_seconds()
        else:
            r_limit, r_left, r_reset = UNLIMITED_RPM, UNLIMITED_RPM - 1, 0.006
        if self.tpm > 0:
            tb = self._bucket(self._tokens, key, self.tpm)
            t_limit, t_left, t_reset = self.tpm, int(tb.level), tb.reset_seconds()
        else:
            t_limit, t_left, t_reset = UNLIMITED_TPM, UNLIMITED_TPM, 0.0
        return [
            (b"x-ratelimit-limit-requests", str(r_limit).encode()),
            (b"x-ratelimit-remaining-requests", str(r_left).encode()),
            (b"x-ratelimit-reset-requests", duration(r_reset).encode()),
            (b"x-ratelimit-limit-tokens", str(t_limit).encode()),
            (b"x-ratelimit-remaining-tokens", str(t_left).encode()),
            (b"x-ratelimit-reset-tokens", duration(t_reset).encode()),
        ]
