"""Error pages and reports never show secrets, DEBUG on or off: not the settings'
CONFIG, not an Authorization header, not a local variable holding a key."""

from __future__ import annotations

import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import RequestFactory
from django.views.debug import technical_500_response

from project.config import Config
from tests.project.test_config import GOOD

KEY = "sk-proj-abcdefghijklmnop1234"


def test_the_config_repr_hides_its_secrets() -> None:
    fernet = Fernet.generate_key().decode()
    config = Config.from_environ({**GOOD, "FIELD_ENCRYPTION_KEYS": fernet, "EMAIL_HOST_PASSWORD": "mail-pass-123",
                                  "DATABASE_URL": "postgres://u:db-pass-456@db/switchboard"})
    shown = repr(config)
    for secret in (GOOD["SECRET_KEY"], fernet, "mail-pass-123", "db-pass-456"):
        assert secret not in shown
    assert "dash.example.com" in shown  # the rest is still there to read


def _debug_page(settings_fixture) -> str:
    settings_fixture.DEBUG = True
    request = RequestFactory().post("/settings/connections/new/", {"name": "x", "api_key": KEY},
                                    HTTP_AUTHORIZATION=f"Bearer {KEY}", HTTP_API_KEY=KEY)
    api_key = KEY  # noqa: F841 (a local the traceback shows)
    headers = {"Authorization": f"Bearer {KEY}", "api-key": KEY, "OpenAI-Organization": "org-x"}  # noqa: F841
    message = f"talking to the provider with {KEY}"  # noqa: F841
    config = settings.CONFIG  # noqa: F841
    prompt_tokens = 987654  # noqa: F841 (not a secret: stays readable)
    try:
        raise RuntimeError(f"failed with Authorization: Bearer {KEY}")
    except RuntimeError:
        response = technical_500_response(request, *sys.exc_info())
    return response.content.decode()


def test_the_debug_error_page_shows_no_secret(settings) -> None:
    page = _debug_page(settings)
    assert "RuntimeError" in page  # it is the debug page
    assert KEY not in page
    assert settings.SECRET_KEY not in page
    for key in settings.FIELD_ENCRYPTION_KEYS:
        assert key not in page
    assert "org-x" in page and "987654" in page  # what is not secret is still shown


@pytest.mark.parametrize("debug", [True, False])
def test_secret_settings_are_hidden_whatever_debug_says(settings, debug: bool) -> None:
    from django.views.debug import get_default_exception_reporter_filter

    settings.DEBUG = debug
    safe = get_default_exception_reporter_filter().get_safe_settings()
    assert settings.SECRET_KEY not in str(safe)
    assert settings.FIELD_ENCRYPTION_KEYS[0] not in str(safe)
    assert safe["CONFIG"] == "********************"


def test_a_failed_provider_request_on_the_debug_page_shows_neither_key_nor_headers(settings) -> None:
    """The real traceback of issue #13: a non-ASCII organization id fails while the SDK
    builds the headers, with the key in the frames' variables."""
    import httpx2
    import openai

    settings.DEBUG = True
    client = openai.OpenAI(api_key=KEY, base_url="http://127.0.0.1:9/v1", organization="org-é", max_retries=0,
                           http_client=httpx2.Client())
    headers = httpx2.Headers({"api-key": KEY, "Authorization": f"Bearer {KEY}"})  # noqa: F841
    try:
        client.models.list()
    except UnicodeEncodeError:
        response = technical_500_response(RequestFactory().get("/assistants/guide/"), *sys.exc_info())
    page = response.content.decode()
    assert "UnicodeEncodeError" in page and "_build_headers" in page
    assert KEY not in page
