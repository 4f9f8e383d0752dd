"""WASM functions at the four triggers, through the real proxy and real wasmtime: the pipeline
cannot tell them from Python functions (same statuses, headers and log lines)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, EdgeProcess
from tests.origin_app import OriginServer

WAT = Path(__file__).resolve().parent / "wasm"

CONFIG = """
[server]
name = "edge-wasm"

[origins.app]
url = "{origin}"

[[behaviors]]
path = "/generate/*"
origin = "app"
viewer-request = "echo"

[[behaviors]]
path = "/pass/*"
origin = "app"
origin-request = "echo"      # no origin_request export: continue unchanged
origin-response = "echo"     # returns 0: continue unchanged

[[behaviors]]
path = "/invalid/*"
origin = "app"
viewer-response = "echo"     # returns the text "1": not a JSON object

[[behaviors]]
path = "/trap/*"
origin = "app"
origin-request = "limits"    # unreachable

[[behaviors]]
path = "/memory/*"
origin = "app"
viewer-request = "limits"    # grows memory past its cap

[[behaviors]]
path = "/outside/*"
origin = "app"
origin-response = "limits"   # a result pointer outside memory

[[behaviors]]
path = "/loop/*"
origin = "app"
viewer-response = "spin"     # the fuel-bounded loop, with a tiny fuel cap

[[behaviors]]
path = "/broken/*"
origin = "app"
viewer-request = "broken"    # imports env.abort: it cannot start

[[behaviors]]
path = "*"
origin = "app"

[functions.broken]
runtime = "wasm"
module = "{wat}/imports_abort.wat"

[functions.echo]
runtime = "wasm"
module = "{wat}/echo.wat"

[functions.limits]
runtime = "wasm"
module = "{wat}/limits.wat"
timeout = 1

