"""Helpers for the Invoke API tests: a real `edge serve` with an admin listener, a boto3
client pointed at it, and waiting for files that the functions and destinations write."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.conftest import EdgeProcess

HANDLERS = Path(__file__).resolve().parent / "handlers"


def function_table(name: str, handler: str, **settings: Any) -> str:
    """A `[functions.NAME]` table running `handlers.HANDLER`."""
    lines = [f"[functions.{name}]", f'handler = "{HANDLERS}.{handler}"']
    for key, value in settings.items():
        lines.append(
            f"{key} = {json.dumps(value) if not isinstance(value, dict) else _inline(value)}"
        )
    return "\n".join(lines) + "\n"


def _inline(table: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + " }"


def shared_directory(tmp: Path) -> Path:
    """A directory the functions may write (`writable_paths`) and the test reads: functions
    see no other host directory, and may run under a uid of their own."""
    shared = tmp / "shared"
    shared.mkdir(exist_ok=True)
    shared.chmod(0o777)
    return shared


def edge_config(tmp: Path, functions: str, invoke: str = "") -> Path:
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    path = tmp / "edge.toml"
    path.write_text(
        f'[origins.site]\ndirectory = "{site}"\n\n'
        f'[invoke]\nqueue_path = "{tmp / "queue.sqlite3"}"\n{invoke}\n\n{functions}'
    )
    return path


def start_edge(config: Path, tmp: Path) -> EdgeProcess:
    edge = EdgeProcess([str(config), "--admin", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
    return edge.start(tmp)


def lambda_client(edge: EdgeProcess, *, timeout: float = 30) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=edge.admin_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            retries={"max_attempts": 0},
            read_timeout=timeout,
            max_pool_connections=64,
        ),
    )


def read_jsonl(path: Path) -> list[Any]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_until(condition: Callable[[], Any], timeout: float = 15, what: str = "") -> Any:
    """Poll `condition` until it returns something truthy (the condition is observed state
    written by another process: files, /proc); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)
