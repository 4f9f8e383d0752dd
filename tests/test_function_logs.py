"""The functions' own log: every line names the function and the trigger that wrote it;
`function_logs` chooses all of it, only failed invocations' or none; colours on a terminal,
never in a file or a pipe."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.config import parse_config
from edge.function_logs import FunctionLogs
from edge.functions import FunctionRegistry
from tests.conftest import REPO, EdgeProcess

LOG = (
    "START RequestId: r1 Version: $LATEST\n"
    "hello\n"
    "[ERROR] KeyError: 'x'\n"
    "END RequestId: r1\n"
    "REPORT RequestId: r1\tDuration: 1.00 ms\t\n"
)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("mode", "failed", "shown"),
    [
        pytest.param("full", False, True, id="full-shows-success"),
        pytest.param("full", True, True, id="full-shows-failure"),
        pytest.param("errors-only", False, False, id="errors-only-hides-success"),
        pytest.param("errors-only", True, True, id="errors-only-shows-failure"),
        pytest.param("none", True, False, id="none-hides-all"),
    ],
)
def test_modes(mode: Any, failed: bool, shown: bool) -> None:
    out = io.StringIO()
    FunctionLogs(mode, stream=out).record("auth", "viewer-request", LOG, failed=failed)
    expected = "".join(f"auth viewer-request | {line}\n" for line in LOG.splitlines())
    assert out.getvalue() == (expected if shown else "")


def test_a_rejected_result_is_shown_once_in_either_mode() -> None:
    for mode in ("full", "errors-only"):
        out = io.StringIO()
        logs = FunctionLogs(mode, stream=out)
        logs.record("auth", "viewer-request", LOG, failed=False)
        logs.rejected("auth", "viewer-request", LOG)
        assert out.getvalue().count("auth viewer-request | hello\n") == 1, mode


def test_colours_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = _Terminal()
    FunctionLogs("full", stream=terminal).write("auth", "viewer-request", LOG)
    assert "\x1b[" in terminal.getvalue()
    plain = re.sub(r"\x1b\[[0-9;]*m", "", terminal.getvalue())
    assert plain == "".join(f"auth viewer-request | {line}\n" for line in LOG.splitlines())
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = _Terminal()
    FunctionLogs("full", stream=terminal).write("auth", "viewer-request", LOG)
    assert "\x1b[" not in terminal.getvalue()


def test_edge_invoke_colours_the_log_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "fail.py").write_text("def handler(event, context):\n    raise KeyError('x')\n")
    primary, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "edge.cli", "invoke", f"{tmp_path}/fail.py::handler"],
            stdout=subprocess.PIPE,
            stderr=secondary,
            cwd=REPO,
            env=env,
            timeout=60,
            check=False,
        )
        os.close(secondary)
        secondary = -1
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    assert result.returncode == 1
    text = seen.decode()
    assert "\x1b[" in text
    assert "[ERROR] KeyError: 'x'" in text


FUNCTIONS = """
def fine(event, context):
    print("fine ran")
    return event["Records"][0]["cf"]["request"]


def fail(event, context):
    print("about to fail")
    raise ValueError("no")


def invalid(event, context):
    print("about to answer badly")
    return {"status": "nine hundred"}
"""

CONFIG = """
[origins.site]
directory = "site"

[[behaviors]]
path = "/fine/*"
origin = "site"
viewer-request = "fine"

[[behaviors]]
path = "/fail/*"
origin = "site"
viewer-request = "fail"

[[behaviors]]
path = "*"
origin = "site"
viewer-request = "invalid"

[functions.fine]
handler = "functions.fine"

[functions.fail]
handler = "functions.py::fail"

[functions.invalid]
handler = "functions.invalid"
"""


def test_errors_only_shows_the_logs_of_failed_invocations(start_edge: Any, tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "functions.py").write_text(FUNCTIONS)
    (tmp_path / "edge.toml").write_text(CONFIG)
    edge: EdgeProcess = start_edge(
        str(tmp_path / "edge.toml"), "--function-logs", "errors-only", cwd=tmp_path
    )
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        assert c.get("/fine/x").status_code == 404  # the function ran; no such file
        assert c.get("/fail/x").status_code == 503
        assert c.get("/other").status_code == 502
    edge.wait_for(r"fail viewer-request \| about to fail\n")
    edge.wait_for(r"fail viewer-request \| \[ERROR\] ValueError: no")
    edge.wait_for(r"invalid viewer-request \| about to answer badly\n")
    edge.wait_for(r"invalid viewer-request \| REPORT RequestId: ")
    assert "fine ran" not in edge.log
    assert "\x1b[" not in edge.log


def test_a_provisioned_environments_init_output_names_its_function(tmp_path: Path) -> None:
    (tmp_path / "warm.py").write_text(
        'print("warming up")\n\ndef handler(event, context):\n    print("serving")\n    return {}\n'
    )
    config = parse_config(
        {
            "origins": {"o": {"directory": "."}},
            "functions": {"warm": {"handler": "warm.py::handler", "provisioned": 1}},
        },
        base_dir=tmp_path,
    )
    out = io.StringIO()

    async def run() -> None:
        registry = FunctionRegistry(config, logs=FunctionLogs("full", stream=out))
        try:
            await registry.start()
            assert out.getvalue() == "warm | warming up\n"  # Init, before any invocation
            result = await registry.invoke(
                "warm", b"{}", request_id="", deadline=time.monotonic() + 10
            )
        finally:
            await registry.aclose()
        assert f"warm invoke | START RequestId: {result.request_id} " in out.getvalue()
        assert "warm invoke | serving\n" in out.getvalue()
        assert out.getvalue().count("START RequestId") == 1  # written once, not by the sink too

    asyncio.run(run())
