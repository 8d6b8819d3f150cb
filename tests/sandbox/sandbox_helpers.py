"""Helpers for the sandbox tests: spec validation, polling, a webhook receiver."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS31Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# The official spec lives in ../shared beside the checkout (as on CI); OPENAI_OPENAPI_SPEC overrides.
_SHARED_SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "openai-openapi" / "openapi.yaml"
SPEC_PATH = Path(os.environ.get("OPENAI_OPENAPI_SPEC", _SHARED_SPEC))


def _honour_nullable(node: Any) -> None:
    """The spec says openapi 3.1 but still marks some fields with 3.0's `nullable: true`.

    A 3.1 validator ignores that keyword, yet the real API sends null there (finish_reason,
    logprobs and usage on stream chunks), so rewrite it into 3.1's own spelling.
    """
    if isinstance(node, list):
        for item in node:
            _honour_nullable(item)
        return
    if not isinstance(node, dict):
        return
    for value in node.values():
        _honour_nullable(value)
    if node.pop("nullable", False) is not True:
        return
    if "$ref" in node or "allOf" in node or "oneOf" in node or "anyOf" in node:
        inner = {k: node.pop(k) for k in ("$ref", "allOf", "oneOf", "anyOf") if k in node}
        node["anyOf"] = [inner, {"type": "null"}]
        return
    if isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    if isinstance(node.get("enum"), list) and None not in node["enum"]:
        node["enum"].append(None)


class Spec:
    """Validates bodies against components/schemas of the official OpenAPI document."""

    def __init__(self, path: Path) -> None:
        with path.open() as fh:
            document = yaml.load(fh, Loader=yaml.CSafeLoader)
        _honour_nullable(document)
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource("urn:openai", resource)
        self.schemas = document["components"]["schemas"]
        self._validators: dict[str, OAS31Validator] = {}

    def validate(self, name: str, body: Any) -> None:
        assert name in self.schemas, f"no schema {name}"
        validator = self._validators.get(name)
        if validator is None:
            validator = OAS31Validator({"$ref": f"urn:openai#/components/schemas/{name}"}, registry=self.registry)
            self._validators[name] = validator
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        assert not errors, f"{name}: " + "; ".join(f"{list(e.path)}: {e.message[:300]}" for e in errors[:5])


def wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last value: {value!r}")
        time.sleep(0.02)


class WebhookReceiver:
    """A real HTTP endpoint that records what the sandbox posts to it."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.fail_first > 0:
                    receiver.fail_first -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
