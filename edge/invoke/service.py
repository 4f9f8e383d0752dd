"""The invocation service: one object the admin app holds for the Invoke API.

It owns (or is given) the function registry, shares the concurrency limiter with whoever else
invokes functions in this process, and runs the durable queue, the dispatcher and the outbox
for asynchronous invocations while `running()` is entered (the admin app's lifespan).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from edge.config import EdgeConfig, FunctionConfig
from edge.function_logs import FunctionLogs
from edge.functions import FunctionRegistry
from edge.invoke.concurrency import ConcurrencyLimiter
from edge.invoke.destinations import Outbox
from edge.invoke.dispatcher import Dispatcher
from edge.invoke.metrics import InvokeMetrics
from edge.invoke.names import LATEST, function_arn
from edge.invoke.queue import EventQueue, NewEvent
from edge.lambda_service import NotFound
from edge.traces import new_trace_header
from sandbox import FunctionCodeInvalid, FunctionError, FunctionThrottled, InvocationResult

if TYPE_CHECKING:
    from edge.cluster import Cluster

logger = logging.getLogger("edge.invoke")

# The invoker's `X-Amz-Client-Context`, decoded (synchronous invocations only).
ClientContext = dict[str, Any] | None

# Lambda's default timeout when a function sets none (spec §14).
DEFAULT_TIMEOUT_SECONDS = 3.0


class InvokeService:
    """Sync and async invocation of the configured functions, under one concurrency limit."""

    def __init__(
        self,
        config: EdgeConfig,
        *,
        limiter: ConcurrencyLimiter | None = None,
        functions: FunctionRegistry | None = None,
        wasm_cache_dir: str | None = None,
        logs: FunctionLogs | None = None,
        clock: Callable[[], float] = time.time,
        cluster: Cluster | None = None,
    ) -> None:
        self.config = config
        self.limiter = limiter or ConcurrencyLimiter.from_config(config)
        self._owns_registry = functions is None
        self.registry = functions or FunctionRegistry(
            config, logs=logs, wasm_cache_dir=wasm_cache_dir
        )
        self._clock = clock
        self._cluster = cluster
        self.queue = self._event_queue(config, cluster)
        self.outbox = Outbox(self.queue, base_dir=config.base_dir, clock=clock)
        self.dispatcher = Dispatcher(
            self.queue,
            self.limiter,
            self._run_queued,
            config.functions,
            config.invoke,
            on_finished=self.outbox.wake,
            clock=clock,
        )
        self.metrics = InvokeMetrics(
            self.limiter, dispatcher=self.dispatcher, outbox=self.outbox, clock=clock
        )
        self.metrics_registry = CollectorRegistry()
        self.metrics_registry.register(self.metrics)
        self._queue_open = False
        # What the management API changed of a function's description (edge.lambda_service):
        # (name, the configured document) -> the members to replace.
        self.describe_changes: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
        self._registry_started = not self._owns_registry
        self._start_lock = asyncio.Lock()

    async def apply(self, config: EdgeConfig, *, replace: Collection[str] = ()) -> list[str]:
        """Serve a reloaded configuration (`edge.reload`): its functions, as
        `FunctionRegistry.update` takes them, and their async-invocation settings. Returns
        the functions replaced."""
        self.config = config
        replaced, _ = await self.registry.update(config, replace=replace)
        self.dispatcher.use_functions(config.functions, config.invoke)
        return replaced

    def _event_queue(self, config: EdgeConfig, cluster: Cluster | None) -> EventQueue:
        """The node's SQLite queue, or with `[cluster]` the streams every node shares."""
        if cluster is None or config.cluster.async_queue != "redis":
            return EventQueue(config.invoke.queue_path)
        from edge.invoke.stream_queue import StreamQueue

        return StreamQueue(
            config.invoke.queue_path,
            cluster,
            functions={name: self.timeout_of(name) for name in config.functions},
            consumer=cluster.node_id,
            visibility_seconds=config.cluster.event_visibility,
            clock=self._clock,
        )

    def function_config(self, name: str) -> FunctionConfig | None:
        return self.config.functions.get(name)

    def timeout_of(self, name: str, version: str = LATEST) -> float:
        """A direct invocation's timeout: the version's own, or Lambda's default 3 s."""
        if version == LATEST:
            return self.config.functions[name].timeout or DEFAULT_TIMEOUT_SECONDS
        return self.registry.store.version_config(name, version).timeout or DEFAULT_TIMEOUT_SECONDS

    def resolve(self, name: str, qualifier: str | None) -> str:
        """The version `qualifier` runs now (`edge.lambda_service.NotFound` if none)."""
        return self.registry.resolve(name, qualifier)

    async def run_function(
        self,
        name: str,
        payload: bytes,
        request_id: str,
        client_context: ClientContext = None,
        trace_id: str | None = None,
        *,
        version: str = LATEST,
        qualifier: str | None = None,
    ) -> InvocationResult:
        """Invoke version `version` of `name` once with its timeout, without admission (the
        caller holds a lease).

        `client_context`: the invoker's `X-Amz-Client-Context`, decoded (synchronous only);
        `trace_id`: the invocation's `X-Amzn-Trace-Id` value (None: a new one).
        `qualifier`: as the caller named it (`3`, `live`), for the function's context."""
        if not self._registry_started:
            await self._start_registry()
        timeout = self.timeout_of(name, version)
        started = time.perf_counter()
        try:
            result = await self.registry.invoke(
                name,
                payload,
                request_id=request_id,
                deadline=time.monotonic() + timeout,
                timeout_seconds=timeout,
                client_context=client_context,
                version=version,
                invoked_arn=function_arn(name, qualifier) if qualifier else None,
                trace_id=trace_id or new_trace_header(),
            )
        except FunctionThrottled as throttled:
            self.limiter.note_throttle(name, throttled.reason)
            raise
        except FunctionError:
            self.metrics.record_invocation(name, version, time.perf_counter() - started, True)
            raise
        self.metrics.record_invocation(name, version, time.perf_counter() - started, False)
        return result

    async def _run_queued(
        self, name: str, payload: bytes, request_id: str, qualifier: str = LATEST
    ) -> InvocationResult:
        """An asynchronous event's attempt: its qualifier resolved now."""
        try:
            version = self.resolve(name, qualifier)
        except NotFound:
            raise FunctionCodeInvalid(name, f"no version or alias {qualifier!r}") from None
        named = None if qualifier == LATEST else qualifier
        return await self.run_function(name, payload, request_id, version=version, qualifier=named)

    async def _start_registry(self) -> None:
        # Started on first use: an admin listener that never invokes costs no zygote.
        async with self._start_lock:
            if not self._registry_started:
                await self.registry.start()
                self._registry_started = True

    async def invoke(
        self,
        name: str,
        payload: bytes,
        request_id: str,
        client_context: ClientContext = None,
        trace_id: str | None = None,
        *,
        version: str = LATEST,
        qualifier: str | None = None,
    ) -> InvocationResult:
        """A synchronous invocation: admitted by the limiter (FunctionThrottled if not); the
        limit is the function's, whichever version runs (as Lambda)."""
        async with self.limiter.lease(name):
            return await self.run_function(
                name,
                payload,
                request_id,
                client_context,
                trace_id,
                version=version,
                qualifier=qualifier,
            )

    async def enqueue(self, name: str, qualifier: str, payload: bytes, request_id: str) -> None:
        """Accept an asynchronous invocation: returns once the event is durably stored."""
        await self.queue.put(NewEvent(request_id, name, qualifier, payload), self._clock())
        self.dispatcher.wake()

    async def refresh_metrics(self) -> None:
        """Read the queue's depth and oldest event for the next scrape."""
        if self._queue_open:
            self.metrics.queue_stats = await self.queue.stats()

    @contextlib.asynccontextmanager
    async def running(self, *, drain_seconds: float = 10.0) -> AsyncIterator[None]:
        """Start the functions and (with any function configured) the async machinery."""
        try:
            if not self.config.functions:
                yield
                return
            if self._cluster is not None:
                await self._cluster.start()  # a no-op when the admin app started it
            recovered = await self.queue.open()
            self._queue_open = True
            if recovered:
                logger.warning(
                    "async queue %s: %d event(s) were running when the edge stopped; "
                    "they run again",
                    self.config.invoke.queue_path,
                    recovered,
                )
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self.dispatcher.run())
                    tasks.create_task(self.outbox.run())
                    try:
                        yield
                    finally:
                        await self.dispatcher.stop(drain_seconds)
                        await self.outbox.stop()
            finally:
                await self.outbox.aclose()
                self._queue_open = False
                await self.queue.close()
        finally:
            if self._owns_registry and self._registry_started:
                await self.registry.aclose()
