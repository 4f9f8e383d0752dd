"""The bounded cache store: stored responses in memory, large bodies on disk, LRU both.

The only stateful part of the cache. Every stored response is one *variant*: a primary
`CacheKey` plus the values of the request fields its Vary names (RFC 9111 §4.1); a key holds a
few variants.

Budgets are hard limits, whatever the traffic:
- Memory: a `cachetools.LRUCache` sized by an estimate of each entry's bytes (body, headers and
  object overhead); bodies still streaming in are reserved against the same budget, so stored +
  in-flight never passes `memory_bytes`.
- Disk: bodies above `memory_object_max_bytes` go to files in `disk_directory`, under a budget
  of their own (`disk_bytes`), also LRU, also counting bodies still being written.

A response becomes visible only when its body is complete: a `StoreWriter` collects it while it
streams to the viewer (`tee`) and commits at the last byte. Invalidation takes exact paths and
CloudFront wildcards (`/images/*`), a whole batch in one pass over the stored paths, in slices
a caller can interleave with other work, and reports how many stored responses it removed.

Several processes (hypercorn workers) may share one disk directory: each names its files with
its pid, and at start removes only the files of processes that are gone.

Disk writes go straight to the page cache from the event loop (one `os.write` per chunk, a few
microseconds for 64 KiB); reads of disk bodies above 64 KiB go through the loop's executor.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cachetools import LRUCache

from origin_proxy.cache.policy import CacheKey, Freshness, Storable, selecting_values
from origin_proxy.message import Headers, single_chunk

__all__ = ["CacheStats", "CacheStore", "Entry", "StoreWriter", "VariantId"]

# Estimated Python object overhead, so the memory budget bounds real memory: an entry with its
# dataclasses, index dicts and LRU bookkeeping; and one header pair (a tuple and two bytes
# objects). Measured with tracemalloc on 20,000 entries: the estimate is 0-30 % above the
# real allocation, never below.
_ENTRY_OVERHEAD_BYTES: Final = 1408
_HEADER_OVERHEAD_BYTES: Final = 160
_INLINE_READ_BYTES: Final = 64 * 1024
_READ_CHUNK_BYTES: Final = 256 * 1024
_FILE_PREFIX: Final = "body-"
# Work between two pauses of a batch invalidation (a stored path looked at or a response
# removed: about two microseconds each), so the event loop is held a quarter of a millisecond
# at a time: a request served meanwhile needs several turns of the loop.
INVALIDATION_SLICE_UNITS: Final = 128

VariantId = tuple[CacheKey, tuple[bytes, ...], tuple[bytes | None, ...]]


@dataclass(slots=True, eq=False)
class Entry:
    """One stored response. `body` is in memory, or `body_path` names its file on disk."""

    key: CacheKey
    status: int
    reason: bytes
    headers: Headers
    freshness: Freshness
    vary: tuple[bytes, ...]
    vary_values: tuple[bytes | None, ...]
    body: bytes | None
    body_path: str | None
    body_bytes: int
    size: int = 0

    @property
    def variant(self) -> VariantId:
        return (self.key, self.vary, self.vary_values)


def _estimate_size(entry: Entry) -> int:
    size = _ENTRY_OVERHEAD_BYTES + len(entry.key.path) + len(entry.key.extra)
    for name, value in entry.headers:
        size += _HEADER_OVERHEAD_BYTES + len(name) + len(value)
    for vary_name in entry.vary:
        size += _HEADER_OVERHEAD_BYTES + len(vary_name)
    for selecting in entry.vary_values:
        size += _HEADER_OVERHEAD_BYTES + (0 if selecting is None else len(selecting))
    if entry.body is not None:
        size += len(entry.body)
    if entry.body_path is not None:
        size += 2 * len(entry.body_path) + _HEADER_OVERHEAD_BYTES
    return size


def _entry_size(entry: Entry) -> float:
    return entry.size


def _file_size(size: int) -> float:
    return size


@dataclass(slots=True)
class CacheStats:
    """Counters (since start) and the current occupancy."""

    hits: int = 0
    misses: int = 0
    refresh_hits: int = 0
    stale_hits: int = 0
    stores: int = 0
    evictions: int = 0
    invalidated: int = 0
    collapsed: int = 0
    shared_hits: int = 0  # local misses the shared tier answered
    entries: int = 0
    memory_bytes: int = 0
    disk_bytes: int = 0
    disk_entries: int = 0


class _MemoryLru(LRUCache[VariantId, Entry]):
    def __init__(self, maxsize: int, evicted: Callable[[VariantId, Entry], None]) -> None:
        super().__init__(maxsize, getsizeof=_entry_size)
        self._evicted = evicted

    def popitem(self) -> tuple[VariantId, Entry]:
        variant, entry = super().popitem()
        self._evicted(variant, entry)
        return variant, entry


class _DiskLru(LRUCache[VariantId, int]):
    def __init__(self, maxsize: int, evicted: Callable[[VariantId], None]) -> None:
        super().__init__(maxsize, getsizeof=_file_size)
        self._evicted = evicted

    def popitem(self) -> tuple[VariantId, int]:
        variant, size = super().popitem()
        self._evicted(variant)
        return variant, size


class CacheStore:
    """Stored responses under a memory budget and an optional disk budget.

    `memory_object_max_bytes`: bodies above it go to disk (or are not stored without a disk
    tier). `max_object_bytes`: bodies above it are never stored. `max_variants`: how many
    Vary variants one key keeps (the least recently stored goes first).
    """

    def __init__(
        self,
        *,
        memory_bytes: int,
        disk_directory: Path | None = None,
        disk_bytes: int = 0,
        memory_object_max_bytes: int = 1024 * 1024,
        max_object_bytes: int | None = None,
        max_variants: int = 16,
    ) -> None:
        if memory_bytes < 0 or disk_bytes < 0:
            raise ValueError("cache budgets must be >= 0")
        if disk_directory is not None and disk_bytes > 0:
            disk_directory.mkdir(parents=True, exist_ok=True)
            _remove_orphans(disk_directory)
        self.memory_budget = memory_bytes
        self.disk_budget = disk_bytes if disk_directory is not None else 0
        self.disk_directory = disk_directory
        self.memory_object_max_bytes = memory_object_max_bytes
        self.max_object_bytes = max_object_bytes
        self.max_variants = max(1, max_variants)
        self.stats = CacheStats()
        self._memory = _MemoryLru(memory_bytes, self._memory_evicted)
        self._disk = _DiskLru(self.disk_budget, self._disk_evicted)
        self._memory_in_flight = 0
        self._disk_in_flight = 0
        self._variants: dict[CacheKey, dict[VariantId, Entry]] = {}
        self._paths: dict[bytes, set[CacheKey]] = {}
        self._file_numbers = itertools.count()

    # -- reading -----------------------------------------------------------------------------

    def select(self, key: CacheKey, request_headers: Headers) -> Entry | None:
        """The stored response for `key` whose Vary'd request fields match this request
        (RFC 9111 §4.1; the most recent one when several match), or None."""
        variants = self._variants.get(key)
        if not variants:
            return None
        chosen: Entry | None = None
        for entry in variants.values():
            if entry.vary and selecting_values(entry.vary, request_headers) != entry.vary_values:
                continue
            if chosen is None or entry.freshness.response_time > chosen.freshness.response_time:
                chosen = entry
        if chosen is not None:
            variant = chosen.variant
            self._memory[variant]  # a read marks it recently used
            if chosen.body_path is not None and variant in self._disk:
                self._disk[variant]
        return chosen

    def open_body(
        self, entry: Entry, start: int = 0, stop: int | None = None
    ) -> tuple[AsyncIterator[bytes], Callable[[], Awaitable[None]]] | None:
        """The stored body (bytes `start` to `stop`) as (chunks, close), or None when its file
        has gone (evicted since it was selected). The file is opened here, so a later eviction
        cannot cut the body short."""
        stop = entry.body_bytes if stop is None else stop
        if entry.body is not None:
            data = entry.body if start == 0 and stop == len(entry.body) else entry.body[start:stop]
            return single_chunk(data), _nothing
        if entry.body_path is None:
            return None
        try:
            fd = os.open(entry.body_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        reader = _FileReader(fd, start, stop - start)
        return reader.chunks(), reader.close

    # -- writing -----------------------------------------------------------------------------

    def begin(
        self,
        key: CacheKey,
        status: int,
        reason: bytes,
        storable: Storable,
        request_headers: Headers,
        *,
        content_length: int | None = None,
        on_done: Callable[[bool], None] | None = None,
    ) -> StoreWriter | None:
        """A writer for a response that `assess_response` found storable, or None when its
        declared length can never fit. `on_done(stored)` is called once, at commit or abort."""
        if content_length is not None and not self._may_fit(content_length):
            if on_done is not None:
                on_done(False)
            return None
        entry = Entry(
            key=key,
            status=status,
            reason=reason,
            headers=storable.headers,
            freshness=storable.freshness,
            vary=storable.vary,
            vary_values=selecting_values(storable.vary, request_headers),
            body=None,
            body_path=None,
            body_bytes=0,
        )
        return StoreWriter(self, entry, content_length, on_done)

    def store(
        self,
        key: CacheKey,
        status: int,
        reason: bytes,
        storable: Storable,
        request_headers: Headers,
        body: bytes,
    ) -> Entry | None:
        """Store a response whose whole body is at hand (a generated response)."""
        writer = self.begin(
            key, status, reason, storable, request_headers, content_length=len(body)
        )
        if writer is None:
            return None
        writer.write(body)
        return writer.commit()

    def replace(self, entry: Entry, headers: Headers, freshness: Freshness) -> Entry | None:
        """Freshen a stored response with the headers and freshness a 304 gave (RFC 9111
        §4.3.4); None when it is no longer stored."""
        variant = entry.variant
        variants = self._variants.get(entry.key)
        if variants is None or variants.get(variant) is not entry:
            return None
        fresh = Entry(
            key=entry.key,
            status=entry.status,
            reason=entry.reason,
            headers=headers,
            freshness=freshness,
            vary=entry.vary,
            vary_values=entry.vary_values,
            body=entry.body,
            body_path=entry.body_path,
            body_bytes=entry.body_bytes,
        )
        fresh.size = _estimate_size(fresh)
        # Out of the LRU without the eviction hook (the body file stays), then back in.
        del self._memory[variant]
        variants[variant] = fresh
        if not self._make_memory_room(fresh.size):
            self._forget(fresh)
            return None
        self._memory[variant] = fresh
        return fresh

    def remove(self, entry: Entry) -> bool:
        """Remove one stored response (a 304 that no longer matches it, for example)."""
        variants = self._variants.get(entry.key)
        if variants is None or variants.get(entry.variant) is not entry:
            return False
        self._forget(entry)
        return True

    # -- invalidation ------------------------------------------------------------------------

    def invalidate(self, pattern: str | bytes) -> int:
        """Remove what a CloudFront invalidation path names: an exact path (every query and
        variant of it), or a prefix ending in `*` (`/images/*`, `/*`). Returns the number of
        stored responses removed."""
        return sum(self.invalidation([pattern]))

    def invalidation(
        self, patterns: Iterable[str | bytes], slice_units: int = INVALIDATION_SLICE_UNITS
    ) -> Iterator[int]:
        """Remove what a batch of CloudFront invalidation paths names, one slice at a time.

        The whole batch costs one pass: exact paths are looked up; every prefix (`/img/*`) is
        matched in a single scan of the stored paths, each checked against the sorted prefixes
        by bisection, so a thousand wildcards cost what one does. After every `slice_units`
        units of work (a path looked at, a response removed) it yields how many responses that
        slice removed, so the caller can let other work run: between slices the store may
        change, and each path is looked up afresh when its turn comes. A response stored
        after the pass went by is newer than the invalidation and stays.
        """
        exact: set[bytes] = set()
        prefixes: set[bytes] = set()
        for pattern in patterns:
            raw = pattern.encode() if isinstance(pattern, str) else pattern
            raw = raw.partition(b"?")[0]
            if raw.endswith(b"*"):
                prefixes.add(raw[:-1])
            else:
                exact.add(raw)
        covering = _covering_prefixes(prefixes)
        # A copy of the index (the index changes between slices), examined path by path.
        stored = list(self._paths) if covering else []
        removed = units = 0
        for path in itertools.chain(exact, stored):
            units += 1
            if path in exact or _has_prefix(covering, path):
                for key in list(self._paths.get(path, ())):
                    for entry in list(self._variants.get(key, {}).values()):
                        self._forget(entry)
                        removed += 1
                        units += 1
                    if units >= slice_units:
                        self.stats.invalidated += removed
                        yield removed
                        removed = units = 0
            if units >= slice_units:
                self.stats.invalidated += removed
                yield removed
                removed = units = 0
        self.stats.invalidated += removed
        yield removed

    def remove_path(self, path: bytes) -> int:
        """Remove every stored response for exactly `path` (any query, any variant)."""
        removed = 0
        for key in list(self._paths.get(path, ())):
            for entry in list(self._variants.get(key, {}).values()):
                self._forget(entry)
                removed += 1
        self.stats.invalidated += removed
        return removed

    def clear(self) -> int:
        """Remove everything; returns how many stored responses there were."""
        return self.invalidate(b"*")

    def close(self) -> None:
        """Remove every stored body file (the process is going away)."""
        self.clear()

    def snapshot(self) -> CacheStats:
        """The counters with the current occupancy filled in."""
        stats = self.stats
        return CacheStats(
            hits=stats.hits,
            misses=stats.misses,
            refresh_hits=stats.refresh_hits,
            stale_hits=stats.stale_hits,
            stores=stats.stores,
            evictions=stats.evictions,
            invalidated=stats.invalidated,
            collapsed=stats.collapsed,
            shared_hits=stats.shared_hits,
            entries=len(self._memory),
            memory_bytes=int(self._memory.currsize) + self._memory_in_flight,
            disk_bytes=int(self._disk.currsize) + self._disk_in_flight,
            disk_entries=len(self._disk),
        )

    # -- internals ---------------------------------------------------------------------------

    def _may_fit(self, body_bytes: int) -> bool:
        if self.max_object_bytes is not None and body_bytes > self.max_object_bytes:
            return False
        if body_bytes > self.memory_object_max_bytes:
            return body_bytes <= self.disk_budget
        return body_bytes + _ENTRY_OVERHEAD_BYTES <= self.memory_budget

    def _make_memory_room(self, size: int) -> bool:
        memory = self._memory
        while memory.currsize + self._memory_in_flight + size > self.memory_budget:
            if not memory:
                return False
            memory.popitem()
        return True

    def _make_disk_room(self, size: int) -> bool:
        disk = self._disk
        while disk.currsize + self._disk_in_flight + size > self.disk_budget:
            if not disk:
                return False
            disk.popitem()
        return True

    def _reserve_memory(self, size: int) -> bool:
        if not self._make_memory_room(size):
            return False
        self._memory_in_flight += size
        return True

    def _reserve_disk(self, size: int) -> bool:
        if not self._make_disk_room(size):
            return False
        self._disk_in_flight += size
        return True

    def _new_body_path(self) -> str:
        assert self.disk_directory is not None
        return str(self.disk_directory / f"{_FILE_PREFIX}{os.getpid()}-{next(self._file_numbers)}")

    def _commit(self, entry: Entry) -> Entry | None:
        """Make a complete entry visible. The writer has released its reservations."""
        entry.size = _estimate_size(entry)
        variant = entry.variant
        variants = self._variants.setdefault(entry.key, {})
        previous = variants.get(variant)
        if previous is not None and entry.status == 206 and previous.status != 206:
            self._drop_new(entry)  # a part never replaces a whole response
            return None
        if previous is not None:
            self._forget(previous)  # a newer response for the same variant replaces it
            variants = self._variants.setdefault(entry.key, {})
        while len(variants) >= self.max_variants:
            oldest = min(variants.values(), key=lambda e: e.freshness.response_time)
            self._forget(oldest)
            variants = self._variants.setdefault(entry.key, {})
        if entry.body_path is not None and not self._make_disk_room(entry.body_bytes):
            self._drop_new(entry)
            return None
        if not self._make_memory_room(entry.size):
            self._drop_new(entry)
            return None
        # Room was made above, so neither LRU evicts anything here.
        variants = self._variants.setdefault(entry.key, {})
        variants[variant] = entry
        self._paths.setdefault(entry.key.path, set()).add(entry.key)
        self._memory[variant] = entry
        if entry.body_path is not None:
            self._disk[variant] = entry.body_bytes
        self.stats.stores += 1
        return entry

    def _drop_new(self, entry: Entry) -> None:
        variants = self._variants.get(entry.key)
        if variants is not None and not variants:
            del self._variants[entry.key]
        if entry.body_path is not None:
            _unlink(entry.body_path)

    def _forget(self, entry: Entry) -> None:
        """Remove an entry from the index, both LRUs and the disk."""
        variant = entry.variant
        self._unindex(entry)
        if variant in self._memory and self._memory.get(variant) is entry:
            del self._memory[variant]
        if entry.body_path is not None:
            self._disk.pop(variant, None)
            _unlink(entry.body_path)

    def _unindex(self, entry: Entry) -> None:
        key = entry.key
        variants = self._variants.get(key)
        if variants is None:
            return
        if variants.get(entry.variant) is entry:
            del variants[entry.variant]
        if not variants:
            del self._variants[key]
            keys = self._paths.get(key.path)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._paths[key.path]

    def _memory_evicted(self, variant: VariantId, entry: Entry) -> None:
        self.stats.evictions += 1
        self._unindex(entry)
        if entry.body_path is not None:
            self._disk.pop(variant, None)
            _unlink(entry.body_path)

    def _disk_evicted(self, variant: VariantId) -> None:
        entry = self._memory.pop(variant, None)
        self.stats.evictions += 1
        if entry is not None:
            self._unindex(entry)
            if entry.body_path is not None:
                _unlink(entry.body_path)


class StoreWriter:
    """Collects one response's body while it streams; the entry appears at `commit`.

    Writing never raises: when the body cannot be kept (over a budget, longer or shorter than
    declared, a disk error) the writer aborts quietly and the response is simply not stored.
    """

    def __init__(
        self,
        store: CacheStore,
        entry: Entry,
        content_length: int | None,
        on_done: Callable[[bool], None] | None,
    ) -> None:
        self._store = store
        self._entry = entry
        self._content_length = content_length
        self._on_done = on_done
        self._chunks: list[bytes] = []
        self._bytes = 0
        self._memory_reserved = 0
        self._disk_reserved = 0
        self._fd = -1
        self._path: str | None = None
        self.done = False
        self.entry: Entry | None = None

    @property
    def initial_age(self) -> float:
        """The response's corrected initial age (RFC 9111 §4.2.3) as this cache judged it."""
        return self._entry.freshness.initial_age

    def write(self, chunk: bytes) -> None:
        """Add the next chunk; commits by itself at the declared last byte."""
        if self.done or not chunk:
            return
        store = self._store
        size = len(chunk)
        total = self._bytes + size
        if (self._content_length is not None and total > self._content_length) or (
            store.max_object_bytes is not None and total > store.max_object_bytes
        ):
            self.abort()
            return
        # A body declared too large for memory goes to disk from its first byte, rather than
        # squeezing other entries out of memory on the way.
        declared_large = (
            self._content_length is not None
            and self._content_length > store.memory_object_max_bytes
        )
        spill = self._fd < 0 and (declared_large or total > store.memory_object_max_bytes)
        if self._fd < 0 and not spill and store._reserve_memory(size):
            self._memory_reserved += size
            self._chunks.append(chunk)
        elif not (self._fd >= 0 or self._spill_to_disk()) or not self._write_to_disk(chunk):
            # Neither tier can take it (memory full and no disk tier with room, or an error).
            self.abort()
            return
        self._bytes = total
        if self._content_length is not None and total == self._content_length:
            self.commit()

    def _write_to_disk(self, chunk: bytes) -> bool:
        if not self._store._reserve_disk(len(chunk)):
            return False
        self._disk_reserved += len(chunk)
        try:
            _write_all(self._fd, chunk)
        except OSError:
            return False
        return True

    def commit(self) -> Entry | None:
        """The body is complete: store the entry (None if it could not be kept)."""
        if self.done:
            return self.entry
        if self._content_length is not None and self._bytes != self._content_length:
            self.abort()  # the origin sent less than it declared
            return None
        entry = self._entry
        entry.body_bytes = self._bytes
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                self._fd = -1
                self.abort()
                return None
            self._fd = -1
            entry.body_path = self._path
        else:
            entry.body = b"".join(self._chunks)
        self._chunks = []
        self._release()
        self.done = True
        self.entry = self._store._commit(entry)
        if self.entry is None and entry.body_path is not None:
            self._path = None  # `_commit` removed the file
        self._finish(self.entry is not None)
        return self.entry

    def abort(self) -> None:
        """Give up on this body: nothing is stored, the partial file is removed."""
        if self.done:
            return
        self.done = True
        self._chunks = []
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        if self._path is not None:
            _unlink(self._path)
            self._path = None
        self._release()
        self._finish(False)

    async def tee(self, body: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        """`body` unchanged, stored on the way. Ending early (an error, the viewer gone)
        aborts, unless the declared length was already complete."""
        try:
            async for chunk in body:
                self.write(chunk)
                yield chunk
            self.commit()
        finally:
            self.abort()  # a no-op after commit
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                await aclose()

    def _spill_to_disk(self) -> bool:
        store = self._store
        if store.disk_directory is None or store.disk_budget <= 0:
            return False
        if self._content_length is not None and self._content_length > store.disk_budget:
            return False
        path = store._new_body_path()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(path, flags, 0o600)
        except OSError:
            return False
        self._path = path
        buffered = b"".join(self._chunks)
        self._chunks = []
        store._memory_in_flight -= self._memory_reserved
        self._memory_reserved = 0
        if buffered:
            if not store._reserve_disk(len(buffered)):
                return False
            self._disk_reserved += len(buffered)
            try:
                _write_all(self._fd, buffered)
            except OSError:
                return False
        return True

    def _release(self) -> None:
        store = self._store
        store._memory_in_flight -= self._memory_reserved
        store._disk_in_flight -= self._disk_reserved
        self._memory_reserved = 0
        self._disk_reserved = 0

    def _finish(self, stored: bool) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            on_done(stored)


class _FileReader:
    """A region of a body file as chunks; owns `fd` and closes it at the end or on close."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._fd = fd
        self._offset = offset
        self._remaining = length
        self._reading: asyncio.Future[bytes] | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while self._remaining > 0 and self._fd >= 0:
                size = min(_READ_CHUNK_BYTES, self._remaining)
                if size <= _INLINE_READ_BYTES:
                    data = os.pread(self._fd, size, self._offset)
                else:
                    loop = asyncio.get_running_loop()
                    self._reading = loop.run_in_executor(
                        None, os.pread, self._fd, size, self._offset
                    )
                    # Shielded: a cancelled reader must not close the fd under a running read.
                    data = await asyncio.shield(self._reading)
                    self._reading = None
                if not data:
                    raise OSError("cached body file shrank")
                self._offset += len(data)
                self._remaining -= len(data)
                yield data
        finally:
            await self.close()

    async def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        reading = self._reading
        if reading is not None and not reading.done():
            with contextlib.suppress(Exception):
                await reading
        os.close(fd)


def _covering_prefixes(prefixes: set[bytes]) -> list[bytes]:
    """The sorted prefixes that no shorter one in the set covers (`/a/` goes when `/` is in)."""
    kept: list[bytes] = []
    for prefix in sorted(prefixes):
        if not kept or not prefix.startswith(kept[-1]):
            kept.append(prefix)
    return kept


def _has_prefix(covering: list[bytes], path: bytes) -> bool:
    """Whether one of `covering` (sorted, none a prefix of another) starts `path`.

    Only the greatest prefix not after `path` can: any string between a prefix of `path` and
    `path` itself starts with that prefix, and no other member of the set does.
    """
    index = bisect.bisect_right(covering, path) - 1
    return index >= 0 and path.startswith(covering[index])


def _remove_orphans(directory: Path) -> None:
    """Delete body files of processes that are gone (named `body-<pid>-<n>`): nobody indexes
    them any more. Files of live processes stay, so workers may share one directory."""
    me = os.getpid()
    for path in directory.glob(_FILE_PREFIX + "*"):
        pid_text = path.name[len(_FILE_PREFIX) :].partition("-")[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid != me:
            try:
                os.kill(pid, 0)
                continue  # alive: its files are its own
            except ProcessLookupError:
                pass
            except OSError:
                continue  # exists, but not ours to signal
        _unlink(str(path))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


async def _nothing() -> None:
    return None
