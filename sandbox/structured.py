"""JSON Schema -> a deterministic instance valid against it, and the strict-mode checks.

Used for response_format json_schema replies and for tool-call arguments. Values are
drawn from hints (``name=value`` pairs in the user's message) where a property name
matches, otherwise from a generator seeded by the request.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

from .errors import ApiError

Schema = dict[str, Any]

_HINT = re.compile(r"""([A-Za-z_][\w.-]*)=("[^"]*"|'[^']*'|[^\s,;]+)""")
_WORDS = (
    "alpha", "bravo", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper",
    "kestrel", "lumen", "meadow", "nimbus", "orchid", "pebble", "quartz", "raven", "sierra", "tundra",
)
MAX_DEPTH = 6


def parse_hints(text: str) -> dict[str, str]:
    hints: dict[str, str] = {}
    for name, value in _HINT.findall(text):
        # Quoted values keep everything; bare ones lose a sentence's closing full stop.
        value = value[1:-1] if value[:1] in "\"'" else value.rstrip(".")
        hints[name] = value
    return hints


def _resolve(schema: Schema, root: Schema) -> Schema:
    seen = 0
    while "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        if ref == "#":
            schema = root
        elif ref.startswith("#/"):
            node: Any = root
            for part in ref[2:].split("/"):
                node = node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
            schema = node if isinstance(node, dict) else {}
        else:
            return {}
        seen += 1
    return schema


def _types(schema: Schema) -> list[str]:
    t = schema.get("type")
    if isinstance(t, list):
        return [str(x) for x in t]
    if isinstance(t, str):
        return [t]
    if "properties" in schema:
        return ["object"]
    if "items" in schema:
        return ["array"]
    return []


def _coerce(value: str, kind: str) -> Any:
    try:
        if kind == "integer":
            return int(float(value))
        if kind == "number":
            f = float(value)
            return int(f) if f.is_integer() and "." not in value else f
        if kind == "boolean":
            return value.lower() in ("true", "yes", "1", "on")
    except ValueError:
        return None
    return value


class InstanceBuilder:
    def __init__(self, root: Schema, hints: dict[str, str], seed: int) -> None:
        self.root = root
        self.hints = hints
        self.rng = random.Random(seed)

    def build(self, schema: Schema, name: str = "value", depth: int = 0) -> Any:
        schema = _resolve(schema, self.root)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            options = list(schema["enum"])
            hint = self.hints.get(name)
            for option in options:
                if hint is not None and str(option) == hint:
                    return option
            non_null = [o for o in options if o is not None] or options
            return non_null[self.rng.randrange(len(non_null))]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                branches = [_resolve(b, self.root) for b in schema[key]]
                non_null = [b for b in branches if _types(b) != ["null"]]
                # Deep in a recursive schema, take the null branch so the document ends.
                if depth >= MAX_DEPTH and len(non_null) < len(branches):
                    return None
                return self.build(non_null[0] if non_null else branches[0], name, depth + 1)
        if schema.get("allOf"):
            merged: Schema = {}
            for part in schema["allOf"]:
                merged.update(_resolve(part, self.root))
            return self.build(merged, name, depth + 1)
        types = _types(schema)
        non_null_types = [t for t in types if t != "null"]
        if not non_null_types:
            return None if "null" in types else self._string(schema, name)
        if depth >= MAX_DEPTH and "null" in types:
            return None
        kind = non_null_types[0]
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        hint = self.hints.get(name)
        if hint is not None:
            value = _coerce(hint, kind)
            if value is not None:
                return value
        if kind == "string":
            return self._string(schema, name)
        if kind in ("integer", "number"):
            return self._number(schema, kind)
        if kind == "boolean":
            return self.rng.random() < 0.5
        return None

    def _object(self, schema: Schema, depth: int) -> dict[str, Any]:
        props: dict[str, Schema] = schema.get("properties") or {}
        return {key: self.build(sub, key, depth + 1) for key, sub in props.items()}

    def _array(self, schema: Schema, name: str, depth: int) -> list[Any]:
        lo = int(schema.get("minItems", 0))
        hi = int(schema.get("maxItems", max(lo, 3)))
        size = 0 if depth >= MAX_DEPTH else min(hi, max(lo, 2))
        size = max(size, lo)
        items = schema.get("items") or {}
        prefix = schema.get("prefixItems") or []
        out = []
        for i in range(size):
            sub = prefix[i] if i < len(prefix) else items
            out.append(self.build(sub, name, depth + 1))
        return out

    def _string(self, schema: Schema, name: str) -> str:
        fmt = schema.get("format")
        n = self.rng.randrange(1, 28)
        if fmt == "date-time":
            value = f"2026-{n % 12 + 1:02d}-{n:02d}T12:00:00Z"
        elif fmt == "date":
            value = f"2026-{n % 12 + 1:02d}-{n:02d}"
        elif fmt == "time":
            value = f"12:{n:02d}:00"
        elif fmt == "email":
            value = f"{_WORDS[n % len(_WORDS)]}@example.com"
        elif fmt == "uuid":
            value = f"00000000-0000-4000-8000-{self.rng.randrange(16**12):012x}"
        elif fmt in ("uri", "url"):
            value = f"https://example.com/{_WORDS[n % len(_WORDS)]}"
        else:
            value = f"{name} {_WORDS[n % len(_WORDS)]}"
        lo, hi = int(schema.get("minLength", 0)), schema.get("maxLength")
        if len(value) < lo:
            value = value + "x" * (lo - len(value))
        if hi is not None:
            value = value[: int(hi)]
        return value

    def _number(self, schema: Schema, kind: str) -> int | float:
        lo_raw = schema.get("minimum", schema.get("exclusiveMinimum"))
        lo = float(lo_raw) if lo_raw is not None else 0.0
        hi_raw = schema.get("maximum", schema.get("exclusiveMaximum"))
        hi = float(hi_raw) if hi_raw is not None else lo + 100
        if "exclusiveMinimum" in schema and "minimum" not in schema:
            lo = lo + (1 if kind == "integer" else 0.5)
        if "exclusiveMaximum" in schema and "maximum" not in schema:
            hi = hi - (1 if kind == "integer" else 0.5)
        if hi < lo:
            hi = lo
        if kind == "integer":
            return self.rng.randint(math.ceil(lo), max(math.ceil(lo), math.floor(hi)))
        return round(self.rng.uniform(lo, hi), 2)


