"""CloudFront-style invalidations: exact paths or `prefix*`, applied to every worker's cache.

With one worker the admin listener shares the process and invalidates the cache directly,
reporting how many stored responses went. With several workers it appends the paths to a
journal file that every worker follows (checked every 50 ms), so an invalidation lands in
all of them within milliseconds; the count is then each worker's own, written to its log.

Bounds, from CloudFront's where it has them: a request body of at most 1 MiB, at most 3,000
paths a request, and (one worker) at most 3,000 paths in progress at once. A batch
costs one pass over the store whatever its number of wildcards, so CloudFront's separate limit
of 15 wildcard *paths* in progress becomes 15 *batches* with wildcards in progress here: each
is one pass, and that bounds the passes queued behind a slow one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final

import orjson

logger = logging.getLogger("edge.invalidation")

FOLLOW_INTERVAL_SECONDS = 0.05
# CloudFront: at most 3,000 paths per invalidation request, and in progress at once.
MAX_PATHS: Final = 3000
MAX_PATHS_IN_PROGRESS: Final = 3000
# CloudFront allows 15 wildcard paths in progress; a batch here is one pass (see above).
MAX_WILDCARD_BATCHES_IN_PROGRESS: Final = 15
# 3,000 paths of about 340 bytes each; anything larger is refused before it is read whole.
MAX_INVALIDATION_BODY_BYTES: Final = 1024 * 1024
# A journal line holds one request's paths: its JSON is never larger than the request's body.
_JOURNAL_READ_BYTES: Final = 4 * MAX_INVALIDATION_BODY_BYTES

Apply = Callable[[Sequence[str]], Awaitable[int]]


class InvalidationRefused(ValueError):
    """A request CloudFront would refuse: `code` is CloudFront's error code, `message` its
    words (with what was found)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def too_large(limit_bytes: int) -> InvalidationRefused:
    return InvalidationRefused(
        "BatchTooLarge",
        f"Invalidation batch specified is too large: the request body is over {limit_bytes} bytes.",
    )


def _too_many(found: str) -> InvalidationRefused:
    return InvalidationRefused(
        "TooManyInvalidationsInProgress",
        "Processing your request will cause you to exceed the maximum number of in-progress "
        f"invalidations ({found}).",
    )


def check_paths(paths: object) -> list[str]:
    """The paths of an invalidation request, or InvalidationRefused saying what is wrong."""
    if not isinstance(paths, list) or not paths:
        raise InvalidationRefused(
            "InvalidArgument", f"expected 'paths': a non-empty list of paths, found {paths!r}"
        )
    if len(paths) > MAX_PATHS:
        raise _too_many(f"{len(paths)} paths in one request; at most {MAX_PATHS}")
    checked = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidationRefused(
                "InvalidArgument", f"expected paths starting with '/', found {path!r}"
            )
        if "*" in path[:-1]:
            raise InvalidationRefused(
                "InvalidArgument",
                f"a '*' may only end a path (CloudFront's rule), found {path!r}",
            )
        checked.append(path)
    return checked


class Invalidator:
    """Runs invalidation batches in this process one at a time, within the in-progress limits
    (a batch waiting for its turn counts as in progress)."""

    def __init__(self, apply: Apply) -> None:
        self._apply = apply
        self._turn = asyncio.Lock()
        self._paths_in_progress = 0
        self._wildcard_batches_in_progress = 0

    async def run(self, paths: Sequence[str]) -> int:
        """Apply `paths`; the number of stored responses removed. InvalidationRefused when
        it would pass a limit."""
        wildcard = any(path.endswith("*") for path in paths)
        if self._paths_in_progress + len(paths) > MAX_PATHS_IN_PROGRESS:
            raise _too_many(
                f"{len(paths)} more paths with {self._paths_in_progress} in progress; "
                f"at most {MAX_PATHS_IN_PROGRESS}"
            )
        if wildcard and self._wildcard_batches_in_progress >= MAX_WILDCARD_BATCHES_IN_PROGRESS:
            raise _too_many(
                f"{self._wildcard_batches_in_progress} requests with wildcards in progress; "
                f"at most {MAX_WILDCARD_BATCHES_IN_PROGRESS}"
            )
        self._paths_in_progress += len(paths)
        self._wildcard_batches_in_progress += wildcard
        try:
            async with self._turn:
                return await self._apply(paths)
        finally:
            self._paths_in_progress -= len(paths)
            self._wildcard_batches_in_progress -= wildcard


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

    async def follow(self, apply: Apply) -> None:
        """Apply every invalidation appended from now on, one batch at a time, each within
        the bounds of a request (runs until cancelled)."""
        offset = self.path.stat().st_size if self.path.exists() else 0
        while True:
            await asyncio.sleep(FOLLOW_INTERVAL_SECONDS)
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                continue
            while offset < size:
                with self.path.open("rb") as journal:
                    journal.seek(offset)
                    data = journal.read(min(size - offset, _JOURNAL_READ_BYTES))
                end = data.rfind(b"\n") + 1
                if end == 0:
                    if len(data) < _JOURNAL_READ_BYTES:
                        break  # the rest of a line still being written
                    logger.error("invalidation journal: a line over %d bytes skipped", len(data))
                    offset += len(data)
                    continue
                offset += end
                for line in data[:end].splitlines():
                    await self._apply_line(line, apply)

    @staticmethod
    async def _apply_line(line: bytes, apply: Apply) -> None:
        try:
            entry = orjson.loads(line)
            paths = check_paths(entry["paths"])
        except (orjson.JSONDecodeError, InvalidationRefused, KeyError, TypeError) as exc:
            logger.error("invalidation journal: an entry skipped: %s", exc)
            return
        removed = await apply(paths)
        logger.info(
            "invalidation %s (%s): %d stored responses removed in worker %d",
            entry.get("id"),
            ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else ""),
            removed,
            os.getpid(),
        )
