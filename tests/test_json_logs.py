"""Lambda's JSON log format (`log_format = "json"`, or AWS_LAMBDA_LOG_FORMAT=JSON): the
runtimes' loggers write JSON records with the request id, the level filter applies, and
START/REPORT become `platform.start`/`platform.report` records; print output stays text."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

FUNCTIONS = Path(__file__).resolve().parent / "log_functions"
HAS_NODE = shutil.which("node") is not None


def _invoke(tmp_path: Path, function: str, event: dict[str, Any]) -> tuple[int, list[str]]:
    """`edge invoke` of `function` in the config below; (exit status, its log lines)."""
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[origins.site]\ndirectory = "{tmp_path}"\n\n'
        f'[functions.py]\nhandler = "{FUNCTIONS}/logs.handler"\nlog_format = "json"\n\n'
        f'[functions.py-debug]\nhandler = "{FUNCTIONS}/logs.handler"\nlog_format = "json"\n'
        'log_level = "DEBUG"\n\n'
        f'[functions.py-env]\nhandler = "{FUNCTIONS}/logs.handler"\n'
        'environment = { AWS_LAMBDA_LOG_FORMAT = "JSON" }\n\n'
        f'[functions.py-text]\nhandler = "{FUNCTIONS}/logs.handler"\n\n'
        + (
            f'[functions.node]\nruntime = "nodejs"\nhandler = "{FUNCTIONS}/logs.handler"\n'
            'log_format = "json"\n'
            if HAS_NODE
            else ""
        )
    )
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))
    result = subprocess.run(
        [
            *(sys.executable, "-m", "edge.cli", "invoke", function),
            *("--config", str(config), "--event", str(event_file)),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    lines = [line.split(" | ", 1)[1] for line in result.stderr.splitlines() if " | " in line]
    return result.returncode, lines


def _records(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_python_logging_writes_lambdas_json_records(tmp_path: Path) -> None:
    status, lines = _invoke(tmp_path, "py", {"order": "A-1"})
    assert status == 0
    records = _records(lines)
    start, report = records[0], records[-1]
    assert start["type"] == "platform.start"
    assert start["record"]["version"] == "$LATEST"
    request_id = start["record"]["requestId"]
    assert report["type"] == "platform.report"
    assert report["record"]["requestId"] == request_id
    assert report["record"]["status"] == "success"
    metrics = report["record"]["metrics"]
    assert metrics["memorySizeMB"] == 128
    assert metrics["billedDurationMs"] >= 1
    assert "initDurationMs" in metrics  # a cold start
    logged = [r for r in records if "level" in r]
    # INFO by default: the debug line is filtered out.
    assert [r["level"] for r in logged] == ["INFO", "WARNING", "ERROR"]
    info, warning, error = logged
    assert info["message"] == "paid A-1"
    assert info["logger"] == "shop"
    assert info["requestId"] == request_id
    assert info["timestamp"].endswith("Z")
    assert warning["elapsed_ms"] == 1200  # `extra` fields ride along
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "bad coupon"
    assert error["stackTrace"]
    assert "plain print" in lines  # print output stays text
    assert not any(line.startswith(("START ", "END ", "REPORT ")) for line in lines)


def test_the_level_setting_and_the_environment_variable(tmp_path: Path) -> None:
    _, lines = _invoke(tmp_path, "py-debug", {})
    assert next(r["level"] for r in _records(lines) if "level" in r) == "DEBUG"
    _, lines = _invoke(tmp_path, "py-env", {})
    assert _records(lines)[0]["type"] == "platform.start"
    _, lines = _invoke(tmp_path, "py-text", {})
    assert lines[0].startswith("START RequestId: ")
    assert not _records(lines)


def test_a_python_function_error_in_json(tmp_path: Path) -> None:
    status, lines = _invoke(tmp_path, "py", {"fail": True})
    assert status == 1
    records = _records(lines)
    unhandled = next(r for r in records if r.get("log_level") == "ERROR")
    assert unhandled["errorType"] == "KeyError"
    assert unhandled["requestId"] == records[0]["record"]["requestId"]
    assert records[-1]["record"]["status"] == "error"


@pytest.mark.skipif(not HAS_NODE, reason="`node` is not installed")
def test_node_console_writes_lambdas_json_records(tmp_path: Path) -> None:
    status, lines = _invoke(tmp_path, "node", {"order": "B-2", "fail": True})
    assert status == 1
    records = _records(lines)
    request_id = records[0]["record"]["requestId"]
    logged = [r for r in records if "level" in r]
    assert [r["level"] for r in logged] == ["INFO", "WARN", "ERROR", "ERROR"]
    assert logged[0]["message"] == "paid B-2"
    assert logged[0]["requestId"] == request_id
    assert logged[1]["message"] == {"slow": True, "elapsedMs": 1200}  # one object: as is
    assert logged[2]["errorType"] == "TypeError"
    assert logged[2]["errorMessage"] == "bad coupon"
    assert logged[3]["errorType"] == "RangeError"  # the invocation's own error
    assert records[-1]["type"] == "platform.report"
    assert records[-1]["record"]["status"] == "error"


def test_a_log_level_needs_the_json_format(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[origins.site]\ndirectory = "{tmp_path}"\n\n'
        f'[functions.f]\nhandler = "{FUNCTIONS}/logs.handler"\nlog_level = "DEBUG"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "check", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "functions.f" in result.stdout + result.stderr
    assert 'expected log_format = "json" with log_level' in result.stdout + result.stderr
