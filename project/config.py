"""Typed configuration read from the environment.

Every setting comes from an environment variable (listed in README.md and
.env.example). `Config.from_environ` checks them all at once and raises a
`ConfigError` naming every bad or missing value, so a misconfigured deployment
fails at start with one readable message instead of a traceback at first use.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dj_database_url

from project.db_pool import check_pooled_connection
from project.outbound_rules import parse_rule
from project.redis_connect import SENTINEL_SCHEME, SentinelUrl, broker_settings


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"Switchboard cannot start; fix these environment variables:\n{lines}")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class _Reader:
    """Reads variables and collects problems instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.environ.get(name)
        if value is None or value == "":
            if required:
                self.problems.append(f"{name} is required but not set.")
            return default or ""
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.environ.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self.problems.append(f"{name} must be true or false (got {raw!r}).")
        return default

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name} must be a whole number (got {raw!r}).")
            return default
        if value < minimum:
            self.problems.append(f"{name} must be at least {minimum} (got {value}).")
            return default
        return value

    def items(self, name: str, default: list[str]) -> list[str]:
        raw = self.environ.get(name)
        if raw is None:
            return default
        return [item.strip() for item in raw.split(",") if item.strip()]

    def url(self, name: str, schemes: set[str], *, required: bool) -> str:
        value = self.text(name, required=required)
        if value:
            parts = urlsplit(value)
            if parts.scheme not in schemes:
                allowed = ", ".join(sorted(schemes))
                self.problems.append(
                    f"{name} must be a URL starting with one of {allowed} (got scheme {parts.scheme!r})."
                )
        return value


def _valid_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (binascii.Error, ValueError):
        return False


