"""One access-log line per request, written straight to a stream (no logging machinery)."""

from __future__ import annotations

import time
from typing import TextIO


class AccessLog:
    """Writes `time client method path status bytes duration behavior origin result id`."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self._second = -1  # the second `_stamp` was formatted for
        self._stamp = ""

    @property
    def enabled(self) -> bool:
        return self._stream is not None

    def write(
        self,
        *,
        client: str,
        method: str,
        path: str,
        status: int,
        body_bytes: int,
        seconds: float,
        behavior: str,
        origin: str,
        result: str,
        request_id: str,
    ) -> None:
        stream = self._stream
        if stream is None:
            return
        now = time.time()
        second = int(now)
        if second != self._second:  # formatted once a second
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        stamp = self._stamp
        stream.write(
            f"{stamp}.{int(now % 1 * 1000):03d}Z {client} {method} {path} {status} {body_bytes} "
            f"{seconds * 1000:.2f}ms behavior={behavior} origin={origin} result={result} "
            f"id={request_id}\n"
        )
        stream.flush()
