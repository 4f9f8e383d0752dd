"""The `edge` command: serve, check, and (with the function runtime) invoke and events.

Only this module reads the environment and builds the real world (origins, metrics, servers).
A configuration error prints the problems and exits with status 2, never a traceback.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edge import __version__
from edge.bench.command import bench as bench_command
from edge.config import (
    ConfigError,
    EdgeConfig,
    config_for_origin,
    load_config,
    with_server_flags,
)
from edge.lambda_service.deploy_cli import deploy as deploy_command
from edge.lambda_service.deploy_cli import deployments as deployments_command
from edge.sigv4 import Credentials

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
# The region `edge invalidate` signs for; the admin listener accepts any.
SIGNING_REGION = "us-east-1"


def default_config_path() -> Path:
    """The embedded default: the examples shipped beside the package."""
    return Path(__file__).resolve().parent.parent / "examples" / "edge.toml"


def _fail_config(error: ConfigError) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {error.source}: invalid configuration")
    for problem in error.problems:
        err_console.print(f"  {problem}", markup=False)
    sys.exit(2)


def _load(
    config_path: Path | None,
    origin: str | None,
    hooks: dict[str, str] | None = None,
    **quick: Any,
) -> EdgeConfig:
    """CONFIG, or the one-behavior configuration of --origin (`quick`: config_for_origin's
    include_body and origin_kind)."""
    try:
        if origin is not None:
            if config_path is not None:
                raise click.UsageError("give either CONFIG or --origin, not both")
            return config_for_origin(origin, hooks=hooks or {}, **quick)
        return load_config(config_path or default_config_path())
    except ConfigError as error:
        _fail_config(error)


def _with_overrides(config: EdgeConfig, **server: Any) -> EdgeConfig:
    changes = {k: v for k, v in server.items() if v is not None}
    if not changes:
        return config
    try:
        return with_server_flags(config, changes)
    except ConfigError as error:
        raise click.UsageError("; ".join(error.problems)) from None


def _sandbox_report(config: EdgeConfig) -> Any:
    """How Python functions are isolated here (sandbox.probe_isolation); exits with status 2
    when `[sandbox] isolation` asks for a level this machine cannot give."""
    from sandbox import SandboxError, probe_isolation

    settings = config.sandbox
    try:
        return probe_isolation(settings.isolation, settings.uid_base)
    except SandboxError as exc:
        err_console.print(f"[bold red]error:[/] {config.source}: sandbox.isolation: {exc}")
        sys.exit(2)


def _sandbox_line(report: Any) -> None:
    style = "green" if report.level == "namespaces" else "bold yellow"
    err_console.print(f"[{style}]sandbox:[/] {report.describe()}", highlight=False)


def _admin_credentials(config: EdgeConfig) -> Credentials | None:
    """The admin listener's key, its secret read from the environment or a file (exit 2 when
    it cannot be read)."""
    admin = config.admin
    if admin.access_key_id is None:
        return None
    if admin.secret_access_key_env is not None:
        secret = os.environ.get(admin.secret_access_key_env, "")
        where = f"the environment variable {admin.secret_access_key_env}"
    else:
        assert admin.secret_access_key_file is not None
        path = admin.secret_access_key_file
        path = path if path.is_absolute() else config.base_dir / path
        where = f"the file {path}"
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            _fail_config(ConfigError(config.source, [f"admin.secret_access_key_file: {exc}"]))
    if not secret:
        _fail_config(
            ConfigError(
                config.source,
                [f"admin.access_key_id: expected the secret access key in {where}, found none"],
            )
        )
    return Credentials(admin.access_key_id, secret)


def exposure_warning(admin: str | None, *, signed: bool) -> str | None:
    """What `edge serve` says when the admin listener takes unsigned requests beyond loopback
    (`admin`: its HOST:PORT), or None."""
    from edge.server import parse_listen

    if admin is None or signed:
        return None
    host = parse_listen(admin).host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False  # a host name: it may resolve to any address
    if loopback:
        return None
    return (
        f"the admin listener binds {host}, beyond loopback, and takes unsigned requests: "
        "anyone who reaches it can invalidate the cache and run functions. Set [admin] "
        "access_key_id with secret_access_key_env (or secret_access_key_file), or bind it "
        "to 127.0.0.1."
    )


def _banner(
    config: EdgeConfig, listen: str, admin: str | None, sandbox: Any, https: str | None = None
) -> None:
    err_console.print(
        f"[bold]edge {__version__}[/] listening on [bold cyan]http://{listen}[/]"
        f"  ({config.server.workers} worker{'s' if config.server.workers != 1 else ''},"
        f" {config.server.engine})"
    )
    if https:
        err_console.print(f"https on [bold cyan]https://{https}[/]  (HTTP/2 and HTTP/1.1)")
    if admin:
        signed = "signed requests only" if config.admin.access_key_id else "unsigned"
        err_console.print(
            f"admin on http://{admin}  (/status, /healthz, /metrics, /invalidations, "
            f"Lambda API; {signed})"
        )
    _sandbox_line(sandbox)
    err_console.print(f"config: {config.source}")
    origins = Table("origin", "kind", "target", title=None, box=None, pad_edge=False)
    for name, origin in config.origins.items():
        target = str(getattr(origin, "url", None) or getattr(origin, "directory", ""))
        origins.add_row(name, origin.kind, target)
    err_console.print(origins)
    behaviors = Table("behavior", "origin", "methods", box=None, pad_edge=False)
    for behavior in config.behaviors:
        behaviors.add_row(behavior.path, behavior.origin, behavior.methods)
    err_console.print(behaviors)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge")
def main() -> None:
    """A self-hosted, Lambda@Edge-compatible edge function runtime."""


@main.command()
@click.argument("config_path", metavar="[CONFIG]", required=False, type=click.Path(path_type=Path))
@click.option("--origin", help="Serve a one-behavior proxy to this URL or directory.")
@click.option("--listen", help="HOST:PORT for viewers (default 127.0.0.1:8080).")
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes.")
@click.option(
    "--admin",
    help="HOST:PORT for the admin listener: /healthz, /metrics, /invalidations (edge "
    "invalidate) and the Invoke API; with CONFIG or --origin.",
)
@click.option(
    "--engine",
    type=click.Choice(["granian", "hypercorn"]),
    help="The server behind the viewer listeners (default: granian; [server] engine).",
)
@click.option("--access-log/--no-access-log", default=None, help="One line per request on stdout.")
@click.option(
    "--function-logs",
    type=click.Choice(["full", "errors-only", "none"]),
    help="The functions' own log on stderr, each line naming the function and trigger: every "
    "invocation, only those that failed, or none ([server] function_logs; default full).",
)
@click.option(
    "--viewer-request",
    "viewer_request",
    metavar="HANDLER",
    help="With --origin: a Python handler for viewer-request, FILE.py::FUNCTION or "
    "MODULE.FUNCTION (as in edge.toml), with an optional FOLDER/ before it.",
)
@click.option(
    "--origin-request",
    "origin_request",
    metavar="HANDLER",
    help="With --origin: a Python handler for origin-request (same spellings).",
)
@click.option(
    "--origin-response",
    "origin_response",
    metavar="HANDLER",
    help="With --origin: a Python handler for origin-response (same spellings).",
)
@click.option(
    "--viewer-response",
    "viewer_response",
    metavar="HANDLER",
    help="With --origin: a Python handler for viewer-response (same spellings).",
)
@click.option(
    "--include-body",
    is_flag=True,
    help="With --viewer-request / --origin-request: show those functions the request body "
    "(include_body = true).",
)
@click.option(
    "--origin-kind",
    type=click.Choice(["custom", "s3"]),
    help="With --origin: how Lambda@Edge events describe the origin, origin.custom or "
    "origin.s3 (origin_kind; default: custom for a URL, s3 for a directory).",
)
@click.option(
    "--cache",
    type=click.Choice(["rfc9111", "caching-optimized", "disabled"]),
    help="With --origin: the cache policy. rfc9111 (the default): the origin's Cache-Control "
    "and Expires decide, else a share of the Last-Modified age (an edited file can stay "
    "stale for a while); caching-optimized: CloudFront's managed policy; disabled: nothing "
    "is stored, every request reaches the origin (an edited file is served at once).",
)
@click.option(
    "--reload",
    "reload_",
    is_flag=True,
    help="Follow CONFIG and every function's code: a changed function gets new execution "
    "environments (in-flight invocations finish on the old ones); a changed CONFIG is checked "
    "and swapped in without dropping a connection, or refused (the old one keeps serving). "
    "SIGHUP reloads CONFIG with or without this flag.",
)
def serve(
    config_path: Path | None,
    origin: str | None,
    listen: str | None,
    workers: int | None,
    admin: str | None,
    engine: str | None,
    access_log: bool | None,
    viewer_request: str | None,
    origin_request: str | None,
    origin_response: str | None,
    viewer_response: str | None,
    include_body: bool,
    origin_kind: str | None,
    function_logs: str | None,
    cache: str | None,
    reload_: bool,
) -> None:
    """Start the edge with CONFIG (default: the bundled examples/edge.toml), or in front of
    one origin with --origin URL|DIR.

    Every function's code is checked before serving, as `edge check` does: a Python handler
    whose file is missing, does not parse or lacks the function is a configuration error
    (exit 2)."""
    given = {
        "viewer-request": viewer_request,
        "origin-request": origin_request,
        "origin-response": origin_response,
        "viewer-response": viewer_response,
    }
    hooks = {trigger: target for trigger, target in given.items() if target}
    if hooks and origin is None:
        raise click.UsageError("--viewer-request and friends go with --origin")
    if origin_kind is not None and origin is None:
        raise click.UsageError("--origin-kind goes with --origin (in CONFIG: origin_kind)")
    if cache is not None and origin is None:
        raise click.UsageError("--cache goes with --origin (in CONFIG: a behavior's cache)")
    if include_body and not (viewer_request or origin_request):
        raise click.UsageError(
            "--include-body goes with --viewer-request or --origin-request (CloudFront shows "
            "the body to request triggers only)"
        )
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    server_flags = {
        "listen": listen,
        "workers": workers,
        "admin": admin,
        "engine": engine,
        "access_log": access_log,
        "function_logs": function_logs,
    }
    config = _with_overrides(
        _load(
            config_path,
            origin,
            hooks,
            include_body=include_body,
            origin_kind=origin_kind,
            cache=cache,
        ),
        **server_flags,
    )
    _check_code(config, link_modules=False)
    load_base = None
    if origin is None:
        path = config_path or default_config_path()

        def load_base() -> EdgeConfig:
            loaded = load_config(path)
            changes = {k: v for k, v in server_flags.items() if v is not None}
            return with_server_flags(loaded, changes) if changes else loaded

    flags = {"listen": listen, "admin": admin}
    sys.exit(
        run_server(
            config,
            flags={key for key, value in flags.items() if value is not None},
            reload=reload_,
            load_base=load_base,
        )
    )


def _check_code(config: EdgeConfig, *, link_modules: bool) -> None:
    """Exit 2 with the problems of functions whose code cannot run (`check_functions`); with
    --origin each is named by its flag (`--viewer-request`)."""
    from edge.functions import check_functions

    keys: dict[str, str] = {}
    if config.source == "--origin":
        for trigger in _TRIGGERS:
            association = config.behaviors[0].association(trigger)
            if association is not None:
                keys[association.name] = f"--{trigger}"
    problems = check_functions(
        config,
        wasm_cache_dir=_wasm_cache_dir() if link_modules else None,
        link_modules=link_modules,
        keys=keys,
    )
    if problems:
        _fail_config(ConfigError(config.source, problems))


def _fail_listen(error: Any, config: EdgeConfig, flags: Collection[str]) -> NoReturn:
    """A listener that cannot be opened: one line naming where its address came from."""
    key = error.key
    where = f"--{key}" if key in flags else f"[server] {key} in {config.source}"
    hint = {
        "listen": "choose another with --listen HOST:PORT",
        "admin": "choose another with --admin HOST:PORT",
        "https_listen": "choose another in [server] https_listen",
    }[key]
    err_console.print(
        f"[bold red]error:[/] {escape(where)}: cannot listen on {error.listen}: "
        f"{escape(error.reason)}; {hint}"
    )
    sys.exit(2)


def _code_problems(config: EdgeConfig) -> list[str]:
    """What keeps `config`'s functions from running, as `edge serve` checks it at startup."""
    from edge.functions import check_functions

    return check_functions(config, wasm_cache_dir=None, link_modules=False)


