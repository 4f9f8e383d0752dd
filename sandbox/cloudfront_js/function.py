"""A CloudFront Function behind the runtime seam, run in process by QuickJS.

One QuickJS context per function, set up once: the prelude (modules, Buffer, console, a frozen
`Date.now()`, no `eval` or `Function` constructor, no timers), then the user's code evaluated as
a factory, then every reachable built-in frozen. A run calls the factory (fresh top-level
variables and closures), then `handler(event)`, then drains the promise jobs for a 2.0 handler
that returned a promise: nothing a run does survives it, because it can reach nothing but frozen
objects and its own. The context has CloudFront's 2 MB of memory (on top of what the setup
took) and a CPU budget per run; a run that fails in any way gets the context rebuilt for the
next one. Runs happen on the event loop: each is bounded by the budget (a few milliseconds).
"""

from __future__ import annotations

import importlib.resources
import time
from typing import Final

import orjson
import quickjs  # type: ignore[import-untyped]

from sandbox.cloudfront_js.kvs import KeyValueStore, KeyValueStoreInvalid, Snapshot
from sandbox.cloudfront_js.source import SourceRefused, factory_source
from sandbox.cloudfront_js.spec import CloudFrontJsSpec
from sandbox.runtime.errors import (
    FunctionCodeInvalid,
    FunctionError,
    FunctionMemoryExceeded,
    FunctionTimeout,
    PoolClosed,
)
from sandbox.runtime.protocol import Invocation, Runtime
from sandbox.runtime.result import InvocationResult
from sandbox.runtime.sink import LogSink
from sandbox.runtime.stats import Counters, RuntimeStats

PRELUDE: Final = (
    importlib.resources.files("sandbox.cloudfront_js").joinpath("prelude.js").read_text("utf-8")
)
_ENTRY_POINTS: Final = ("__cf_run", "__cf_settled", "__cf_store", "__cf_logs")
# A run may chain this many promise jobs (each `await` is one or more).
_MAX_JOBS: Final = 10_000


class ComputeExceeded(FunctionTimeout):
    """The run used more than its compute budget (compute utilization over 100)."""


class _Context:
    """One QuickJS context, set up and locked, with the run entry points in hand."""

    def __init__(self, spec: CloudFrontJsSpec, factory_js: str) -> None:
        context = quickjs.Context()
        context.set_max_stack_size(256 * 1024)
        lock = context.eval(PRELUDE)(spec.runtime)
        self.run, self.settled, self.store, self.logs = (
            context.get(name) for name in _ENTRY_POINTS
        )
        self.factory = context.eval(factory_js)
        context.eval("; ".join(f"delete globalThis.{n}" for n in _ENTRY_POINTS))
        lock()
        self.context = context
        self.memory_limit_bytes = spec.memory_limit_bytes
        self.store_snapshot: Snapshot | None = None
        self.limit_memory()

    def load_store(self, snapshot: Snapshot) -> None:
        """Swap in a store's contents (whole: a run sees the old or the new)."""
        self.context.set_memory_limit(-1)
        self.store(orjson.dumps({"data": snapshot.data, "meta": snapshot.meta()}).decode())
        self.store_snapshot = snapshot
        self.limit_memory()

    def limit_memory(self) -> None:
        """CloudFront's 2 MB for the run, on top of what the setup (and the store) hold."""
        self.context.set_memory_limit(-1)
        self.context.gc()
        held = int(self.context.memory()["malloc_size"])
        self.context.set_memory_limit(held + self.memory_limit_bytes)


