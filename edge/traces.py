"""X-Amzn-Trace-Id: the trace every viewer request and every invocation carries.

A viewer request keeps the `X-Amzn-Trace-Id` it came with when that names a trace (an X-Ray
`Root=1-<8 hex>-<24 hex>` field, at most `TRACE_HEADER_BYTES`); otherwise it gets
`Root=<a new trace id>`, in X-Ray's format as a load balancer makes one. Origins receive the
value in the header, functions as `_X_AMZN_TRACE_ID` (set per invocation, as Lambda's runtime
clients set it), and custom runtimes in `Lambda-Runtime-Trace-Id`. Made on first use: a cache
hit that runs no function never pays for one.
"""

from __future__ import annotations

import os
import re
import time
from contextvars import ContextVar

from edge.events.alb import trace_header

__all__ = [
    "TRACE_HEADER_BYTES",
    "new_trace_header",
    "new_trace_root",
    "trace_header",
    "viewer_trace",
]

# A longer header is replaced, not passed on (functions get it in their environment).
TRACE_HEADER_BYTES = 1024
_ROOT = re.compile(rb"(?:^|;)\s*Root=1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24}\s*(?:;|$)")
_RANDOM_BYTES = 12
_BATCH = 64  # ids' worth of random bytes per getrandom call


class _TraceRoots:
    """Trace ids from random bytes read in batches; a forked worker starts its own batch."""

    __slots__ = ("_at", "_batch")

    def __init__(self) -> None:
        self._batch = b""
        self._at = 0

    def forget(self) -> None:
        self._batch = b""
        self._at = 0

    def __call__(self) -> str:
        at = self._at
        if at >= len(self._batch):
            self._batch = os.urandom(_RANDOM_BYTES * _BATCH)
            at = 0
        self._at = at + _RANDOM_BYTES
        return f"1-{int(time.time()) & 0xFFFFFFFF:08x}-{self._batch[at : at + _RANDOM_BYTES].hex()}"


new_trace_root = _TraceRoots()
os.register_at_fork(after_in_child=new_trace_root.forget)


def new_trace_header() -> str:
    """A header value for a new trace: `Root=1-<epoch seconds, 8 hex>-<96 random bits>`."""
    return f"Root={new_trace_root()}"


# Set by the tracing viewer around a request it already took the trace of (`edge.otel`).
preset_trace: ContextVar[str | None] = ContextVar("edge_preset_trace", default=None)


def viewer_trace(headers: list[tuple[bytes, bytes]]) -> str:
    """The trace of a request carrying `headers` (lower-case names): the viewer's last
    X-Amzn-Trace-Id when it names a trace and is not too long, else a new one."""
    preset = preset_trace.get()
    if preset is not None:
        return preset
    sent = None
    for name, value in headers:
        if name == b"x-amzn-trace-id":
            sent = value
    if sent is not None and len(sent) <= TRACE_HEADER_BYTES and _ROOT.search(sent):
        text = sent.decode("latin-1")
        if text.isprintable() and text.isascii():
            return text
    return new_trace_header()


def root_of(trace: str) -> str | None:
    """The `1-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxx` of a trace header's Root field, or None."""
    for part in trace.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root":
            return value
    return None
