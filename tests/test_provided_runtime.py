"""Custom runtimes (`runtime = "provided"`): a function's own `bootstrap` behind Lambda's Runtime
API, served per environment by the edge.

Real bootstraps: a shell script looping on curl (as in AWS's tutorial), AWS's Python runtime
interface client (`awslambdaric`) and, where it builds, npm's `aws-lambda-ric`, all unchanged.
Through the runtime: warm reuse, Lambda's variables and headers, the Runtime API's refusals,
init and exit failures, timeouts. Through the real proxy, `edge invoke` and `edge check`: what
a user of the edge sees.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from sandbox import (
    FunctionCodeInvalid,
    FunctionCrashed,
    FunctionError,
    FunctionTimeout,
    ProvidedFunctionSpec,
    RuntimeHost,
)
from tests import node_ric as node_ric_module
from tests.conftest import REPO, EdgeProcess
from tests.node_ric import install as node_ric_install
from tests.origin_app import OriginServer

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None, reason="`curl` is not installed (Debian: apt-get install curl)"
)

FUNCTIONS = REPO / "tests" / "provided_functions"
SHELL = FUNCTIONS / "shell"
RIC_PYTHON = FUNCTIONS / "ric_python"
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
T = TypeVar("T")


def _spec(handler: str, code_dir: Path = SHELL, **settings: Any) -> ProvidedFunctionSpec:
    settings.setdefault("spare_environments", 0)
    return ProvidedFunctionSpec(name="t", handler=handler, code_dir=code_dir, **settings)


def _ric_spec(handler: str, **settings: Any) -> ProvidedFunctionSpec:
    return _spec(handler, RIC_PYTHON, environment={"RIC_PYTHON": sys.executable}, **settings)


def _run(scenario: Callable[[RuntimeHost], Awaitable[T]]) -> T:
    async def main() -> T:
        host = RuntimeHost()
        try:
            return await scenario(host)
        finally:
            host.close()

    return asyncio.run(main())


def _invoke_each(spec: ProvidedFunctionSpec, events: list[bytes], **options: Any) -> list[Any]:
    """Each event in turn in one runtime: (the parsed result, its log), or the FunctionError."""

    async def scenario(host: RuntimeHost) -> list[Any]:
        runtime = host.create(spec)
        outcomes: list[Any] = []
        try:
            for event in events:
                try:
                    result = await runtime.invoke(event, **options)
                    outcomes.append((json.loads(result.payload), result.log))
                except FunctionError as error:
                    outcomes.append(error)
        finally:
            await runtime.aclose()
        return outcomes

    return _run(scenario)


# ---- the runtime: a shell bootstrap on curl ---------------------------------------------


def test_one_bootstrap_serves_the_invocations_of_its_environment() -> None:
    (first, first_log), (second, second_log) = _invoke_each(_spec("echo"), [b'{"n": 1}', b"[2]"])
    assert first == {"echo": {"n": 1}, "count": 1}
    assert second == {"echo": [2], "count": 2}  # the same process: its state persists
    request_id = re.search(r"^START RequestId: (\S+) Version: \$LATEST$", first_log, re.M)
    assert request_id is not None
    rid = re.escape(request_id[1])
    # What Init printed comes before START; the bootstrap's output between START and END.
    assert re.fullmatch(
        rf"init: handler echo\nSTART RequestId: {rid} Version: \$LATEST\n"
        rf"invocation 1 of echo\nEND RequestId: {rid}\n"
        rf"REPORT RequestId: {rid}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\tInit Duration: \d+\.\d\d ms\t\n",
        first_log,
    )
    assert "Init Duration" not in second_log
    assert "init: handler" not in second_log


def test_the_bootstrap_has_lambdas_variables_and_invocation_headers() -> None:
    spec = _spec("context", environment={"GREETING": "hello"}, memory_mb=256, timeout_seconds=2)
    before_ms = time.time() * 1000
    [(document, _)] = _invoke_each(
        spec,
        [b"{}"],
        client_context={"custom": {"k": "v"}},
        invoked_arn="arn:aws:lambda:us-east-1:123456789012:function:t:live",
        trace_id=TRACE,
    )
    task_root = str(SHELL.resolve())
    assert document["handler"] == "context"
    assert document["task_root"] == document["cwd"] == task_root
    assert document["function"] == "t"
    assert document["version"] == "$LATEST"
    assert document["memory"] == "256"
    assert document["group"] == "/aws/lambda/t"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", document["stream"])
    assert document["region"] == "us-east-1"
    assert (document["tz"], document["lang"]) == (":UTC", "en_US.UTF-8")
    assert document["path"] == "/usr/local/bin:/usr/bin:/bin:/opt/bin"
    assert document["library_path"].split(":")[-3:] == [task_root, f"{task_root}/lib", "/opt/lib"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", document["api"])
    assert document["user"] == "hello"
    assert document["execution_env"] == ""  # Lambda sets none for custom runtimes
    assert document["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:t:live"
    assert before_ms < int(document["deadline"]) <= time.time() * 1000 + 2000
    assert document["trace"] == TRACE  # the request's trace, as Lambda passes it
    assert json.loads(document["client_context"].replace("'", '"')) == {"custom": {"k": "v"}}


def test_the_runtime_api_refuses_what_a_runtime_must_not_do() -> None:
    (first, _), (second, _) = _invoke_each(_spec("protocol"), [b"{}", b"{}"])
    assert first == {
        "bad_id": "400 InvalidRequestID",
        "not_found": "404 NotFound",
        "late_init_error": "403 InvalidStateTransition",
        "next_while_invoked": "403",
    }
    # A second response to an invocation already answered.
    assert second == {"second_response": "403 InvalidStateTransition"}


def test_a_response_over_the_payload_limit_is_413_and_fails_the_invocation() -> None:
    failed, (after, _) = _invoke_each(_spec("large"), [b"{}", b"{}"])
    assert isinstance(failed, FunctionError)
    assert failed.error_type == "Function.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size (6291456 bytes)" in failed.error_message
    assert after == {"previous": "413 RequestEntityTooLarge"}  # the environment serves on


@pytest.mark.parametrize(
    ("handler", "document"),
    [
        pytest.param(
            "error",
            {
                "errorMessage": "the shell failed",
                "errorType": "Custom.Failure",
                "stackTrace": ["bootstrap line 1"],
            },
            id="document",
        ),
        pytest.param(
            "error-plain",
            {"errorMessage": "plain words", "errorType": "Runtime.Unknown"},
            id="header-only",
        ),
    ],
)
def test_an_error_report_is_the_functions_error_document(
    handler: str, document: dict[str, Any]
) -> None:
    [error] = _invoke_each(_spec(handler), [b"{}"])
    assert type(error) is FunctionError
    assert error.payload == document
    assert f"invocation 1 of {handler}\nEND RequestId: " in error.log


@pytest.mark.parametrize(
    ("handler", "error_type", "message", "logged"),
    [
        pytest.param(
            "init-error",
            "Runtime.ConfigInvalid",
            "no configuration found",
            "init: handler init-error\n",
            id="init-error",
        ),
        pytest.param(
            "init-exit",
            "Runtime.ExitError",
            "RequestId: {id} Error: Runtime exited with error: exit status 2",
            "giving up before the first event\n",
            id="exit-during-init",
        ),
    ],
)
def test_init_failures_are_lambdas(
    handler: str, error_type: str, message: str, logged: str
) -> None:
    [error] = _invoke_each(_spec(handler), [b"{}"])
    assert isinstance(error, FunctionError)
    assert error.error_type == error_type
    assert error.error_message == message.format(id=error.request_id)
    assert logged in error.log.partition("START RequestId:")[0]  # Init's output, before START
    assert f"Status: error\tError Type: {error_type}\t" in error.log


def test_a_bootstrap_that_exits_fails_its_invocation_and_is_replaced() -> None:
    crashed, again = _invoke_each(_spec("exit"), [b"{}", b"{}"])
    assert isinstance(crashed, FunctionCrashed)
    assert crashed.error_type == "Runtime.ExitError"
    assert crashed.error_message == (
        f"RequestId: {crashed.request_id} Error: Runtime exited with error: exit status 3"
    )
    assert "leaving with status 3\n" in crashed.log
    # The next invocation gets a new environment: a new Init, its first invocation.
    assert isinstance(again, FunctionCrashed)
    assert "init: handler exit\n" in again.log
    assert "invocation 1 of exit" in again.log


def test_a_timeout_kills_the_environment_and_the_next_invocation_gets_a_new_one() -> None:
    timed_out, (after, log) = _invoke_each(_spec("sleep", timeout_seconds=1), [b'"sleep"', b'"go"'])
    assert isinstance(timed_out, FunctionTimeout)
    assert timed_out.error_type == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in timed_out.log
    assert after == {"count": 1}
    assert "Init Duration" in log


def test_a_missing_or_unexecutable_bootstrap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bootstrap").write_text("#!/bin/sh\n")

    async def start(host: RuntimeHost) -> None:
        runtime = host.create(_spec("x", tmp_path))
        try:
            await runtime.start()
        finally:
            await runtime.aclose()

    with pytest.raises(FunctionCodeInvalid, match=r"bootstrap is not executable"):
        _run(start)
    (tmp_path / "bootstrap").unlink()
    with pytest.raises(FunctionCodeInvalid, match=r"no executable `bootstrap` in"):
        RuntimeHost().check(_spec("x", tmp_path))


# ---- AWS's runtime interface clients, unchanged ------------------------------------------


def test_awslambdaric_runs_unchanged_as_the_bootstrap() -> None:
    pytest.importorskip("awslambdaric")
    (first, first_log), (second, _) = _invoke_each(
        _ric_spec("app.echo", timeout_seconds=5), [b'{"n": 1}', b'{"n": 2}']
    )
    assert first["event"] == {"n": 1}
    assert (first["count"], second["count"]) == (1, 2)
    assert second["initialised_at"] == first["initialised_at"]  # one warm environment
    assert first["function"] == "t"
    assert first["arn"].endswith(":function:t")
    assert 0 < first["remaining_ms"] <= 5000
    # Without a trace of its own, the invocation gets one; awslambdaric copies it.
    assert re.fullmatch(
        r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", first["trace"]
    )
    assert "app module loaded" in first_log.partition("START")[0]
    assert first["request_id"] in first_log

    [error] = _invoke_each(_ric_spec("app.fail"), [b"{}"])
    assert isinstance(error, FunctionError)
    assert error.error_type == "ValueError"
    assert error.error_message == "awslambdaric saw a failure"
    assert any("app.py" in line for line in error.payload["stackTrace"])
    assert "[ERROR] ValueError: awslambdaric saw a failure" in error.log


@pytest.fixture(scope="session")
def node_ric() -> Path:
    """npm's `aws-lambda-ric` beside the handler (see `tests.node_ric`: installed once into the
    user's cache directory); skips, naming what is missing, where it cannot be built."""
    where, why = node_ric_install()
    if where is None:
        pytest.skip(why)
    for name in ("bootstrap", "index.mjs"):
        shutil.copy2(FUNCTIONS / "ric_node" / name, where / name)
    return where


