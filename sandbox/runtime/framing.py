"""Framing of the messages between the host and a process environment: bytes in, frames out.

A frame is a 13-byte header `!BIII` (kind, meta length, log length, blob length) followed by
three sections: `meta` (a small orjson document), `log` (the raw bytes the function wrote to
stdout/stderr) and `blob` (raw bytes: an event, a result, an error document). Keeping the
payload and the log out of the meta document means neither is ever JSON-encoded.

The host decodes what an environment sends with `FrameLimits`: every section's size is in the
header, so a frame that announces more than an environment may legitimately send is refused as
soon as its header is complete, before any of it is buffered. A log section over its limit is
not refused but cut: only its last `max_log_bytes` are kept, as the runtime keeps the tail of
the output, and `Frame.log_dropped` counts the rest. No I/O here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from sandbox.runtime.log_lines import DROPPED_MARKER_MAX_BYTES

HEADER = struct.Struct("!BIII")

# host -> environment
KIND_INVOKE = 1
# host -> a process started ahead of need: its per-environment settings, then Init (Node.js)
KIND_CONFIGURE = 5
# environment -> host
KIND_INIT = 2
KIND_RESULT = 3
KIND_ERROR = 4

# The meta documents are a handful of numbers ({"d": 1.25, "m": 17, "k": "memory"}): 4 KiB
# leaves room for any of them and refuses anything that is not one.
META_LIMIT_BYTES = 4096

# What the format itself allows (u32 lengths): the limits of a decoder that trusts its peer.
_UNBOUNDED = 0xFFFF_FFFF


class FrameError(ValueError):
    """The byte stream is not a sequence of acceptable frames.

    `section` names what was refused ("meta", "blob"...), `size_bytes` what the header announced
    and `limit_bytes` the limit it broke (both 0 when the frame was malformed in another way);
    `kind` is the frame's kind.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: int = 0,
        section: str = "",
        size_bytes: int = 0,
        limit_bytes: int = 0,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.section = section
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class Frame(NamedTuple):
    """One decoded message. `log_dropped`: bytes of the log section the decoder did not keep."""

    kind: int
    meta: bytes
    blob: bytes
    log: bytes = b""
    log_dropped: int = 0


@dataclass(frozen=True, slots=True)
class FrameLimits:
    """The most a peer may send in each section of one frame."""

    max_meta_bytes: int = _UNBOUNDED
    max_log_bytes: int = _UNBOUNDED
    max_blob_bytes: int = _UNBOUNDED


def environment_limits(*, max_result_bytes: int, max_log_bytes: int) -> FrameLimits:
    """What the host accepts from an environment: a result (or an error document, which the
    runtime keeps under the same limit), the invocation's log (its tail, after the runtime's
    marker of what it dropped) and a small meta document."""
    return FrameLimits(
        max_meta_bytes=META_LIMIT_BYTES,
        max_log_bytes=max_log_bytes + DROPPED_MARKER_MAX_BYTES,
        max_blob_bytes=max_result_bytes,
    )


def encode_frame(kind: int, meta: bytes, blob: bytes = b"", log: bytes = b"") -> bytes:
    """The wire bytes of one frame."""
    return HEADER.pack(kind, len(meta), len(log), len(blob)) + meta + log + blob


class FrameDecoder:
    """Incremental decoder: feed it chunks as they arrive, get back the frames they complete.

    It never holds more than one header, the sections of one frame within `limits`, and one
    chunk being parsed: a refused header raises `FrameError` at once, and the head of a log
    section over the limit is skipped as it arrives instead of being stored.
    """

    def __init__(self, limits: FrameLimits | None = None) -> None:
        self._limits = limits or FrameLimits()
        self._header = bytearray()
        self._kind = 0
        # Bytes still expected per section, in wire order, and what was kept of each.
        self._meta_left = self._skip_left = self._log_left = self._blob_left = 0
        self._meta = bytearray()
        self._log = bytearray()
        self._blob = bytearray()
        self._log_dropped = 0
        self._in_frame = False

    def _start(self, kind: int, meta_length: int, log_length: int, blob_length: int) -> None:
        limits = self._limits
        for section, size, limit in (
            ("meta", meta_length, limits.max_meta_bytes),
            ("blob", blob_length, limits.max_blob_bytes),
        ):
            if size > limit:
                raise FrameError(
                    f"frame announces a {section} of {size} bytes; the limit is {limit}",
                    kind=kind,
                    section=section,
                    size_bytes=size,
                    limit_bytes=limit,
                )
        self._kind = kind
        kept_log = min(log_length, limits.max_log_bytes)
        self._meta_left = meta_length
        self._skip_left = self._log_dropped = log_length - kept_log
        self._log_left = kept_log
        self._blob_left = blob_length
        self._in_frame = True

    def _finish(self) -> Frame:
        frame = Frame(
            self._kind, bytes(self._meta), bytes(self._blob), bytes(self._log), self._log_dropped
        )
        # New buffers rather than clearing: a bytearray keeps its largest allocation.
        self._meta, self._log, self._blob = bytearray(), bytearray(), bytearray()
        self._in_frame = False
        return frame

    def feed(self, data: bytes) -> list[Frame]:
        """Add `data`; return every frame now complete, in order. Raises `FrameError`."""
        header_size = HEADER.size
        if not self._in_frame and not self._header and len(data) >= header_size:
            # Fast path: one whole frame in one chunk, the usual case for small messages.
            kind, meta_length, log_length, blob_length = HEADER.unpack_from(data)
            end_meta = header_size + meta_length
            end_log = end_meta + log_length
            limits = self._limits
            if (
                len(data) == end_log + blob_length
                and meta_length <= limits.max_meta_bytes
                and log_length <= limits.max_log_bytes
                and blob_length <= limits.max_blob_bytes
            ):
                return [
                    Frame(kind, data[header_size:end_meta], data[end_log:], data[end_meta:end_log])
                ]
        frames: list[Frame] = []
        view = memoryview(data)
        position, available = 0, len(data)
        while position < available:
            if not self._in_frame:
                wanted = header_size - len(self._header)
                self._header += view[position : position + wanted]
                position += min(wanted, available - position)
                if len(self._header) < header_size:
                    break
                fields = HEADER.unpack(self._header)
                self._header.clear()
                self._start(*fields)
            position = self._take(view, position)
            if not self._left():
                frames.append(self._finish())
        return frames

    def _left(self) -> int:
        return self._meta_left + self._skip_left + self._log_left + self._blob_left

    def _take(self, view: memoryview, position: int) -> int:
        """Move the bytes of the current frame at `position` into its sections."""
        available = len(view)
        if self._meta_left and position < available:
            count = min(self._meta_left, available - position)
            self._meta += view[position : position + count]
            self._meta_left -= count
            position += count
        if self._skip_left and position < available:
            count = min(self._skip_left, available - position)
            self._skip_left -= count
            position += count
        if self._log_left and position < available:
            count = min(self._log_left, available - position)
            self._log += view[position : position + count]
            self._log_left -= count
            position += count
        if self._blob_left and position < available:
            count = min(self._blob_left, available - position)
            self._blob += view[position : position + count]
            self._blob_left -= count
            position += count
        return position

    @property
    def pending_bytes(self) -> int:
        """Bytes received and kept that do not yet form a complete frame."""
        return len(self._header) + len(self._meta) + len(self._log) + len(self._blob)