def build_instance(schema: Schema, hints: dict[str, str], seed: int) -> Any:
    return InstanceBuilder(schema, hints, seed).build(schema)


def _strict_error(kind: str, name: str, context: tuple[str, ...], detail: str) -> ApiError:
    where = "(" + ", ".join(repr(c) for c in context) + ("," if len(context) == 1 else "") + ")"
    return ApiError(
        400,
        f"Invalid schema for {kind} '{name}': In context={where}, {detail}",
        param="response_format" if kind == "response_format" else "tools",
        code="invalid_json_schema" if kind == "response_format" else "invalid_function_parameters",
    )


def check_strict_schema(schema: Any, *, kind: str, name: str) -> None:
    """Raise the real 400 for a schema strict mode would refuse."""
    if not isinstance(schema, dict):
        raise _strict_error(kind, name, (), "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"None\"'.")
    if kind == "response_format" and schema.get("type") != "object":
        raise _strict_error(
            kind, name, (), f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{schema.get('type')}\"'."
        )
    _check_node(schema, schema, kind, name, (), 0)


def _check_node(node: Any, root: Schema, kind: str, name: str, ctx: tuple[str, ...], depth: int) -> None:
    if not isinstance(node, dict) or depth > 10:
        return
    if "$ref" in node:
        return  # definitions are checked where they are declared
    if _types(node)[:1] == ["object"] or ("object" in _types(node)):
        props = node.get("properties") or {}
        if node.get("additionalProperties", True) is not False:
            raise _strict_error(kind, name, ctx, "'additionalProperties' is required to be supplied and to be false.")
        required = node.get("required") or []
        missing = [p for p in props if p not in required]
        if missing:
            raise _strict_error(
                kind,
                name,
                ctx,
                "'required' is required to be supplied and to be an array including every key in properties. "
                f"Missing '{missing[0]}'.",
            )
        for key, sub in props.items():
            _check_node(sub, root, kind, name, (*ctx, "properties", key), depth + 1)
    if isinstance(node.get("items"), dict):
        _check_node(node["items"], root, kind, name, (*ctx, "items"), depth + 1)
    for key in ("anyOf", "allOf"):
        for i, sub in enumerate(node.get(key) or []):
            _check_node(sub, root, kind, name, (*ctx, key, str(i)), depth + 1)
    if "oneOf" in node:
        raise _strict_error(kind, name, ctx, "'oneOf' is not permitted.")
    for defs in ("$defs", "definitions"):
        for key, sub in (node.get(defs) or {}).items():
            _check_node(sub, root, kind, name, (*ctx, defs, key), depth + 1)
