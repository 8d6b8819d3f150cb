"""State on disk: one JSON document per object and one blob file per file's bytes.

No database: each write goes to a temp file and os.replace()s it into place, so a
crash never leaves a half-written document. Every collection is loaded into memory
at start-up and kept there; reads never touch the disk.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Document = dict[str, Any]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Collection:
    """An ordered id -> document map mirrored to <root>/<name>/<id>.json."""

    def __init__(self, root: Path, name: str) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self._docs: dict[str, Document] = {}
        loaded = []
        for path in self.dir.glob("*.json"):
            try:
                loaded.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # a stray file must not stop the server from starting
        # Insertion order = creation order, which list endpoints page over.
        for doc in sorted(loaded, key=lambda d: (d.get("_seq", 0), d.get("created_at", 0))):
            self._docs[doc["id"]] = doc
        self._next_seq = max((d.get("_seq", 0) for d in loaded), default=-1) + 1

    def get(self, doc_id: str) -> Document | None:
        return self._docs.get(doc_id)

    def put(self, doc: Document) -> None:
        if "_seq" not in doc:
            doc["_seq"] = self._next_seq
            self._next_seq += 1
        self._docs[doc["id"]] = doc
        atomic_write_bytes(self.dir / f"{doc['id']}.json", json.dumps(doc).encode())

    def delete(self, doc_id: str) -> None:
        self._docs.pop(doc_id, None)
        (self.dir / f"{doc_id}.json").unlink(missing_ok=True)

    def values(self) -> Iterator[Document]:
        return iter(list(self._docs.values()))

    def __len__(self) -> int:
        return len(self._docs)


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.blob_dir = self.root / "blobs"
        self.blob_dir.mkdir(exist_ok=True)
        self.tmp_dir = self.root / "tmp"
        self.tmp_dir.mkdir(exist_ok=True)
        self.files = Collection(self.root, "files")
        self.uploads = Collection(self.root, "uploads")
        self.batches = Collection(self.root, "batches")
        self.jobs = Collection(self.root, "fine_tuning_jobs")
        # Small singletons: deleted fine-tuned models, webhook registrations.
        self.settings = Collection(self.root, "settings")

    def blob_path(self, blob_id: str) -> Path:
        return self.blob_dir / blob_id

    def new_temp_path(self) -> Path:
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="upload-")
        os.close(fd)
        return Path(tmp)

    def setting(self, name: str) -> Document:
        doc = self.settings.get(name)
        if doc is None:
            doc = {"id": name, "created_at": 0}
        return doc
