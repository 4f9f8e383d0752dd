"""`edge deploy` and `edge deployments`: start a gradual deployment on a running edge and follow
it live, list them, stop one. Both talk to the edge's admin listener (`/deployments`), where
deployments run; the terminal only watches.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from edge.lambda_service.strategies import CODEDEPLOY_PREFIX, PREDEFINED

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

POLL_SECONDS = 0.5
_ENDED = ("Succeeded", "Failed", "Stopped")

_STRATEGY_HELP = (
    "How traffic moves: a CodeDeploy predefined configuration by SAM name ("
    + ", ".join(PREDEFINED)
    + f") or CodeDeploy name ({CODEDEPLOY_PREFIX}...), or canary:PERCENT:INTERVAL, "
    "linear:PERCENT:INTERVAL (INTERVAL: 90s, 10m, 1h; a bare number is minutes), all-at-once."
)


class _Admin:
    """Requests to the admin listener, signed when edge.toml names an admin key."""

    def __init__(self, admin: str | None, config_path: Path | None) -> None:
        from edge import cli

        credentials = None
        if config_path is None and Path("edge.toml").is_file():
            config_path = Path("edge.toml")
        if config_path is not None:
            config = cli._load(config_path, None)
            credentials = cli._admin_credentials(config)
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
        self.address = admin or "127.0.0.1:9180"
        self._credentials = credentials

    def request(self, method: str, path: str, document: Any = None) -> tuple[int, Any]:
        import httpx

        from edge import sigv4
        from edge.admin_guard import SIGNING_SERVICE
        from edge.cli import SIGNING_REGION

        url = f"http://{self.address}{path}"
        body = b"" if document is None else json.dumps(document).encode()
        headers = {"Content-Type": "application/json"} if document is not None else {}
        if self._credentials is not None:
            headers = sigv4.sign(
                self._credentials,
                method=method,
                url=url,
                headers=headers,
                body=body,
                region=SIGNING_REGION,
                service=SIGNING_SERVICE,
                now=datetime.datetime.now(datetime.UTC),
            )
        try:
            with httpx.Client(timeout=30) as client:
                response = client.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            _fail(f"cannot reach the admin listener {self.address}: {exc}")
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"error": response.text}


def _fail(message: str, status: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    sys.exit(status)


def _refused(status: int, document: Any) -> NoReturn:
    reason = document.get("error") if isinstance(document, dict) else None
    _fail(f"{status}: {reason or document}")


_ADMIN_OPTION = click.option(
    "--admin",
    help="The edge's admin listener, HOST:PORT (default: [server] admin of the config, else "
    "127.0.0.1:9180).",
)
_CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The edge's edge.toml (default: ./edge.toml when there is one): its admin address "
    "and key.",
)


@click.command()
@click.argument("function")
@click.option("--alias", required=True, help="The alias whose traffic moves (e.g. live).")
@click.option("--version", "version", required=True, help="The published version to move to.")
@click.option("--strategy", required=True, help=_STRATEGY_HELP)
@click.option("--pre-traffic-hook", help="Function run before any traffic moves.")
@click.option("--post-traffic-hook", help="Function run once all traffic moved.")
@click.option(
    "--max-error-rate",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="Roll back when the new version's errors / invocations over a step exceed this.",
)
@click.option(
    "--max-throttles",
    type=click.IntRange(0),
    help="Roll back when the function is throttled more than this over a step (default: not "
    "checked).",
)
@click.option(
    "--max-p99-ms",
    type=click.FloatRange(0),
    help="Roll back when the new version's p99 duration over a step exceeds this (default: "
    "not checked).",
)
@click.option(
    "--min-invocations",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="Invocations of the new version a step needs before its error rate and p99 count.",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(0, min_open=True),
    default=1.0,
    show_default=True,
    help="Multiply every interval by this (0.01: Canary10Percent5Minutes in 3 s), for tests.",
)
@click.option("--no-wait", is_flag=True, help="Return once the deployment started.")
@_ADMIN_OPTION
@_CONFIG_OPTION
def deploy(
    function: str,
    alias: str,
    version: str,
    strategy: str,
    pre_traffic_hook: str | None,
    post_traffic_hook: str | None,
    max_error_rate: float,
    max_throttles: int | None,
    max_p99_ms: float | None,
    min_invocations: int,
    time_scale: float,
    no_wait: bool,
    admin: str | None,
    config_path: Path | None,
) -> None:
    """Move FUNCTION's alias to a published version gradually, as CodeDeploy does.

    The deployment runs in the edge (its admin listener), which rolls the alias back to the
    old version when a hook fails or the new version's error rate, throttles or p99 pass their
    limits; this command follows it until it ends (exit status 0 when it succeeded, 1 when it
    failed or was stopped). Ctrl-C stops following, not the deployment: `edge deployments ID
    --stop` does."""
    from edge.lambda_service.strategies import StrategyInvalid, parse_strategy

    try:
        parse_strategy(strategy)
    except StrategyInvalid as exc:
        _fail(str(exc), 2)
    client = _Admin(admin, config_path)
    request: dict[str, Any] = {
        "function": function,
        "alias": alias,
        "version": version,
        "strategy": strategy,
        "pre_traffic_hook": pre_traffic_hook,
        "post_traffic_hook": post_traffic_hook,
        "max_error_rate": max_error_rate,
        "max_throttles": max_throttles,
        "max_p99_ms": max_p99_ms,
        "min_invocations": min_invocations,
        "time_scale": time_scale,
    }
    status, document = client.request("POST", "/deployments", request)
    if status != 201:
        _refused(status, document)
    deployment_id = document["id"]
    console.print(
        f"deployment {deployment_id}: {escape(function)}:{escape(alias)} from version "
        f"{document['from_version']} to {document['to_version']}, {escape(document['strategy'])}"
    )
    if no_wait:
        return
    try:
        final = _follow(client, deployment_id)
    except KeyboardInterrupt:
        err_console.print(
            f"stopped following; deployment {deployment_id} continues in the edge "
            f"(`edge deployments {deployment_id} --stop` rolls it back)"
        )
        sys.exit(130)
    sys.exit(0 if final["status"] == "Succeeded" else 1)


def _follow(client: _Admin, deployment_id: str) -> dict[str, Any]:
    """Show the deployment's progress until it ends; returns its last document."""
    shown = 0
    live = (
        Live(console=console, auto_refresh=False, transient=True) if console.is_terminal else None
    )
    try:
        if live is not None:
            live.start()
        while True:
            status, document = client.request("GET", f"/deployments/{deployment_id}")
            if status != 200:
                _refused(status, document)
            for event in document["events"][shown:]:
                console.print(f"  {event['time']}  {escape(event['message'])}")
            shown = len(document["events"])
            if document["status"] in _ENDED:
                break
            if live is not None:
                live.update(_progress(document), refresh=True)
            time.sleep(POLL_SECONDS)
    finally:
        if live is not None:
            live.stop()
    colour = "green" if document["status"] == "Succeeded" else "red"
    reason = f": {escape(document['reason'])}" if document.get("reason") else ""
    console.print(f"[bold {colour}]{document['status']}[/]{reason}")
    return dict(document)


