"""python -m sandbox [--host H] [--port P]: serve the sandbox under uvicorn."""

from __future__ import annotations

import argparse
import importlib.util

import uvicorn

from .app import create_app
from .config import SandboxConfig


def main(argv: list[str] | None = None) -> None:
    config = SandboxConfig.from_env()
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default=config.host)
    parser.add_argument("--port", type=int, default=config.port)
    parser.add_argument("--data-dir", default=str(config.data_dir))
    args = parser.parse_args(argv)
    config = config.with_overrides(host=args.host, port=args.port, data_dir=args.data_dir)
    print(f"Sandbox OpenAI API at http://{config.host}:{config.port}/v1 (data in {config.data_dir})", flush=True)
    fast = importlib.util.find_spec("uvloop") is not None and importlib.util.find_spec("httptools") is not None
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="warning",
        loop="uvloop" if fast else "asyncio",
        http="httptools" if fast else "h11",
    )


if __name__ == "__main__":
    main()
