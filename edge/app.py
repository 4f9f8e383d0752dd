"""The Starlette applications: the proxy every viewer talks to, and the admin listener.

`create_app` takes the edges of the world as arguments (origins, metrics, access log), so tests
can inject their own; only the CLI builds the real ones. Every viewer request goes to the
viewer adapter (`edge.viewer`), which runs the journey (`edge.pipeline`); the admin app
serves `/healthz`, `/metrics`, `/invalidations` and Lambda's Invoke API on its own address,
every request first through `AdminGuard` (Host, Origin, signature).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from edge.accesslog import AccessLog
from edge.admin_guard import AdminAccess, AdminGuard
from edge.caching import build_cache
from edge.config import EdgeConfig
from edge.functions import FunctionRegistry, Limiter
from edge.invalidation import (
    MAX_INVALIDATION_BODY_BYTES,
    InvalidationJournal,
    InvalidationRefused,
    Invalidator,
    check_paths,
    too_large,
)
from edge.invoke import InvokeService
from edge.lambda_service.deploy import Deployer
from edge.metrics import ProxyMetrics, render_latest
from edge.origins import Upstream, build_upstreams, close_upstreams
from edge.pipeline import Pipeline
from edge.reload import Reloader
from edge.status_page import RecentErrors
from edge.triggers import TriggerRunner
from edge.viewer import AsgiViewer
from origin_proxy.cache import HttpCache

if TYPE_CHECKING:
    from edge.cluster import Cluster

# How stale /metrics may be with several workers (one worker flushes on every scrape).
METRICS_FLUSH_SECONDS = 0.5


def create_app(
    config: EdgeConfig,
    *,
    upstreams: dict[str, Upstream] | None = None,
    metrics: ProxyMetrics | None = None,
    access_log: AccessLog | None = None,
    functions: FunctionRegistry | None = None,
    wasm_cache_dir: str | None = None,
    cache: HttpCache | None = None,
    limiter: Limiter | None = None,
    journal: InvalidationJournal | None = None,
    recent_errors: RecentErrors | None = None,
    cluster: Cluster | None = None,
    reloader: Reloader | None = None,
    worker_tier: Cluster | None = None,
) -> Starlette:
    """The viewer-facing application for `config`. `limiter` admits function invocations by
    concurrency (shared with the admin listener's Invoke API when in the same process).
    `wasm_cache_dir`: where compiled WASM modules are kept (None: `~/.cache/edge/wasm`).
    `cluster`: this process's Redis connection (`[cluster]`), run while the app runs; the
    app follows the cluster's invalidations with it, and its cache has the shared tier.
    `worker_tier`: without a cluster, the connection to the node's own redis-server that its
    workers share as their second cache tier (`edge.cluster.local_redis`)."""
    registry = functions
    if registry is None and config.functions:
        registry = FunctionRegistry(config, limiter=limiter, wasm_cache_dir=wasm_cache_dir)
    live = upstreams if upstreams is not None else build_upstreams(config, registry)
    recorder = metrics or ProxyMetrics(CollectorRegistry())
    if registry is not None:
        recorder.watch_environments(registry.stats)
        recorder.watch_concurrency(registry.concurrency)
        recorder.describe_functions(
            {name: (info.runtime, info.memory_mb) for name, info in registry.info.items()}
        )
    pipeline_class: type[Pipeline] = Pipeline
    viewer_class: type[AsgiViewer] = AsgiViewer
    spans = None
    if config.tracing.otlp_endpoint is not None:
        from edge import otel

        spans = otel.make_spans(config.tracing)
        pipeline_class = otel.traced_pipeline(Pipeline)
        viewer_class = otel.traced_viewer(AsgiViewer)
        pipeline_class.spans = viewer_class.spans = spans  # type: ignore[attr-defined]

    def make_pipeline(
        config: EdgeConfig,
        upstreams: dict[str, Upstream],
        registry: FunctionRegistry | None,
        cache: HttpCache | None,
    ) -> Pipeline:
        triggers = (
            TriggerRunner.from_config(config, registry, recorder) if registry is not None else None
        )
        if triggers is not None and spans is not None:
            triggers = dataclasses.replace(triggers, spans=spans)
        return pipeline_class(config, upstreams, metrics=recorder, triggers=triggers, cache=cache)

    pipeline = make_pipeline(
        config,
        live,
        registry,
        cache
        if cache is not None
        else build_cache(
            config.cache,
            _shared_tier(config, cluster)
            if cluster is not None
            else _shared_tier(config, worker_tier, operation_seconds=LOCAL_TIER_SECONDS),
        ),
    )
    if pipeline.cache is not None:
        recorder.watch_cache(pipeline.cache.store.snapshot)
    viewer = viewer_class(
        pipeline,
        config.server,
        metrics=recorder,
        access_log=access_log or AccessLog(sys.stdout if config.server.access_log else None),
    )
    viewer.recent_errors = recent_errors

    async def flush_metrics() -> None:
        while True:
            await asyncio.sleep(METRICS_FLUSH_SECONDS)
            recorder.flush()

    state = LiveViewer(
        config,
        viewer,
        pipeline,
        registry,
        live,
        make_pipeline,
        limiter=limiter,
        wasm_cache_dir=wasm_cache_dir,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with asyncio.TaskGroup() as tasks:
            flusher = tasks.create_task(flush_metrics())
            follower = (
                tasks.create_task(journal.follow(pipeline.cache.invalidate_paths))
                if journal is not None and pipeline.cache is not None
                else None
            )
            state.background = tasks
            pipeline.background = tasks
            cluster_follower = None
            try:
                if worker_tier is not None:
                    await worker_tier.start()
                if cluster is not None:
                    await cluster.start()
                    if pipeline.cache is not None:
                        from edge.cluster.invalidations import ClusterInvalidations

                        stream = ClusterInvalidations(
                            cluster, history=config.cluster.invalidation_history
                        )
                        cluster_follower = tasks.create_task(
                            stream.follow(pipeline.cache.invalidate_paths)
                        )
                if registry is not None:
                    await registry.start()
                async with (
                    reloader.attached(state) if reloader is not None else contextlib.nullcontext()
                ):
                    yield
            finally:
                state.background = None
                state.pipeline.background = None
                flusher.cancel()
                if follower is not None:
                    follower.cancel()
                if cluster_follower is not None:
                    cluster_follower.cancel()
                if cluster is not None or worker_tier is not None:
                    shared = pipeline.cache.shared if pipeline.cache is not None else None
                    aclose = getattr(shared, "aclose", None)
                    if aclose is not None:
                        await aclose()  # the shared tier's writes in flight
                    for connection in (cluster, worker_tier):
                        if connection is not None:
                            await connection.aclose()
                recorder.flush()
                await state.aclose()
                if spans is not None:
                    await asyncio.to_thread(spans.shutdown)  # sends the spans still queued

    app = _EdgeApp(viewer, lifespan=lifespan)
    app.router.default = viewer
    app.state.pipeline = pipeline
    app.state.live = state
    return app


PipelineMaker = Callable[
    [EdgeConfig, dict[str, Upstream], FunctionRegistry | None, HttpCache | None], Pipeline
]


class LiveViewer:
    """What a reload replaces in a viewer app: its functions (`FunctionRegistry.update`), and,
    when the configuration changed, the pipeline (behaviors, origins, cache policies) that the
    viewer adapter reads once per request. The cache's store stays; origins a new pipeline no
    longer uses are closed after `[server] graceful_timeout`, the time a request in flight
    has."""

    def __init__(
        self,
        config: EdgeConfig,
        viewer: AsgiViewer,
        pipeline: Pipeline,
        registry: FunctionRegistry | None,
        upstreams: dict[str, Upstream],
        make_pipeline: PipelineMaker,
        *,
        limiter: Limiter | None,
        wasm_cache_dir: str | None,
    ) -> None:
        self.config = config
        self.viewer = viewer
        self.pipeline = pipeline
        self.registry = registry
        self.upstreams = upstreams
        self.make_pipeline = make_pipeline
        self.limiter = limiter
        self.wasm_cache_dir = wasm_cache_dir
        self.background: asyncio.TaskGroup | None = None
        self._retired: list[dict[str, Upstream]] = []
        self._closing: set[asyncio.Task[None]] = set()

    async def apply(self, config: EdgeConfig, *, replace: Collection[str] = ()) -> list[str]:
        """Serve `config`; returns the functions replaced (or added)."""
        replaced: list[str] = []
        if self.registry is None and config.functions:
            self.registry = FunctionRegistry(
                config, limiter=self.limiter, wasm_cache_dir=self.wasm_cache_dir
            )
            await self.registry.start()
            replaced = list(config.functions)
        elif self.registry is not None:
            replaced, _ = await self.registry.update(config, replace=replace)
        if config == self.config:
            return replaced
        reuse = config.origins == self.config.origins and config.functions == self.config.functions
        upstreams = self.upstreams if reuse else build_upstreams(config, self.registry)
        pipeline = self.make_pipeline(config, upstreams, self.registry, self.pipeline.cache)
        pipeline.https_port = self.pipeline.https_port
        pipeline.background = self.background
        self.viewer.journey = pipeline  # the one reference each request reads
        if not reuse:
            self._retire(self.upstreams, config.server.graceful_timeout)
        self.config, self.pipeline, self.upstreams = config, pipeline, upstreams
        return replaced

    def _retire(self, upstreams: dict[str, Upstream], after_seconds: float) -> None:
        self._retired.append(upstreams)

        async def close_later() -> None:
            await asyncio.sleep(after_seconds)
            self._retired.remove(upstreams)
            await close_upstreams(upstreams)

        task = asyncio.get_running_loop().create_task(close_later())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        for task in list(self._closing):
            task.cancel()
        if self.registry is not None:
            await self.registry.aclose()
        for upstreams in [*self._retired, self.upstreams]:
            await close_upstreams(upstreams)


# A node's own redis-server (the workers' tier) is a child on a Unix socket: a command slower
# than this means the machine is starved, not that Redis is gone, so it is given longer than a
# cluster's (whose `timeout` bounds what a remote Redis may cost a request).
LOCAL_TIER_SECONDS = 2.0


def _shared_tier(
    config: EdgeConfig, cluster: Cluster | None, *, operation_seconds: float | None = None
) -> Any:
    """The shared cache tier on the cluster's Redis (or the node's own), when configured."""
    if cluster is None or not config.cluster.shared_cache:
        return None
    from edge.shared_cache import RedisTier

    settings = config.cluster
    return RedisTier(
        cluster,
        max_object_bytes=settings.shared_cache_max_object_bytes,
        wait_seconds=settings.shared_cache_wait,
        operation_seconds=max(settings.timeout, operation_seconds or 0.0),
    )


class _EdgeApp(Starlette):
    """Starlette for the lifespan; HTTP requests go straight to the viewer adapter, which
    handles its own errors, past Starlette's three middleware layers (about 15 µs a request)."""

    def __init__(self, viewer: AsgiViewer, **options: Any) -> None:
        super().__init__(**options)
        self.viewer = viewer

    def refuse_unparsed(
        self, status: int, detail: str | None, client_ip: str, request_line: bytes
    ) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The viewer's answer to a request the server's parser refused (for the engines)."""
        return self.viewer.refuse_unparsed(status, detail, client_ip, request_line)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.viewer(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_admin_app(
    registry: CollectorRegistry | None = None,
    *,
    flush: Callable[[], None] | None = None,
    invoke: InvokeService | None = None,
    invalidate: Callable[[Sequence[str]], Awaitable[int]] | None = None,
    journal: InvalidationJournal | None = None,
    access: AdminAccess | None = None,
    key_value_stores: Mapping[str, Path] | None = None,
    status: tuple[EdgeConfig, RecentErrors] | None = None,
    cluster: Cluster | None = None,
    cluster_history: int = 10_000,
    deployer: Deployer | None = None,
    reloader: Reloader | None = None,
) -> Starlette:
    """Health, metrics, invalidations and (with `invoke`) Lambda's Invoke API, on a separate
    listener; with `key_value_stores` (file by name), the KeyValueStore admin API.

    `registry`: the metrics to scrape: this process's (one worker), or every worker's
    (`metrics.multiprocess_registry`); None: this process's default registry.
    `flush` moves what the proxy recorded into the registry before a scrape. `invoke` runs
    while the app does (its lifespan) and adds its own metrics to every scrape. `invalidate`
    applies a batch of paths to this process's caches; without it, `journal` takes them to
    the workers. `access` says who may use the listener (default: the Host and Origin checks,
    no signature); every request passes `AdminGuard` before any route. `cluster`: this
    process's Redis connection (`[cluster]`): invalidations go to every node through it, and
    /metrics and the status page show whether it is up. `deployer` runs gradual
    deployments while the app does, behind `/deployments`.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from edge.invoke import invoke_routes

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    invalidator = Invalidator(invalidate) if invalidate is not None else None
    stream = None
    cluster_registry = None
    if cluster is not None:
        from edge.cluster.connection import ClusterCollector
        from edge.cluster.invalidations import ClusterInvalidations

        stream = ClusterInvalidations(cluster, history=cluster_history)
        cluster_registry = CollectorRegistry()
        cluster_registry.register(ClusterCollector(cluster))

    async def invalidations(request: Request) -> Response:
        """CloudFront-style invalidation: `{"paths": ["/a.html", "/images/*"]}`."""
        try:
            body = await _read_bounded(request, MAX_INVALIDATION_BODY_BYTES)
            document = orjson.loads(body)
            paths = check_paths(document.get("paths") if isinstance(document, dict) else None)
            started = time.perf_counter()
            entry_id = uuid.uuid4().hex[:14].upper()
            if stream is not None and await stream.publish(entry_id, paths):
                removed: int | None = None  # every node applies it and logs its own count
            elif invalidator is not None:
                if stream is not None:
                    _log_local_invalidation(entry_id)
                    stream.keep_for_later(entry_id, paths)
                removed = await invalidator.run(paths)
            elif journal is not None:
                removed = None  # each worker applies it and logs its own count
                entry_id = journal.append(paths)
                if stream is not None:
                    _log_local_invalidation(entry_id)
                    stream.keep_for_later(entry_id, paths)
            else:
                return JSONResponse({"error": "this edge has no cache to invalidate"}, 409)
        except orjson.JSONDecodeError as exc:
            return _refused("InvalidArgument", f"the body is not JSON: {exc}")
        except InvalidationRefused as exc:
            return _refused(exc.code, exc.message)
        return JSONResponse(
            {
                "id": entry_id,
                "status": "Completed" if removed is not None else "InProgress",
                "paths": paths,
                "invalidated": removed,
                "milliseconds": round((time.perf_counter() - started) * 1000, 3),
            },
            201,
        )

    async def scrape() -> bytes:
        if flush is not None:
            flush()
        if registry is not None:
            body = generate_latest(registry)
        else:
            body, _type = render_latest()
        if invoke is not None:
            await invoke.refresh_metrics()
            body += generate_latest(invoke.metrics_registry)
        if cluster_registry is not None:
            body += generate_latest(cluster_registry)
        if deployments_registry is not None:
            body += generate_latest(deployments_registry)
        return body

    async def metrics(_: Request) -> Response:
        return Response(await scrape(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if cluster is not None:
            await cluster.start()
        try:
            async with contextlib.AsyncExitStack() as running:
                if invoke is not None:
                    await running.enter_async_context(invoke.running())
                    if reloader is not None:
                        await running.enter_async_context(reloader.attached(invoke))
                if deployer is not None:
                    await running.enter_async_context(deployer.running())
                yield
        finally:
            if cluster is not None:
                await cluster.aclose()

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/invalidations", invalidations, methods=["POST"]),
    ]
    body_limits = [MAX_INVALIDATION_BODY_BYTES]
    if invoke is not None and reloader is not None:
        from edge.lambda_service.config_api import MAX_CODE_BODY_BYTES

        body_limits.append(MAX_CODE_BODY_BYTES)
    if status is not None:
        from edge.status_page import status_routes

        status_config = status[0]

        def extra() -> dict[str, Any]:
            sections: dict[str, Any] = {"versions": _versions_of(status_config)}
            if cluster is not None:
                sections["cluster"] = cluster.status()
            return sections

        routes += status_routes(status_config, scrape, status[1], extra=extra)
    if key_value_stores:
        from edge.kvs_admin import MAX_PUT_BODY_BYTES, key_value_store_routes

        routes += key_value_store_routes(key_value_stores)
        body_limits.append(MAX_PUT_BODY_BYTES)
    if invoke is not None and reloader is not None:
        from edge.lambda_service.config_api import configuration_routes

        routes += configuration_routes(invoke, reloader)
    if invoke is not None:
        routes += invoke_routes(invoke)
        body_limits += [
            invoke.config.invoke.sync_payload_bytes,
            invoke.config.invoke.async_payload_bytes,
        ]
    deployments_registry = None
    if deployer is not None:
        from edge.lambda_service.deploy_api import deployment_routes
        from edge.lambda_service.deploy_metrics import deployment_registry

        routes += deployment_routes(deployer)
        deployments_registry = deployment_registry(deployer)
    guard = Middleware(AdminGuard, access=access or AdminAccess(), max_body_bytes=max(body_limits))
    return Starlette(routes=routes, lifespan=lifespan, middleware=[guard])


def _log_local_invalidation(entry_id: str) -> None:
    import logging

    logging.getLogger("edge.cluster").warning(
        "cluster: invalidation %s applied to this node now (redis unavailable); the others "
        "get it when redis is back",
        entry_id,
    )


# CloudFront's statuses for the errors of CreateInvalidation (the others are 400).
_INVALIDATION_STATUS = {"BatchTooLarge": 413}


def _refused(code: str, message: str) -> Response:
    status = _INVALIDATION_STATUS.get(code, 400)
    # A body refused for its size is left unread: the connection cannot carry another request.
    headers = {"Connection": "close"} if status == 413 else None
    return JSONResponse(
        {"error": f"invalid invalidation request: {message}", "code": code}, status, headers
    )


async def _read_bounded(request: Request, limit_bytes: int) -> bytes:
    """The body, counted while it streams in: over `limit_bytes` (declared or sent) it is
    refused before it is read whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise too_large(limit_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise too_large(limit_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _versions_of(config: EdgeConfig) -> dict[str, Any]:
    """Published versions and aliases by function, for the status page (read from the state
    directory; empty when nothing was published)."""
    from edge.lambda_service import FunctionStore

    store = FunctionStore(config.server.state_dir)
    found: dict[str, Any] = {}
    try:
        for name in config.functions:
            versions = store.versions(name)
            aliases = store.aliases(name)
            if versions or aliases:
                found[name] = {
                    "versions": [v.number for v in versions],
                    "aliases": [
                        {
                            "name": a.name,
                            "version": a.version,
                            "weights": dict(a.additional_weights),
                        }
                        for a in aliases
                    ],
                }
    except OSError:
        return {}
    return found
