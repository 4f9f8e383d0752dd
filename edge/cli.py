"""The `edge` command: serve, check, and (with the function runtime) invoke and events.

Only this module reads the environment and builds the real world (origins, metrics, servers).
A configuration error prints the problems and exits with status 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from edge import __version__
from edge.config import ConfigError, EdgeConfig, config_for_origin, load_config

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def default_config_path() -> Path:
    """The embedded default: the examples shipped beside the package."""
    return Path(__file__).resolve().parent.parent / "examples" / "edge.toml"


def _fail_config(error: ConfigError) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {error.source}: invalid configuration")
    for problem in error.problems:
        err_console.print(f"  {problem}", markup=False)
    sys.exit(2)


def _load(config_path: Path | None, origin: str | None) -> EdgeConfig:
    try:
        if origin is not None:
            if config_path is not None:
                raise click.UsageError("give either CONFIG or --origin, not both")
            return config_for_origin(origin)
        return load_config(config_path or default_config_path())
    except ConfigError as error:
        _fail_config(error)


def _with_overrides(config: EdgeConfig, **server: Any) -> EdgeConfig:
    changes = {k: v for k, v in server.items() if v is not None}
    if not changes:
        return config
    try:
        merged = config.server.model_validate({**config.server.model_dump(), **changes})
    except Exception as exc:  # noqa: BLE001 - pydantic's errors, shown as a usage error
        raise click.UsageError(str(exc)) from None
    return config.model_copy(update={"server": merged})


def _banner(config: EdgeConfig, listen: str, admin: str | None) -> None:
    err_console.print(
        f"[bold]edge {__version__}[/] listening on [bold cyan]http://{listen}[/]"
        f"  ({config.server.workers} worker{'s' if config.server.workers != 1 else ''})"
    )
    if admin:
        err_console.print(f"admin on http://{admin}  (/healthz, /metrics)")
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
@click.option("--admin", help="HOST:PORT for /healthz and /metrics.")
@click.option("--access-log/--no-access-log", default=None, help="One line per request on stdout.")
def serve(
    config_path: Path | None,
    origin: str | None,
    listen: str | None,
    workers: int | None,
    admin: str | None,
    access_log: bool | None,
) -> None:
    """Start the edge with CONFIG (default: the bundled examples/edge.toml)."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = _with_overrides(
        _load(config_path, origin),
        listen=listen,
        workers=workers,
        admin=admin,
        access_log=access_log,
    )
    sys.exit(run_server(config))


def run_server(config: EdgeConfig) -> int:
    """Serve `config` until SIGINT/SIGTERM. Returns the exit status."""
    from edge.server import ServerOptions, parse_listen

    server = config.server
    multiproc_dir: str | None = None
    if server.workers > 1:
        # prometheus-client picks its storage when imported: set this before any import of it.
        multiproc_dir = tempfile.mkdtemp(prefix="edge-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc_dir
    try:
        from prometheus_client import CollectorRegistry

        from edge import server as server_module
        from edge.app import create_admin_app, create_app
        from edge.metrics import ProxyMetrics

        registry = None if multiproc_dir else CollectorRegistry()
        options = ServerOptions(
            listen=parse_listen(server.listen),
            workers=server.workers,
            admin=parse_listen(server.admin) if server.admin else None,
            graceful_timeout_seconds=server.graceful_timeout,
            keep_alive_timeout_seconds=server.keep_alive_timeout,
            max_header_bytes=server.max_header_bytes,
        )

        def app_factory() -> Any:
            metrics = ProxyMetrics(registry if registry is not None else CollectorRegistry())
            return create_app(config, metrics=metrics)

        def admin_factory() -> Any:
            return create_admin_app(registry)

        def ready(listen: Any, admin: Any) -> None:
            _banner(config, str(listen), str(admin) if admin else None)

        return server_module.run(
            app_factory,
            options,
            admin_factory=admin_factory if server.admin else None,
            on_ready=ready,
        )
    finally:
        if multiproc_dir:
            shutil.rmtree(multiproc_dir, ignore_errors=True)


@main.command()
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path))
def check(config_path: Path) -> None:
    """Validate CONFIG and print the resolved configuration as JSON."""
    config = _load(config_path, None)
    resolved = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    click.echo(json.dumps(resolved, indent=2))
    err_console.print(f"[green]ok[/]: {config_path} is valid")


if __name__ == "__main__":  # pragma: no cover
    main()
