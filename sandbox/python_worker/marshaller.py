"""Lambda's marshaller inside an environment: a handler's result to JSON bytes, within a limit.

orjson writes into one buffer it grows as it goes, and reserves a string's worst case up front:
encoding a result takes about 16 times its JSON size in address space (measured with orjson
3.x: 8 MiB of output needed 134 MiB). Under the environment's RLIMIT_AS a result of a few MB
makes an allocation fail, and orjson does not raise MemoryError then: the process dies of
SIGSEGV, and the caller sees Runtime.ExitError where Lambda answers
`Function.ResponseSizeTooLarge`.

So a result goes to orjson in one call only when a walk with an early exit shows it is small
(its JSON is at least `json_size_floor` bytes). A larger one is encoded in pieces, each small
enough for orjson's reservation: runs of small items in one orjson call, long strings in
slices (JSON escapes one code point at a time, so slices encode to the same bytes). The pieces
are kept while their total is within the limit and only counted after that, so an oversized
result is measured exactly without ever being held, and a result within the limit comes out
byte for byte as `orjson.dumps` would write it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

# Results whose JSON is at most this floor are encoded in one orjson call: ~64 KiB of floor is
# at most a few MB of output (escapes and long numbers), a reservation any function affords.
SMALL_BYTES = 64 * 1024
# Long strings are encoded this many code points at a time.
STRING_SLICE_CHARS = 64 * 1024
# orjson's nesting limit: 254 containers deep encode, 255 raise "Recursion limit reached".
MAX_DEPTH = 254

Default = Callable[[Any], Any]


def json_size_floor(value: Any, stop_above: int) -> tuple[int, int]:
    """(a lower bound of the size of `value`'s JSON, its nesting depth), or as soon as the
    bound passes `stop_above`, (that partial bound, the depth seen so far).

    A string costs at least its length plus quotes (UTF-8 and escapes only add), any other leaf
    at least one byte, a container its brackets and separators. Each visited node adds at least
    a byte, so the walk stops after at most `stop_above` nodes, whatever the value's shape.
    """
    total = 0
    depth = 0  # levels of the tree that hold a container
    level = [value]
    while level:
        below: list[Any] = []
        extend = below.extend
        containers = False
        for node in level:
            if isinstance(node, str):
                total += len(node) + 2
            elif isinstance(node, dict):
                containers = True
                total += 1 + 2 * len(node)  # braces, then a colon and a comma (or brace) per item
                for key in node:
                    total += len(key) + 2 if isinstance(key, str) else 1
                extend(node.values())
            elif isinstance(node, list | tuple):
                containers = True
                total += 1 + max(1, len(node))
                extend(node)
            else:
                total += 1
            if total > stop_above:
                return total, depth + containers
        depth += containers
        level = below
    return total, depth


class _Sink:
    """Collects output pieces while they fit in `limit` bytes; counts them after that."""

    __slots__ = ("limit", "parts", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.parts: list[bytes] | None = []

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.parts is not None:
            if self.size > self.limit:
                self.parts = None  # over the limit: from now on only the size matters
            else:
                self.parts.append(piece)


class _Encoder:
    def __init__(self, sink: _Sink, default: Default, option: int) -> None:
        self.sink = sink
        self.default = default
        self.option = option

    def dumps(self, value: Any) -> bytes:
        return orjson.dumps(value, default=self.default, option=self.option)

    def value(self, value: Any, depth: int) -> None:
        """Encode `value`, found inside `depth` containers."""
        floor, nesting = json_size_floor(value, SMALL_BYTES)
        if floor <= SMALL_BYTES:
            if depth + nesting > MAX_DEPTH:
                raise orjson.JSONEncodeError("Recursion limit reached")
            self.sink.add(self.dumps(value))
        elif isinstance(value, str):
            self.string(value)
        elif isinstance(value, dict):
            self.mapping(value, depth + 1)
        elif isinstance(value, list | tuple):
            self.sequence(value, depth + 1)
        else:
            self.sink.add(self.dumps(value))

    def string(self, text: str) -> None:
        add = self.sink.add
        add(b'"')
        for start in range(0, len(text), STRING_SLICE_CHARS):
            add(self.dumps(text[start : start + STRING_SLICE_CHARS])[1:-1])
        add(b'"')

    def key(self, key: Any) -> bytes:
        if isinstance(key, str) and len(key) > STRING_SLICE_CHARS:
            # Rare enough not to matter: a long key is encoded like a long string value.
            inner = _Sink(1 << 62)
            _Encoder(inner, self.default, self.option).string(key)
            return b"".join(inner.parts or ())
        # Through a one-item dict, so that OPT_NON_STR_KEYS renders the key as orjson does.
        return self.dumps({key: None})[1:-6]

    def mapping(self, mapping: dict[Any, Any], depth: int) -> None:
        if depth > MAX_DEPTH:
            raise orjson.JSONEncodeError("Recursion limit reached")
        self.sink.add(b"{")
        self.items(mapping.items(), depth, is_mapping=True)
        self.sink.add(b"}")

    def sequence(self, items: list[Any] | tuple[Any, ...], depth: int) -> None:
        if depth > MAX_DEPTH:
            raise orjson.JSONEncodeError("Recursion limit reached")
        self.sink.add(b"[")
        self.items(((None, item) for item in items), depth, is_mapping=False)
        self.sink.add(b"]")

    def items(self, pairs: Iterable[tuple[Any, Any]], depth: int, *, is_mapping: bool) -> None:
        """The members of a container: runs of small ones in one orjson call, the others one
        by one."""
        add = self.sink.add
        batch: list[tuple[Any, Any]] = []
        batch_floor = 0
        first = True

        def flush() -> None:
            nonlocal batch, batch_floor, first
            if batch:
                run = dict(batch) if is_mapping else [item for _, item in batch]
                if not first:
                    add(b",")
                add(self.dumps(run)[1:-1])
                first = False
                batch, batch_floor = [], 0

        for key, item in pairs:
            floor, nesting = json_size_floor(item, SMALL_BYTES)
            if is_mapping:
                floor += len(key) + 2 if isinstance(key, str) else 1
            if depth + nesting > MAX_DEPTH:
                raise orjson.JSONEncodeError("Recursion limit reached")
            if floor <= SMALL_BYTES and not (
                is_mapping and isinstance(key, str) and len(key) > STRING_SLICE_CHARS
            ):
                if batch_floor + floor > SMALL_BYTES:
                    flush()
                batch.append((key, item))
                batch_floor += floor
                continue
            flush()
            if not first:
                add(b",")
            first = False
            if is_mapping:
                add(self.key(key))
                add(b":")
            self.value(item, depth)
        flush()


def marshal_within(
    value: Any, limit_bytes: int, *, default: Default, option: int, known_small: bool = False
) -> bytes | int:
    """`value`'s JSON (the bytes `orjson.dumps(value, default=..., option=...)` writes) when it
    is at most `limit_bytes` long, else its exact length in bytes.

    `known_small`: the caller knows the value cannot hold enough data for orjson's reservation
    to fail (the walk that would show it costs ~10 µs for a 1 KB result, 10-20x orjson's
    time). Raises `orjson.JSONEncodeError` as orjson would (a type it cannot encode, nesting
    deeper than orjson allows).
    """
    if known_small:
        payload = orjson.dumps(value, default=default, option=option)
        return payload if len(payload) <= limit_bytes else len(payload)
    floor, _ = json_size_floor(value, SMALL_BYTES)
    if floor <= SMALL_BYTES:
        payload = orjson.dumps(value, default=default, option=option)
        return payload if len(payload) <= limit_bytes else len(payload)
    sink = _Sink(limit_bytes)
    _Encoder(sink, default, option).value(value, 0)
    if sink.parts is None:
        return sink.size
    return b"".join(sink.parts)