@pytest.mark.timeout(node_ric_module.INSTALL_SECONDS + 60)  # the first run builds it
def test_npms_aws_lambda_ric_runs_unchanged_as_the_bootstrap(node_ric: Path) -> None:
    (first, log), (second, _) = _invoke_each(
        _spec("index.handler", node_ric, timeout_seconds=10), [b'{"n": 1}', b"{}"]
    )
    assert first["event"] == {"n": 1}
    assert (first["count"], second["count"]) == (1, 2)
    rid = re.escape(first["requestId"])
    assert re.search(rf"\t{rid}\tINFO\tnode ric invocation 1\n", log)


# ---- through the proxy -------------------------------------------------------------------

CONFIG = """
[server]
name = "edge-provided"

[origins.app]
url = "{origin}"

[[behaviors]]
path = "/generate/*"
origin = "app"
viewer-request = "generate"

[[behaviors]]
path = "/tag/*"
origin = "app"
viewer-request = "tag"

[[behaviors]]
path = "/error/*"
origin = "app"
viewer-request = "error"

[[behaviors]]
path = "/exit/*"
origin = "app"
viewer-request = "exit"

[[behaviors]]
path = "*"
origin = "app"

[functions.generate]
runtime = "provided.al2023"
code = "{shell}"
handler = "generate"

[functions.tag]
runtime = "provided"
code = "{ric}"
handler = "app.tag"
environment = {{ RIC_PYTHON = "{python}" }}

[functions.error]
runtime = "provided.al2"
code = "{shell}"
handler = "error"

[functions.exit]
runtime = "provided"
code = "{shell}"
handler = "exit"

[lambda_edge]
allow_environment = true
"""


