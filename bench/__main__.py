"""`make bench` / `python -m bench [name ...]`: run the benchmarks under bench/.

Each benchmark is a module bench/<name>.py with a `main(argv: list[str]) -> int`.
Benchmarks print their figures; they are not tests and assert nothing about time.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    folder = Path(__file__).parent
    return sorted(
        info.name for info in pkgutil.iter_modules([str(folder)])
        if not info.name.startswith("_") and "\ndef main(" in (folder / f"{info.name}.py").read_text()
    )


def main(argv: list[str]) -> int:
    names = [arg for arg in argv if not arg.startswith("-")] or available()
    unknown = [name for name in names if name not in available()]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
        return 2
    status = 0
    for name in names:
        print(f"\n=== bench/{name}.py ===", flush=True)
        module = importlib.import_module(f"bench.{name}")
        status |= int(module.main([arg for arg in argv if arg.startswith("-")]) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
