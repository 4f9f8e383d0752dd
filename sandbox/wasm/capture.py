"""What one invocation's guest wrote: `edge.log` messages, WASI stdout (the result) and stderr.

Every guest write arrives as an address and a length in guest memory, and nothing is copied out
before the capture has decided how much of it can matter:

- The log keeps the last `max_log_bytes` of the invocation's log, as the Python runtime keeps
  the tail of its output, behind a `[... N bytes of output dropped ...]` line. A message longer
  than the whole log can only leave its tail in it, so only that tail is read; the kept bytes
  are compacted when they reach twice the limit. A guest logging 100 MB messages costs the
  host at most about 3 x `max_log_bytes` per invocation, and each host call holds the GIL (and
  so the event loop) only for the time to copy that much.
- stdout is the WASI result: it is kept while within `max_stdout_bytes` and only counted after,
  so an oversized result is measured exactly and never held.
- stderr goes to the log line by line; a partial line waits for its end, and keeps only its
  tail when it grows past the log limit.

No wasmtime and no asyncio here: `read` is how the caller copies guest bytes (a ctypes
`string_at` on the live memory).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.runtime.log_lines import dropped_marker

# read(address, length) -> the guest's bytes there
Reader = Callable[[int, int], bytes]


@dataclass(slots=True)
class OutputCapture:
    """The output of one invocation, bounded (see the module docstring).

    `format_log_line` renders one `edge.log` message as its log line. `stdout_bytes` counts
    every byte the guest wrote to stdout, `stdout` holds them while they are within the limit.
    """

    max_log_bytes: int
    max_stdout_bytes: int
    format_log_line: Callable[[str], str]
    log: bytearray = field(default_factory=bytearray)
    dropped_bytes: int = 0
    stdout: bytearray = field(default_factory=bytearray)
    stdout_bytes: int = 0
    stderr_pending: bytearray = field(default_factory=bytearray)

    @property
    def stdout_overflow(self) -> bool:
        """Whether the guest wrote more to stdout than a result may hold."""
        return self.stdout_bytes > self.max_stdout_bytes

    def _append_log(self, data: bytes | bytearray) -> None:
        log = self.log
        log += data
        if len(log) > 2 * self.max_log_bytes:
            excess = len(log) - self.max_log_bytes
            self.dropped_bytes += excess
            del log[:excess]

    def add_log(self, text: str) -> None:
        """Add text to the log (a line the host writes, or a formatted message)."""
        self._append_log(text.encode("utf-8", "replace"))

    def log_message(self, address: int, length: int, read: Reader) -> None:
        """An `edge.log` call: the message of `length` bytes at `address`, as one log line."""
        kept = min(length, self.max_log_bytes)
        self.dropped_bytes += length - kept
        message = read(address + length - kept, kept).decode("utf-8", "replace")
        self.add_log(self.format_log_line(message))

    def write_stdout(self, address: int, length: int, read: Reader) -> None:
        """A WASI write to stdout."""
        self.stdout_bytes += length
        if self.stdout_overflow:
            self.stdout.clear()  # the result is refused: nothing of it is needed any more
            return
        self.stdout += read(address, length)

    def write_stderr(self, address: int, length: int, read: Reader) -> None:
        """A WASI write to stderr: whole lines go to the log, a partial last line waits."""
        limit = self.max_log_bytes
        kept = min(length, limit)
        pending = self.stderr_pending
        pending += read(address + length - kept, kept)
        if kept < length:
            # The head of this write is older than anything the log can keep: it and whatever
            # waited before it are dropped, the tail waits for its line's end.
            self.dropped_bytes += length - kept + len(pending) - kept
            del pending[:-kept]
        end = pending.rfind(b"\n")
        if end >= 0:
            self._append_log(pending[: end + 1])
            del pending[: end + 1]
        if len(pending) > limit:
            self.dropped_bytes += len(pending) - limit
            del pending[: len(pending) - limit]

    def text(self) -> str:
        """The log text: the last `max_log_bytes`, after a marker when more was written."""
        if self.stderr_pending:
            self._append_log(self.stderr_pending + b"\n")
            self.stderr_pending.clear()
        log = self.log
        dropped = self.dropped_bytes
        if len(log) > self.max_log_bytes:
            dropped += len(log) - self.max_log_bytes
            del log[: len(log) - self.max_log_bytes]
            self.dropped_bytes = dropped
        text = log.decode("utf-8", "replace")
        return dropped_marker(dropped) + text if dropped else text
