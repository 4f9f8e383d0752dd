"""Framing of the messages between the host and an execution environment: bytes in, frames out.

A frame is a 9-byte header `!IBI` (body length, kind, meta length) followed by the body: `meta`
(a small orjson document) then `blob` (raw bytes: an event, a result, an error document). Keeping
the payload out of the meta document means it is never JSON-encoded twice. No I/O here.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

HEADER = struct.Struct("!IBI")

# host -> environment
KIND_INVOKE = 1
# environment -> host
KIND_INIT = 2
KIND_RESULT = 3
KIND_ERROR = 4

DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024


class FrameError(ValueError):
    """The byte stream is not a sequence of valid frames."""


class Frame(NamedTuple):
    """One decoded message."""

    kind: int
    meta: bytes
    blob: bytes


def encode_frame(kind: int, meta: bytes, blob: bytes = b"") -> bytes:
    """The wire bytes of one frame."""
    return HEADER.pack(len(meta) + len(blob), kind, len(meta)) + meta + blob


class FrameDecoder:
    """Incremental decoder: feed it chunks as they arrive, get back the frames they complete."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max_frame_bytes = max_frame_bytes

    def feed(self, data: bytes) -> list[Frame]:
        """Add `data`; return every frame now complete, in order. Raises `FrameError`."""
        buffer = self._buffer
        if not buffer and len(data) >= HEADER.size:
            # Fast path: one whole frame in one chunk, the usual case for small messages.
            body_length, kind, meta_length = HEADER.unpack_from(data)
            if (
                len(data) == HEADER.size + body_length
                and meta_length <= body_length <= self._max_frame_bytes
            ):
                split = HEADER.size + meta_length
                return [Frame(kind, data[HEADER.size : split], data[split:])]
        buffer += data
        frames: list[Frame] = []
        position = 0
        available = len(buffer)
        header_size = HEADER.size
        while available - position >= header_size:
            body_length, kind, meta_length = HEADER.unpack_from(buffer, position)
            if body_length > self._max_frame_bytes:
                raise FrameError(f"frame of {body_length} bytes over the limit")
            if meta_length > body_length:
                raise FrameError("meta length larger than the frame body")
            start = position + header_size
            end = start + body_length
            if end > available:
                break
            split = start + meta_length
            frames.append(Frame(kind, bytes(buffer[start:split]), bytes(buffer[split:end])))
            position = end
        if position:
            del buffer[:position]
        return frames

    @property
    def pending_bytes(self) -> int:
        """Bytes received that do not yet form a complete frame."""
        return len(self._buffer)
