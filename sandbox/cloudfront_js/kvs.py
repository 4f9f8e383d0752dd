"""A CloudFront KeyValueStore read from a file in AWS's import format, reloaded when it changes.

`{"data": [{"key": "k", "value": "v"}, ...]}`: keys at most 512 bytes, values at most 1 KB, the
whole store at most 5 MB (CloudFront's quotas), each refused with `KeyValueStoreInvalid`.
`snapshot()` gives the current contents; it looks at the file at most once a second and swaps
in a new, fully validated snapshot, so a run sees the old contents or the new ones, never a mix.
A file that turns invalid keeps the last good contents (and the error is kept in `last_error`).
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

MAX_KEY_BYTES: Final = 512
MAX_VALUE_BYTES: Final = 1024
MAX_STORE_BYTES: Final = 5 * 1024 * 1024
RELOAD_INTERVAL_SECONDS: Final = 1.0


class KeyValueStoreInvalid(ValueError):
    """The store's file cannot be loaded; the message names the entry and the limit."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One consistent state of a store."""

    data: dict[str, str]
    created: str
    updated: str

    def meta(self) -> dict[str, Any]:
        return {
            "creationDateTime": self.created,
            "lastUpdatedDateTime": self.updated,
            "keyCount": len(self.data),
        }


def parse_store(text: bytes, where: str = "the store") -> dict[str, str]:
    """The entries of an import file; raises KeyValueStoreInvalid."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise KeyValueStoreInvalid(f"{where}: not JSON: {exc}") from None
    entries = document.get("data") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeyValueStoreInvalid(
            f'{where}: expected {{"data": [{{"key": ..., "value": ...}}, ...]}} '
            "(CloudFront's import format)"
        )
    data: dict[str, str] = {}
    total = 0
    for index, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("key"), str)
            and isinstance(entry.get("value"), str)
        ):
            raise KeyValueStoreInvalid(
                f"{where}: data[{index}]: expected an object with string 'key' and 'value'"
            )
        key, value = entry["key"], entry["value"]
        check_entry(key, value, f"{where}: data[{index}]")
        total += len(key.encode()) + len(value.encode())
        if total > MAX_STORE_BYTES:
            raise KeyValueStoreInvalid(
                f"{where}: more than {MAX_STORE_BYTES} bytes of keys and values (CloudFront's "
                "5 MB limit per store)"
            )
        data[key] = value
    return data


def check_entry(key: str, value: str, where: str) -> None:
    """Refuse a key or value over CloudFront's limits."""
    key_bytes, value_bytes = len(key.encode()), len(value.encode())
    if not 1 <= key_bytes <= MAX_KEY_BYTES:
        raise KeyValueStoreInvalid(
            f"{where}: key {key[:40]!r}: expected 1 to {MAX_KEY_BYTES} bytes, found {key_bytes}"
        )
    if value_bytes > MAX_VALUE_BYTES:
        raise KeyValueStoreInvalid(
            f"{where}: the value of {key[:40]!r}: expected at most {MAX_VALUE_BYTES} bytes "
            f"(1 KB), found {value_bytes}"
        )


def _iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class KeyValueStore:
    """The store kept in `path`; raises KeyValueStoreInvalid at construction for a bad file."""

    def __init__(self, name: str, path: Path, *, clock: Any = time.monotonic) -> None:
        self.name = name
        self.path = path
        self._clock = clock
        self.last_error: str | None = None
        stat = path.stat()
        self._signature = (stat.st_mtime_ns, stat.st_size)
        created = _iso(stat.st_mtime)
        self._snapshot = Snapshot(parse_store(path.read_bytes(), str(path)), created, created)
        self._checked = clock()

    def snapshot(self) -> Snapshot:
        """The current contents (reloaded first when the file changed, at most once a second)."""
        now = self._clock()
        if now - self._checked >= RELOAD_INTERVAL_SECONDS:
            self._checked = now
            self._reload()
        return self._snapshot

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
            signature = (stat.st_mtime_ns, stat.st_size)
            if signature == self._signature:
                return
            data = parse_store(self.path.read_bytes(), str(self.path))
        except (OSError, KeyValueStoreInvalid) as exc:
            self.last_error = str(exc)
            return
        self._signature = signature
        self.last_error = None
        self._snapshot = Snapshot(data, self._snapshot.created, _iso(stat.st_mtime))


def edit_store(
    text: bytes, *, put: tuple[str, str] | None = None, delete: str | None = None
) -> tuple[bytes, dict[str, str], bool]:
    """A store file's new text after putting one key or deleting one, in the import format:
    (text, entries, whether anything changed). Raises KeyValueStoreInvalid (a ValueError) for
    a file or an entry over CloudFront's limits (the caller then leaves the file as it was)."""
    data = parse_store(text)
    changed = False
    if put is not None:
        key, value = put
        check_entry(key, value, "the entry")
        changed = data.get(key) != value
        data[key] = value
    if delete is not None and delete in data:
        del data[delete]
        changed = True
    document = {"data": [{"key": k, "value": v} for k, v in data.items()]}
    new_text = orjson.dumps(document, option=orjson.OPT_INDENT_2)
    parse_store(new_text)  # the whole store within 5 MB
    return new_text, data, changed