def run_server(
    config: EdgeConfig,
    *,
    flags: Collection[str] = (),
    reload: bool = False,
    load_base: Any = None,
) -> int:
    """Serve `config` until SIGINT/SIGTERM. Returns the exit status; exits with status 2 when
    a listener cannot be opened (`flags`: the addresses given on the command line).

    The management API's changes kept in `[server] state_dir` are laid over `config`; SIGHUP
    reads `load_base()` again (edge.toml with the command line's flags; None: `config` is
    all there is); `reload`: so does a change of edge.toml or of a function's code."""
    from edge.reload import Reloader
    from edge.server import ListenError, ServerOptions, parse_listen
    from sandbox import wasm_cache_dir

    # With a cluster, the state directory is first brought up to date from Redis.
    shared_state = _join_shared_state(config, follow=True)
    try:
        reloader = Reloader(config, load_base=load_base, check=_code_problems, watch=reload)
    except ValueError as error:  # an unreadable state file
        _fail_config(ConfigError(str(config.server.state_dir), [str(error)]))
    config = reloader.config
    # Probed once here: the workers forked later inherit the answer.
    sandbox = _sandbox_report(config)
    server = config.server
    credentials = _admin_credentials(config)
    warning = exposure_warning(server.admin, signed=credentials is not None)
    if warning:
        err_console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    if not server.admin:
        from edge.lambda_service.deploy import unfinished_deployments

        unfinished = unfinished_deployments(server.state_dir)
        if unfinished:
            err_console.print(
                f"[bold yellow]warning:[/] deployments in progress, not resumed without an "
                f"admin listener (--admin): {escape(', '.join(unfinished))}"
            )
    # $XDG_CACHE_HOME, read here: only the CLI reads the environment.
    wasm_cache = str(wasm_cache_dir(os.environ.get("XDG_CACHE_HOME")))
    multiproc_dir: str | None = None
    local_redis: Any = None
    worker_tiers: _WorkerTiers | None = None
    if server.workers > 1:
        # prometheus-client picks its storage when imported: set this before any import of it.
        multiproc_dir = tempfile.mkdtemp(prefix="edge-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    try:
        from prometheus_client import CollectorRegistry

        from edge import server as server_module
        from edge.admin_guard import AdminAccess
        from edge.app import create_admin_app, create_app
        from edge.invalidation import InvalidationJournal
        from edge.invoke import ConcurrencyLimiter, InvokeService
        from edge.lambda_service.deploy_api import build_deployer
        from edge.metrics import (
            ProxyMetrics,
            multiprocess_registry,
            record_sandbox_isolation,
            reload_counter,
        )
        from origin_proxy import via_value

        registry = None if multiproc_dir else CollectorRegistry()
        record_sandbox_isolation(registry, sandbox.level)
        reloader.counter = reload_counter(registry)
        access = AdminAccess(
            allowed_hosts=config.admin.allowed_hosts,
            allowed_origins=config.admin.allowed_origins,
            credentials=credentials,
            unsigned_paths=frozenset(
                {"/healthz"}
                | ({"/metrics"} if config.admin.unsigned_metrics else set())
                | ({"/status", "/status.json"} if config.admin.unsigned_status else set())
            ),
            proxy_via=via_value(server.name).decode("latin-1"),
        )
        options = ServerOptions(
            listen=parse_listen(server.listen),
            workers=server.workers,
            admin=parse_listen(server.admin) if server.admin else None,
            engine=server.engine,
            https_listen=parse_listen(server.https_listen) if server.https_listen else None,
            certificate=server.certificate,
            private_key=server.private_key,
            graceful_timeout_seconds=server.graceful_timeout,
            keep_alive_timeout_seconds=server.keep_alive_timeout,
            max_header_bytes=server.max_header_bytes,
            proxy_first=True,
        )

        # One worker: the proxy and the admin listener share a process and its metrics.
        shared = ProxyMetrics(registry) if registry is not None else None

        # The node's concurrency limit. With one worker the viewer app shares this process, so
        # its edge triggers take leases from the same limiter as the Invoke API. Several
        # workers count through a table every process maps (made here, before the fork);
        # with [cluster], every node's processes count in Redis.
        shared_dir = Path(multiproc_dir) if multiproc_dir else None
        process_cluster = _cluster_factory(config, shared_dir, shared_state)
        limiter = (
            process_cluster.limiter
            if process_cluster is not None
            else ConcurrencyLimiter.from_config(config, shared_dir=shared_dir)
        )
        reloader.limits = limiter

        # Invalidations: one worker shares the admin's process (a direct call, with a count);
        # several follow a journal the admin appends to.
        journal = (
            InvalidationJournal(Path(multiproc_dir) / "invalidations.jsonl")
            if multiproc_dir
            else None
        )
        caches: list[Any] = []
        # The status page's recent failures: several workers append them to a journal.
        from edge.status_page import RecentErrors

        recent_errors = RecentErrors(
            Path(multiproc_dir) / "recent-errors.jsonl" if multiproc_dir else None
        )

        https: list[str] = []  # the HTTPS listener's address, once bound

        # Several workers and no cluster: a redis-server of the node's own as the cache tier
        # they share (started here, before the fork; stopped when serving ends).
        if multiproc_dir and not config.cluster.enabled and config.cache.worker_tier != "none":
            from edge.cluster.local_redis import LocalRedis

            local_redis = LocalRedis(
                Path(multiproc_dir) / "cache-tier", memory_bytes=config.cache.worker_tier_bytes
            )
            if local_redis.start():
                worker_tiers = _WorkerTiers(config, local_redis.url)
            else:
                local_redis = None

        def app_factory() -> Any:
            app = create_app(
                config,
                metrics=shared or ProxyMetrics(CollectorRegistry()),
                limiter=limiter,
                journal=journal,
                wasm_cache_dir=wasm_cache,
                recent_errors=recent_errors,
                cluster=process_cluster() if process_cluster is not None else None,
                reloader=reloader,
                worker_tier=worker_tiers() if worker_tiers is not None else None,
            )
            caches.append(app.state.pipeline.cache)
            if https:  # where redirect-to-https behaviors send viewers
                app.state.pipeline.https_port = int(https[0].rpartition(":")[2])
            return app

        async def invalidate(paths: Sequence[str]) -> int:
            removed = 0
            for cache in caches:
                if cache is not None:
                    removed += await cache.invalidate_paths(paths)
            return removed

        def admin_factory() -> Any:
            # Built after any fork: the Invoke API's functions and queue live in this process,
            # and so do the deployments (they read what /metrics shows).
            scraped = multiprocess_registry(multiproc_dir) if multiproc_dir else registry
            flush = shared.flush if shared else None
            cluster = process_cluster() if process_cluster is not None else None
            invoke = InvokeService(
                config, limiter=limiter, wasm_cache_dir=wasm_cache, cluster=cluster
            )
            return create_admin_app(
                scraped,
                flush=flush,
                invoke=invoke,
                deployer=build_deployer(config, invoke, metrics=scraped, flush=flush),
                invalidate=None if journal else invalidate,
                journal=journal,
                access=access,
                key_value_stores={n: s.file for n, s in config.key_value_stores.items()},
                status=(config, recent_errors),
                cluster=cluster,
                cluster_history=config.cluster.invalidation_history,
                reloader=reloader,
            )

        def ready(listen: Any, admin: Any) -> None:
            _banner(config, str(listen), str(admin) if admin else None, sandbox, *https)

        try:
            return server_module.run(
                app_factory,
                options,
                admin_factory=admin_factory if server.admin else None,
                on_ready=ready,
                on_https_ready=lambda listen: https.append(str(listen)),
                on_hangup=lambda: reloader.request("SIGHUP"),
            )
        except ListenError as error:
            _fail_listen(error, config, flags)
    finally:
        if local_redis is not None:
            local_redis.stop()
        if multiproc_dir:
            shutil.rmtree(multiproc_dir, ignore_errors=True)


class _WorkerTiers:
    """The connection of each worker (made after the fork) to the node's own redis-server."""

    def __init__(self, config: EdgeConfig, url: str) -> None:
        self.config = config
        self.url = url

    def __call__(self) -> Any:
        from edge.app import LOCAL_TIER_SECONDS
        from edge.cluster import Cluster

        return Cluster(
            self.url,
            node_id=self.config.cluster.node_name,
            key_prefix="edge:",
            label="cache tier",
            timeout=max(self.config.cluster.timeout, LOCAL_TIER_SECONDS),
        )


class _ProcessCluster:
    """`[cluster]`: the limiter every process shares (made before any fork) and one Redis
    connection per process, made on first use after the fork (`__call__`)."""

    def __init__(self, config: EdgeConfig, shared_dir: Path | None, shared_state: Any) -> None:
        from edge.cluster.concurrency import ClusterLimiter

        self.config = config
        self.shared_state = shared_state
        self.limiter = ClusterLimiter.from_config(config, shared_dir=shared_dir)
        self._by_pid: dict[int, Any] = {}

    def __call__(self) -> Any:
        from edge.cluster import Cluster

        pid = os.getpid()
        cluster = self._by_pid.get(pid)
        if cluster is None:
            settings = self.config.cluster
            assert settings.redis is not None
            cluster = Cluster(
                settings.redis,
                node_id=settings.node_name,
                key_prefix=settings.key_prefix,
                timeout=settings.timeout,
            )
            self._by_pid = {pid: cluster}
            self.limiter.attach(cluster)
            if self.shared_state is not None:
                self.shared_state.follow()
        return cluster


def _cluster_factory(
    config: EdgeConfig, shared_dir: Path | None, shared_state: Any = None
) -> _ProcessCluster | None:
    """The `[cluster]` wiring, or None when it is off; exits 2 when the redis client is not
    installed."""
    if not config.cluster.enabled:
        return None
    try:
        import redis  # noqa: F401
    except ImportError:
        err_console.print(
            f"[bold red]error:[/] [cluster] redis in {escape(config.source)} needs the redis "
            "client: pip install 'edge[cluster]'"
        )
        sys.exit(2)
    return _ProcessCluster(config, shared_dir, shared_state)


@main.command()
@click.argument("config_path", metavar="CONFIG", required=False, type=click.Path(path_type=Path))
@click.option("--explain", is_flag=True, help="Print every key of edge.toml instead (no CONFIG).")
@click.option("--markdown", is_flag=True, help="With --explain: as README's reference section.")
def check(config_path: Path | None, explain: bool, markdown: bool) -> None:
    """Validate CONFIG and print the resolved configuration as JSON.

    Beyond the file itself, each function's code must be able to start, checked without
    running it: a Python handler's file must exist, parse and define the function; a WASM
    module is compiled and linked under its ABI. What cannot is a configuration error
    (exit 2). `--explain` prints every key instead: its type, default and meaning.
    """
    if explain or markdown:
        _explain(config_path, markdown=markdown)
        return
    if config_path is None:
        raise click.UsageError("Missing argument 'CONFIG' (or --explain for every key).")
    config = _load(config_path, None)
    _check_code(config, link_modules=True)
    resolved = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    click.echo(json.dumps(resolved, indent=2))
    _sandbox_line(_sandbox_report(config))
    err_console.print(f"[green]ok[/]: {config_path} is valid")


def _explain(config_path: Path | None, *, markdown: bool) -> None:
    """`edge check --explain [--markdown]`: the configuration reference."""
    from edge.config.reference import render_markdown, render_text

    if config_path is not None:
        raise click.UsageError("--explain describes every key and takes no CONFIG.")
    if markdown:
        click.echo(render_markdown(), nl=False)
    else:
        click.echo(render_text())


def _wasm_cache_dir() -> str:
    """Where compiled WASM modules are kept: `$XDG_CACHE_HOME/edge/wasm` (read here: only the
    CLI reads the environment), else `~/.cache/edge/wasm`."""
    from sandbox import wasm_cache_dir

    return str(wasm_cache_dir(os.environ.get("XDG_CACHE_HOME")))


_TRIGGERS = ("viewer-request", "origin-request", "origin-response", "viewer-response")


# Lambda's default timeout for a function that sets none (spec §14).
_DEFAULT_TIMEOUT_SECONDS = 3.0
_DEFAULT_MEMORY_MB = 128


# The files `edge invoke` runs with Node.js (FILE.js::FUNC), as Lambda resolves a handler.
_NODE_SUFFIXES = (".js", ".mjs", ".cjs")
_CLOUDFRONT_RUNTIMES = ("cloudfront-js-2.0", "cloudfront-js-1.0")
_PROVIDED_RUNTIMES = ("provided", "provided.al2023", "provided.al2")


def _one_shot_spec(
    target: str,
    *,
    abi: str,
    timeout: float | None,
    memory: int | None,
    environment: dict[str, str],
    provided: bool = False,
    handler: str | None = None,
) -> Any:
    """The sandbox spec of `edge invoke`'s TARGET: a handler (FILE.py::FUNC or MODULE.FUNC;
    FILE.js::FUNC, or .mjs, .cjs, for Node.js), a .wasm / .wat module, or (`provided`) a
    custom runtime's folder with its bootstrap."""
    from edge.config.handlers import parse_handler
    from sandbox import FunctionSpec, NodeFunctionSpec, ProvidedFunctionSpec, WasmFunctionSpec

    timeout = timeout or _DEFAULT_TIMEOUT_SECONDS
    memory = memory or _DEFAULT_MEMORY_MB
    if provided:
        folder = Path(target)
        if not folder.is_dir():
            raise click.BadParameter(f"no such folder: {target} (a custom runtime is a folder)")
        try:
            return ProvidedFunctionSpec(
                name=re.sub(r"[^A-Za-z0-9_-]", "-", folder.resolve().name)[:64] or "function",
                handler=handler or "",
                code_dir=folder.resolve(),
                memory_mb=memory,
                timeout_seconds=timeout,
                environment=environment,
                max_concurrency=1,
                spare_environments=0,
            )
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    if target.endswith((".wasm", ".wat")):
        module = Path(target)
        if not module.is_file():
            raise click.BadParameter(f"no such file: {target}")
        return WasmFunctionSpec(
            name=module.stem,
            module=module.resolve(),
            abi=abi,  # type: ignore[arg-type]  # click.Choice: "core" or "wasi"
            memory_mb=memory,
            timeout_seconds=timeout,
            environment=environment,
            max_concurrency=1,
        )
    if target.rpartition("::")[0].endswith(_NODE_SUFFIXES):
        try:
            node = parse_handler(target, file_suffixes=_NODE_SUFFIXES)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if not node.folder.is_dir():
            raise click.BadParameter(f"no such folder: {node.folder}")
        return NodeFunctionSpec(
            name=re.sub(r"[^A-Za-z0-9_-]", "-", node.module)[:64],
            handler=node.lambda_handler,
            code_dir=node.folder.resolve(),
            memory_mb=memory,
            timeout_seconds=timeout,
            environment=environment,
            max_concurrency=1,
            spare_environments=0,
        )
    try:
        ref = parse_handler(target)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}, or a .wasm/.wat module") from None
    if not ref.folder.is_dir():
        raise click.BadParameter(f"no such folder: {ref.folder}")
    return FunctionSpec(
        name=re.sub(r"[^A-Za-z0-9_-]", "-", ref.module.rpartition(".")[2])[:64],
        handler=ref.lambda_handler,
        code_dir=ref.folder.resolve(),
        memory_mb=memory,
        timeout_seconds=timeout,
        environment=environment,
        max_concurrency=1,
    )


