"""File objects and their bytes: create from a temp file or bytes, render, delete."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .errors import not_found
from .ids import random_id
from .owners import OWNER_FIELD, owns
from .store import Document, Store, atomic_write_bytes

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# Purposes the sandbox itself writes; they are readable but cannot be uploaded.
OUTPUT_PURPOSES = ("batch_output", "fine-tune-results", "assistants_output")


def public(doc: Document) -> dict[str, Any]:
    # Private bookkeeping starts with "_"; absent optional fields stay absent, as the real API omits them.
    return {k: v for k, v in doc.items() if not k.startswith("_") and v is not None}


def new_file_doc(filename: str, purpose: str, size: int, owner: str, created_at: int | None = None) -> Document:
    return {
        "id": random_id("file-", 22),
        "object": "file",
        "bytes": size,
        "created_at": int(created_at if created_at is not None else time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        OWNER_FIELD: owner,
    }


def create_from_path(store: Store, tmp: Path, filename: str, purpose: str, *, owner: str) -> Document:
    """A file made from a temp file; owner is the fingerprint of the key it belongs to."""
    doc = new_file_doc(filename, purpose, tmp.stat().st_size, owner)
    tmp.replace(store.blob_path(doc["id"]))
    store.files.put(doc)
    return doc


def create_from_bytes(
    store: Store, data: bytes, filename: str, purpose: str, created_at: int | None = None, *, owner: str
) -> Document:
    doc = new_file_doc(filename, purpose, len(data), owner, created_at)
    atomic_write_bytes(store.blob_path(doc["id"]), data)
    store.files.put(doc)
    return doc


def get_or_404(store: Store, file_id: str, api_key: str, param: str | None = None) -> Document:
    """The file, if it exists and belongs to api_key; another key's file is "No such File" too."""
    doc = store.files.get(file_id)
    if doc is None or not owns(api_key, doc):
        raise not_found(f"No such File object: {file_id}", param=param or "id")
    return doc


def delete(store: Store, file_id: str) -> None:
    store.files.delete(file_id)
    store.blob_path(file_id).unlink(missing_ok=True)
