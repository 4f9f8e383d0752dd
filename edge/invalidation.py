"""CloudFront-style invalidations: exact paths or `prefix*`, applied to every worker's cache.

With one worker the admin listener shares the process and invalidates the cache directly,
reporting how many stored responses went. With several workers it appends the paths to a
journal file that every worker follows (checked every 50 ms), so an invalidation lands in
all of them within milliseconds; the count is then each worker's own, written to its log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

logger = logging.getLogger("edge.invalidation")

FOLLOW_INTERVAL_SECONDS = 0.05


def check_paths(paths: object) -> list[str]:
    """The paths of an invalidation request, or ValueError saying what is wrong."""
    if not isinstance(paths, list) or not paths:
        raise ValueError(f"expected 'paths': a non-empty list of paths, found {paths!r}")
    checked = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"expected paths starting with '/', found {path!r}")
        if "*" in path[:-1]:
            raise ValueError(f"a '*' may only end a path (CloudFront's rule), found {path!r}")
        checked.append(path)
    return checked


class InvalidationJournal:
    """An append-only JSONL file of invalidations that workers follow."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, paths: Sequence[str]) -> str:
        entry_id = uuid.uuid4().hex[:14].upper()
        line = orjson.dumps({"id": entry_id, "paths": list(paths), "time": time.time()})
        with self.path.open("ab") as journal:
            journal.write(line + b"\n")
            journal.flush()
            os.fsync(journal.fileno())
        return entry_id

    async def follow(self, apply: Callable[[str], int]) -> None:
        """Apply every invalidation appended from now on (runs until cancelled)."""
        offset = self.path.stat().st_size if self.path.exists() else 0
        while True:
            await asyncio.sleep(FOLLOW_INTERVAL_SECONDS)
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                continue
            if size <= offset:
                continue
            with self.path.open("rb") as journal:
                journal.seek(offset)
                data = journal.read(size - offset)
            complete = data[: data.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.splitlines():
                entry = orjson.loads(line)
                removed = sum(apply(path) for path in entry["paths"])
                logger.info(
                    "invalidation %s (%s): %d stored responses removed in worker %d",
                    entry["id"],
                    ", ".join(entry["paths"]),
                    removed,
                    os.getpid(),
                )
