"""A successful invocation, and the result that means "continue unchanged"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sandbox.runtime import log_lines

# An empty payload: the function changed nothing (a WASM guest that returned 0, or that has no
# entry point for the trigger). The caller goes on with the request or response as it was.
CONTINUE: Final = b""


@dataclass(frozen=True, slots=True)
class InvocationResult:
    """A successful invocation.

    `payload` is the function's result as JSON bytes (or its bytes, untouched: the caller
    validates them), `CONTINUE` when it changed nothing. `log` is the invocation's complete log
    text, START..REPORT, preceded on a cold start by what Init wrote. `init_duration_ms` is set
    on the first invocation of an on-demand environment (cold start). `executed_version` is the
    function version that ran (the Invoke API's `X-Amz-Executed-Version`).
    """

    payload: bytes
    log: str
    request_id: str
    duration_ms: float
    billed_duration_ms: int
    max_memory_used_mb: int
    init_duration_ms: float | None
    executed_version: str


def continue_unchanged(request_id: str, version: str, memory_size_mb: int) -> InvocationResult:
    """The result of an invocation that did not run the function (it handles no such entry)."""
    return InvocationResult(
        payload=CONTINUE,
        log=log_lines.invocation_log(
            request_id,
            version,
            "",
            log_lines.report_line(
                request_id, duration_ms=0.0, memory_size_mb=memory_size_mb, max_memory_used_mb=0
            ),
        ),
        request_id=request_id,
        duration_ms=0.0,
        billed_duration_ms=0,
        max_memory_used_mb=0,
        init_duration_ms=None,
        executed_version=version,
    )
