"""The Python runtime: framing, Lambda's log text, and real execution environments (processes)."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.host import invoke_once
from sandbox.python_worker.framing import (
    HEADER,
    Frame,
    FrameDecoder,
    FrameError,
    FrameLimits,
    encode_frame,
)
from sandbox.python_worker.function import PythonFunctionPool
from sandbox.python_worker.isolation import SandboxPolicy
from sandbox.python_worker.launcher import Zygote
from sandbox.python_worker.spec import FunctionSpec
from sandbox.runtime import log_lines
from sandbox.runtime.errors import (
    FunctionCrashed,
    FunctionError,
    FunctionMemoryExceeded,
    FunctionTimeout,
    PayloadTooLarge,
)
from sandbox.runtime.limits import check_environment

FUNCTIONS = Path(__file__).parent / "functions"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
# §12.2: tab-separated, two decimals, whole billed ms, trailing tab.
REPORT = re.compile(
    r"REPORT RequestId: (?P<id>\S+)\tDuration: \d+\.\d{2} ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: (?P<size>\d+) MB\tMax Memory Used: \d+ MB\t"
    r"(?:Init Duration: \d+\.\d{2} ms\t)?(?:Status: \w+\t)?(?:Error Type: [\w.]+\t)?$"
)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="module")
def zygote(runner: asyncio.Runner) -> Iterator[Zygote]:
    zygote = runner.run(Zygote.launch(code_dirs=[FUNCTIONS]))
    yield zygote
    runner.run(zygote.aclose())
    assert not pid_alive(zygote.pid)


def make_spec(handler: str, **overrides: object) -> FunctionSpec:
    fields: dict[str, object] = {
        "name": "edge-test",
        "handler": handler,
        "code_dir": FUNCTIONS,
        "timeout_seconds": 3.0,
    }
    fields.update(overrides)
    return FunctionSpec(**fields)  # type: ignore[arg-type]


# -- framing (pure) ---------------------------------------------------------------------------


@given(
    frames=st.lists(
        st.tuples(st.integers(0, 255), st.binary(max_size=40), st.binary(max_size=80)),
        max_size=4,
    )
)
def test_frames_decode_whatever_the_chunking(frames: list[tuple[int, bytes, bytes]]) -> None:
    wire = b"".join(encode_frame(kind, meta, blob) for kind, meta, blob in frames)
    expected = [Frame(kind, meta, blob) for kind, meta, blob in frames]
    for split in range(len(wire) + 1):
        decoder = FrameDecoder()
        decoded = decoder.feed(wire[:split]) + decoder.feed(wire[split:])
        assert decoded == expected
        assert decoder.pending_bytes == 0


@pytest.mark.parametrize(
    ("header", "section"),
    [
        pytest.param(HEADER.pack(3, 4097, 0, 0), "meta", id="meta-over-its-limit"),
        pytest.param(HEADER.pack(3, 2, 0, (1 << 20) + 1), "blob", id="blob-over-its-limit"),
        pytest.param(HEADER.pack(4, 0, 0, 0xFFFF_FFFF), "blob", id="largest-announced-blob"),
    ],
)
def test_frames_announcing_too_much_are_refused_from_their_header(
    header: bytes, section: str
) -> None:
    # Refused as soon as the header is complete: none of the body was sent, none is buffered.
    decoder = FrameDecoder(FrameLimits(max_meta_bytes=4096, max_blob_bytes=1 << 20))
    assert decoder.feed(header[:-1]) == []
    with pytest.raises(FrameError) as refused:
        decoder.feed(header[-1:])
    assert refused.value.section == section


# -- log text (pure) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_ms", "billed"),
    [
        pytest.param(0.01, 1, id="at-least-1ms"),
        pytest.param(1.0, 1, id="exact"),
        pytest.param(1.2, 2, id="rounded-up"),
        pytest.param(2999.5, 3000, id="long"),
    ],
)
def test_billed_duration_rounds_up_to_whole_ms(duration_ms: float, billed: int) -> None:
    assert log_lines.billed_duration_ms(duration_ms) == billed


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param(
            {"duration_ms": 1.234, "memory_size_mb": 128, "max_memory_used_mb": 40},
            "REPORT RequestId: r\tDuration: 1.23 ms\tBilled Duration: 2 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 40 MB\t\n",
            id="warm",
        ),
        pytest.param(
            {
                "duration_ms": 1.0,
                "memory_size_mb": 128,
                "max_memory_used_mb": 40,
                "init_duration_ms": 12.345,
            },
            "REPORT RequestId: r\tDuration: 1.00 ms\tBilled Duration: 1 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 40 MB\tInit Duration: 12.35 ms\t\n",
            id="cold-start-init-duration-last",
        ),
        pytest.param(
            {
                "duration_ms": 3000.0,
                "memory_size_mb": 256,
                "max_memory_used_mb": 41,
                "status": "error",
                "error_type": "Runtime.ExitError",
            },
            "REPORT RequestId: r\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\t"
            "Memory Size: 256 MB\tMax Memory Used: 41 MB\tStatus: error\t"
            "Error Type: Runtime.ExitError\t\n",
            id="runtime-error-status",
        ),
    ],
)
def test_report_line_is_lambdas_exact_format(kwargs: dict[str, object], expected: str) -> None:
    assert log_lines.report_line("r", **kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        pytest.param(11, "signal: segmentation fault", id="sigsegv"),
        pytest.param(9, "signal: killed", id="sigkill"),
        pytest.param(3 << 8, "exit status 3", id="exit-3"),
        pytest.param(None, "signal: killed", id="unknown"),
    ],
)
def test_exit_reason_uses_lambdas_wording(status: int | None, reason: str) -> None:
    assert log_lines.exit_reason(status) == reason


def test_error_log_is_the_rics_rendering() -> None:
    payload = {
        "errorMessage": "'action'",
        "errorType": "KeyError",
        "stackTrace": ['  File "/var/task/f.py", line 3, in handler\n    return e["action"]\n'],
    }
    assert log_lines.format_error_log(payload) == (
        "[ERROR] KeyError: 'action'\nTraceback (most recent call last):\n"
        '\u00a0\u00a0File "/var/task/f.py", line 3, in handler\n'
        '\u00a0\u00a0\u00a0\u00a0return e["action"]\n'
    )


def test_log_tail_keeps_the_last_4_kb() -> None:
    assert log_lines.log_tail("a" * 5000 + "end") == ("a" * 4093 + "end").encode()
    assert log_lines.log_tail("short") == b"short"


# -- configuration checks (pure) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        pytest.param({"A": "1"}, "at least 2 characters", id="one-letter-name"),
        pytest.param({"1AB": "x"}, "starts with a letter", id="leading-digit"),
        pytest.param({"MY-VAR": "x"}, "letters, digits", id="dash"),
        pytest.param({"AWS_REGION": "eu-west-1"}, "reserved", id="reserved-region"),
        pytest.param({"_HANDLER": "x.y"}, "starts with a letter", id="underscore-prefix"),
        pytest.param({"BIG": "x" * 4094}, "4096 bytes", id="over-4kb"),
    ],
)
def test_environment_check_refuses_what_lambda_refuses(
    variables: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        check_environment(variables)


def test_environment_check_accepts_exactly_4_kb() -> None:
    check_environment({"BIG": "x" * 4093})
    check_environment({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE"})  # how a function gets credentials
    with pytest.raises(ValueError, match="memory_mb"):
        make_spec("basic.echo", memory_mb=64)


# -- a real environment ------------------------------------------------------------------------


def test_context_and_environment_variables_match_lambdas(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> dict[str, Any]:
        spec = make_spec("basic.describe", environment={"GREETING": "hi"}, memory_mb=256)
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            result = await pool.invoke(
                b"{}",
                request_id="8f507cfc-0000-4697-b07a-ac58fc914c95",
                invoked_arn=spec.function_arn + ":live",
                client_context={"client": {"installation_id": "inst-1"}, "custom": {"k": "v"}},
            )
            return orjson.loads(result.payload)  # type: ignore[no-any-return]

    answer = runner.run(scenario())
    env = answer["env"]
    context = answer["context"]
    task_root = str(FUNCTIONS.resolve())
    assert env == {
        "AWS_LAMBDA_FUNCTION_NAME": "edge-test",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "_HANDLER": "basic.describe",
        "AWS_EXECUTION_ENV": env["AWS_EXECUTION_ENV"],
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/edge-test",
        "AWS_LAMBDA_LOG_STREAM_NAME": env["AWS_LAMBDA_LOG_STREAM_NAME"],
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "LAMBDA_TASK_ROOT": task_root,
        "LAMBDA_RUNTIME_DIR": env["LAMBDA_RUNTIME_DIR"],
        "TZ": ":UTC",
        "TMPDIR": env["TMPDIR"],
        "GREETING": "hi",
        "HOME": None,  # the host's environment does not leak in
    }
    assert re.fullmatch(r"AWS_Lambda_python3\.\d+", env["AWS_EXECUTION_ENV"])
    assert re.fullmatch(
        r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", env["AWS_LAMBDA_LOG_STREAM_NAME"]
    )
    assert answer["cwd"] == task_root
    assert answer["sys_path_0"] == task_root
    assert answer["localtime_offset"] == 0
    assert context["function_name"] == "edge-test"
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:edge-test:live"
    )
    assert context["memory_limit_in_mb"] == "256"  # a string, as the RIC passes it
    assert context["aws_request_id"] == "8f507cfc-0000-4697-b07a-ac58fc914c95"
    assert context["log_group_name"] == "/aws/lambda/edge-test"
    assert context["log_stream_name"] == env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert 2000 < context["remaining_ms"] <= 3000
    assert context["identity"] == [None, None]
    assert context["client_context"] == {"installation_id": "inst-1", "custom": {"k": "v"}}


def test_log_text_is_lambdas_and_init_duration_only_on_cold_start(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    sunk: list[str] = []

    async def scenario() -> list[str]:
        spec = make_spec("basic.chatty")
        async with PythonFunctionPool(spec, zygote=zygote, log_sink=sunk.append) as pool:
            first = await pool.invoke(b"{}")
            second = await pool.invoke(b"{}")
            return [first.log, second.log]

    cold, warm = runner.run(scenario())
    assert sunk == [cold, warm]
    lines = cold.splitlines()
    request_id = re.fullmatch(rf"START RequestId: ({UUID}) Version: \$LATEST", lines[1])
    assert request_id is not None
    rid = request_id.group(1)
    assert lines[0] == "init: module imported"  # Init's output opens the cold start's log
    assert lines[2:5] == ["to stdout", "to stderr", lines[4]]
    assert re.fullmatch(
        rf"\[INFO\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{rid}\tlogged info", lines[4]
    )
    assert lines[5:8] == ["raw fd 1", "raw fd 2", "context.log line"]
    assert lines[8] == f"END RequestId: {rid}"
    cold_report = REPORT.fullmatch(lines[9])
    assert cold_report is not None
    assert "Init Duration" in lines[9]
    assert len(lines) == 10
    warm_lines = warm.splitlines()
    assert warm_lines[0].startswith("START RequestId: ")
    assert REPORT.fullmatch(warm_lines[-1]) is not None
    assert "Init Duration" not in warm
    assert "init: module imported" not in warm
    assert warm.endswith("\t\n")


def test_environment_is_reused_and_module_globals_persist(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> list[dict[str, int]]:
        async with PythonFunctionPool(make_spec("basic.count"), zygote=zygote) as pool:
            return [orjson.loads((await pool.invoke(b"{}")).payload) for _ in range(3)]

    answers = runner.run(scenario())
    assert [a["calls"] for a in answers] == [1, 2, 3]
    assert len({a["pid"] for a in answers}) == 1


def test_handler_exception_returns_lambdas_error_payload(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> tuple[FunctionError, bytes]:
        async with PythonFunctionPool(make_spec("basic.fail"), zygote=zygote) as pool:
            with pytest.raises(FunctionError) as caught:
                await pool.invoke(b'{"number": 1}', request_id="req-1")
            after = await pool.invoke(b'{"action": "ok"}')  # the environment survived
            return caught.value, after.payload

    error, after = runner.run(scenario())
    assert type(error) is FunctionError
    assert error.payload["errorType"] == "KeyError"
    assert error.payload["errorMessage"] == "'action'"
    assert error.payload["requestId"] == "req-1"
    (frame,) = error.payload["stackTrace"]
    assert re.fullmatch(
        r'  File "\S+/basic\.py", line \d+, in fail\n    return event\["action"\]\n', frame
    )
    assert orjson.loads(error.payload_bytes) == error.payload
    assert "[ERROR] KeyError: 'action'\nTraceback (most recent call last):\n" in error.log
    assert REPORT.fullmatch(error.log.splitlines()[-1]) is not None
    assert after == b'"ok"'


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        pytest.param(
            "nosuchmodule.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'nosuchmodule': No module named 'nosuchmodule'",
            id="module-missing",
        ),
        pytest.param(
            "basic.nope",
            "Runtime.HandlerNotFound",
            "Handler 'nope' missing on module 'basic'",
            id="handler-missing",
        ),
        pytest.param(
            "basic",
            "Runtime.MalformedHandlerName",
            "Bad handler 'basic': not enough values to unpack (expected 2, got 1)",
            id="malformed",
        ),
        pytest.param(
            "broken_syntax.handler",
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'broken_syntax': expected ':' (broken_syntax.py, line 1)",
            id="syntax-error",
        ),
        pytest.param("init_raises.handler", "RuntimeError", "no config", id="init-raises"),
    ],
)
def test_init_errors_fail_the_invocation_like_lambda(
    runner: asyncio.Runner,
    zygote: Zygote,
    tmp_path: Path,
    handler: str,
    error_type: str,
    message: str,
) -> None:
    (tmp_path / "broken_syntax.py").write_text("def handler(event, context)\n    return 1\n")
    (tmp_path / "init_raises.py").write_text("raise RuntimeError('no config')\n")
    for name in ("basic.py",):
        (tmp_path / name).write_text((FUNCTIONS / name).read_text())

    async def scenario() -> tuple[FunctionError, int]:
        spec = make_spec(handler, code_dir=tmp_path)
        # A zygote of its own: a confined zygote shows only the code it was launched with.
        async with PythonFunctionPool(spec) as pool:
            with pytest.raises(FunctionError) as caught:
                await pool.invoke(b"{}")
            with pytest.raises(FunctionError):
                await pool.invoke(b"{}")  # init is retried by the next invocation
            return caught.value, pool.stats().cold_starts

    error, cold_starts = runner.run(scenario())
    assert error.payload["errorType"] == error_type
    assert error.payload["errorMessage"].startswith(message)
    assert error.payload["requestId"] == ""  # as the RIC reports init errors
    assert f"[ERROR] {error_type}: {message}" in error.log
    assert "Init Duration" in error.log
    assert "Status: error" in error.log
    assert cold_starts == 2


@pytest.mark.parametrize(
    ("handler", "event", "error_type", "message"),
    [
        pytest.param(
            "basic.not_serialisable",
            b"{}",
            "Runtime.MarshalError",
            "Unable to marshal response: Object of type set is not JSON serializable",
            id="result-not-json",
        ),
        pytest.param(
            "basic.echo",
            b"{not json",
            "Runtime.UnmarshalError",
            "Unable to unmarshal input: ",
            id="event-not-json",
        ),
        pytest.param(
            "basic.big_result",
            b'{"size": 3000}',
            "Function.ResponseSizeTooLarge",
            "Response payload size (3002 bytes) exceeded maximum allowed payload size "
            "(2048 bytes).",
            id="result-too-large",
        ),
    ],
)
def test_payload_problems_are_function_errors(
    runner: asyncio.Runner,
    zygote: Zygote,
    handler: str,
    event: bytes,
    error_type: str,
    message: str,
) -> None:
    async def scenario() -> FunctionError:
        spec = make_spec(handler, max_result_bytes=2048)
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            with pytest.raises(FunctionError) as caught:
                await pool.invoke(event)
            return caught.value

    error = runner.run(scenario())
    assert error.payload["errorType"] == error_type
    assert error.payload["errorMessage"].startswith(message)


def test_bytes_results_pass_through_and_large_events_are_refused(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> bytes:
        spec = make_spec("basic.returns_bytes", max_event_bytes=1000)
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            with pytest.raises(PayloadTooLarge, match=r"\(1001 bytes\).*\(1000 bytes\)"):
                await pool.invoke(b" " * 1001)
            return (await pool.invoke(b"{}")).payload

    assert runner.run(scenario()) == b"raw-bytes"


@pytest.mark.parametrize("handler", ["basic.sleep", "basic.ignore_sigterm"])
def test_timeout_kills_at_the_deadline_and_the_next_call_works(
    runner: asyncio.Runner, zygote: Zygote, handler: str
) -> None:
    async def scenario() -> tuple[FunctionTimeout, float, bytes, list[int]]:
        spec = make_spec(handler, timeout_seconds=0.5)
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            started = time.monotonic()
            invocation = asyncio.ensure_future(pool.invoke(b'{"seconds": 60}', request_id="req-t"))
            while not pool.environment_pids():
                await asyncio.sleep(0.001)
            # The host's pid of the environment (the one the handler prints is its own
            # namespace's when environments have PID namespaces).
            pids = pool.environment_pids()
            with pytest.raises(FunctionTimeout) as caught:
                await invocation
            elapsed = time.monotonic() - started
            assert pool.environment_pids() == []  # the timed-out environment is gone
            after = await pool.invoke(b'{"seconds": 0, "quick": true}')
            return caught.value, elapsed, after.payload, pids

    error, elapsed, after, pids = runner.run(scenario())
    assert error.payload == {
        "errorMessage": "RequestId: req-t Error: Task timed out after 0.50 seconds",
        "errorType": "Sandbox.Timedout",
    }
    assert 0.5 <= elapsed < 10  # killed at its timeout, long before the 60 s it asked for
    assert re.search(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z req-t Task timed out after 0\.50 seconds\n"
        r"END RequestId: req-t\n",
        error.log,
    )
    assert REPORT.fullmatch(error.log.splitlines()[-1]) is not None
    assert "Status: timeout" in error.log
    assert re.search(r"pid (\d+)\n", error.log)  # output up to the kill is kept
    assert len(pids) == 1
    assert not pid_alive(pids[0])
    assert after in (b'"woke"', b'"quick"')


def test_memory_blow_up_fails_that_invocation_and_replaces_the_environment(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> tuple[FunctionMemoryExceeded, bytes]:
        spec = make_spec("basic.hog_memory", memory_mb=128)
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            with pytest.raises(FunctionMemoryExceeded) as caught:
                await pool.invoke(b"{}")
        spec = make_spec("basic.echo", memory_mb=128)
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            return caught.value, (await pool.invoke(b"[1]")).payload

    error, after = runner.run(scenario())
    assert error.payload["errorType"] == "Runtime.OutOfMemory"
    assert "Error Type: Runtime.OutOfMemory" in error.log
    assert after == b"[1]"


@pytest.mark.parametrize(
    ("handler", "reason", "output"),
    [
        pytest.param("basic.segfault", "signal: segmentation fault", "about to crash\n", id="segv"),
        pytest.param("basic.hard_exit", "exit status 3", "", id="os-exit"),
    ],
)
def test_crash_fails_only_that_invocation(
    runner: asyncio.Runner, zygote: Zygote, handler: str, reason: str, output: str
) -> None:
    async def scenario() -> tuple[FunctionCrashed, int]:
        spec = make_spec(handler)
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            with pytest.raises(FunctionCrashed) as caught:
                await pool.invoke(b"{}", request_id="req-c")
            with pytest.raises(FunctionCrashed):
                await pool.invoke(b"{}")  # a fresh environment, same handler
            return caught.value, pool.stats().crashes

    error, crashes = runner.run(scenario())
    message = f"RequestId: req-c Error: Runtime exited with error: {reason}"
    assert error.payload == {"errorType": "Runtime.ExitError", "errorMessage": message}
    assert f"{output}{message}\nRuntime.ExitError\nEND RequestId: req-c\n" in error.log
    assert "Error Type: Runtime.ExitError" in error.log
    assert crashes == 2


def test_tmp_is_private_per_environment_and_removed(runner: asyncio.Runner, zygote: Zygote) -> None:
    async def scenario() -> tuple[list[dict[str, str]], list[bool]]:
        spec = make_spec("basic.write_tmp", max_concurrency=2)
        # TMPDIR in the host's /tmp (the unconfined level), so that it can be seen from here;
        # the namespaced /tmp (a tmpfs per environment) is checked in test_sandbox.py.
        async with PythonFunctionPool(spec, sandbox=SandboxPolicy(isolation="none")) as pool:
            answers = [
                orjson.loads(r.payload)
                for r in await asyncio.gather(pool.invoke(b"[1]"), pool.invoke(b"[2]"))
            ]
            existed = [Path(a["path"]).exists() for a in answers]
        return answers, existed

    answers, existed = runner.run(scenario())
    tmpdirs = {a["tmpdir"] for a in answers}
    assert len(tmpdirs) == 2
    assert existed == [True, True]
    assert all(Path(d).name.startswith("edge-env-") for d in tmpdirs)
    assert not any(Path(d).exists() for d in tmpdirs)


def test_one_shot_helper_runs_a_handler_file() -> None:
    spec = FunctionSpec(name="basic", handler="basic.echo", code_dir=FUNCTIONS, max_concurrency=1)
    result = asyncio.run(invoke_once(spec, b'{"a": 1}'))
    assert result.payload == b'{"a":1}'
    assert result.log.startswith(
        f"init: module imported\nSTART RequestId: {result.request_id} Version: $LATEST\n"
    )
    assert result.init_duration_ms is not None


def test_works_under_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> bytes:
        async with PythonFunctionPool(make_spec("basic.echo")) as pool:
            await pool.invoke(b"1")
            return (await pool.invoke(b'{"k": [1, 2]}')).payload

    assert uvloop.run(scenario()) == b'{"k":[1,2]}'


def test_sandbox_imports_neither_edge_nor_origin_proxy() -> None:
    root = Path(__file__).parents[1] / "sandbox"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"edge", "origin_proxy"}, (path, name)
