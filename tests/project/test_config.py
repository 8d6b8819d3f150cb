from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from project.config import Config, ConfigError, database_settings

GOOD = {
    "SECRET_KEY": "s" * 50,
    "ALLOWED_HOSTS": "dash.example.com",
    "DATABASE_URL": "postgres://u@db/switchboard",
    "REDIS_URL": "redis://cache:6379/0",
    "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
}


def test_it_accepts_a_complete_production_environment_with_safe_defaults() -> None:
    config = Config.from_environ(GOOD)
    assert config.debug is False
    assert config.secure_cookies is True
    assert config.allowed_hosts == ["dash.example.com"]
    assert config.email_backend == "django.core.mail.backends.smtp.EmailBackend"


def test_it_names_every_missing_variable_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_environ({})
    message = str(caught.value)
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "FIELD_ENCRYPTION_KEYS"):
        assert name in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DEBUG", "maybe", "DEBUG must be true or false"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL must be a URL starting with one of postgres"),
        ("REDIS_URL", "http://x", "REDIS_URL must be a URL"),
        ("FIELD_ENCRYPTION_KEYS", "not-a-key", "key #1 is not a valid Fernet key"),
        ("EMAIL_PORT", "smtp", "EMAIL_PORT must be a whole number"),
        ("SECRET_KEY", "short", "SECRET_KEY must be at least 32 characters"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of"),
    ],
)
def test_it_rejects_a_bad_value_with_a_clear_message(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_environ({**GOOD, name: value})
    assert expected in str(caught.value)
    assert len(caught.value.problems) == 1


def test_it_accepts_several_encryption_keys_for_rotation() -> None:
    keys = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]
    assert Config.from_environ({**GOOD, "FIELD_ENCRYPTION_KEYS": ",".join(keys)}).encryption_keys == keys


def test_a_unix_socket_redis_becomes_a_kombu_socket_broker_url() -> None:
    config = Config.from_environ({**GOOD, "REDIS_URL": "unix:///tmp/r.sock?db=0"})
    assert config.broker_url == "redis+socket:///tmp/r.sock?db=0"


def test_django_refuses_to_start_with_a_readable_message_not_a_traceback_of_settings() -> None:
    env = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DATABASE_URL"}}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True,
        cwd=Path(__file__).resolve().parents[2], timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is required but not set." in result.stderr
    assert "DATABASE_URL is required but not set." in result.stderr


def test_a_unix_socket_database_url_keeps_its_socket_folder_beside_the_pool() -> None:
    entry = database_settings("postgresql://postgres:@/switchboard?host=/srv/data/postgres", pool_size=7)
    assert entry["NAME"] == "switchboard"
    assert entry["OPTIONS"]["host"] == "/srv/data/postgres"
    assert entry["OPTIONS"]["pool"]["max_size"] == 7
    assert entry["CONN_MAX_AGE"] == 0


@pytest.mark.django_db
def test_a_query_the_orm_repeats_is_prepared_so_postgresql_stops_planning_it_each_time() -> None:
    from django.contrib.auth.models import User
    from django.db import connection

    marker = "prepared-probe-7f3a"
    for _ in range(6):  # psycopg prepares a query on its 5th run on a connection
        list(User.objects.filter(username=marker))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s", ["%auth_user%"])
        prepared = [row[0] for row in cursor.fetchall()]
    assert any('"auth_user"."username" = $1' in statement for statement in prepared), prepared
