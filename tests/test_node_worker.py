"""Node.js functions (`runtime = "nodejs"`): real `node` processes behind the runtime seam.

Through the real proxy: statuses, X-Cache and log lines are those of Python functions for the
same failures, and state persists in a warm environment. Through the runtime itself: Lambda's
handler styles, module resolution, context, variables, private /tmp, limits, concurrency.
Through `edge invoke` and `edge check`: the author's tools. Skipped only where `node` is absent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from sandbox import (
    FunctionCodeInvalid,
    FunctionCrashed,
    FunctionError,
    FunctionMemoryExceeded,
    FunctionThrottled,
    FunctionTimeout,
    NodeFunctionSpec,
    RuntimeHost,
)
from tests.conftest import REPO, EdgeProcess
from tests.origin_app import OriginServer

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None, reason="`node` is not installed (Debian: apt-get install nodejs)"
)

FUNCTIONS = REPO / "tests" / "node_functions"
T = TypeVar("T")


def _spec(handler: str, code_dir: Path = FUNCTIONS, **settings: Any) -> NodeFunctionSpec:
    settings.setdefault("spare_environments", 0)
    return NodeFunctionSpec(name="t", handler=handler, code_dir=code_dir, **settings)


def _run(scenario: Callable[[RuntimeHost], Awaitable[T]]) -> T:
    async def main() -> T:
        host = RuntimeHost()
        try:
            return await scenario(host)
        finally:
            host.close()

    return asyncio.run(main())


def _invoke_each(spec: NodeFunctionSpec, events: list[bytes]) -> list[Any]:
    """Each event in turn in one runtime: the parsed result, or the FunctionError."""

    async def scenario(host: RuntimeHost) -> list[Any]:
        runtime = host.create(spec)
        outcomes: list[Any] = []
        try:
            for event in events:
                try:
                    result = await runtime.invoke(event)
                    outcomes.append((json.loads(result.payload), result.log))
                except FunctionError as error:
                    outcomes.append(error)
        finally:
            await runtime.aclose()
        return outcomes

    return _run(scenario)


# ---- through the proxy -----------------------------------------------------------------

CONFIG = """
[server]
name = "edge-node"

[origins.app]
url = "{origin}"

[[behaviors]]
path = "/state/*"
origin = "app"
viewer-request = "state"

[[behaviors]]
path = "/throws/*"
origin = "app"
viewer-request = "throws"

[[behaviors]]
path = "/spin/*"
origin = "app"
origin-request = "spin"

[[behaviors]]
path = "/memory/*"
origin = "app"
viewer-request = "memory"

[[behaviors]]
path = "/large/*"
origin = "app"
origin-request = "large"

[[behaviors]]
path = "/invalid/*"
origin = "app"
viewer-response = "invalid"

[[behaviors]]
path = "/syntax/*"
origin = "app"
viewer-request = "syntax"

[[behaviors]]
path = "/requires/*"
origin = "app"
viewer-request = "requires"

[[behaviors]]
path = "/exported/*"
origin = "app"
viewer-request = "exported"

[[behaviors]]
path = "*"
origin = "app"

[functions.state]
runtime = "nodejs20.x"
handler = "{code}/behaviours.state"
max_concurrency = 1
max_wait = 5

[functions.throws]
runtime = "nodejs"
handler = "{code}/behaviours.throws"

[functions.spin]
runtime = "nodejs"
handler = "{code}/behaviours.spin"
timeout = 1

[functions.memory]
runtime = "nodejs"
handler = "{code}/behaviours.memory"

[functions.large]
runtime = "nodejs"
handler = "{code}/behaviours.large"

[functions.invalid]
runtime = "nodejs"
handler = "{code}/behaviours.invalid"

[functions.syntax]
runtime = "nodejs"
handler = "{code}/broken/syntax.handler"

[functions.requires]
runtime = "nodejs"
handler = "{code}/broken/requires.handler"

