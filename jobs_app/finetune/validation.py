"""Fine-tuning dataset validation, one line at a time.

Checks each example for the chosen method (supervised chat with tools,
parallel_tool_calls and per-message weight; or DPO pairs) and reports errors by
line and kind, then the checks of OpenAI's cookbook data-prep recipe: examples
without a system or user message, distributions of messages, tokens and
assistant tokens per example, and examples over the model's training context.

The file is streamed: only the current line and one small integer per example
(for the distributions) are kept, so a 100 MB file never sits in memory.
Token counts follow the cookbook: 3 tokens per message, the text of every
field, 1 more for a name, 3 to prime the reply.
"""

from __future__ import annotations

import json
import statistics
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from typing import IO, Any

import tiktoken

from project.providers.model_facts import cost_usd, model_facts
from project.tokens import encoding_named

# The cookbook's epoch heuristic.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25
# The cookbook's cap when the model facts do not give a training context.
DEFAULT_TRAINING_CONTEXT = 16_385
MIN_TRAINING_EXAMPLES = 10
MAX_LISTED_ERRORS = 200
MAX_LISTED_LINES = 50
# A line is read, decoded and parsed whole, at about twelve times its size in memory (a
# 50 MB line took 608 MB): longer lines are reported and skipped without being read.
# 8 MB holds any text example with room to spare (a 128k-token context is ~0.5 MB).
MAX_LINE_BYTES = 8 * 1024 * 1024

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"})
SUPERVISED_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})
DPO_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})
DPO_INPUT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})

ERROR_KINDS: dict[str, str] = {
    "invalid_json": "Not valid JSON",
    "not_an_object": "Line is not a JSON object",
    "unknown_key": "Unknown key in the example",
    "missing_messages": "No messages list",
    "message_not_object": "A message is not an object",
    "missing_role": "A message has no role",
    "unrecognized_role": "Unrecognized role",
    "unknown_message_key": "Unknown key in a message",
    "missing_content": "A message has no content",
    "invalid_content": "Content is not text or a list of parts",
    "invalid_weight": "weight must be 0 or 1, on assistant messages only",
    "invalid_tool_calls": "tool_calls is malformed",
    "tool_call_id_missing": "A tool message has no tool_call_id",
    "tool_call_id_unknown": "A tool message answers a call that was not made",
    "invalid_tools": "tools is malformed",
    "invalid_parallel_tool_calls": "parallel_tool_calls must be true or false",
    "missing_assistant_message": "No assistant message to learn from",
    "dpo_missing_input": "DPO: no input.messages list",
    "dpo_input_not_ending_with_user": "DPO: input must end with a user message",
    "dpo_invalid_output": "DPO: an output must be one assistant message with content",
    "too_few_examples": "Too few examples",
    "line_too_long": "Line too long to read",
}


@dataclass(frozen=True)
class LongLine:
    """A line over the limit, skipped unread: only its length is known."""

    length: int


def bounded_lines(stream: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes | LongLine]:
    """The stream's lines, each at most `limit` bytes; a longer one becomes a LongLine,
    its rest read in pieces and dropped, so memory stays bounded whatever the file holds."""
    while line := stream.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):  # whole: up to `limit` bytes and its newline
            yield line
            continue
        length = len(line)
        while not line.endswith(b"\n"):
            line = stream.readline(1024 * 1024)
            if not line:
                break
            length += len(line)
        yield LongLine(length)


@dataclass(frozen=True)
class Distribution:
    min: int
    max: int
    mean: float
    median: float
    p5: float
    p95: float

    @classmethod
    def of(cls, values: array[int]) -> Distribution | None:
        if not values:
            return None
        ordered = sorted(values)
        n = len(ordered)
        return cls(min=ordered[0], max=ordered[-1], mean=round(sum(ordered) / n, 1),
                   median=float(statistics.median(ordered)), p5=float(ordered[int(0.05 * (n - 1))]),
                   p95=float(ordered[int(0.95 * (n - 1))]))

    def as_dict(self) -> dict[str, float]:
        return {"min": self.min, "max": self.max, "mean": self.mean, "median": self.median, "p5": self.p5, "p95": self.p95}