@dataclass(frozen=True)
class Config:
    secret_key: str
    debug: bool
    allowed_hosts: list[str]
    csrf_trusted_origins: list[str]
    database_url: str
    redis_url: str
    broker_url: str
    encryption_keys: list[str]
    secure_cookies: bool
    email_backend: str
    email_host: str
    email_port: int
    email_host_user: str
    email_host_password: str
    email_use_tls: bool
    default_from_email: str
    site_url: str
    sandbox_url: str
    log_level: str
    database_pool_size: int
    # Hosts, host:port pairs or networks (CIDR) that outbound calls (provider base URLs,
    # HTTP tools) may reach although they are internal: a local llama.cpp, say.
    outbound_allowed_hosts: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Django's debug page and any log line that prints the config must not carry the
        # keys that decrypt every team's stored API keys.
        shown = ", ".join(f"{item.name}={_redacted(item.name, getattr(self, item.name))!r}" for item in fields(self))
        return f"Config({shown})"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Config:
        read = _Reader(environ)
        debug = read.flag("DEBUG", False)
        secret_key = read.text("SECRET_KEY", required=True)
        if secret_key and not debug and len(secret_key) < 32:
            read.problems.append("SECRET_KEY must be at least 32 characters when DEBUG is off.")
        allowed_hosts = read.items("ALLOWED_HOSTS", ["localhost", "127.0.0.1"] if debug else [])
        if not allowed_hosts:
            read.problems.append("ALLOWED_HOSTS is required when DEBUG is off (comma-separated host names).")
        database_url = read.url("DATABASE_URL", {"postgres", "postgresql"}, required=True)
        redis_url = read.url("REDIS_URL", {"redis", "rediss", "unix", SENTINEL_SCHEME}, required=True)
        try:
            SentinelUrl.parse(redis_url)
        except ValueError as error:
            read.problems.append(f"REDIS_URL: {error}.")
            redis_url = ""
        broker_url = read.text("CELERY_BROKER_URL") or broker_settings(redis_url)[0]
        keys = read.items("FIELD_ENCRYPTION_KEYS", [])
        if not keys:
            read.problems.append(
                "FIELD_ENCRYPTION_KEYS is required: one or more Fernet keys, comma-separated, newest first "
                "(make one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')."
            )
        for position, key in enumerate(keys, start=1):
            if not _valid_fernet_key(key):
                read.problems.append(
                    f"FIELD_ENCRYPTION_KEYS key #{position} is not a valid Fernet key (32 url-safe base64 bytes)."
                )
        email_backend = read.text(
            "EMAIL_BACKEND",
            "django.core.mail.backends.console.EmailBackend" if debug else "django.core.mail.backends.smtp.EmailBackend",
        )
        email_host = read.text("EMAIL_HOST", "localhost")
        email_port = read.integer("EMAIL_PORT", 25, minimum=1)
        site_url = read.url("SITE_URL", {"http", "https"}, required=False) or "http://127.0.0.1:8000"
        config = cls(
            secret_key=secret_key,
            debug=debug,
            allowed_hosts=allowed_hosts,
            csrf_trusted_origins=read.items("CSRF_TRUSTED_ORIGINS", []),
            database_url=database_url,
            redis_url=redis_url,
            broker_url=broker_url,
            encryption_keys=keys,
            secure_cookies=read.flag("SECURE_COOKIES", not debug),
            email_backend=email_backend,
            email_host=email_host,
            email_port=email_port,
            email_host_user=read.text("EMAIL_HOST_USER"),
            email_host_password=read.text("EMAIL_HOST_PASSWORD"),
            email_use_tls=read.flag("EMAIL_USE_TLS", False),
            default_from_email=read.text("DEFAULT_FROM_EMAIL", "Switchboard <switchboard@localhost>"),
            site_url=site_url.rstrip("/"),
            sandbox_url=read.url("SANDBOX_URL", {"http", "https"}, required=False),
            log_level=read.text("LOG_LEVEL", "INFO").upper(),
            database_pool_size=read.integer("DATABASE_POOL_SIZE", 20, minimum=1),
            outbound_allowed_hosts=_outbound_rules(read),
        )
        if config.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            read.problems.append(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (got {config.log_level!r}).")
        if read.problems:
            raise ConfigError(read.problems)
        return config


SECRET_FIELDS = frozenset({"secret_key", "encryption_keys", "email_host_password"})
URL_FIELDS = frozenset({"database_url", "redis_url", "broker_url"})
REDACTED = "********"


def _redacted(name: str, value: object) -> object:
    if name in SECRET_FIELDS:
        return REDACTED if value else value
    if name in URL_FIELDS and isinstance(value, str):
        return _url_without_password(value)
    return value


def _url_without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:{REDACTED}@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _outbound_rules(read: _Reader) -> list[str]:
    """OUTBOUND_ALLOWED_HOSTS: `host`, `host:port`, `[v6]:port` or a network such as 10.0.0.0/8."""
    rules = [rule.lower() for rule in read.items("OUTBOUND_ALLOWED_HOSTS", [])]
    for rule in rules:
        if not _valid_outbound_rule(rule):
            read.problems.append(
                f"OUTBOUND_ALLOWED_HOSTS: {rule!r} is not a host, host:port or network (such as 10.0.0.0/8)."
            )
    return rules


def _valid_outbound_rule(rule: str) -> bool:
    try:
        parse_rule(rule)
    except ValueError:
        return False
    return True


def database_settings(url: str, *, pool_size: int) -> dict[str, Any]:
    """Django's DATABASES entry for a URL, with a connection pool.

    The URL's own options (a Unix-socket host arrives as OPTIONS["host"]) are kept.
    """
    # Health checks: a pooled connection is tested as it is handed out, so after a
    # PostgreSQL restart the pool replaces its dead connections instead of giving them to
    # the next query (without: half the pages right after a restart were 500s). The check
    # is ours (project/db_pool.py): the first dead connection has all the idle ones checked,
    # where psycopg_pool's own found them one by one, 1, 2, 4 s apart, and timed out.
    entry: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=0, conn_health_checks=True))
    # reconnect_timeout: the pool's attempts to replace connections back off exponentially
    # while PostgreSQL is down, and after a restart the next attempt could come many seconds
    # later, every request waiting for it and failing after `timeout`. A short one ends a
    # streak of attempts soon, and the next request starts a fresh one at once.
    # server_side_binding and prepare_threshold: the ORM's queries are sent with their
    # parameters apart, and psycopg prepares one that a pooled connection has run 5 times, so
    # PostgreSQL stops planning it again on every request. Django's defaults bind on the
    # client (such a query cannot be prepared) and prepare nothing, for the sake of
    # transaction-mode poolers (PgBouncer before 1.21), which this deployment does not use.
    entry["OPTIONS"] = {**entry.get("OPTIONS", {}), "server_side_binding": True, "prepare_threshold": 5,
                        "pool": {"min_size": 1, "max_size": pool_size, "timeout": 10, "reconnect_timeout": 5,
                                 "check": check_pooled_connection}}
    return entry