[functions.spin]
runtime = "wasm"
module = "{wat}/limits.wat"
fuel = 10000
"""


@pytest.fixture(scope="module")
def edge(origin: OriginServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("edge-wasm")
    config = tmp / "edge.toml"
    config.write_text(CONFIG.format(origin=origin.url, wat=WAT))
    process = EdgeProcess(
        [str(config), "--listen", "127.0.0.1:0"],
        env={"XDG_CACHE_HOME": str(tmp / "cache")},
    ).start(tmp)
    yield process
    process.stop()


@pytest.fixture
def client(edge: EdgeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        yield c


def test_generated_response_from_a_wasm_viewer_request(
    client: httpx.Client, origin: OriginServer
) -> None:
    before = len(origin.log.requests)
    response = client.get("/generate/x")
    assert response.status_code == 200
    assert response.headers["x-cache"] == "LambdaGeneratedResponse from edge-wasm"
    assert len(origin.log.requests) == before


def test_missing_entry_point_and_zero_result_continue_unchanged(client: httpx.Client) -> None:
    response = client.get("/pass/x?y=1")
    assert response.status_code == 200
    assert response.json()["target"] == "/pass/x?y=1"


@pytest.mark.parametrize(
    ("path", "status", "kind", "detail"),
    [
        pytest.param("/invalid/x", 502, "LambdaValidationError", "json-not-object", id="not-json"),
        pytest.param("/trap/x", 503, "LambdaExecutionError", "Runtime.Trap", id="trap"),
        pytest.param("/memory/x", 503, "LambdaExecutionError", "Runtime.OutOfMemory", id="memory"),
        pytest.param(
            "/outside/x", 503, "LambdaExecutionError", "Runtime.AbiViolation", id="out-of-bounds"
        ),
        pytest.param("/loop/x", 503, "LambdaExecutionError", "Runtime.OutOfFuel", id="fuel"),
    ],
)
def test_wasm_failures_map_like_python_failures(
    client: httpx.Client, edge: EdgeProcess, path: str, status: int, kind: str, detail: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["x-cache"] == f"{kind} from edge-wasm"
    assert response.headers["x-edge-error"] == detail
    request_id = re.escape(response.headers["x-amz-cf-id"])
    edge.wait_for(rf"request {request_id} GET {re.escape(path)}: {kind} -> {status}")


def test_wasm_logs_are_lambda_shaped(client: httpx.Client, edge: EdgeProcess) -> None:
    client.get("/generate/logs")
    edge.wait_for(
        r"REPORT RequestId: [0-9a-f-]{36}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\t"
    )


MISSING_IMPORT = "the module imports 'env.abort'; the core ABI offers only 'edge.log'"


def test_a_module_that_cannot_start_fails_only_its_own_invocations(
    client: httpx.Client, edge: EdgeProcess
) -> None:
    # The edge started (the fixture waited for its banner) and says why the function cannot.
    edge.wait_for(rf"function 'broken': module '[^']*imports_abort.wat': {MISSING_IMPORT}")
    for _ in range(2):  # every invocation, not only the first
        response = client.get("/broken/x")
        assert response.status_code == 503
        assert response.headers["x-cache"] == "LambdaExecutionError from edge-wasm"
        assert response.headers["x-edge-error"] == "FunctionCodeInvalid"
        request_id = re.escape(response.headers["x-amz-cf-id"])
        line = edge.wait_for(rf"request {request_id} GET /broken/x: .*")
        assert MISSING_IMPORT in line.group(0)
    assert client.get("/generate/x").status_code == 200  # the others serve


def _edge_check(tmp_path: Path, function: str) -> subprocess.CompletedProcess[str]:
    """`edge check` of a configuration whose one function (`function`: its table's lines)
    runs at viewer-request."""
    config = tmp_path / "edge.toml"
    (tmp_path / "site").mkdir()
    config.write_text(
        '[origins.site]\ndirectory = "site"\n'
        '[[behaviors]]\npath = "*"\norigin = "site"\nviewer-request = "f"\n'
        f"[functions.f]\n{function}"
    )
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "check", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )


def test_edge_check_refuses_a_module_that_cannot_start(tmp_path: Path) -> None:
    result = _edge_check(tmp_path, f'runtime = "wasm"\nmodule = "{WAT}/imports_abort.wat"\n')
    assert result.returncode == 2, result.stderr
    assert "invalid configuration" in result.stderr
    assert f"functions.f.module: module '{WAT}/imports_abort.wat': {MISSING_IMPORT}" in (
        result.stderr
    )


# -- a WASM function's memory: MB or 64 KiB pages ---------------------------------------------


def _function_config(**function: object) -> dict[str, object]:
    table = {"runtime": "wasm", "module": str(WAT / "echo.wat"), **function}
    return {
        "origins": {"site": {"directory": "."}},
        "behaviors": [{"path": "*", "origin": "site", "viewer-request": "tiny"}],
        "functions": {"tiny": table},
    }


def test_a_wasm_function_caps_its_memory_in_pages() -> None:
    from edge.config import parse_config
    from edge.functions import wasm_spec_for

    config = parse_config(_function_config(memory_pages=4), base_dir=REPO)
    spec = wasm_spec_for("tiny", config.functions["tiny"], timeout_seconds=5)
    assert spec.memory_limit_bytes == 4 * 65536
    assert spec.memory_size_mb == 1  # what REPORT's Memory Size says: whole MB, rounded up
    small = parse_config(_function_config(memory=2), base_dir=REPO)  # below Lambda's 128 MB
    assert wasm_spec_for("tiny", small.functions["tiny"], timeout_seconds=5).memory_limit_bytes == (
        2 << 20
    )


@pytest.mark.parametrize(
    ("function", "problem"),
    [
        pytest.param(
            {"memory_pages": 0},
            "functions.tiny.memory_pages: expected a number at least 1, found 0",
            id="no-pages",
        ),
        pytest.param(
            {"memory_pages": 65_537},
            "functions.tiny.memory_pages: expected a number at most 65536, found 65537",
            id="over-4-GiB",
        ),
        pytest.param(
            {"memory_pages": 4, "memory": 2},
            "functions.tiny.memory: expected either memory (MB) or memory_pages (64 KiB pages), "
            "found both",
            id="both",
        ),
        pytest.param(
            {"memory": 8192},
            "functions.tiny.memory: expected at most 4096 (MB) for a wasm function (a wasm32 "
            "memory holds at most 4 GiB), found 8192",
            id="over-wasm32",
        ),
        pytest.param(
            {"runtime": "python", "handler": "f.handler", "memory_pages": 4},
            "functions.tiny.memory_pages: expected no memory_pages for a python function "
            "(64 KiB pages cap a wasm function's memory; set memory, in MB), found 4",
            id="pages-for-python",
        ),
        pytest.param(
            {"runtime": "python", "handler": "f.handler", "memory": 64},
            "functions.tiny.memory: expected at least 128 (MB) for a python function "
            "(Lambda's minimum; a wasm function may have less), found 64",
            id="python-below-128",
        ),
    ],
)
def test_memory_settings_are_checked(function: dict[str, object], problem: str) -> None:
    from edge.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config(_function_config(**function), base_dir=REPO)
    assert problem in caught.value.problems


def test_a_guest_whose_memory_starts_over_its_pages_cannot_start(tmp_path: Path) -> None:
    result = _edge_check(
        tmp_path, f'runtime = "wasm"\nmodule = "{WAT}/echo.wat"\nmemory_pages = 1\n'
    )
    assert result.returncode == 2, result.stderr
    assert (
        "the module's initial memory (2 pages of 64 KiB) is over the function's memory limit "
        "(1 page, 64 KiB)"
    ) in result.stderr
