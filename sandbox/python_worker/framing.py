"""The frames between the host and a Python environment: `sandbox.runtime.framing`, which every
process runtime shares (kept here under its old name for the Python runtime's modules)."""

from sandbox.runtime.framing import (
    HEADER,
    KIND_ERROR,
    KIND_INIT,
    KIND_INVOKE,
    KIND_RESULT,
    META_LIMIT_BYTES,
    Frame,
    FrameDecoder,
    FrameError,
    FrameLimits,
    encode_frame,
    environment_limits,
)

__all__ = [
    "HEADER",
    "KIND_ERROR",
    "KIND_INIT",
    "KIND_INVOKE",
    "KIND_RESULT",
    "META_LIMIT_BYTES",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameLimits",
    "encode_frame",
    "environment_limits",
]