def _function_triggers(config: EdgeConfig, name: str) -> list[str]:
    """The Lambda@Edge triggers function `name` is associated with, in CloudFront's order."""
    found = {
        trigger
        for behavior in config.behaviors
        for trigger in _TRIGGERS
        if (association := behavior.association(trigger)) is not None and association.name == name
    }
    return [trigger for trigger in _TRIGGERS if trigger in found]


def _configured_spec(
    config: EdgeConfig,
    name: str,
    trigger: str | None,
    *,
    timeout: float | None,
    memory: int | None,
    environment: dict[str, str],
) -> Any:
    """The sandbox spec of function `name` of `config`, as the edge runs it: its code, memory,
    environment and timeout (else the trigger's limit, else Lambda's 3 s); flags override."""
    import dataclasses

    from edge.functions import edge_state_dir, runtime_spec_for
    from sandbox import CloudFrontJsSpec

    function = config.functions[name]
    edge = config.lambda_edge
    limit = None
    if trigger is not None:
        limit = edge.viewer_timeout if trigger.startswith("viewer") else edge.origin_timeout
    seconds = timeout or function.timeout or limit or _DEFAULT_TIMEOUT_SECONDS
    spec = runtime_spec_for(
        name, function, timeout_seconds=seconds, state_dir=edge_state_dir(config)
    )
    assert not isinstance(spec, CloudFrontJsSpec)  # `invoke` runs those on their own path
    changes: dict[str, Any] = {
        "timeout_seconds": seconds,
        "max_concurrency": 1,
        "environment": {**spec.environment, **environment},
    }
    if hasattr(spec, "provisioned"):
        changes["provisioned"] = 0
    if memory is not None:
        changes["memory_mb"] = memory
        if getattr(spec, "memory_pages", None) is not None:
            changes["memory_pages"] = None
    try:
        return dataclasses.replace(spec, **changes)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _one_shot_event(event_path: Path | None, trigger: str | None) -> tuple[bytes, Any]:
    """(the event bytes, the Lambda@Edge event they are, or None): from --event, else a sample
    event for --trigger, else `{}`. A Lambda@Edge event must be of --trigger's kind."""
    from edge.events import EventType, event_from_document, sample_event

    if event_path is None:
        if trigger is None:
            return b"{}", None
        document: Any = sample_event(EventType(trigger))
        event = json.dumps(document).encode()
    else:
        event = sys.stdin.buffer.read() if str(event_path) == "-" else event_path.read_bytes()
        try:
            document = json.loads(event)
        except ValueError as exc:
            raise click.BadParameter(f"the event is not JSON: {exc}") from None
    try:
        edge_event = event_from_document(document)
    except ValueError:
        if trigger is not None:
            raise click.BadParameter(
                f"--trigger {trigger}: the event is not a Lambda@Edge event (see `edge events`)"
            ) from None
        return event, None
    if trigger is not None and edge_event.trigger != trigger:
        raise click.BadParameter(
            f"the event is a {edge_event.trigger} event, --trigger says {trigger}"
        )
    return event, edge_event


