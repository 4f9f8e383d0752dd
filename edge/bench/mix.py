"""The request mix: what a load test sends, read from a JSON or TOML file, as raw bytes.

A mix is a list of requests, each `method`, `path`, `headers`, `body` and `weight`:

    [{"path": "/", "weight": 3}, {"method": "POST", "path": "/api", "body": "{}", "weight": 1}]

(JSON: that list, or {"requests": [...]}; TOML: `[[request]]` tables.) Each request's bytes
are built once; the order they are sent in is a fixed cycle in which each request appears as
often as its weight says, spread evenly (smooth weighted round-robin), so that any stretch of
a run honours the weights without drawing a random number per request.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FIELDS = {"name", "method", "path", "headers", "body", "weight"}
# The longest send cycle: weights are scaled down to fit it.
_MAX_CYCLE = 10_000


class MixError(ValueError):
    """A mix file that cannot be used."""


@dataclass(frozen=True)
class MixEntry:
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    weight: float = 1.0
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or f"{self.method} {self.path}"

    def raw(self, host: str) -> bytes:
        """The request as HTTP/1.1 bytes for `host` (keep-alive; Content-Length framed)."""
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        given = {name.lower() for name, _ in self.headers}
        lines += [f"{name}: {value}" for name, value in self.headers]
        framed = self.body or self.method in ("POST", "PUT", "PATCH")
        if framed and "content-length" not in given:
            lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("latin-1") + self.body


@dataclass(frozen=True)
class Mix:
    entries: tuple[MixEntry, ...] = field(default_factory=lambda: (MixEntry(),))

    def cycle(self) -> list[int]:
        """Entry indexes in send order, each as often as its weight (scaled to whole counts)."""
        weights = [entry.weight for entry in self.entries]
        smallest = min(weight for weight in weights if weight > 0)
        scale = 1 / smallest
        if sum(weights) * scale > _MAX_CYCLE:
            scale = _MAX_CYCLE / sum(weights)
        counts = [max(1, round(weight * scale)) if weight > 0 else 0 for weight in weights]
        total = sum(counts)
        current = [0] * len(counts)
        order: list[int] = []
        for _ in range(total):
            for index, count in enumerate(counts):
                current[index] += count
            best = max(range(len(counts)), key=current.__getitem__)
            current[best] -= total
            order.append(best)
        return order


def _entry(raw: Any, where: str) -> MixEntry:
    if not isinstance(raw, dict):
        raise MixError(f"{where}: expected a table of method, path, headers, body, weight")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise MixError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(_FIELDS)})")
    path = str(raw.get("path", "/"))
    if not path.startswith("/"):
        raise MixError(f"{where}.path: expected a path starting with '/', found {path!r}")
    headers = raw.get("headers", {})
    if isinstance(headers, dict):
        pairs = tuple((str(k), str(v)) for k, v in headers.items())
    elif isinstance(headers, list):
        pairs = tuple((str(k), str(v)) for k, v in headers)
    else:
        raise MixError(f"{where}.headers: expected a table of NAME = VALUE")
    weight = raw.get("weight", 1)
    if not isinstance(weight, int | float) or weight < 0:
        raise MixError(f"{where}.weight: expected a number >= 0, found {weight!r}")
    body = raw.get("body", "")
    return MixEntry(
        method=str(raw.get("method", "GET")).upper(),
        path=path,
        headers=pairs,
        body=body.encode() if isinstance(body, str) else json.dumps(body).encode(),
        weight=float(weight),
        name=str(raw.get("name", "")),
    )


def load_mix(path: Path) -> Mix:
    """The mix in `path` (.json or .toml); MixError when it is malformed."""
    try:
        text = path.read_text(encoding="utf-8")
        document: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise MixError(f"{path}: {exc}") from None
    if isinstance(document, dict):
        document = document.get("requests", document.get("request"))
    if not isinstance(document, list) or not document:
        raise MixError(f"{path}: expected a non-empty list of requests")
    entries = tuple(_entry(raw, f"{path}[{index}]") for index, raw in enumerate(document))
    if not any(entry.weight > 0 for entry in entries):
        raise MixError(f"{path}: every weight is 0")
    return Mix(entries)


def single(path: str) -> Mix:
    """The mix of one GET of `path`."""
    return Mix((MixEntry(path=path or "/"),))