class CloudFrontFunction(Runtime):
    """A CloudFront Function (cloudfront-js-1.0 or 2.0); `invoke(event)` returns its result
    as JSON bytes: `{"result": <what the handler returned>, "computeUtilization": 0..100}`."""

    def __init__(self, spec: CloudFrontJsSpec, *, log_sink: LogSink | None = None) -> None:
        super().__init__(spec)
        self.spec = spec
        self._log_sink = log_sink
        self._factory_js = ""
        self._context: _Context | None = None
        self._store: KeyValueStore | None = None
        self._counters = Counters()
        self._busy = False
        self._invalid: FunctionCodeInvalid | None = None

    def load(self) -> None:
        """Read, check and set up the code (blocking; `start` and `edge check` call it)."""
        try:
            code = self.spec.code.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FunctionCodeInvalid(self.name, f"cannot read {self.spec.code}: {exc}") from None
        try:
            self._factory_js = factory_source(code, self.spec.runtime)
        except SourceRefused as exc:
            raise FunctionCodeInvalid(self.name, str(exc)) from None
        if self.spec.key_value_store is not None:
            try:
                self._store = KeyValueStore(
                    self.spec.key_value_store_name, self.spec.key_value_store
                )
            except (OSError, KeyValueStoreInvalid) as exc:
                raise FunctionCodeInvalid(self.name, f"key value store: {exc}") from None
        self._context = self._new_context()

    def _new_context(self) -> _Context:
        try:
            context = _Context(self.spec, self._factory_js)
        except quickjs.JSException as exc:
            raise FunctionCodeInvalid(self.name, _first_line(exc)) from None
        if not _is_function(context):
            raise FunctionCodeInvalid(
                self.name, "the code defines no top-level `function handler(event)`"
            )
        return context

    async def start(self) -> None:
        if self.closed:
            raise PoolClosed(f"function {self.name!r} is closed")
        if self._invalid is not None:
            raise self._invalid
        if self.started:
            return
        try:
            self.load()
        except FunctionCodeInvalid as exc:
            self._invalid = exc
            raise
        self.started = True

    def has_entry(self, entry: str) -> bool:
        return True

    def stats(self) -> RuntimeStats:
        busy = int(self._busy)
        return self._counters.snapshot(environments=1, busy=busy, idle=1 - busy)

    async def aclose(self) -> None:
        self.closed = True
        self._context = None

    async def _invoke(self, invocation: Invocation) -> InvocationResult:
        return self.run_sync(invocation.event, invocation.request_id)

    def run_sync(self, event: bytes, request_id: str) -> InvocationResult:
        """One run, on the calling thread (bounded by the compute budget)."""
        if self._invalid is not None:
            raise self._invalid
        if self._context is None:
            self._context = self._new_context()
        context = self._context
        self._counters.invocations += 1
        self._counters.warm_starts += 1
        if self._store is not None:
            snapshot = self._store.snapshot()
            if snapshot is not context.store_snapshot:
                context.load_store(snapshot)
        budget = self.spec.compute_budget_ms / 1000
        self._busy = True
        started = time.thread_time()
        try:
            context.context.set_time_limit(budget)
            out = context.run(context.factory, event.decode("utf-8"), time.time() * 1000 // 1)
            if out is None:
                out = self._settle(context, started, budget)
        except quickjs.JSException as exc:
            self._context = None  # a failed run leaves nothing behind: a new context next time
            raise self._failure(exc, started, budget, request_id, context) from None
        finally:
            self._busy = False
        used = time.thread_time() - started
        utilization = min(100, round(used / budget * 100))
        result = out.encode("utf-8")
        log = ""
        if out.startswith("L"):
            document = orjson.loads(result[1:])
            log = self._log_text(request_id, document["logs"], None)
            result = orjson.dumps(document["result"])
        payload = b'{"result":%b,"computeUtilization":%d}' % (result, utilization)
        return InvocationResult(
            payload=payload,
            log=log,
            request_id=request_id,
            duration_ms=used * 1000,
            billed_duration_ms=0,
            max_memory_used_mb=0,
            init_duration_ms=None,
            executed_version=self.version,
        )

    def _settle(self, context: _Context, started: float, budget: float) -> str:
        jobs = 0
        while context.context.execute_pending_job():
            jobs += 1
            remaining = budget - (time.thread_time() - started)
            if remaining <= 0 or jobs > _MAX_JOBS:
                raise quickjs.JSException("InternalError: interrupted")
            context.context.set_time_limit(remaining)
        return str(context.settled())

    def _failure(
        self,
        exc: quickjs.JSException,
        started: float,
        budget: float,
        request_id: str,
        context: _Context,
    ) -> FunctionError:
        message = str(exc)
        used = time.thread_time() - started
        logs: list[str] = []
        try:
            logs = orjson.loads(str(context.logs()))
        except Exception:  # noqa: BLE001 - a broken context has no logs to give
            logs = []
        first = _first_line(exc)
        error: FunctionError
        if "interrupted" in first:
            text = (
                f"The function exceeded its compute budget ({self.spec.compute_budget_ms:g} ms; "
                "compute utilization over 100)"
            )
            error = ComputeExceeded(
                {"errorType": "ComputeUtilizationExceeded", "errorMessage": text},
                request_id=request_id,
                duration_ms=used * 1000,
            )
            self._counters.count_error(error)
        elif "out of memory" in first or first == "null":
            text = "The function exceeded its memory limit (2 MB)"
            error = FunctionMemoryExceeded(
                {"errorType": "MemoryLimitExceeded", "errorMessage": text},
                request_id=request_id,
                duration_ms=used * 1000,
            )
            self._counters.count_error(error)
        else:
            error_type, _, text = first.partition(": ")
            if not text:
                error_type, text = "Error", first
            error = FunctionError(
                {"errorType": error_type, "errorMessage": text, "stackTrace": message.split("\n")},
                request_id=request_id,
                duration_ms=used * 1000,
            )
            self._counters.count_error(error)
        error.log = self._log_text(request_id, logs, f"{error.error_type}: {error.error_message}")
        return error

    def _log_text(self, request_id: str, logs: list[str], error: str | None) -> str:
        """The run's log (CloudFront Functions' lines), returned with its result or error: the
        caller writes it where function logs go."""
        lines = [f"{request_id} START DistributionID: function {self.name}"]
        lines += [f"{request_id} {line}" for line in logs]
        if error is not None:
            lines.append(f"{request_id} ERROR {error}")
        lines.append(f"{request_id} END")
        return "\n".join(lines) + "\n"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n", 1)[0]


def _is_function(context: _Context) -> bool:
    probe = context.context.eval("(function (f) { return typeof f(function () {}, {}, {}); })")
    try:
        return bool(probe(context.factory) == "function")
    except quickjs.JSException:
        return True  # its top level throws: that is each run's error to report
