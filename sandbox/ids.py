"""Identifiers shaped like the real ones (prefix + random base62)."""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def stable_id(prefix: str, *parts: object, length: int = 24) -> str:
    """An id derived from content, for things that must look the same on every read."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    n = int.from_bytes(digest, "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, len(_ALPHABET))
        out.append(_ALPHABET[r])
    return prefix + "".join(out)


def request_id() -> str:
    return "req_" + secrets.token_hex(16)
