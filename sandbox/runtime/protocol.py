"""`Runtime`: what one function version is to its callers, whatever runs it.

Every runtime (Python worker processes, WASM instances, and those to come) is a `Runtime`, and
the edge holds nothing else: it never asks which runtime it has. `Runtime` is an abstract base
class rather than a `typing.Protocol` because it also holds the one copy of what every
invocation does before a runtime sees it (refuse when closed or oversized, start on first use,
settle the deadline and the request id); a runtime implements `_invoke(invocation)` and the
rest of its life (`start`, `has_entry`, `stats`, `aclose`).
"""

from __future__ import annotations

import abc
import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol, Self

from sandbox.runtime.deadlines import invocation_deadline
from sandbox.runtime.errors import FunctionError, PayloadTooLarge, PoolClosed
from sandbox.runtime.log_lines import json_system_log
from sandbox.runtime.request_ids import new_request_id
from sandbox.runtime.result import InvocationResult
from sandbox.runtime.stats import RuntimeStats

# The entry point of a direct invocation (the Invoke API, a function origin). A trigger's entry
# is its name with '_' for '-' (`viewer_request`, ..., `origin_response`).
HANDLER_ENTRY: Final = "handler"


@dataclass(frozen=True, slots=True)
class Invocation:
    """One invocation as a runtime receives it, its limits settled.

    `deadline` is absolute, on `time.monotonic()`'s clock; `budget_seconds` is the limit a
    timeout message names. `invoked_arn` is None for the function's own unqualified ARN.
    `caller_deadline` is the caller's own deadline, if it gave one (`deadline` is the earlier of
    it and the function's timeout from the call): what a runtime that makes an invocation wait
    before it runs keeps to when it times the function from its start.
    """

    event: bytes
    entry: str
    request_id: str
    deadline: float
    budget_seconds: float
    invoked_arn: str | None = None
    client_context: dict[str, Any] | None = None
    cognito_identity: dict[str, Any] | None = None
    caller_deadline: float | None = None
    # The X-Ray trace header (`Root=1-...;...`): `_X_AMZN_TRACE_ID` in the function's process.
    trace_id: str | None = None


class VersionSpec(Protocol):
    """What `Runtime` reads of a function version's spec (every runtime's spec has more)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def timeout_seconds(self) -> float: ...
    @property
    def max_event_bytes(self) -> int: ...


class Runtime(abc.ABC):
    """One function version behind one door.

    `start()` is optional (the first `invoke()` does it); `aclose()` ends everything, and an
    invocation in flight then fails with `PoolClosed`; `async with runtime:` does both. Every
    failure is one of `sandbox.runtime.errors`. A runtime passes its spec to `__init__`, sets
    `started` once `start()` succeeded and `closed` when it closes.
    """

    def __init__(self, spec: VersionSpec) -> None:
        self.name = spec.name
        self.version = spec.version  # `$LATEST` until versions are published
        self.started = False
        self.closed = False
        self._timeout_seconds = spec.timeout_seconds
        self._max_event_bytes = spec.max_event_bytes
        # Lambda's JSON log format, as the function's runtime reads it from its environment:
        # then START and REPORT are `platform.start` / `platform.report` records.
        environment = getattr(spec, "environment", None) or {}
        self._json_logs = str(environment.get("AWS_LAMBDA_LOG_FORMAT", "")).upper() == "JSON"

    async def invoke(
        self,
        event: bytes,
        *,
        entry: str = HANDLER_ENTRY,
        request_id: str | None = None,
        deadline: float | None = None,
        timeout_seconds: float | None = None,
        invoked_arn: str | None = None,
        client_context: dict[str, Any] | None = None,
        cognito_identity: dict[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> InvocationResult:
        """Invoke the function once with `event` (JSON bytes) at `entry`.

        `request_id`: Lambda's id for this invocation (default: a new one). `deadline`
        (absolute, `time.monotonic()`'s clock) can only shorten the function's timeout;
        `timeout_seconds` is the caller's limit a timeout message then names. `invoked_arn`,
        `client_context` (the Invoke API's `X-Amz-Client-Context`, decoded) and
        `cognito_identity` reach the function's context where its runtime has one; `trace_id`
        (an `X-Amzn-Trace-Id` value) its `_X_AMZN_TRACE_ID` variable, as Lambda sets it per
        invocation.

        Returns the result (its payload `CONTINUE` when the function changed nothing); raises
        `FunctionError` (or `FunctionTimeout`, `FunctionCrashed`, `FunctionMemoryExceeded`)
        when the function failed, `FunctionThrottled` when every environment is busy,
        `PayloadTooLarge` for an event over the limit, `FunctionCodeInvalid` when the code
        cannot start, `PoolClosed` after `aclose()`.
        """
        if self.closed:
            raise PoolClosed(f"function {self.name!r} is closed")
        if len(event) > self._max_event_bytes:
            raise PayloadTooLarge(len(event), self._max_event_bytes)
        if not self.started:
            await self.start()
        caller_deadline = deadline
        deadline, budget_seconds = invocation_deadline(
            self._timeout_seconds, deadline, timeout_seconds
        )
        invocation = Invocation(
            event,
            entry,
            request_id or new_request_id(),
            deadline,
            budget_seconds,
            invoked_arn,
            client_context,
            cognito_identity,
            caller_deadline,
            trace_id,
        )
        if self._json_logs:
            return await self._invoke_json_logs(invocation)
        return await self._invoke(invocation)

    async def _invoke_json_logs(self, invocation: Invocation) -> InvocationResult:
        try:
            result = await self._invoke(invocation)
        except FunctionError as error:
            error.log = json_system_log(error.log, time.time(), failed=True)
            raise
        return dataclasses.replace(result, log=json_system_log(result.log, time.time()))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @abc.abstractmethod
    async def start(self) -> None:
        """Get ready: load or link the code, start provisioned environments; sets `started`
        (`invoke` calls it until then), and returns at once when it is.

        Raises `FunctionCodeInvalid` for code that cannot run at all; the runtime then raises
        it again from every `invoke()` (one bad function fails only its own invocations), and
        `PoolClosed` once closed.
        """

    @abc.abstractmethod
    async def _invoke(self, invocation: Invocation) -> InvocationResult:
        """Run one invocation (started, within limits): the runtime's own part of `invoke`."""

    @abc.abstractmethod
    def has_entry(self, entry: str) -> bool:
        """False when the function has no entry point `entry`: the invocation would only
        "continue unchanged", so the caller may skip it without even building the event.
        True when the runtime cannot tell (it handles every entry, or has not started)."""

    @abc.abstractmethod
    def stats(self) -> RuntimeStats:
        """Counters and gauges for a metrics layer."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop everything; returns once every process, thread and store is gone."""
