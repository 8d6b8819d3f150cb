"""Encryption of secrets at rest (provider API keys, webhook secrets).

FIELD_ENCRYPTION_KEYS holds one or more Fernet keys, newest first. New values are
encrypted with the first; every listed key can decrypt, so a key is rotated by
putting a new key in front, running `manage.py rotate_encryption_keys`, and then
dropping the old key.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class DecryptionError(Exception):
    pass


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise DecryptionError("A stored secret cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS.") from error


def reencrypt(token: str) -> str:
    """Re-encrypt a token under the newest key (MultiFernet.rotate)."""
    try:
        return _current().rotate(token.encode()).decode()
    except InvalidToken as error:
        raise DecryptionError("A stored secret cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS.") from error
