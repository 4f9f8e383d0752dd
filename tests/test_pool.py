"""The pool of one function version: concurrency cap, warm reuse, reaping, provisioned, close."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

import sandbox
from sandbox.python_worker.function import PythonFunctionPool
from sandbox.python_worker.isolation import SandboxPolicy
from sandbox.python_worker.launcher import Zygote
from sandbox.python_worker.spec import FunctionSpec
from sandbox.runtime.errors import FunctionError, FunctionThrottled, PoolClosed
from sandbox.runtime.result import InvocationResult

FUNCTIONS = Path(__file__).parent / "functions"
# Environments whose TMPDIR is a directory of the host's /tmp (the unconfined level), so that
# its removal can be seen from here; a namespaced /tmp is checked in test_sandbox.py.
HOST_TMPDIR = SandboxPolicy(isolation="none")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="module")
def zygote(runner: asyncio.Runner) -> Iterator[Zygote]:
    zygote = runner.run(Zygote.launch(code_dirs=[FUNCTIONS]))
    yield zygote
    runner.run(zygote.aclose())


def make_spec(handler: str, **overrides: object) -> FunctionSpec:
    fields: dict[str, object] = {"name": "pool-test", "handler": handler, "code_dir": FUNCTIONS}
    fields.update(overrides)
    return FunctionSpec(**fields)  # type: ignore[arg-type]


def test_over_the_cap_exactly_the_excess_is_throttled(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> tuple[list[InvocationResult | BaseException], sandbox.RuntimeStats]:
        spec = make_spec("basic.sleep", max_concurrency=2, timeout_seconds=5)
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            outcomes = await asyncio.gather(
                *(pool.invoke(b'{"seconds": 0.3}') for _ in range(5)), return_exceptions=True
            )
            return outcomes, pool.stats()

    outcomes, stats = runner.run(scenario())
    throttled = [o for o in outcomes if isinstance(o, FunctionThrottled)]
    assert len(throttled) == 3
    assert all(t.reason == "ReservedFunctionConcurrentInvocationLimitExceeded" for t in throttled)
    assert [o.payload for o in outcomes if isinstance(o, InvocationResult)] == [b'"woke"'] * 2
    assert (stats.throttles, stats.cold_starts, stats.environments) == (3, 2, 2)


def test_zero_concurrency_throttles_everything(runner: asyncio.Runner, zygote: Zygote) -> None:
    async def scenario() -> None:
        async with PythonFunctionPool(
            make_spec("basic.echo", max_concurrency=0, provisioned=0), zygote=zygote
        ) as pool:
            with pytest.raises(FunctionThrottled):
                await pool.invoke(b"{}")

    runner.run(scenario())


def test_bounded_wait_takes_the_next_free_environment(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> tuple[list[bytes], sandbox.RuntimeStats]:
        spec = make_spec("basic.sleep", max_concurrency=1, max_wait_seconds=3)
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            results = await asyncio.gather(
                pool.invoke(b'{"seconds": 0.1}'), pool.invoke(b'{"seconds": 0.1}')
            )
            return [r.payload for r in results], pool.stats()

    payloads, stats = runner.run(scenario())
    assert payloads == [b'"woke"', b'"woke"']
    assert (stats.throttles, stats.cold_starts, stats.warm_starts) == (0, 1, 1)


def test_a_hung_invocation_does_not_delay_a_concurrent_one(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> None:
        spec = make_spec("basic.sleep", max_concurrency=2, timeout_seconds=1)
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            hung = asyncio.ensure_future(pool.invoke(b'{"seconds": 60}'))
            quick = asyncio.ensure_future(pool.invoke(b'{"seconds": 0}'))
            done, _ = await asyncio.wait([hung, quick], return_when=asyncio.FIRST_COMPLETED)
            assert done == {quick}
            assert quick.result().payload == b'"woke"'
            assert not hung.done()
            with pytest.raises(sandbox.FunctionTimeout):
                await hung

    runner.run(scenario())


def test_warm_environments_are_reused_most_recently_used_first(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> tuple[set[int], list[int], sandbox.RuntimeStats]:
        spec = make_spec("basic.count", max_concurrency=3, max_environments=3)
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            first = await asyncio.gather(*(pool.invoke(b"{}") for _ in range(3)))
            pids = {orjson.loads(r.payload)["environment"] for r in first}
            later = [
                orjson.loads((await pool.invoke(b"{}")).payload)["environment"] for _ in range(4)
            ]
            return pids, later, pool.stats()

    pids, later, stats = runner.run(scenario())
    assert len(pids) == 3
    assert len(set(later)) == 1  # one hot environment serves them all
    assert later[0] in pids
    assert (stats.cold_starts, stats.warm_starts, stats.idle, stats.busy) == (3, 4, 3, 0)


def test_idle_environments_are_reaped_after_idle_seconds(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    clock = ManualClock()

    async def scenario() -> None:
        spec = make_spec("basic.write_tmp", idle_seconds=60)
        async with PythonFunctionPool(spec, sandbox=HOST_TMPDIR, clock=clock) as pool:
            answer = orjson.loads((await pool.invoke(b"{}")).payload)
            (pid,) = pool.environment_pids()
            clock.now += 59
            assert await pool.reap_idle() == 0
            clock.now += 1
            assert await pool.reap_idle() == 1
            assert not pid_alive(pid)
            assert not Path(answer["tmpdir"]).exists()
            assert (pool.stats().idle, pool.stats().environments) == (0, 0)
            await pool.invoke(b"{}")
            assert pool.stats().cold_starts == 2

    runner.run(scenario())


def test_provisioned_environments_are_ready_and_not_reaped(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    clock = ManualClock()
    sunk: list[str] = []

    async def scenario() -> None:
        spec = make_spec(
            "basic.describe", provisioned=1, max_concurrency=2, idle_seconds=1, max_environments=2
        )
        async with PythonFunctionPool(
            spec, zygote=zygote, clock=clock, log_sink=sunk.append
        ) as pool:
            assert (pool.stats().idle, pool.stats().cold_starts) == (1, 0)
            assert sunk == ["init: module imported\n"]  # Init's output, at pre-warm time
            result = await pool.invoke(b"{}")
            env = orjson.loads(result.payload)["env"]
            assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"
            assert result.init_duration_ms is None
            assert "Init Duration" not in result.log
            clock.now += 3600
            assert await pool.reap_idle() == 0
            assert pool.stats() == sandbox.RuntimeStats(
                invocations=1,
                cold_starts=0,
                warm_starts=1,
                throttles=0,
                function_errors=0,
                timeouts=0,
                crashes=0,
                memory_exceeded=0,
                environments=1,
                busy=0,
                idle=1,
                in_flight=0,
                waiting=0,
                queued=0,
                max_environments=2,
            )

    runner.run(scenario())


def test_log_sink_gets_every_invocations_log(runner: asyncio.Runner, zygote: Zygote) -> None:
    sunk: list[str] = []

    async def scenario() -> tuple[str, str, sandbox.RuntimeStats]:
        async with PythonFunctionPool(
            make_spec("basic.fail"), zygote=zygote, log_sink=sunk.append
        ) as pool:
            ok = await pool.invoke(b'{"action": 1}')
            with pytest.raises(FunctionError) as caught:
                await pool.invoke(b"{}")
            return ok.log, caught.value.log, pool.stats()

    ok_log, error_log, stats = runner.run(scenario())
    assert sunk == [ok_log, error_log]
    assert (stats.invocations, stats.function_errors) == (2, 1)


def test_aclose_leaves_no_process_and_no_directory() -> None:
    async def scenario() -> tuple[list[int], int, list[str], object]:
        spec = make_spec("basic.write_tmp", max_concurrency=3)
        pool = PythonFunctionPool(spec, sandbox=HOST_TMPDIR)
        answers = await asyncio.gather(*(pool.invoke(b"{}") for _ in range(2)))
        slow = make_spec("basic.sleep", name="slow")
        slow_pool = PythonFunctionPool(slow)
        in_flight = asyncio.ensure_future(slow_pool.invoke(b'{"seconds": 60}'))
        await slow_pool.start()
        pids = pool.environment_pids()
        zygote_pid = pool.zygote.pid if pool.zygote else 0
        await pool.aclose()
        while not slow_pool.stats().busy:  # the invocation has an environment
            await asyncio.sleep(0)
        pids += slow_pool.environment_pids()
        await slow_pool.aclose()
        outcome = await asyncio.gather(in_flight, return_exceptions=True)
        with pytest.raises(PoolClosed):
            await pool.invoke(b"{}")
        return pids, zygote_pid, [orjson.loads(a.payload)["tmpdir"] for a in answers], outcome[0]

    pids, zygote_pid, tmpdirs, outcome = asyncio.run(scenario())
    assert len(pids) == 3
    assert zygote_pid
    assert not any(pid_alive(pid) for pid in [*pids, zygote_pid])
    assert not any(Path(d).exists() for d in tmpdirs)
    assert isinstance(outcome, PoolClosed)


def test_public_surface_is_small_and_resolves() -> None:
    assert {"RuntimeHost", "Runtime", "invoke_once"} <= set(sandbox.__all__)
    assert len(sandbox.__all__) <= 24
    for name in sandbox.__all__:
        assert getattr(sandbox, name) is not None
    with pytest.raises(AttributeError):
        _ = sandbox.nothing_here