@main.command()
@click.argument("target", metavar="NAME|HANDLER|MODULE.wasm|FUNCTION.js|DIR")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The edge.toml that defines function NAME (default: ./edge.toml).",
)
@click.option(
    "--event",
    "event_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False, allow_dash=True),
    help="Event JSON file ('-': stdin). Default: a sample event for --trigger (for NAME: "
    "for the trigger it is associated with, or an ALB event for a function origin), else {}.",
)
@click.option(
    "--trigger",
    type=click.Choice(_TRIGGERS),
    help="The Lambda@Edge trigger to run at (default: the event's eventType, if any); a WASM "
    "module is called at its entry point for it.",
)
@click.option(
    "--abi",
    type=click.Choice(["core", "wasi"]),
    help="A WASM module's ABI (sandbox/wasm/ABI.md; default core).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001, max=900),
    help="Seconds before the environment is killed (default 3; for NAME: its timeout, else "
    "the trigger's limit).",
)
@click.option(
    "--memory",
    type=click.IntRange(1, 10240),
    help="Memory limit in MB (Python, Node.js, custom runtimes: at least 128; default 128, for "
    "NAME: its memory).",
)
@click.option(
    "--env",
    "env_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An environment variable for the function (repeatable; for NAME: added to its own).",
)
@click.option(
    "--runtime",
    type=click.Choice([*_CLOUDFRONT_RUNTIMES, *_PROVIDED_RUNTIMES]),
    help="A .js file's CloudFront Functions runtime (default: cloudfront-js-2.0); provided "
    "(or provided.al2023, provided.al2): DIR is a custom runtime, its executable bootstrap "
    "speaking Lambda's Runtime API (implied for a folder with a bootstrap).",
)
@click.option(
    "--handler",
    "handler",
    help="A custom runtime's handler: passed to its bootstrap as _HANDLER.",
)
@click.option(
    "--kvs",
    "kvs_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="CloudFront Functions 2.0: the KeyValueStore file (AWS's import format) cf.kvs() reads.",
)
def invoke(
    target: str,
    config_path: Path | None,
    event_path: Path | None,
    trigger: str | None,
    abi: str | None,
    timeout: float | None,
    memory: int | None,
    env_pairs: tuple[str, ...],
    runtime: str | None,
    handler: str | None,
    kvs_path: Path | None,
) -> None:
    """Run one function once in a real execution environment, through the same runtimes as
    `edge serve`.

    \b
    NAME             a function of --config, with its settings, environment, memory,
                     timeout and sandbox
    HANDLER          a Python handler: FILE.py::FUNCTION or MODULE.FUNCTION, with an
                     optional FOLDER/ before it (examples/functions/redirects.py::handler,
                     examples/functions/redirects.handler)
                     or a Node.js one: FILE.js::FUNCTION (or .mjs, .cjs)
    MODULE.wasm      a WASM module (.wasm or .wat)
    FUNCTION.js      a CloudFront Function (--runtime, --kvs): prints what it returned and
                     its compute utilization
    DIR              a custom runtime (--runtime provided): a folder with an executable
                     bootstrap that speaks Lambda's Runtime API (--handler: its _HANDLER)

    Prints the result JSON on stdout and the function's log on stderr. With a Lambda@Edge
    event (or --trigger), the result is checked as CloudFront checks it. Exits 1 when the
    function failed (its error document is printed as the result, as Lambda returns it), when
    its result is invalid at the trigger (CloudFront would answer 502), or when it cannot start.
    """
    import asyncio

    from edge.config.handlers import is_handler
    from edge.events import AlbError, LambdaValidationError, ValidationPolicy, decode_result
    from edge.function_logs import FunctionLogs
    from sandbox import FunctionError, RuntimeHost, SandboxError, invoke_once

    provided = runtime in _PROVIDED_RUNTIMES or (
        runtime is None and (Path(target) / "bootstrap").is_file()
    )
    if not provided and (target.endswith(".js") or runtime is not None):
        _invoke_cloudfront_function(target, event_path, trigger, runtime, kvs_path)
        return
    if handler is not None and not provided:
        raise click.UsageError("--handler goes with a custom runtime (--runtime provided)")
    environment = {}
    for pair in env_pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, found {pair!r}")
        environment[key] = value
    by_name = (
        not provided
        and not target.endswith((".wasm", ".wat"))
        and not is_handler(target)
        and not target.rpartition("::")[0].endswith(_NODE_SUFFIXES)
    )
    isolation = None
    alb_origin: Any = None
    if by_name:
        if abi is not None:
            raise click.UsageError("--abi goes with a MODULE.wasm (for NAME: its abi in CONFIG)")
        config = _load(config_path or Path("edge.toml"), None)
        if target not in config.functions:
            import difflib

            known = sorted(config.functions)
            close = difflib.get_close_matches(target, known, n=1)
            raise click.BadParameter(
                f"expected a function of {config.source} "
                f"({', '.join(repr(n) for n in known) or 'none are defined'}), a handler "
                f"(FILE.py::FUNCTION, MODULE.FUNCTION, FILE.js::FUNCTION) or a .wasm/.wat "
                "module, found "
                f"{target!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                param_hint="NAME",
            )
        function = config.functions[target]
        if function.runtime.startswith("cloudfront-js") and function.code is not None:
            store = config.key_value_stores.get(function.key_value_store or "")
            _invoke_cloudfront_function(
                str(function.code),
                event_path,
                trigger or next(iter(_function_triggers(config, target)), None),
                function.runtime,
                store.file if store is not None else None,
            )
            return
        if event_path is None and trigger is None:
            triggers = _function_triggers(config, target)
            if len(triggers) > 1:
                raise click.UsageError(
                    f"function {target!r} runs at {', '.join(triggers)}: say which with "
                    "--trigger (or give --event)"
                )
            trigger = triggers[0] if triggers else None
            if trigger is None:
                alb_origin = next(
                    (o for o in config.origins.values() if getattr(o, "function", None) == target),
                    None,
                )
        isolation = _configured_isolation(config)
    elif config_path is not None:
        raise click.UsageError("--config goes with a function NAME, not a handler or module")
    if alb_origin is not None:
        from edge.events import sample_alb_event

        event = json.dumps(sample_alb_event(multi_value=alb_origin.multi_value_headers)).encode()
        edge_event = None
    else:
        event, edge_event = _one_shot_event(event_path, trigger)
    entry = "handler" if edge_event is None else str(edge_event.trigger).replace("-", "_")
    if by_name:
        spec = _configured_spec(
            config,
            target,
            None if edge_event is None else str(edge_event.trigger),
            timeout=timeout,
            memory=memory,
            environment=environment,
        )
    else:
        spec = _one_shot_spec(
            target,
            abi=abi or "core",
            timeout=timeout,
            memory=memory,
            environment=environment,
            provided=provided,
            handler=handler,
        )
    label = str(edge_event.trigger) if edge_event is not None else None
    if alb_origin is not None:
        label = "origin"
    logs = FunctionLogs("full")
    try:
        host = RuntimeHost()
        try:
            host.check(spec, link_modules=False)  # a Python handler: found, parsed, defined
        finally:
            host.close()
        result = asyncio.run(
            invoke_once(
                spec, event, entry=entry, isolation=isolation, wasm_cache_dir=_wasm_cache_dir()
            )
        )
    except FunctionError as error:
        logs.write(spec.name, label, error.log)
        click.echo(error.payload_bytes.decode())
        sys.exit(1)
    except (SandboxError, ValueError) as error:
        err_console.print(f"[bold red]error:[/] {escape(str(error))}")
        sys.exit(1)
    logs.write(spec.name, label, result.log)
    if edge_event is not None and not result.payload:
        err_console.print(
            f"(no result: continue unchanged, the {edge_event.trigger} goes on as it came)"
        )
        return
    click.echo(result.payload.decode("utf-8", "replace"))
    if alb_origin is not None:
        from edge.events import decode_alb_response

        try:
            decode_alb_response(result.payload, multi_value=alb_origin.multi_value_headers)
        except AlbError as invalid:
            err_console.print(
                f"[bold red]error:[/] invalid function origin answer; the load balancer "
                f"answers {invalid.status} ({escape(str(invalid))})"
            )
            sys.exit(1)
        return
    if edge_event is None:
        return
    try:
        outcome = decode_result(edge_event, result.payload, policy=ValidationPolicy())
    except LambdaValidationError as invalid:
        err_console.print(
            f"[bold red]error:[/] invalid {edge_event.trigger} result; CloudFront answers 502 "
            f"(X-Cache: LambdaValidationError): {escape(str(invalid))}"
        )
        sys.exit(1)
    for warning in outcome.warnings:
        err_console.print(f"[bold yellow]warning:[/] {escape(warning)}")


def _invoke_cloudfront_function(
    target: str,
    event_path: Path | None,
    trigger: str | None,
    runtime: str | None,
    kvs_path: Path | None,
) -> None:
    """`edge invoke FUNCTION.js`: one run of a CloudFront Function; prints the returned object
    and its compute utilization, and checks the result as CloudFront does."""
    import asyncio

    from edge.events.cloudfront_functions import (
        FunctionEvent,
        FunctionValidationError,
        compute_utilization,
        decode_function_result,
        is_function_event,
        sample_function_event,
    )
    from sandbox import CloudFrontJsSpec, FunctionError, SandboxError, invoke_once

    code = Path(target)
    if not code.is_file():
        raise click.BadParameter(f"no such file: {target}")
    if event_path is None:
        kind = trigger if trigger in ("viewer-request", "viewer-response") else "viewer-request"
        document: Any = sample_function_event(kind)  # type: ignore[arg-type]
    else:
        raw = sys.stdin.buffer.read() if str(event_path) == "-" else event_path.read_bytes()
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise click.BadParameter(f"the event is not JSON: {exc}") from None
    if not is_function_event(document):
        raise click.BadParameter(
            "the event is not a CloudFront Functions event (see `edge events cloudfront-function "
            "viewer-request`)"
        )
    event = FunctionEvent(document["context"]["eventType"], json.dumps(document).encode(), document)
    try:
        spec = CloudFrontJsSpec(
            name=code.stem,
            code=code.resolve(),
            runtime="1.0" if runtime == "cloudfront-js-1.0" else "2.0",
            key_value_store=kvs_path.resolve() if kvs_path is not None else None,
            key_value_store_name=kvs_path.stem if kvs_path is not None else "",
        )
        result = asyncio.run(invoke_once(spec, event.payload))
    except FunctionError as error:
        sys.stderr.write(error.log)
        err_console.print(
            f"[bold red]error:[/] {escape(error.error_type)}: {escape(error.error_message)}; "
            "CloudFront answers 503 (X-Cache: FunctionExecutionError)"
        )
        sys.exit(1)
    except (SandboxError, ValueError) as error:
        err_console.print(f"[bold red]error:[/] {escape(str(error))}")
        sys.exit(1)
    sys.stderr.write(result.log)
    click.echo(json.dumps(json.loads(result.payload)["result"], indent=2))
    err_console.print(f"compute utilization: {compute_utilization(result.payload)}")
    try:
        decode_function_result(event, result.payload)
    except FunctionValidationError as invalid:
        err_console.print(
            "[bold red]error:[/] invalid result; CloudFront answers 502 "
            f"(X-Cache: FunctionValidationError): {escape(str(invalid))}"
        )
        sys.exit(1)


def _configured_isolation(config: EdgeConfig) -> Any:
    """`[sandbox]` of `config` as the sandbox takes it, probed as `edge serve` does."""
    from edge.functions import sandbox_policy

    _sandbox_report(config)  # exits 2 when the machine cannot give the isolation asked for
    return sandbox_policy(config)


_CLOUDFRONT_KINDS = ("viewer-request", "origin-request", "origin-response", "viewer-response")
_ALB_KINDS = ("alb", "alb-health-check")
_RECORD_CONDITIONS = ("Success", "RetriesExhausted", "EventAgeExceeded")
# The sample kinds each option shapes (`--status` on a CloudFront request trigger is tolerated:
# it always was). Any other pairing is a usage error rather than an option silently dropped.
_EVENT_OPTION_KINDS = {
    "uri": (*_CLOUDFRONT_KINDS, *_ALB_KINDS, "cloudfront-function"),
    "method": (*_CLOUDFRONT_KINDS, "alb", "cloudfront-function"),
    "querystring": (*_CLOUDFRONT_KINDS, "alb", "cloudfront-function"),
    "header_pairs": (*_CLOUDFRONT_KINDS, "alb", "cloudfront-function"),
    "status": (*_CLOUDFRONT_KINDS, "cloudfront-function"),
    "body": ("viewer-request", "origin-request", "alb"),
    "multi_value_headers": _ALB_KINDS,
    "condition": ("destination-record",),
    "function": ("destination-record",),
    "payload": ("destination-record",),
}


def _check_event_options(ctx: click.Context, kind: str) -> None:
    for param in ctx.command.params:
        kinds = _EVENT_OPTION_KINDS.get(param.name or "")
        given = ctx.get_parameter_source(param.name or "") is click.core.ParameterSource.COMMANDLINE
        if kinds is None or not given or kind in kinds:
            continue
        flag = param.opts[0] if param.opts else param.name
        raise click.UsageError(f"{flag} goes with {', '.join(kinds)}; not with {kind}")


@main.command()
@click.argument(
    "kind",
    type=click.Choice(
        [*_CLOUDFRONT_KINDS, *_ALB_KINDS, "destination-record", "cloudfront-function"]
    ),
)
@click.argument(
    "function_trigger",
    metavar="[viewer-request|viewer-response]",
    required=False,
    type=click.Choice(["viewer-request", "viewer-response"]),
)
@click.option("--uri", default="/", show_default=True, help="Request path.")
@click.option("--method", default="GET", show_default=True, help="Request method.")
@click.option("--querystring", default="", help="Raw query string, without '?'.")
@click.option(
    "--header",
    "header_pairs",
    multiple=True,
    metavar="NAME:VALUE",
    help="A request header (repeatable).",
)
@click.option(
    "--status",
    type=click.IntRange(100, 599),
    default=200,
    show_default=True,
    help="Response status (response triggers).",
)
@click.option(
    "--body",
    help="A request body (viewer-request and origin-request: as with include_body = true; alb).",
)
@click.option(
    "--multi-value-headers/--single-value-headers",
    "multi_value_headers",
    default=False,
    show_default=True,
    help="alb, alb-health-check: the target group's multi-value headers setting (an origin's "
    "multi_value_headers).",
)
@click.option(
    "--condition",
    type=click.Choice(_RECORD_CONDITIONS),
    default="RetriesExhausted",
    show_default=True,
    help="destination-record: how the asynchronous invocation ended.",
)
@click.option(
    "--function",
    default="my-function",
    show_default=True,
    help="destination-record: the function that was invoked.",
)
@click.option(
    "--payload",
    metavar="JSON",
    help="destination-record: the event of the asynchronous invocation.",
)
@click.pass_context
def events(
    ctx: click.Context,
    kind: str,
    function_trigger: str | None,
    uri: str,
    method: str,
    querystring: str,
    header_pairs: tuple[str, ...],
    status: int,
    body: str | None,
    multi_value_headers: bool,
    condition: str,
    function: str,
    payload: str | None,
) -> None:
    """Print a valid sample event of KIND (like `sam local generate-event`).

    \b
    viewer-request ... viewer-response: a Lambda@Edge event for that trigger
    alb: what a function origin gets (an ALB Lambda-target request)
    alb-health-check: an ALB health check
    destination-record: what an on_success / on_failure destination gets
    cloudfront-function viewer-request|viewer-response: a CloudFront Functions event
    """
    import time

    from edge.events import EventType, sample_alb_event, sample_event, sample_health_check_event
    from edge.invoke.names import LATEST, function_arn
    from edge.invoke.records import SAMPLE_REQUEST_PAYLOAD, sample_invocation_record

    _check_event_options(ctx, kind)
    headers = []
    for pair in header_pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME:VALUE, found {pair!r}")
        headers.append((name.strip(), value.strip()))
    body_bytes = body.encode() if body is not None else None
    document: Any
    if kind == "alb":
        document = sample_alb_event(
            multi_value=multi_value_headers,
            method=method.upper(),
            path=uri,
            query_string=querystring,
            headers=headers,
            body=body_bytes or b"",
        )
    elif kind == "cloudfront-function":
        from edge.events.cloudfront_functions import sample_function_event

        document = sample_function_event(
            "viewer-response" if function_trigger == "viewer-response" else "viewer-request",
            uri=uri,
            method=method.upper(),
            querystring=querystring,
            headers=headers,
            status=status,
        )
    elif kind == "alb-health-check":
        document = sample_health_check_event(multi_value=multi_value_headers, path=uri)
    elif kind == "destination-record":
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", function):
            raise click.BadParameter(f"expected a function name, found {function!r}")
        request_payload = SAMPLE_REQUEST_PAYLOAD if payload is None else payload.encode()
        try:
            json.loads(request_payload)
        except ValueError as exc:
            raise click.BadParameter(f"the payload is not JSON: {exc}") from None
        record = sample_invocation_record(
            condition=condition,
            function_arn=function_arn(function, LATEST),
            request_payload=request_payload,
            now=time.time(),
        )
        document = json.loads(record)
    else:
        document = sample_event(
            EventType(kind),
            uri=uri,
            method=method.upper(),
            querystring=querystring,
            headers=headers,
            status=status,
            body=body_bytes,
        )
    click.echo(json.dumps(document, indent=2))


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--admin",
    help="The edge's admin listener, HOST:PORT (default: [server] admin of the config, else "
    "127.0.0.1:9180).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The edge's edge.toml (default: ./edge.toml when there is one): its admin address "
    "([server] admin) and, with [admin] access_key_id, the key to sign with (the secret from "
    "the environment variable or file it names).",
)
def invalidate(paths: tuple[str, ...], admin: str | None, config_path: Path | None) -> None:
    """Invalidate cached responses: exact PATHS or prefixes ending in '*' ('/images/*').

    The request goes to the edge's admin listener: --admin, else [server] admin of --config
    (or ./edge.toml), else 127.0.0.1:9180. With `edge serve --origin ...`, start the
    listener with --admin HOST:PORT and pass the same here."""
    import httpx

    from edge import sigv4
    from edge.admin_guard import SIGNING_SERVICE

    credentials = None
    if config_path is None and Path("edge.toml").is_file():
        config_path = Path("edge.toml")
    if config_path is not None:
        config = _load(config_path, None)
        credentials = _admin_credentials(config)
        if admin is None and config.server.admin:
            host, _, port = config.server.admin.rpartition(":")
            unspecified = host in ("", "0.0.0.0", "[::]", "::")
            admin = f"{'127.0.0.1' if unspecified else host}:{port}"
        elif admin is None:
            err_console.print(
                f"[bold red]error:[/] {escape(str(config_path))} has no admin listener "
                "(\\[server] admin): set it, or give --admin HOST:PORT"
            )
            sys.exit(2)
    address = admin or "127.0.0.1:9180"
    url = f"http://{address}/invalidations"
    body = json.dumps({"paths": list(paths)}).encode()
    headers = {"Content-Type": "application/json"}
    if credentials is not None:
        headers = sigv4.sign(
            credentials,
            method="POST",
            url=url,
            headers=headers,
            body=body,
            region=SIGNING_REGION,
            service=SIGNING_SERVICE,
            now=datetime.datetime.now(datetime.UTC),
        )
    try:
        with httpx.Client(timeout=30) as client:
            response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        err_console.print(f"[bold red]error:[/] cannot reach the admin listener {address}: {exc}")
        sys.exit(1)
    try:
        document = response.json()
    except ValueError:
        document = {}
    if response.status_code != 201 or not isinstance(document, dict):
        reason = document.get("error") or document.get("message") or response.text
        err_console.print(f"[bold red]error:[/] {response.status_code}: {escape(str(reason))}")
        sys.exit(1)
    count = document["invalidated"]
    what = f"{count} cached responses removed" if count is not None else "sent to every worker"
    shown = ", ".join(document["paths"][:10])
    if len(document["paths"]) > 10:
        shown += f" and {len(document['paths']) - 10} more"
    click.echo(f"invalidation {document['id']}: {shown}: {what} ({document['milliseconds']} ms)")


_CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("edge.toml"),
    show_default=True,
    help="The edge's edge.toml: its functions and its state directory ([server] state_dir).",
)


def _store_for(config_path: Path, function: str) -> tuple[EdgeConfig, Any]:
    """The configuration and the function store of CONFIG; exits 2 when FUNCTION is not one
    of its Lambda functions."""
    from edge.lambda_service import FunctionStore

    try:
        # What edge.toml names may not be published yet: these commands publish it.
        config = load_config(config_path, qualifiers_exist=False)
    except ConfigError as error:
        _fail_config(error)
    known = config.functions.get(function)
    if known is None or known.runtime.startswith("cloudfront-js"):
        names = ", ".join(
            n for n, f in config.functions.items() if not f.runtime.startswith("cloudfront-js")
        )
        err_console.print(
            f"[bold red]error:[/] {escape(str(config_path))}: expected one of its Lambda "
            f"functions ({escape(names or 'none')}), found {escape(repr(function))}"
        )
        sys.exit(2)
    _join_shared_state(config, follow=False)
    return config, FunctionStore(config.server.state_dir)


def _join_shared_state(config: EdgeConfig, *, follow: bool) -> Any:
    """With `[cluster] redis` (and `shared_state`): this process's changes to the state
    directory go through the cluster's Redis, and the directory is brought up to date from it
    now (`follow`, for `edge serve`: an empty cluster takes this node's state, and each
    serving process keeps following). None without a cluster."""
    if not (config.cluster.enabled and config.cluster.shared_state):
        return None
    try:
        from edge.cluster.state import shared_state_for
    except ImportError:
        err_console.print(
            f"[bold red]error:[/] [cluster] redis in {escape(config.source)} needs the redis "
            "client: pip install 'edge[cluster]'"
        )
        sys.exit(2)
    from edge.lambda_service import share_state

    shared = shared_state_for(config)
    assert shared is not None
    share_state(config.server.state_dir, shared)
    if follow:
        shared.start()  # an empty cluster takes this node's state
    else:
        shared.refresh()
    return shared