@pytest.fixture(scope="module")
def edge(origin: OriginServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("edge-provided")
    config = tmp / "edge.toml"
    config.write_text(
        CONFIG.format(origin=origin.url, shell=SHELL, ric=RIC_PYTHON, python=sys.executable)
    )
    process = EdgeProcess([str(config), "--listen", "127.0.0.1:0"]).start(tmp)
    yield process
    process.stop()


@pytest.fixture
def client(edge: EdgeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        yield c


def test_a_shell_hook_generates_the_response_from_a_warm_environment(
    client: httpx.Client, edge: EdgeProcess, origin: OriginServer
) -> None:
    before = len(origin.log.requests)
    first = client.get("/generate/a")
    second = client.get("/generate/b")
    assert first.status_code == 200
    assert first.headers["x-cache"] == "LambdaGeneratedResponse from edge-provided"
    assert first.headers["x-runtime"] == "provided"
    assert (first.text, second.text) == ("count=1", "count=2")
    assert len(origin.log.requests) == before  # answered at the edge
    edge.wait_for(r"generate viewer-request \| invocation 2 of generate\n")


def test_an_awslambdaric_hook_changes_the_request_to_the_origin(
    client: httpx.Client, origin: OriginServer
) -> None:
    pytest.importorskip("awslambdaric")
    response = client.get("/tag/x")
    assert response.status_code == 200
    seen = origin.log.wait_for_target("/tag/x")
    assert ["x-ric", "count=1"] in seen["headers"]


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        pytest.param("/error/x", "Custom.Failure", id="error-report"),
        pytest.param("/exit/x", "Runtime.ExitError", id="bootstrap-exit"),
    ],
)
def test_failures_map_as_the_other_runtimes_map_them(
    client: httpx.Client, edge: EdgeProcess, path: str, detail: str
) -> None:
    response = client.get(path)
    assert response.status_code == 503
    assert response.headers["x-cache"] == "LambdaExecutionError from edge-provided"
    assert response.headers["x-edge-error"] == detail
    request_id = re.escape(response.headers["x-amz-cf-id"])
    edge.wait_for(rf"request {request_id} GET {re.escape(path)}: LambdaExecutionError -> 503")


