"""Concurrency counts that every process of one machine shares: a small table in a file that
each process maps (MAP_SHARED), so a node's forked workers and its admin listener count as one.

The table has one row per process and one column per counted limit (each reserved function,
and the unreserved share). A process writes only its own row; admitting one more invocation
sums a column over every row and adds to its own under one lock shared by the processes (a
semaphore made before the fork), so the check and the add are one step across processes. The
lock is held for a few microseconds with no await inside; a process that died holding it is
taken over after a second. A row whose process has died is reclaimed before anything is
throttled: a crashed worker's invocations never hold capacity.

Cost: an admission is an uncontended semaphore and a sum over a few rows (a few µs; a POSIX
record lock on the file cost 18 µs here); a release is one subtraction, with no lock.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger("edge.invoke")

# The lock is held for microseconds: waiting this long means its holder died holding it.
_STUCK_SECONDS = 1.0

_CELL = 8  # bytes of one signed 64-bit count


class SharedCounts:
    """A rows × columns table of counts shared by every process that maps `path`. Make it
    before forking; each process takes its row on first use."""

    def __init__(self, path: Path, columns: int, *, rows: int = 16) -> None:
        self.path = path
        self.columns = columns
        self.rows = rows
        self._stride = columns + 1  # cell 0 of a row: the owning process's id
        size = rows * self._stride * _CELL
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size, mmap.MAP_SHARED)
        self._cells = memoryview(self._map).cast("q")
        self._lock = multiprocessing.get_context("fork").Lock()
        self._pid = 0
        self._row = -1

    def try_add(self, column: int, limit: int) -> bool:
        """Count one more in `column` if every process's total there is under `limit`."""
        row = self._own_row()
        with self._locked():
            if self.total(column) >= limit and (
                not self._reclaim_dead() or self.total(column) >= limit
            ):
                return False
            self._cells[row * self._stride + 1 + column] += 1
            return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self._lock.acquire(timeout=_STUCK_SECONDS):
            # Its holder died inside the few lines it guards: carry on as the holder.
            logger.warning("concurrency counts: a process died holding the lock; taken over")
        try:
            yield
        finally:
            self._lock.release()

    def remove(self, column: int) -> None:
        """Count one fewer in `column` (this process's own row: no lock)."""
        self._cells[self._row * self._stride + 1 + column] -= 1

    def total(self, column: int) -> int:
        """Every live process's count in `column`."""
        return sum(self._cells[1 + column :: self._stride])

    def _own_row(self) -> int:
        pid = os.getpid()
        if self._pid == pid:
            return self._row
        with self._locked():
            self._reclaim_dead()
            for row in range(self.rows):
                if self._cells[row * self._stride] in (0, pid):
                    break
            else:
                raise RuntimeError(f"{self.path}: no free row for process {pid}")
            start = row * self._stride
            for cell in range(start + 1, start + self._stride):
                self._cells[cell] = 0
            self._cells[start] = pid
        self._pid, self._row = pid, row
        return row

    def _reclaim_dead(self) -> bool:
        """Free the rows of processes that no longer exist (under the lock); True if any."""
        freed = False
        for row in range(self.rows):
            start = row * self._stride
            pid = self._cells[start]
            if pid in (0, self._pid):
                continue
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                for cell in range(start, start + self._stride):
                    self._cells[cell] = 0
                freed = True
            except PermissionError:
                continue  # alive, another user's
        return freed

    def close(self) -> None:
        with contextlib.suppress(BufferError):
            self._cells.release()
            self._map.close()
        os.close(self._fd)
