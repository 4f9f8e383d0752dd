"""Inside an environment: its stdout/stderr, a memfd that never holds much more than the log limit.

fds 1 and 2 are one memfd (one open file, one offset), so print(), logging, sys.stderr and raw
`os.write` keep their order. The host keeps only the last `max_log_bytes` of each invocation's
output, so a memfd that grows past that holds bytes nobody will read, in shared memory that no
limit of the process counts (RLIMIT_AS ignores shmem). `OutputTail` is the writer under the
process's `sys.stdout` and `sys.stderr`: once the file passes twice the log limit it is
compacted in place to a marker line (`[... N bytes of output dropped ...]`, the same words the
drain uses) followed by the last `max_log_bytes` written, so what Python code writes never costs
more than ~2 x `max_log_bytes` of memory. The marker lives in the file, so the host also sees
it when it reads the file after a timeout or a crash.

What this does not bound: bytes written to fds 1/2 below Python (C extensions, subprocesses,
`os.write(1, ...)`). Those only meet the process's RLIMIT_FSIZE; the drain still reads only the
last `max_log_bytes` of them.
"""

from __future__ import annotations

import io
import os
import threading

from sandbox.runtime.log_lines import dropped_marker

Buffer = bytes | bytearray | memoryview

_SEEK_END_OF_WRITES = os.SEEK_CUR  # fds 1/2 are appended to: the shared offset is the end


class OutputTail:
    """The state of fds 1/2 shared by the `sys.stdout` and `sys.stderr` writers.

    `dropped` counts the bytes of output compaction has removed since the last `drain`;
    `marker_bytes` is the length of the marker line at the start of the file (0 for none).
    A size check costs a syscall, so it runs once per `check_every_bytes` written through
    Python; raw writes in between only make the next compaction keep a slightly older tail.
    """

    def __init__(self, fd: int, keep_bytes: int, *, check_every_bytes: int = 64 * 1024) -> None:
        self.fd = fd
        self.keep_bytes = keep_bytes
        self.ceiling_bytes = 2 * keep_bytes
        self.check_every_bytes = min(check_every_bytes, keep_bytes)
        self.dropped = 0
        self.marker_bytes = 0
        self._unchecked = 0
        self._lock = threading.Lock()

    def write(self, fd: int, data: Buffer) -> int:
        """Write `data` to `fd` (1 or 2), compacting the file first when it is due."""
        view = memoryview(data).cast("B")
        size = len(view)
        with self._lock:
            self._unchecked += size
            if size > self.keep_bytes or self._unchecked >= self.check_every_bytes:
                self._unchecked = 0
                end = os.lseek(self.fd, 0, _SEEK_END_OF_WRITES)
                if size > self.keep_bytes or end + size > self.ceiling_bytes:
                    self._compact(end, view)
                    return size
            while view:
                view = view[os.write(fd, view) :]
        return size

    def _compact(self, end: int, incoming: memoryview) -> None:
        """Rewrite the file as marker + the last `keep_bytes` of (its output + `incoming`)."""
        keep = self.keep_bytes
        if len(incoming) >= keep:
            self.dropped += end - self.marker_bytes + len(incoming) - keep
            old_tail = b""
            incoming = incoming[len(incoming) - keep :]
        else:
            wanted = min(end - self.marker_bytes, keep - len(incoming))
            old_tail = os.pread(self.fd, wanted, end - wanted)
            self.dropped += end - self.marker_bytes - wanted
        marker = dropped_marker(self.dropped).encode()
        size = os.pwritev(self.fd, [marker, old_tail, incoming], 0)
        os.ftruncate(self.fd, size)
        os.lseek(self.fd, size, os.SEEK_SET)
        self.marker_bytes = len(marker)

    def drain(self, max_bytes: int) -> bytes:
        """The output since the last drain: its last `max_bytes`, after a marker line when
        anything was dropped (at most `max_bytes` + `DROPPED_MARKER_MAX_BYTES` in all).

        The file is emptied."""
        with self._lock:
            end = os.lseek(self.fd, 0, _SEEK_END_OF_WRITES)
            written = end - self.marker_bytes
            taken = min(written, max_bytes)
            dropped = self.dropped + written - taken
            data = os.pread(self.fd, taken, end - taken) if taken > 0 else b""
            if end:
                os.ftruncate(self.fd, 0)
                os.lseek(self.fd, 0, os.SEEK_SET)
            self.dropped = self.marker_bytes = self._unchecked = 0
        return dropped_marker(dropped).encode() + data if dropped > 0 else data


class TailWriter(io.BufferedIOBase):
    """A write-only stream on fd 1 or 2 that writes through (no buffer of its own: the text
    layer above is line-buffered) to the shared `OutputTail`."""

    def __init__(self, tail: OutputTail, fd: int) -> None:
        super().__init__()
        self._tail = tail
        self._fd = fd

    @property
    def name(self) -> int:
        return self._fd  # as FileIO opened on a descriptor names itself

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: Buffer) -> int:  # type: ignore[override]
        return self._tail.write(self._fd, data)


def bounded_stdio(keep_bytes: int) -> tuple[OutputTail, io.TextIOWrapper, io.TextIOWrapper]:
    """The `OutputTail` of fds 1/2 and the text streams to install as `sys.stdout`/`sys.stderr`
    (line-buffered, as Lambda's; stderr escapes what is not UTF-8 instead of failing)."""
    tail = OutputTail(1, keep_bytes)
    stdout = io.TextIOWrapper(TailWriter(tail, 1), encoding="utf-8", line_buffering=True)
    stderr = io.TextIOWrapper(
        TailWriter(tail, 2), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )
    return tail, stdout, stderr
