"""What an error report (Django's debug page, the mail to ADMINS, a log record) may show.

Django's own filter hides settings whose names look secret, but only when DEBUG is off,
and it shows local variables and POST fields whole. `make run` runs with DEBUG on, and a
traceback through a provider call holds the request headers (`Authorization: Bearer
sk-…`) and the connection's decrypted key. So this filter is always on, hides variables,
POST fields, headers and settings by their names, hides the whole CONFIG, and as a last
guard blanks anything that looks like a key in the text of every value shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from types import FrameType
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.regex_helper import _lazy_re_compile
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

SUBSTITUTE = "********************"
# Names of settings, request headers, cookies and POST fields whose values are hidden
# (broad: hiding a harmless setting costs little).
SECRET_NAMES = _lazy_re_compile(
    r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|COOKIE|CREDENTIAL|ENCRYPT|PRIVATE|SESSION|CSRF|^CONFIG$",
    flags=re.IGNORECASE,
)
# Names of local variables and of dict keys inside them whose values are hidden: narrower,
# so that `tokens_in` or `author` stay readable when debugging.
SECRET_VARIABLES = re.compile(
    r"api[_-]?key|secret|passw|authoriz|bearer|credential|signature|cookie|fernet|encrypt|private|csrf"
    r"|^(token|key|keys|config|headers_dict)$|_(token|key|keys)$",
    flags=re.IGNORECASE,
)
# The text of one value is cut here before it is searched for keys (the page shows 4 KB).
MAX_VALUE_TEXT = 100_000
# Key-like text inside any value: bearer tokens, OpenAI-style keys, webhook secrets,
# Fernet-encrypted fields.
SECRET_TEXT = re.compile(
    r"(?i:bearer)\s+[^\s'\"]+|\bsk-[A-Za-z0-9_\-]{6,}|\bwhsec_[A-Za-z0-9+/=_\-]{6,}|\bgAAAAA[A-Za-z0-9_\-=]{20,}"
)


class _Shown(str):
    """A value already turned into safe text; the report prints it as it is."""

    def __repr__(self) -> str:
        return str(self)


@cache
def _configured_secrets() -> tuple[str, ...]:
    values = [settings.SECRET_KEY, *getattr(settings, "FIELD_ENCRYPTION_KEYS", [])]
    return tuple(value for value in values if isinstance(value, str) and len(value) >= 8)


def redact_text(text: str) -> str:
    for secret in _configured_secrets():
        text = text.replace(secret, SUBSTITUTE)
    return SECRET_TEXT.sub(SUBSTITUTE, text)


class SecretHidingFilter(SafeExceptionReporterFilter):
    hidden_settings = SECRET_NAMES
    cleansed_substitute = SUBSTITUTE

    def is_active(self, request: HttpRequest | None) -> bool:
        # Django turns its filter off under DEBUG; secrets must stay hidden there too.
        return True

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return redact_text(cleansed)
        return cleansed

    def get_post_parameters(self, request: HttpRequest | None) -> Any:
        if request is None:
            return {}
        post = super().get_post_parameters(request).copy()
        for name in list(post):
            if SECRET_NAMES.search(name):
                post[name] = SUBSTITUTE
        return post

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: FrameType) -> Any:
        shown: dict[str, Any] = {}
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            shown[name] = SUBSTITUTE if SECRET_VARIABLES.search(name) else self._safe_value(value)
        return shown.items()

    def _safe_value(self, value: Any) -> Any:
        if isinstance(value, str) and value == SUBSTITUTE:
            return value
        try:
            text = repr(_hide_secret_keys(value))
        except Exception as error:  # noqa: BLE001 (a broken __repr__ must not break the report)
            return _Shown(f"<unprintable {type(value).__name__}: {type(error).__name__}>")
        return _Shown(redact_text(text[:MAX_VALUE_TEXT]))


def _hide_secret_keys(value: Any, depth: int = 0) -> Any:
    """The value with the items of secret-named keys hidden, in dicts and in other
    mappings (httpx2.Headers's own repr hides Authorization but not api-key)."""
    if depth > 10:
        return value
    if isinstance(value, Mapping):
        try:
            items = list(value.items())
        except Exception:  # noqa: BLE001 (a mapping that cannot be listed is shown as its repr)
            return value
        hidden = {key: SUBSTITUTE if isinstance(key, str) and SECRET_VARIABLES.search(key)
                  else _hide_secret_keys(item, depth + 1) for key, item in items}
        return hidden if isinstance(value, dict) else {f"<{type(value).__name__}>": hidden}
    if isinstance(value, (list, tuple)):
        return type(value)(_hide_secret_keys(item, depth + 1) for item in value) if type(value) in (list, tuple) else value
    return value


class SecretHidingReporter(ExceptionReporter):
    """Also blanks key-like text in the exception's own message."""

    def get_traceback_data(self) -> dict[str, Any]:
        data: dict[str, Any] = super().get_traceback_data()
        if "exception_value" in data:
            data["exception_value"] = redact_text(str(data["exception_value"]))
        return data