def _store_error(error: Exception) -> NoReturn:
    from edge.lambda_service import NotFound

    message = f"no such version or alias: {error}" if isinstance(error, NotFound) else str(error)
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    sys.exit(1)


def _print_rows(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table on a terminal, tab-separated lines (no header) otherwise."""
    console = Console(highlight=False)
    if console.is_terminal:
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
        return
    for row in rows:
        click.echo("\t".join(row))


@main.command()
@click.argument("function")
@click.option("--description", default="", help="The version's description.")
@_CONFIG_OPTION
def publish(function: str, description: str, config_path: Path) -> None:
    """Publish FUNCTION's $LATEST as a new numbered version (Lambda's PublishVersion).

    The version keeps a copy of the function's code and its [functions.NAME] settings in
    the state directory; it runs them, whatever becomes of the working copy. Publishing
    what the latest version already holds makes no new version. A running edge on the same
    edge.toml sees the version within a second."""
    from edge.functions import publish_function

    config, store = _store_for(config_path, function)
    before = {v.number for v in store.versions(function)}
    try:
        version = publish_function(config, store, function, description=description)
    except (LookupError, ValueError, OSError) as error:
        _store_error(error)
    state = "unchanged since" if version.number in before else "published"
    click.echo(
        f"{function}:{version.number} {state} (CodeSha256 {version.code_sha256}, "
        f"{version.code_size} bytes)"
    )


@main.group()
def alias() -> None:
    """Create, change, delete and list a function's aliases (names for published versions).

    They act on the state directory of --config directly; a running edge on the same
    edge.toml routes by the change within a second."""


def _weights(values: Sequence[str]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for value in values:
        version, sep, share = value.partition("=")
        try:
            weights[version] = float(share)
        except ValueError:
            sep = ""
        if not sep:
            raise click.BadParameter(
                f"expected VERSION=SHARE such as 4=0.1, found {value!r}", param_hint="--weight"
            ) from None
    return weights


def _alias_line(found: Any) -> str:
    weights = ", ".join(f"{v}={w:g}" for v, w in found.additional_weights.items())
    return f"{found.function}:{found.name} -> {found.version}" + (
        f" (+ {weights})" if weights else ""
    )


_WEIGHT_OPTION = click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="VERSION=SHARE",
    help="Send SHARE (0.0 to 1.0) of the invocations to another published VERSION.",
)


@alias.command("create")
@click.argument("function")
@click.argument("name")
@click.option("--version", "version", required=True, help="The published version ($LATEST too).")
@_WEIGHT_OPTION
@click.option("--description", default="", help="The alias's description.")
@_CONFIG_OPTION
def alias_create(
    function: str,
    name: str,
    version: str,
    weights: tuple[str, ...],
    description: str,
    config_path: Path,
) -> None:
    """Create alias NAME of FUNCTION pointing to --version (Lambda's CreateAlias)."""
    from edge.lambda_service import AliasConflict

    _, store = _store_for(config_path, function)
    try:
        found = store.create_alias(
            function,
            name,
            version,
            additional_weights=_weights(weights),
            description=description,
        )
    except (LookupError, ValueError, OSError, AliasConflict) as error:
        _store_error(error)
    click.echo(f"created {_alias_line(found)}")


@alias.command("update")
@click.argument("function")
@click.argument("name")
@click.option("--version", "version", help="The published version it points to now.")
@_WEIGHT_OPTION
@click.option("--no-weights", is_flag=True, help="Send every invocation to --version again.")
@click.option("--description", default=None, help="A new description.")
@_CONFIG_OPTION
def alias_update(
    function: str,
    name: str,
    version: str | None,
    weights: tuple[str, ...],
    no_weights: bool,
    description: str | None,
    config_path: Path,
) -> None:
    """Point alias NAME of FUNCTION elsewhere, or change its weights (Lambda's UpdateAlias)."""
    _, store = _store_for(config_path, function)
    routing = {} if no_weights else (_weights(weights) if weights else None)
    try:
        found = store.update_alias(
            function, name, version=version, additional_weights=routing, description=description
        )
    except (LookupError, ValueError, OSError) as error:
        _store_error(error)
    click.echo(f"updated {_alias_line(found)}")


@alias.command("delete")
@click.argument("function")
@click.argument("name")
@_CONFIG_OPTION
def alias_delete(function: str, name: str, config_path: Path) -> None:
    """Delete alias NAME of FUNCTION (refused while edge.toml names it)."""
    from edge.invoke.management import referenced_aliases

    config, store = _store_for(config_path, function)
    where = referenced_aliases(config).get((function, name))
    if where is not None:
        err_console.print(
            f"[bold red]error:[/] {escape(f'{function}:{name}')} is named in "
            f"{escape(str(config_path))} ({escape(where)}): remove it there first"
        )
        sys.exit(1)
    try:
        store.delete_alias(function, name)
    except (LookupError, ValueError, OSError) as error:
        _store_error(error)
    click.echo(f"deleted {function}:{name}")


@main.command()
@click.argument("function")
@_CONFIG_OPTION
def versions(function: str, config_path: Path) -> None:
    """FUNCTION's published versions (Lambda's ListVersionsByFunction, without $LATEST)."""
    _, store = _store_for(config_path, function)
    _print_rows(
        f"{function}: versions",
        ("version", "CodeSha256", "created", "description"),
        [(v.number, v.code_sha256, v.created, v.description) for v in store.versions(function)],
    )


@alias.command("list")
@click.argument("function")
@_CONFIG_OPTION
def alias_list(function: str, config_path: Path) -> None:
    """FUNCTION's aliases."""
    _, store = _store_for(config_path, function)
    _print_rows(
        f"{function}: aliases",
        ("alias", "version", "weights", "description"),
        [
            (
                a.name,
                a.version,
                ", ".join(f"{v}={w:g}" for v, w in a.additional_weights.items()),
                a.description,
            )
            for a in store.aliases(function)
        ],
    )


# `edge bench`: load testing with a report (edge/bench/).
main.add_command(bench_command, "bench")
# Gradual deployments (edge.lambda_service.deploy_cli): they talk to a running edge.
main.add_command(deploy_command)
main.add_command(deployments_command)

if __name__ == "__main__":  # pragma: no cover
    main()
