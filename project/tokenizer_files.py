"""Point tiktoken at the encoding files this repository carries.

tiktoken downloads its BPE files on first use; our machines (and many customers')
cannot reach that host, so the files ship in project/data/tiktoken under the sha1
names tiktoken's cache expects. A deployment may set TIKTOKEN_CACHE_DIR itself.
"""

from __future__ import annotations

import os
from pathlib import Path

TIKTOKEN_DIR = Path(__file__).resolve().parent / "data" / "tiktoken"


def use_bundled_tiktoken_files() -> None:
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(TIKTOKEN_DIR))
