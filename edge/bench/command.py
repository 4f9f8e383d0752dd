"""The `edge bench` command (registered by edge.cli): options, live progress, outputs."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.markup import escape

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """'10s', '500ms', '2m' or a number of seconds."""
    found = _DURATION.match(text.strip())
    if not found:
        raise click.BadParameter(f"expected a duration such as 10s, 500ms or 2m, found {text!r}")
    return float(found[1]) * _UNITS[found[2]]


def _read_result(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: {exc}") from None
    if not isinstance(document, dict) or not str(document.get("schema", "")).startswith(
        "edge-bench/"
    ):
        raise click.BadParameter(f"{path}: not an `edge bench --json` result")
    return document


@click.command()
@click.argument("target", metavar="URL|edge.toml", required=False)
@click.option(
    "-c",
    "--connections",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Connections kept open (closed model: each sends its next request when "
    "the last is answered).",
)
@click.option(
    "-R",
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Open model: requests per second over all connections, sent on a fixed "
    "schedule; latency counts from when each request was due (corrected for "
    "coordinated omission, as wrk2).",
)
@click.option(
    "-d",
    "--duration",
    default="10s",
    show_default=True,
    help="How long to measure (after --warmup).",
)
@click.option(
    "-n",
    "--requests",
    "request_count",
    type=click.IntRange(1),
    help="Measure this many requests instead of a duration.",
)
@click.option(
    "--warmup", default="2s", show_default=True, help="Load before measuring, not reported."
)
@click.option(
    "--mix",
    "mix_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Request mix, .json or .toml: a list of {method, path, headers, body, "
    "weight} (default: GET of the URL's path).",
)
@click.option(
    "-p",
    "--processes",
    type=click.IntRange(1),
    help="Load processes (default: the number of cores).",
)
@click.option(
    "--admin",
    "admin_url",
    metavar="URL",
    help="The edge's admin listener (http://HOST:PORT) for a URL target: function "
    "metrics and an AWS cost estimate. Automatic for an edge.toml target.",
)
@click.option(
    "--edge-workers",
    type=click.IntRange(1),
    help="With an edge.toml target: the edge's worker processes (default: its [server] workers).",
)
@click.option(
    "--prices",
    "prices_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A price table replacing the bundled AWS prices (TOML).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the result as JSON.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write a self-contained HTML report with plots.",
)
@click.option(
    "--timeout",
    default="30s",
    show_default=True,
    help="An answer not complete after this long counts as an error (timeout).",
)
@click.option(
    "--compare",
    nargs=2,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    metavar="A.json B.json",
    help="Print two --json results side by side with deltas (no load is run).",
)
def bench(
    target: str | None,
    connections: int,
    rate: float | None,
    duration: str,
    request_count: int | None,
    warmup: str,
    mix_path: Path | None,
    processes: int | None,
    admin_url: str | None,
    edge_workers: int | None,
    prices_path: Path | None,
    json_path: Path | None,
    html_path: Path | None,
    timeout: str,
    compare: tuple[Path, Path] | None,
) -> None:
    """Load-test an edge (or any HTTP/1.1 server) and report what it did.

    TARGET is a URL, or an edge.toml: the edge is then started for the run on ephemeral
    ports with an admin listener, read before and after, and stopped."""
    from edge import bench as bench_package

    console = Console(stderr=True, highlight=False)
    if compare:
        if target is not None:
            raise click.UsageError("--compare takes two result files and no TARGET")
        first, second = (_read_result(path) for path in compare)
        bench_package.print_compare(
            Console(highlight=False), first, second, (compare[0].name, compare[1].name)
        )
        return
    if target is None:
        raise click.UsageError("Missing argument 'URL|edge.toml' (or --compare A.json B.json).")
    try:
        mix = bench_package.load_mix(mix_path) if mix_path else None
        prices = bench_package.load_prices(prices_path) if prices_path else None
    except (bench_package.MixError, bench_package.PricesError) as exc:
        raise click.BadParameter(str(exc)) from None
    is_config = not target.startswith(("http://", "https://"))
    if is_config and not Path(target).is_file():
        raise click.BadParameter(f"expected an http:// URL or an edge.toml, found {target!r}")
    if edge_workers is not None and not is_config:
        raise click.UsageError("--edge-workers goes with an edge.toml TARGET")
    options: dict[str, Any] = {
        "connections": connections,
        "rate": rate,
        "duration_seconds": None if request_count else parse_duration(duration),
        "requests": request_count,
        "warmup_seconds": parse_duration(warmup),
        "mix": mix,
        "processes": processes or os.cpu_count() or 1,
        "prices": prices,
        "timeout_seconds": parse_duration(timeout),
    }
    try:
        if is_config:
            with bench_package.started_edge(Path(target), workers=edge_workers) as edge:
                console.print(f"edge started: {edge.url} (admin {edge.admin_url})")
                result = _run(
                    console, bench_package, url=edge.url + "/", admin_url=edge.admin_url, **options
                )
        else:
            result = _run(console, bench_package, url=target, admin_url=admin_url, **options)
    except (bench_package.BenchError, bench_package.EdgeStartFailed) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(1)
    Console(highlight=False).print(bench_package.result_view(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        console.print(f"result: {json_path}")
    if html_path is not None:
        html_path.write_text(bench_package.render_html(result), encoding="utf-8")
        console.print(f"report: {html_path}")


def _run(console: Console, bench_package: Any, **options: Any) -> dict[str, Any]:
    run_options = bench_package.BenchOptions(**options)
    if not console.is_terminal:
        return dict(bench_package.run_bench(run_options))
    with Live(console=console, transient=True, refresh_per_second=4) as live:

        def show(progress: Any) -> None:
            live.update(bench_package.progress_view(progress))

        return dict(bench_package.run_bench(run_options, show))
