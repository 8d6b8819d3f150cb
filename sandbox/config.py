"""Sandbox settings, read from the environment through small typed helpers that fail loudly."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from . import profile_specs

MB = 1024 * 1024


class ConfigError(ValueError):
    pass


def _env_str(name: str, default: str | None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def non_negative(raw: str, name: str) -> float:
    """raw as a number >= 0, or a ConfigError naming the setting (also used for profile settings)."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw!r}")
    return value


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return non_negative(raw, name)


def _positive(value: float, name: str) -> float:
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {value}")
    return value


def _profile(name: str) -> str:
    known = (profile_specs.OPENAI, *profile_specs.PROFILES)
    if name.lower() not in known:
        raise ConfigError(f"SANDBOX_PROFILE must be one of {', '.join(known)}, got {name!r}")
    return name.lower()


@dataclass(frozen=True)
class SandboxConfig:
    data_dir: Path = Path(".data/sandbox")
    host: str = "127.0.0.1"
    port: int = 8100
    # Simulated seconds per real second: 1 is realistic, 1000 runs a fine-tune in seconds.
    time_scale: float = 1.0
    # Stream pacing; 0 turns each off.
    ttft_ms: float = 300.0
    tokens_per_second: float = 80.0
    # None accepts any non-empty bearer key.
    api_key: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    # Per API key; 0 means unlimited (the headers still report a generous limit).
    rpm: int = 0
    tpm: int = 0
    max_file_bytes: int = 512 * MB
    # Probability (0..1) of an injected fault on any /v1 request, for reliability drills.
    fault_rate_500: float = 0.0
    fault_rate_429: float = 0.0
    # Of streamed chat completions: the connection drops after a few events, or an error
    # event arrives mid-stream (as OpenAI sends when a server fails during a reply).
    fault_rate_break_stream: float = 0.0
    fault_rate_stream_error: float = 0.0
    organization: str = "sandbox-org"
    # Seconds the webhook ticker sleeps between looks at jobs and batches.
    tick_seconds: float = 0.2
    # Profiles (sandbox/profiles.py): a server to behave like for every request ("openai": none),
    # its context size (0: the profile's own), the wait before a stream's first token and the
    # interval of llamacpp's ": ping" comments during it.
    profile: str = profile_specs.OPENAI
    profile_n_ctx: int = 0
    keepalive_seconds: float = 0.0
    ping_seconds: float = 15.0

    @classmethod
    def from_env(cls) -> SandboxConfig:
        return cls(
            data_dir=Path(_env_str("SANDBOX_DATA_DIR", ".data/sandbox") or ".data/sandbox"),
            host=_env_str("SANDBOX_HOST", "127.0.0.1") or "127.0.0.1",
            port=_env_int("SANDBOX_PORT", 8100),
            time_scale=_positive(_env_float("SANDBOX_TIME_SCALE", 1.0), "SANDBOX_TIME_SCALE"),
            ttft_ms=_env_float("SANDBOX_TTFT_MS", 300.0),
            tokens_per_second=_env_float("SANDBOX_TOKENS_PER_SECOND", 80.0),
            api_key=_env_str("SANDBOX_API_KEY", None),
            webhook_url=_env_str("SANDBOX_WEBHOOK_URL", None),
            webhook_secret=_env_str("SANDBOX_WEBHOOK_SECRET", None),
            rpm=_env_int("SANDBOX_RPM", 0),
            tpm=_env_int("SANDBOX_TPM", 0),
            max_file_bytes=_env_int("SANDBOX_MAX_FILE_BYTES", 512 * MB),
            fault_rate_500=_env_float("SANDBOX_FAULT_RATE_500", 0.0),
            fault_rate_429=_env_float("SANDBOX_FAULT_RATE_429", 0.0),
            fault_rate_break_stream=_env_float("SANDBOX_FAULT_RATE_BREAK_STREAM", 0.0),
            fault_rate_stream_error=_env_float("SANDBOX_FAULT_RATE_STREAM_ERROR", 0.0),
            organization=_env_str("SANDBOX_ORGANIZATION", "sandbox-org") or "sandbox-org",
            profile=_profile(_env_str("SANDBOX_PROFILE", profile_specs.OPENAI) or profile_specs.OPENAI),
            profile_n_ctx=_env_int("SANDBOX_PROFILE_N_CTX", 0),
            keepalive_seconds=_env_float("SANDBOX_KEEPALIVE_SECONDS", 0.0),
            ping_seconds=_env_float("SANDBOX_PING_SECONDS", 15.0),
        )

    def with_overrides(self, **overrides: Any) -> SandboxConfig:
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown sandbox settings: {sorted(unknown)}")
        if "data_dir" in overrides:
            overrides["data_dir"] = Path(overrides["data_dir"])
        return replace(self, **overrides)