[functions.exported]
runtime = "nodejs22.x"
handler = "{code}/broken/exported.handler"
"""


@pytest.fixture(scope="module")
def edge(origin: OriginServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("edge-node")
    config = tmp / "edge.toml"
    config.write_text(CONFIG.format(origin=origin.url, code=FUNCTIONS))
    process = EdgeProcess([str(config), "--listen", "127.0.0.1:0"]).start(tmp)
    yield process
    process.stop()


@pytest.fixture
def client(edge: EdgeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        yield c


def test_a_warm_environment_keeps_module_state_and_has_lambdas_context(
    client: httpx.Client, origin: OriginServer
) -> None:
    before = len(origin.log.requests)
    first = client.get("/state/a")
    assert first.status_code == 200
    assert first.headers["x-cache"] == "LambdaGeneratedResponse from edge-node"
    second = client.get("/state/b").json()
    document = first.json()
    assert second["invocations"] == document["invocations"] + 1
    assert second["initialisedAt"] == document["initialisedAt"]  # the same environment
    assert second["requestId"] != document["requestId"]
    assert document["uri"] == "/state/a"
    assert document["functionName"] == "state"
    assert document["functionVersion"] == "$LATEST"
    assert document["memoryLimitInMB"] == "128"
    assert document["invokedFunctionArn"].endswith(":function:state")
    assert document["logGroupName"] == "/aws/lambda/state"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", document["logStreamName"])
    assert 0 < document["remaining"] <= 5000  # the viewer trigger's 5 s
    assert document["waits"] is True
    assert len(origin.log.requests) == before  # generated at the edge


def test_console_writes_lambdas_node_log_lines_between_start_and_end(
    client: httpx.Client, edge: EdgeProcess
) -> None:
    request_id = client.get("/state/log").json()["requestId"]
    rid = re.escape(request_id)
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    # Each line of a function's log is named: `<function> <trigger> | <line>`.
    named = r"state viewer-request \| "
    found = edge.wait_for(
        rf"{named}START RequestId: {rid} Version: \$LATEST\n"
        rf"{named}{stamp}\t{rid}\tINFO\tinvocation \d+\n"
        rf"{named}{stamp}\t{rid}\tINFO\tinfo line\n"
        rf"{named}{stamp}\t{rid}\tWARN\twarn line\n"
        rf"{named}{stamp}\t{rid}\tERROR\terror line\n"
        rf"{named}END RequestId: {rid}\n"
        rf"{named}REPORT RequestId: {rid}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 128 MB\tMax Memory Used: \d+ MB\t"
    )
    assert found
    # What Init logged comes before the first START, with Lambda's `undefined` request id.
    edge.wait_for(rf"{named}{stamp}\tundefined\tINFO\tinit done\n{named}START RequestId: ")


@pytest.mark.parametrize(
    ("path", "status", "kind", "detail"),
    [
        pytest.param("/throws/x", 503, "LambdaExecutionError", "TypeError", id="throws"),
        pytest.param("/spin/x", 503, "LambdaExecutionError", "Sandbox.Timedout", id="timeout"),
        pytest.param("/memory/x", 503, "LambdaExecutionError", "Runtime.OutOfMemory", id="memory"),
        pytest.param(
            "/large/x",
            503,
            "LambdaExecutionError",
            "Function.ResponseSizeTooLarge",
            id="result-too-large",
        ),
        pytest.param("/invalid/x", 502, "LambdaValidationError", None, id="invalid-result"),
        pytest.param(
            "/syntax/x", 503, "LambdaExecutionError", "Runtime.UserCodeSyntaxError", id="syntax"
        ),
        pytest.param(
            "/requires/x",
            503,
            "LambdaExecutionError",
            "Runtime.ImportModuleError",
            id="missing-require",
        ),
        pytest.param(
            "/exported/x", 503, "LambdaExecutionError", "Runtime.HandlerNotFound", id="no-handler"
        ),
    ],
)
def test_node_failures_map_like_python_failures(
    client: httpx.Client,
    edge: EdgeProcess,
    path: str,
    status: int,
    kind: str,
    detail: str | None,
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["x-cache"] == f"{kind} from edge-node"
    if detail is not None:
        assert response.headers["x-edge-error"] == detail
    request_id = re.escape(response.headers["x-amz-cf-id"])
    edge.wait_for(rf"request {request_id} GET {re.escape(path)}: {kind} -> {status}")


def test_the_log_of_an_error_is_lambdas_invoke_error_line(
    client: httpx.Client, edge: EdgeProcess
) -> None:
    client.get("/throws/log")
    found = edge.wait_for(r"\tERROR\tInvoke Error \t(\{.*\})\n")
    logged = json.loads(found.group(1))
    assert logged["errorType"] == "TypeError"
    assert logged["errorMessage"] == "no such thing"
    assert logged["stack"][0] == "TypeError: no such thing"
    assert "behaviours.js" in logged["stack"][1]
    assert not any("runtime.js" in line for line in logged["stack"])


def test_a_timed_out_environment_is_replaced(client: httpx.Client, edge: EdgeProcess) -> None:
    for _ in range(2):
        response = client.get("/spin/again")
        assert response.headers["x-edge-error"] == "Sandbox.Timedout"
    edge.wait_for(r"Task timed out after 1\.00 seconds")
    assert client.get("/state/after").status_code == 200  # the others serve on


# ---- the runtime itself: handler styles, modules, context, limits -----------------------


def test_handler_styles_answer_as_lambdas_node_runtime() -> None:
    cases = {
        "behaviours.promise": {"style": "promise", "event": {"n": 1}},
        "behaviours.callback": {"style": "callback"},
        "behaviours.callbackNoWait": {"style": "no-wait"},
        "behaviours.succeed": {"style": "succeed"},
        "behaviours.nothing": None,
        "behaviours.nested.deeper.handler": "nested",
    }

    async def scenario(host: RuntimeHost) -> dict[str, tuple[Any, str]]:
        runtimes = {handler: host.create(_spec(handler)) for handler in cases}
        try:
            results = await asyncio.gather(*(r.invoke(b'{"n": 1}') for r in runtimes.values()))
        finally:
            await asyncio.gather(*(r.aclose() for r in runtimes.values()))
        return {
            handler: (json.loads(result.payload), result.log)
            for handler, result in zip(runtimes, results, strict=True)
        }

    outcomes = _run(scenario)
    assert {handler: outcome[0] for handler, outcome in outcomes.items()} == cases
    # callbackWaitsForEmptyEventLoop: the timer ran before the answer, unless it was turned off.
    assert "timer ran before the answer" in outcomes["behaviours.callback"][1]
    assert "timer after the answer" not in outcomes["behaviours.callbackNoWait"][1]


@pytest.mark.parametrize(
    ("handler", "document"),
    [
        pytest.param(
            "behaviours.callbackError",
            {"errorType": "RangeError", "errorMessage": "out of range"},
            id="callback-error",
        ),
        pytest.param(
            "behaviours.callbackString",
            {"errorType": "string", "errorMessage": "plain failure", "trace": []},
            id="callback-string",
        ),
        pytest.param(
            "behaviours.uncaught",
            {"errorType": "Error", "errorMessage": "thrown from a timer"},
            id="uncaught-exception-in-a-timer",
        ),
    ],
)
def test_errors_serialise_as_lambdas_node_runtime(handler: str, document: dict[str, Any]) -> None:
    (error,) = _invoke_each(_spec(handler), [b"{}"])
    assert isinstance(error, FunctionError)
    assert {key: error.payload[key] for key in document} == document
    assert isinstance(error.payload["trace"], list)


@pytest.mark.parametrize(
    ("handler", "kind"),
    [
        pytest.param("index.handler", "esm-by-package", id="type-module-package"),
        pytest.param("plain.handler", "mjs", id="mjs"),
        pytest.param("common.handler", "cjs", id="cjs"),
    ],
)
def test_modules_resolve_as_lambda_resolves_them(handler: str, kind: str) -> None:
    ((result, _),) = _invoke_each(_spec(handler, FUNCTIONS / "esm"), [b"{}"])
    assert result["kind"] == kind


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        pytest.param("syntax.handler", "Runtime.UserCodeSyntaxError", "SyntaxError: ", id="syntax"),
        pytest.param(
            "requires.handler",
            "Runtime.ImportModuleError",
            "Cannot find module 'left-pad-that-is-not-installed'",
            id="missing-require",
        ),
        pytest.param(
            "nowhere.handler",
            "Runtime.ImportModuleError",
            "Error: Cannot find module 'nowhere'",
            id="no-module",
        ),
        pytest.param(
            "exported.handler",
            "Runtime.HandlerNotFound",
            "exported.handler is undefined or not exported",
            id="not-exported",
        ),
        pytest.param("throws.handler", "Error", "init went wrong", id="init-throws"),
    ],
)
def test_init_failures_are_lambdas(handler: str, error_type: str, message: str) -> None:
    (error,) = _invoke_each(_spec(handler, FUNCTIONS / "broken"), [b"{}"])
    assert isinstance(error, FunctionError)
    assert error.error_type == error_type
    assert message in error.error_message
    assert "\tundefined\tERROR\tUncaught Exception \t" in error.log
    assert f"Status: error\tError Type: {error_type}\t" in error.log


def test_environments_have_their_variables_and_a_private_tmp() -> None:
    spec = _spec("behaviours.environment", environment={"GREETING": "hello"}, max_concurrency=2)
    os.environ["EDGE_NOT_FOR_FUNCTIONS"] = "secret"

    async def scenario(host: RuntimeHost) -> list[Any]:
        runtime = host.create(spec)
        try:
            # Two at once: two environments. Then one more: a warm one, its /tmp kept.
            both = await asyncio.gather(runtime.invoke(b"{}"), runtime.invoke(b"{}"))
            again = await runtime.invoke(b"{}")
        finally:
            await runtime.aclose()
        return [json.loads(r.payload) for r in (*both, again)]

    try:
        first, second, again = _run(scenario)
    finally:
        del os.environ["EDGE_NOT_FOR_FUNCTIONS"]
    assert first["environmentId"] != second["environmentId"]
    assert not first["before"]  # neither saw the other's file
    assert not second["before"]
    assert again["before"]  # a warm environment keeps its own /tmp
    for document in (first, second):
        assert document["greeting"] == "hello"
        assert document["handler"] == "behaviours.environment"
        assert re.fullmatch(r"AWS_Lambda_nodejs\d+\.x", document["executionEnv"])
        assert document["initialisationType"] == "on-demand"
        assert document["taskRoot"] == document["cwd"] == str(FUNCTIONS)
        assert document["edgeVariables"] == []


def test_concurrency_beyond_the_cap_is_throttled() -> None:
    async def scenario(host: RuntimeHost) -> list[Any]:
        runtime = host.create(_spec("behaviours.promise", max_concurrency=1))
        try:
            return await asyncio.gather(
                runtime.invoke(b"{}"), runtime.invoke(b"{}"), return_exceptions=True
            )
        finally:
            await runtime.aclose()

    outcomes = _run(scenario)
    assert sum(isinstance(o, FunctionThrottled) for o in outcomes) == 1


def test_limits_hold_timeout_memory_and_output() -> None:
    async def scenario(host: RuntimeHost) -> list[Any]:
        outcomes: list[Any] = []
        for spec in (
            _spec("behaviours.spin", timeout_seconds=0.5),
            _spec("behaviours.heap"),
            _spec("behaviours.flood", max_log_bytes=64 * 1024),
        ):
            runtime = host.create(spec)
            try:
                outcomes.append(await runtime.invoke(b"{}"))
            except FunctionError as error:
                outcomes.append(error)
            finally:
                await runtime.aclose()
        return outcomes

    timeout, heap, flood = _run(scenario)
    assert isinstance(timeout, FunctionTimeout)
    assert "spinning" in timeout.log  # what it wrote before it was killed
    assert isinstance(heap, FunctionMemoryExceeded)
    assert not isinstance(heap, FunctionCrashed) or heap.error_type == "Runtime.OutOfMemory"
    assert json.loads(flood.payload) == "flooded"
    assert re.search(r"\[\.\.\. \d+ bytes of output dropped \.\.\.\]\n", flood.log)
    assert flood.log.count("\n") < 100
    assert "raw tail\nEND RequestId" in flood.log
    assert len(flood.log.encode()) < 64 * 1024 + 1024


def test_a_spare_process_makes_the_next_cold_start() -> None:
    spec = _spec("behaviours.environment", spare_environments=1, max_concurrency=2)

    async def scenario(host: RuntimeHost) -> tuple[Any, Any, str]:
        runtime = host.create(spec)
        try:
            await runtime.start()
            both = await asyncio.gather(runtime.invoke(b"{}"), runtime.invoke(b"{}"))
        finally:
            await runtime.aclose()
        return json.loads(both[0].payload), json.loads(both[1].payload), both[0].log

    first, second, log = _run(scenario)
    assert first["environmentId"] != second["environmentId"]
    assert "Init Duration: " in log


def test_a_provisioned_environment_is_initialised_before_any_request() -> None:
    spec = _spec("behaviours.environment", provisioned=1, max_concurrency=1)

    async def scenario(host: RuntimeHost) -> tuple[Any, str]:
        runtime = host.create(spec)
        try:
            await runtime.start()  # returns once the provisioned environment has run Init
            result = await runtime.invoke(b"{}")
        finally:
            await runtime.aclose()
        return json.loads(result.payload), result.log

    document, log = _run(scenario)
    assert document["initialisationType"] == "provisioned-concurrency"
    assert "Init Duration" not in log  # Init was not this invocation's


# ---- the author's tools -----------------------------------------------------------------


def _edge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )


def test_edge_invoke_runs_a_js_handler(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"n": 2}')
    result = _edge("invoke", f"{FUNCTIONS}/behaviours.js::promise", "--event", str(event))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"style": "promise", "event": {"n": 2}}
    assert re.search(
        r"\tundefined\tINFO\tinit done\n(behaviours \| )?START RequestId: ", result.stderr
    )
    assert "REPORT RequestId: " in result.stderr


def test_edge_invoke_prints_the_error_document_and_exits_1(tmp_path: Path) -> None:
    result = _edge("invoke", f"{FUNCTIONS}/behaviours.js::throws")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["errorType"] == "TypeError"
    assert document["errorMessage"] == "no such thing"
    assert "\tERROR\tInvoke Error \t" in result.stderr


def test_edge_check_says_how_to_get_node_when_it_is_missing(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    config = tmp_path / "edge.toml"
    config.write_text(
        '[origins.site]\ndirectory = "site"\n'
        '[[behaviors]]\npath = "*"\norigin = "site"\nviewer-request = "f"\n'
        f'[functions.f]\nruntime = "nodejs20.x"\nhandler = "{FUNCTIONS}/behaviours.state"\n'
    )
    empty = tmp_path / "bin"
    empty.mkdir()
    result = _edge("check", str(config), env={"PATH": str(empty)})
    assert result.returncode == 2
    assert "functions.f.runtime: expected `node` on PATH" in result.stderr
    assert "apt-get install nodejs" in result.stderr


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        pytest.param("", "functions.f.handler: no module for handler 'index.handler'", id="module"),
        pytest.param(
            '[sandbox]\nisolation = "uid-only"\n',
            "functions.f.runtime: a nodejs function runs under bubblewrap or unconfined",
            id="uid-only",
        ),
    ],
)
def test_edge_check_refuses_what_a_node_function_cannot_start_with(
    tmp_path: Path, extra: str, problem: str
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "code").mkdir()
    config = tmp_path / "edge.toml"
    config.write_text(
        f'{extra}[origins.site]\ndirectory = "site"\n'
        '[[behaviors]]\npath = "*"\norigin = "site"\nviewer-request = "f"\n'
        '[functions.f]\nruntime = "nodejs"\nhandler = "code/index.handler"\n'
    )
    result = _edge("check", str(config))
    assert result.returncode == 2
    assert problem in result.stderr


def test_the_runtime_refuses_to_start_without_node(tmp_path: Path) -> None:
    spec = _spec("behaviours.state", node=str(tmp_path / "no-node"))

    async def scenario(host: RuntimeHost) -> None:
        runtime = host.create(spec)
        try:
            await runtime.start()
        finally:
            await runtime.aclose()

    with pytest.raises(FunctionCodeInvalid, match=r"install Node\.js"):
        _run(scenario)


# ---- the JavaScript examples answer as the Python ones ----------------------------------

EXAMPLES = REPO / "examples" / "functions"


def _python_example(name: str) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"node_twin_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _events() -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """(example, Python function, JavaScript export) -> the events both are given."""
    from edge.events import EventType, sample_event

    request = EventType.VIEWER_REQUEST
    origin_request = EventType.ORIGIN_REQUEST
    origin_response = EventType.ORIGIN_RESPONSE
    viewer_response = EventType.VIEWER_RESPONSE
    basic = "Basic " + __import__("base64").b64encode(b"demo:edge").decode()
    wrong = "Basic " + __import__("base64").b64encode(b"demo:nope").decode()
    return {
        ("security_headers", "handler", "handler"): [
            sample_event(origin_response),
            sample_event(origin_response, response_headers=[("X-Powered-By", "PHP/8")]),
        ],
        ("redirects", "handler", "handler"): [
            sample_event(request, uri="/old", querystring="x=1"),
            sample_event(request, uri="/blog/", querystring="x=1"),
            sample_event(request, uri="//docs///a.html"),
            sample_event(request, uri="/docs/"),
            sample_event(request, uri="/plain.html"),
        ],
        ("basic_auth", "handler", "handler"): [
            sample_event(request),
            sample_event(request, headers=[("Authorization", basic)]),
            sample_event(request, headers=[("Authorization", wrong)]),
            sample_event(request, headers=[("Authorization", "Basic !!!")]),
            sample_event(request, headers=[("Authorization", "Bearer x")]),
        ],
        ("origin_selector", "handler", "handler"): [
            sample_event(origin_request),
            sample_event(origin_request, headers=[("X-Origin", " Beta ")]),
            sample_event(origin_request, headers=[("Cookie", "a=1; origin=beta")]),
        ],
        ("custom_error_page", "handler", "handler"): [
            sample_event(
                origin_response, status=503, response_headers=[("Content-Encoding", "gzip")]
            ),
            sample_event(origin_response, status=404),
        ],
        ("ab_testing", "viewer_request", "viewerRequest"): [
            sample_event(request, uri="/experiment/", headers=[("Cookie", "x=1; ab-group=b")]),
            sample_event(request, uri="/other", headers=[("Cookie", "ab-group=a")]),
        ],
        ("ab_testing", "viewer_response", "viewerResponse"): [
            sample_event(viewer_response, headers=[("X-AB-Group", "new:a")]),
            sample_event(viewer_response, headers=[("X-AB-Group", "b")]),
            sample_event(viewer_response),
        ],
    }


def test_the_javascript_examples_answer_as_the_python_ones() -> None:
    import copy

    cases = _events()

    async def scenario(host: RuntimeHost) -> dict[tuple[str, str, str], list[Any]]:
        outcomes: dict[tuple[str, str, str], list[Any]] = {}

        async def run(key: tuple[str, str, str]) -> None:
            name, _, export = key
            code = EXAMPLES / "js"
            runtime = host.create(_spec(f"{name}.{export}", code, max_concurrency=1))
            try:
                outcomes[key] = [
                    json.loads((await runtime.invoke(json.dumps(e).encode())).payload)
                    for e in cases[key]
                ]
            finally:
                await runtime.aclose()

        await asyncio.gather(*(run(key) for key in cases))
        return outcomes

    got = _run(scenario)
    for key, events in cases.items():
        name, function, _ = key
        handler = getattr(_python_example(name), function)
        expected = [handler(copy.deepcopy(event), None) for event in events]
        assert got[key] == expected, key