class _Bad(Exception):
    """An example's first error: (kind, detail). Later checks of that example are skipped."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or "type" not in part:
                raise _Bad("invalid_content", "each content part needs a type")
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise _Bad("invalid_content", "a text part needs text")
                texts.append(part["text"])
        return "".join(texts)
    raise _Bad("invalid_content", f"content is a {type(content).__name__}")


def _check_tool_calls(tool_calls: Any, called: set[str]) -> str:
    if not isinstance(tool_calls, list) or not tool_calls:
        raise _Bad("invalid_tool_calls", "tool_calls must be a non-empty list")
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise _Bad("invalid_tool_calls", "each call needs function.name")
        if not isinstance(function.get("arguments"), str):
            raise _Bad("invalid_tool_calls", f"arguments of {function['name']} must be a JSON string")
        if call.get("type", "function") != "function":
            raise _Bad("invalid_tool_calls", "type must be 'function'")
        if isinstance(call.get("id"), str):
            called.add(call["id"])
    return json.dumps(tool_calls, separators=(",", ":"))


def _check_tools(example: dict[str, Any]) -> str:
    extra = ""
    if "tools" in example:
        tools = example["tools"]
        if not isinstance(tools, list):
            raise _Bad("invalid_tools", "tools must be a list")
        for tool in tools:
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise _Bad("invalid_tools", "each tool needs type 'function' and function.name")
        extra = json.dumps(tools, separators=(",", ":"))
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        raise _Bad("invalid_parallel_tool_calls")
    return extra


_decode_json = json.JSONDecoder().decode
# Bits of a deferred text: counts towards the example's tokens, towards its trained assistant tokens.
_TOTAL = 1
_ASSISTANT = 2
# Examples per batch whose texts are counted together on the counting thread.
BATCH_EXAMPLES = 256
MAX_CACHED_PROMPTS = 256


class DatasetValidator:
    """Feed it lines; `report()` gives the verdict. Counts with the model's encoding.

    Text is counted a batch of examples at a time, in one tight loop over the
    encoder, which keeps the per-example bookkeeping out of the hot path.
    """

    def __init__(self, *, method: str, model_id: str, is_validation: bool = False) -> None:
        facts = model_facts(model_id)
        self.method = method
        self.model_id = model_id
        self.is_validation = is_validation
        self.encoding_name = facts.encoding
        self.training_context = facts.training_context or DEFAULT_TRAINING_CONTEXT
        self._encode: Callable[[str], list[int]] = encoding_named(facts.encoding).encode_ordinary
        # Per message: the role's tokens and the cookbook's 3 of overhead.
        self._role_tokens = {role: TOKENS_PER_MESSAGE + len(self._encode(role)) for role in ROLES}
        self._prompt_tokens: dict[str, int] = {}
        self.lines = 0
        self.examples = 0
        self.errors: list[dict[str, Any]] = []
        self.error_counts: Counter[str] = Counter()
        self.missing_system = 0
        self.missing_user = 0
        self.over_context_lines: list[int] = []
        self.over_context = 0
        self.billable_tokens = 0
        self.message_counts: array[int] = array("l")
        self.token_counts: array[int] = array("l")
        self.assistant_token_counts: array[int] = array("l")
        # The batch being checked: texts to count, their bits, and per example
        # (line, fixed tokens, fixed assistant tokens, first text, end text).
        self._texts: list[str] = []
        self._bits: list[int] = []
        self._pending: list[tuple[int, int, int, int, int]] = []

    @property
    def encoding(self) -> tiktoken.Encoding:
        return encoding_named(self.encoding_name)

    def _error(self, line: int, kind: str, detail: str = "") -> None:
        self.error_counts[kind] += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append({"line": line, "kind": kind, "detail": detail})

    def _tokens(self, text: str) -> int:
        return len(self._encode(text)) if text else 0

    def _messages(self, messages: Any, *, assistant_only: bool = False, in_total: bool = True) -> tuple[int, int, set[str]]:
        """Check a list of messages, deferring their text; return (fixed tokens, fixed assistant tokens, roles)."""
        if not isinstance(messages, list) or not messages:
            raise _Bad("missing_messages")
        tokens = 0
        assistant_tokens = 0
        roles: set[str] = set()
        called: set[str] = set()
        texts = self._texts
        bits = self._bits
        total_bit = _TOTAL if in_total else 0
        role_tokens = self._role_tokens
        prompt_tokens = self._prompt_tokens
        for index, message in enumerate(messages, start=1):
            if type(message) is not dict:
                raise _Bad("message_not_object", f"message {index}")
            role = message.get("role")
            if role not in ROLES:
                raise _Bad("missing_role" if role is None else "unrecognized_role", f"message {index}: {str(role)[:40]!r}")
            if assistant_only and role != "assistant":
                raise _Bad("dpo_invalid_output", f"message {index} has role {role}")
            content = message.get("content")
            count = role_tokens[role]
            roles.add(role)
            if len(message) == 2 and type(content) is str and role != "tool":
                # The common case (role and text content only): nothing else to check.
                tokens += count
                if role == "system" or role == "developer":
                    # Datasets usually repeat one system prompt in every example: count it once.
                    known = prompt_tokens.get(content)
                    if known is None:
                        if len(prompt_tokens) >= MAX_CACHED_PROMPTS:
                            prompt_tokens.clear()
                        known = prompt_tokens[content] = len(self._encode(content))
                    tokens += known
                elif content:
                    texts.append(content)
                    bits.append(total_bit | _ASSISTANT if role == "assistant" else total_bit)
                continue
            if not message.keys() <= MESSAGE_KEYS:
                unknown = message.keys() - MESSAGE_KEYS
                raise _Bad("unknown_message_key", f"message {index}: {', '.join(sorted(unknown))}")
            tool_calls = message.get("tool_calls")
            if content is None and not (role == "assistant" and (tool_calls or message.get("function_call"))):
                raise _Bad("missing_content", f"message {index} ({role})")
            text = content if isinstance(content, str) else _content_text(content)
            weight = message.get("weight")
            if weight is not None and (role != "assistant" or weight not in (0, 1) or isinstance(weight, bool)):
                raise _Bad("invalid_weight", f"message {index}: weight {weight!r} on {role}")
            trained = role == "assistant" and weight != 0
            if text:
                texts.append(text)
                bits.append(total_bit | _ASSISTANT if trained else total_bit)
            if "name" in message:
                count += TOKENS_PER_NAME + self._tokens(str(message["name"]))
            if tool_calls is not None:
                if role != "assistant":
                    raise _Bad("invalid_tool_calls", f"message {index}: tool_calls on a {role} message")
                calls_tokens = self._tokens(_check_tool_calls(tool_calls, called))
                count += calls_tokens
                if trained:
                    assistant_tokens += calls_tokens
            if role == "tool":
                call_id = message.get("tool_call_id")
                if not isinstance(call_id, str) or not call_id:
                    raise _Bad("tool_call_id_missing", f"message {index}")
                if call_id not in called:
                    raise _Bad("tool_call_id_unknown", f"message {index}: {call_id[:60]}")
            tokens += count
        return (tokens if in_total else 0), assistant_tokens, roles

    def _example(self, example: Any) -> tuple[int, int, int, set[str]]:
        """(messages, fixed tokens, fixed assistant tokens, roles) of one example, or _Bad."""
        if not isinstance(example, dict):
            raise _Bad("not_an_object")
        if self.method == "dpo":
            unknown = example.keys() - DPO_KEYS
            if unknown:
                raise _Bad("unknown_key", ", ".join(sorted(unknown)))
            inp = example.get("input")
            if not isinstance(inp, dict) or not isinstance(inp.get("messages"), list) or not inp["messages"]:
                raise _Bad("dpo_missing_input")
            unknown = inp.keys() - DPO_INPUT_KEYS
            if unknown:
                raise _Bad("unknown_key", "input: " + ", ".join(sorted(unknown)))
            tools_tokens = self._tokens(_check_tools(inp))
            tokens, _, roles = self._messages(inp["messages"])
            last = inp["messages"][-1]
            if last.get("role") != "user":
                raise _Bad("dpo_input_not_ending_with_user", f"last input message is {last.get('role')}")
            assistant = 0
            for key in ("preferred_output", "non_preferred_output"):
                output = example.get(key)
                if not isinstance(output, list) or len(output) != 1:
                    raise _Bad("dpo_invalid_output", f"{key} must be a list of one assistant message")
                try:
                    # The input and the preferred answer make the trained sequence; both answers are learned from.
                    fixed, fixed_assistant, _ = self._messages(output, assistant_only=True,
                                                               in_total=key == "preferred_output")
                except _Bad as bad:
                    raise _Bad("dpo_invalid_output", f"{key}: {bad.detail or ERROR_KINDS.get(bad.kind, bad.kind)}") from None
                tokens += fixed
                assistant += fixed_assistant
            return len(inp["messages"]) + 1, tokens + tools_tokens + REPLY_PRIMING, assistant, roles | {"assistant"}
        if not example.keys() <= SUPERVISED_KEYS:
            raise _Bad("unknown_key", ", ".join(sorted(example.keys() - SUPERVISED_KEYS)))
        if "messages" not in example:
            raise _Bad("missing_messages")
        tools_tokens = self._tokens(_check_tools(example)) if len(example) > 1 else 0
        tokens, assistant_tokens, roles = self._messages(example["messages"])
        if "assistant" not in roles:
            raise _Bad("missing_assistant_message")
        return len(example["messages"]), tokens + tools_tokens + REPLY_PRIMING, assistant_tokens, roles

    def feed(self, line_no: int, raw: bytes | str) -> None:
        self.lines = line_no
        try:
            text = raw.decode() if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            self._error(line_no, "invalid_json", "the line is not UTF-8 text")
            return
        if not text or text.isspace():
            return
        try:
            example = _decode_json(text)
        except ValueError as error:
            self._error(line_no, "invalid_json", str(error)[:120])
            return
        self.feed_parsed(line_no, example)

    def feed_parsed(self, line_no: int, example: Any) -> None:
        first_text = len(self._texts)
        try:
            n_messages, fixed, fixed_assistant, roles = self._example(example)
        except _Bad as bad:
            del self._texts[first_text:], self._bits[first_text:]
            self._error(line_no, bad.kind, bad.detail)
            return
        self.examples += 1
        if "system" not in roles and "developer" not in roles:
            self.missing_system += 1
        if "user" not in roles:
            self.missing_user += 1
        self.message_counts.append(n_messages)
        self._pending.append((line_no, fixed, fixed_assistant, first_text, len(self._texts)))
        if len(self._pending) >= BATCH_EXAMPLES:
            self._hand_over_batch()

    def feed_lines(self, lines: Iterable[bytes | str | LongLine], on_progress: Callable[[int, int], None] | None = None,
                   progress_every: int = 2000) -> None:
        """Feed a whole stream. Supervised examples made only of plain system/user/assistant
        text messages (most lines of most files) take a fast path here with the same checks and
        counts; anything else goes through the full checks of `feed_parsed`."""
        supervised = self.method == "supervised"
        decode = _decode_json
        role_tokens = self._role_tokens
        prompt_tokens = self._prompt_tokens
        encode = self._encode
        read = 0
        line_no = 0
        misses = 0
        cache_prompts = True
        for line_no, raw in enumerate(lines, start=1):
            if isinstance(raw, LongLine):
                read += raw.length
                self._error(line_no, "line_too_long",
                            f"the line is {raw.length:,} bytes; the limit is {MAX_LINE_BYTES:,} bytes a line")
                continue
            read += len(raw)
            if on_progress is not None and line_no % progress_every == 0:
                on_progress(line_no, read)
            try:
                text = raw.decode() if isinstance(raw, bytes) else raw
            except UnicodeDecodeError:
                self._error(line_no, "invalid_json", "the line is not UTF-8 text")
                continue
            if not text or text.isspace():
                continue
            try:
                example = decode(text)
            except ValueError as error:
                self._error(line_no, "invalid_json", str(error)[:120])
                continue
            messages = example.get("messages") if supervised and type(example) is dict and len(example) == 1 else None
            if type(messages) is not list or not messages:
                self.feed_parsed(line_no, example)
                continue
            texts = self._texts
            bits = self._bits
            mark = len(texts)
            fixed = REPLY_PRIMING
            has_system = has_user = has_assistant = False
            for message in messages:
                if type(message) is not dict or len(message) != 2:
                    break
                content = message.get("content")
                if type(content) is not str:
                    break
                role = message.get("role")
                if role == "assistant":
                    has_assistant = True
                    texts.append(content)
                    bits.append(_TOTAL | _ASSISTANT)
                elif role == "user":
                    has_user = True
                    texts.append(content)
                    bits.append(_TOTAL)
                elif role == "system" or role == "developer":
                    has_system = True
                    known = prompt_tokens.get(content) if cache_prompts else None
                    if known is not None:
                        fixed += known
                    elif cache_prompts:
                        misses += 1
                        if len(prompt_tokens) >= MAX_CACHED_PROMPTS:
                            prompt_tokens.clear()
                            # Mostly new prompts: the cache costs more than it saves; count them with the rest.
                            cache_prompts = misses < line_no // 2
                        known = prompt_tokens[content] = len(encode(content))
                        fixed += known
                    else:
                        texts.append(content)
                        bits.append(_TOTAL)
                else:
                    break
                fixed += role_tokens[role]
            else:
                if has_assistant:
                    self.examples += 1
                    if not has_system:
                        self.missing_system += 1
                    if not has_user:
                        self.missing_user += 1
                    self.message_counts.append(len(messages))
                    self._pending.append((line_no, fixed, 0, mark, len(texts)))
                    if len(self._pending) >= BATCH_EXAMPLES:
                        self._hand_over_batch()
                    continue
            # Not the plain case: undo and check it fully.
            del texts[mark:], bits[mark:]
            self.feed_parsed(line_no, example)
        self.lines = max(self.lines, line_no)

    def _hand_over_batch(self) -> None:
        self._count_batch(self._texts, self._bits, self._pending)
        self._texts, self._bits, self._pending = [], [], []

    def _count_batch(self, texts: list[str], bits: list[int], pending: list[tuple[int, int, int, int, int]]) -> None:
        encode = self._encode
        lengths = [len(encode(text)) for text in texts]
        # Prefix sums turn each example's share into two subtractions.
        totals = [0, *accumulate(lengths if all(bit & _TOTAL for bit in bits)
                                 else [n if bit & _TOTAL else 0 for n, bit in zip(lengths, bits, strict=True)])]
        trained = [0, *accumulate([n if bit & _ASSISTANT else 0 for n, bit in zip(lengths, bits, strict=True)])]
        context = self.training_context
        token_counts = self.token_counts
        assistant_counts = self.assistant_token_counts
        billable = 0
        for line_no, tokens, assistant, first, end in pending:
            tokens += totals[end] - totals[first]
            if tokens > context:
                self.over_context += 1
                if len(self.over_context_lines) < MAX_LISTED_LINES:
                    self.over_context_lines.append(line_no)
                billable += context
            else:
                billable += tokens
            token_counts.append(tokens)
            assistant_counts.append(assistant + trained[end] - trained[first])
        self.billable_tokens += billable

    def finish(self) -> None:
        self._hand_over_batch()

    def report(self) -> dict[str, Any]:
        self.finish()
        if not self.is_validation and not self.error_counts and self.examples < MIN_TRAINING_EXAMPLES:
            self._error(0, "too_few_examples",
                        f"{self.examples} example(s); a training file needs at least {MIN_TRAINING_EXAMPLES}")
        distributions = {}
        for name, values in (("messages", self.message_counts), ("tokens", self.token_counts),
                             ("assistant_tokens", self.assistant_token_counts)):
            dist = Distribution.of(values)
            distributions[name] = dist.as_dict() if dist else None
        return {
            "valid": not self.error_counts,
            "method": self.method,
            "model_id": self.model_id,
            "encoding": self.encoding_name,
            "training_context": self.training_context,
            "lines": self.lines,
            "examples": self.examples,
            "errors": self.errors,
            "error_counts": dict(self.error_counts),
            "errors_listed": len(self.errors),
            "errors_total": sum(self.error_counts.values()),
            "missing_system": self.missing_system,
            "missing_user": self.missing_user,
            "over_context": self.over_context,
            "over_context_lines": self.over_context_lines,
            "billable_tokens": self.billable_tokens,
            "distributions": distributions,
        }


def validate_lines(lines: Iterable[bytes | str | LongLine], *, method: str, model_id: str, is_validation: bool = False,
                   on_progress: Callable[[int, int], None] | None = None, progress_every: int = 2000) -> dict[str, Any]:
    """Validate a JSONL stream. `on_progress(lines_read, bytes_read)` is called every `progress_every` lines."""
    validator = DatasetValidator(method=method, model_id=model_id, is_validation=is_validation)
    validator.feed_lines(lines, on_progress=on_progress, progress_every=progress_every)
    return validator.report()


@dataclass(frozen=True)
class CostEstimate:
    examples: int
    epochs: int
    epochs_source: str  # "heuristic" or "chosen"
    billable_tokens: int
    trained_tokens: int
    price_per_million: Decimal | None
    cost_usd: Decimal | None


def default_epochs(examples: int) -> int:
    """The cookbook's heuristic: aim at 3 epochs, but at least 100 and at most 25,000 examples seen."""
    epochs = TARGET_EPOCHS
    if examples == 0:
        return epochs
    if examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // examples)
    elif examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // examples)
    return epochs


def estimate_cost(*, examples: int, billable_tokens: int, model_id: str, n_epochs: int | None = None) -> CostEstimate:
    epochs = n_epochs if n_epochs else default_epochs(examples)
    trained = billable_tokens * epochs
    price = model_facts(model_id).price("training")
    return CostEstimate(examples=examples, epochs=epochs, epochs_source="chosen" if n_epochs else "heuristic",
                        billable_tokens=billable_tokens, trained_tokens=trained, price_per_million=price,
                        cost_usd=cost_usd(trained, price))
