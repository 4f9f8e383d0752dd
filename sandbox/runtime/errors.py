"""The errors of every runtime: each way an invocation can fail, as a small typed family.

Failures the function itself is responsible for (it raised, could not be imported, timed out,
crashed, ran out of memory) are `FunctionError`s and carry the error document Lambda's Invoke API
returns with `X-Amz-Function-Error: Unhandled` (spec §8.4), plus the invocation's log text.
Failures of the platform around the function (throttled, payload refused, closed, code that
cannot start at all) are plain `SandboxError`s. `edge` maps each class to a status in one
table; nothing here picks one.
"""

from __future__ import annotations

from typing import Any

import orjson


class SandboxError(Exception):
    """Base of every error the sandbox raises."""


class FunctionError(SandboxError):
    """The function failed: its handler raised, its init failed, or its result was unusable.

    `payload` is Lambda's error document: `errorMessage`, `errorType`, and for errors the runtime
    reports itself `requestId` and `stackTrace` (spec §8.4; `events/invoke-error-body.json`).
    `payload_bytes` is its JSON, ready to be the Invoke API's response body. `log` is the
    invocation's complete log text (START..REPORT), as delivered to the pool's log sink.
    """

    def __init__(
        self,
        payload: dict[str, Any],
        *,
        log: str = "",
        request_id: str = "",
        duration_ms: float = 0.0,
    ) -> None:
        self.payload = payload
        self.payload_bytes = orjson.dumps(payload)
        self.log = log
        self.request_id = request_id
        self.duration_ms = duration_ms
        super().__init__(f"{self.error_type}: {self.error_message}")

    @property
    def error_type(self) -> str:
        """Lambda's `errorType`, e.g. `KeyError` or `Runtime.ImportModuleError`."""
        return str(self.payload.get("errorType", ""))

    @property
    def error_message(self) -> str:
        """Lambda's `errorMessage`."""
        return str(self.payload.get("errorMessage", ""))


class FunctionTimeout(FunctionError):
    """The invocation passed its deadline; its environment was killed (`Sandbox.Timedout`)."""


class FunctionCrashed(FunctionError):
    """The environment's process died during the invocation (errorType `Runtime.ExitError`)."""


class FunctionMemoryExceeded(FunctionError):
    """The function exceeded its memory limit (errorType `Runtime.OutOfMemory`); it was replaced."""


# §8.3 ThrottleReason for a function-level cap.
THROTTLE_REASON = "ReservedFunctionConcurrentInvocationLimitExceeded"
# §8.3 ThrottleReason for the node's own capacity: no execution environment could be had
# before the invocation's deadline.
CAPACITY_THROTTLE_REASON = "ConcurrentInvocationLimitExceeded"


class FunctionThrottled(SandboxError):
    """No execution environment was free under the concurrency cap.

    `reason` is one of Lambda's `ThrottleReason` values (spec §8.3), e.g.
    `ReservedFunctionConcurrentInvocationLimitExceeded`.
    """

    def __init__(self, function_name: str, reason: str) -> None:
        super().__init__(f"function {function_name!r} throttled: {reason}")
        self.function_name = function_name
        self.reason = reason


class PayloadTooLarge(SandboxError):
    """The event is over the invocation payload limit (Lambda: `RequestTooLargeException`, 413)."""

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(
            f"Request payload size ({size_bytes} bytes) exceeded maximum allowed payload size "
            f"({limit_bytes} bytes)."
        )
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class PoolClosed(SandboxError):
    """The pool was closed before or during the invocation."""


class FunctionCodeInvalid(SandboxError):
    """The function's code cannot run at all: no invocation can succeed until it is replaced.

    Raised by a runtime's `start()` (and then by each `invoke()`) for code it refuses before any
    request: an unreadable or invalid module, an import the host does not offer, an ABI not
    followed. `function_name` and `reason` (the refusal, naming what is wrong) are kept apart
    so that a configuration check can show them under the function's key.
    """

    def __init__(self, function_name: str, reason: str) -> None:
        super().__init__(f"function {function_name!r}: {reason}")
        self.function_name = function_name
        self.reason = reason