# ---- the author's tools ------------------------------------------------------------------


def _edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_edge_invoke_runs_a_custom_runtime(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"n": 3}')
    result = _edge(
        "invoke", str(SHELL), "--runtime", "provided", "--handler", "echo", "--event", str(event)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"echo": {"n": 3}, "count": 1}
    assert re.search(r"init: handler echo\n(shell \| )?START RequestId: ", result.stderr)
    assert "invocation 1 of echo" in result.stderr
    assert "REPORT RequestId: " in result.stderr
    failed = _edge("invoke", str(SHELL), "--handler", "error")  # a folder with a bootstrap
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["errorType"] == "Custom.Failure"


@pytest.mark.parametrize(
    ("code", "extra", "problem"),
    [
        pytest.param(
            "#!/bin/sh\n",
            "",
            "functions.f.code: {code}/bootstrap is not executable",
            id="not-executable",
        ),
        pytest.param(None, "", "functions.f.code: no executable `bootstrap` in", id="missing"),
        pytest.param(
            "",
            'module = "f.wasm"\n',
            "functions.f.module: expected no module for a provided function",
            id="ignored-key",
        ),
    ],
)
def test_edge_check_refuses_what_a_custom_runtime_cannot_start_with(
    tmp_path: Path, code: str | None, extra: str, problem: str
) -> None:
    (tmp_path / "site").mkdir()
    folder = tmp_path / "code"
    folder.mkdir()
    if code is not None:
        (folder / "bootstrap").write_text(code)
        if not code:
            (folder / "bootstrap").chmod(0o755)
    config = tmp_path / "edge.toml"
    config.write_text(
        '[origins.site]\ndirectory = "site"\n'
        '[[behaviors]]\npath = "*"\norigin = "site"\nviewer-request = "f"\n'
        f'[functions.f]\nruntime = "provided"\ncode = "code"\n{extra}'
    )
    result = _edge("check", str(config))
    assert result.returncode == 2
    assert problem.format(code=folder) in result.stderr


# ---- layers ---------------------------------------------------------------------------------

LAYER_BOOTSTRAP = """#!/bin/sh
# Answers every invocation with what `greet` (a layer's bin/ tool) prints and where it is.
set -u
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
    curl -s -D "$TMPDIR/headers" -o /dev/null "$API/invocation/next"
    id=$(sed -n 's/^lambda-runtime-aws-request-id: *\\([^[:cntrl:]]*\\).*/\\1/ip' "$TMPDIR/headers")
    curl -s -o /dev/null -X POST "$API/invocation/$id/response" \\
        --data-binary "{\\"greeting\\": \\"$(greet)\\", \\"at\\": \\"$(command -v greet)\\"}"
done
"""


def _layer(root: Path, word: str) -> Path:
    (root / "bin").mkdir(parents=True)
    tool = root / "bin" / "greet"
    tool.write_text(f"#!/bin/sh\necho {word}\n")
    tool.chmod(0o755)
    return root


def test_layers_bin_is_on_the_bootstraps_path_and_a_later_layer_wins(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "bootstrap").write_text(LAYER_BOOTSTRAP)
    (code / "bootstrap").chmod(0o755)
    layers = (_layer(tmp_path / "first", "one"), _layer(tmp_path / "second", "two"))
    spec = _spec("greet", code, layers=layers, layer_cache_dir=tmp_path / "cache")
    [(result, _log)] = _invoke_each(spec, [b"{}"])
    assert result["greeting"] == "two"  # the second layer's bin/greet replaced the first's
    confined = shutil.which("bwrap") is not None
    assert result["at"] == "/opt/bin/greet" if confined else result["at"].endswith("/bin/greet")