def _progress(document: dict[str, Any]) -> Group:
    """The live view: phase, step, weight, each version's counts over the step, time left."""
    steps = document["steps"]
    step = min(document["step"] + 1, len(steps)) if steps else 0
    left = ""
    if document.get("next_step_in_seconds") is not None:
        left = f", next step in {_duration(document['next_step_in_seconds'])}"
    head = Text.from_markup(
        f"[bold]{escape(document['phase'])}[/]  step {step}/{len(steps)}  "
        f"version {document['to_version']} at {document['weight'] * 100:g} %{left}"
    )
    table = Table(box=None, pad_edge=False)
    for column in ("version", "", "invocations", "errors", "throttles", "p99 ms"):
        table.add_column(column, justify="left" if not column or column == "version" else "right")
    for version, role in ((document["from_version"], "old"), (document["to_version"], "new")):
        counts = document["current"].get(version, {})
        p99 = counts.get("p99_ms")
        table.add_row(
            version,
            role,
            str(counts.get("invocations", 0)),
            str(counts.get("errors", 0)),
            str(counts.get("throttles", 0)),
            "-" if p99 is None else f"{p99:g}",
        )
    return Group(head, table)


def _duration(seconds: float) -> str:
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{seconds:.1f}s"


@click.command()
@click.argument("deployment_id", required=False)
@click.option("--stop", is_flag=True, help="Stop the deployment: its alias goes back.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@_ADMIN_OPTION
@_CONFIG_OPTION
def deployments(
    deployment_id: str | None,
    stop: bool,
    as_json: bool,
    admin: str | None,
    config_path: Path | None,
) -> None:
    """List the edge's deployments, show DEPLOYMENT_ID, or stop it (--stop)."""
    client = _Admin(admin, config_path)
    if stop and deployment_id is None:
        _fail("--stop needs a DEPLOYMENT_ID", 2)
    if deployment_id is None:
        status, document = client.request("GET", "/deployments")
    elif stop:
        status, document = client.request("POST", f"/deployments/{deployment_id}/stop")
    else:
        status, document = client.request("GET", f"/deployments/{deployment_id}")
    if status != 200:
        _refused(status, document)
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    found = document["deployments"] if deployment_id is None else [document]
    table = Table()
    for column in ("id", "function:alias", "versions", "strategy", "status", "weight", "reason"):
        table.add_column(column)
    for d in found:
        table.add_row(
            d["id"],
            f"{d['function']}:{d['alias']}",
            f"{d['from_version']} -> {d['to_version']}",
            d["strategy"],
            d["status"],
            f"{d['weight'] * 100:g} %",
            d.get("reason") or "",
        )
    console.print(table)
