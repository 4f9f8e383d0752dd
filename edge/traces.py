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
    "sent_trace",
    "trace_for",
    "trace_header",
    "viewer_trace",
]

# A longer header is replaced, not passed on (functions get it in their environment).
TRACE_HEADER_BYTES = 1024
_ROOT = re.compile(rb"(?:^|;)\s*Root=1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24}\s*(?:;|$)")
_RANDOM_BYTES = 12
_BATCH = 64  # ids' worth of random bytes per getrandom call


class _TraceRoots:
    """Trace ids from random bytes read in batches (as hex), the epoch part made once a
    second; a forked worker starts its own batch."""

    __slots__ = ("_at", "_hex", "_prefix", "_second")

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        self._hex = ""
        self._at = 0
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        """`1-<epoch seconds, 8 hex>-<96 random bits, 24 hex>`."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._prefix = f"1-{now & 0xFFFFFFFF:08x}-"
        at = self._at
        if at >= len(self._hex):
            self._hex = os.urandom(_RANDOM_BYTES * _BATCH).hex()
            at = 0
        self._at = at + 2 * _RANDOM_BYTES
        return self._prefix + self._hex[at : at + 2 * _RANDOM_BYTES]


new_trace_root = _TraceRoots()
os.register_at_fork(after_in_child=new_trace_root.forget)


def new_trace_header() -> str:
    """A header value for a new trace: `Root=1-<epoch seconds, 8 hex>-<96 random bits>`."""
    return "Root=" + new_trace_root()


# Set by the tracing viewer around a request it already took the trace of (`edge.otel`).
preset_trace: ContextVar[str | None] = ContextVar("edge_preset_trace", default=None)


def viewer_trace(headers: list[tuple[bytes, bytes]]) -> str:
    """The trace of a request carrying `headers` (lower-case names): the viewer's last
    X-Amzn-Trace-Id when it names a trace and is not too long, else a new one."""
    return trace_for(sent_trace(headers))


def sent_trace(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The last X-Amzn-Trace-Id among `headers` (lower-case names), or None."""
    sent = None
    for name, value in headers:
        if name == b"x-amzn-trace-id":
            sent = value
    return sent


def trace_for(sent: bytes | None) -> str:
    """The trace of a request whose viewer sent `sent` as its last X-Amzn-Trace-Id (None:
    none): kept when it names a trace and is not too long, else a new one."""
    preset = preset_trace.get()
    if preset is not None:
        return preset
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
