"""Who owns a stored object: the API key (bearer token) that made it.

Files, uploads, batches, fine-tuning jobs (with their events, checkpoints and
fine-tuned models) and stored responses belong to the key that created them; a
request made with another key never sees them, and asking for one by id gets the
same 404 as an id that does not exist. Base models are shared.

Documents keep a fingerprint of the key (``_owner``: sha256 hex), never the key.
Batches, jobs and stored responses also keep ``_api_key`` (the webhook sender and
the batch runner need the key itself); ownership is still decided by ``_owner``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from functools import lru_cache

from .store import Document, Store

OWNER_FIELD = "_owner"
# Data written before objects had owners: files and uploads no batch or job points to
# go to the key `make run` gave the first team's sandbox connection until then.
LEGACY_KEY = "sk-sandbox"


@lru_cache(maxsize=4096)
def fingerprint(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def owner_of(doc: Document) -> str:
    owner = doc.get(OWNER_FIELD)
    if isinstance(owner, str) and owner:
        return owner
    key = doc.get("_api_key")
    return fingerprint(key if isinstance(key, str) and key else LEGACY_KEY)


def owns(api_key: str, doc: Document | None) -> bool:
    return doc is not None and owner_of(doc) == fingerprint(api_key)


def stamp(doc: Document, api_key: str) -> Document:
    doc[OWNER_FIELD] = fingerprint(api_key)
    return doc


def owned(api_key: str, docs: Iterable[Document]) -> Iterator[Document]:
    """The documents of one key, in their stored order."""
    mine = fingerprint(api_key)
    return (d for d in docs if owner_of(d) == mine)


def adopt_legacy(store: Store) -> None:
    """Give files and uploads stored before owners existed the owner of whatever uses them.

    A batch's input, output and error files and a job's training, validation and
    result files belong to that batch's or job's key; the rest to LEGACY_KEY.
    """
    claims: dict[str, str] = {}
    for batch in store.batches.values():
        for field in ("input_file_id", "output_file_id", "error_file_id"):
            if batch.get(field):
                claims.setdefault(batch[field], owner_of(batch))
    for job in store.jobs.values():
        for field in ("training_file", "validation_file", "result_file_id"):
            if job.get(field):
                claims.setdefault(job[field], owner_of(job))
    for collection in (store.files, store.uploads, store.batches, store.jobs):
        for doc in collection.values():
            if not doc.get(OWNER_FIELD):
                doc[OWNER_FIELD] = claims.get(doc["id"]) or owner_of(doc)
                collection.put(doc)
