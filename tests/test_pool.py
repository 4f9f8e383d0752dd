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
    # CloudFront Functions: spec, edit_store; Node.js: spec; layers: check_layers; custom
    # runtimes: spec.
    assert len(sandbox.__all__) <= 28
    for name in sandbox.__all__:
        assert getattr(sandbox, name) is not None
    with pytest.raises(AttributeError):
        _ = sandbox.nothing_here


# --- processes capped, concurrency counted per invocation -----------------------------------


def hard_cap(environments: int, **overrides: object) -> dict[str, object]:
    """Spec fields for at most `environments` processes, whatever the handlers do (a wait for
    a busy environment as long as the timeout: the pool never scales out above the cap)."""
    fields: dict[str, object] = {
        "max_environments": environments,
        "timeout_seconds": 5,
        "environment_wait_seconds": 5,
    }
    fields.update(overrides)
    return fields


def test_sixteen_concurrent_invocations_share_two_processes_and_all_succeed(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> tuple[list[InvocationResult], int, sandbox.RuntimeStats]:
        spec = make_spec("basic.count", max_concurrency=16, **hard_cap(2))
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            most = 0
            calls = asyncio.gather(*(pool.invoke(b"{}") for _ in range(16)))
            while not calls.done():
                most = max(most, pool.stats().environments, len(pool.environment_pids()))
                await asyncio.sleep(0.001)
            return list(await calls), most, pool.stats()

    results, most, stats = runner.run(scenario())
    environments = {orjson.loads(r.payload)["environment"] for r in results}
    assert len(results) == 16
    assert (len(environments), most) == (2, 2)
    # Two cold starts (Init ran twice, and only those two logs say so); the fourteen that
    # waited ran warm, in an environment that had already served.
    assert sum(r.init_duration_ms is not None for r in results) == 2
    assert sum("Init Duration" in r.log for r in results) == 2
    assert (stats.cold_starts, stats.warm_starts, stats.queued) == (2, 14, 14)
    assert (stats.invocations, stats.throttles, stats.in_flight, stats.waiting) == (16, 0, 0, 0)
    assert (stats.environments, stats.max_environments) == (2, 2)


def test_waiting_invocations_still_count_toward_concurrency(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> tuple[list[InvocationResult | BaseException], sandbox.RuntimeStats]:
        spec = make_spec("basic.sleep", max_concurrency=4, **hard_cap(2))
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            outcomes = await asyncio.gather(
                *(pool.invoke(b'{"seconds": 0.2}') for _ in range(7)), return_exceptions=True
            )
            return outcomes, pool.stats()

    outcomes, stats = runner.run(scenario())
    throttled = [o for o in outcomes if isinstance(o, FunctionThrottled)]
    assert len(throttled) == 3  # 4 in flight (2 running, 2 waiting), the excess refused
    assert all(t.reason == "ReservedFunctionConcurrentInvocationLimitExceeded" for t in throttled)
    assert [o.payload for o in outcomes if isinstance(o, InvocationResult)] == [b'"woke"'] * 4
    assert (stats.throttles, stats.cold_starts, stats.queued, stats.environments) == (3, 2, 2, 2)


def test_a_wait_past_the_deadline_is_throttled_and_the_function_never_runs(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> tuple[bytes, FunctionThrottled, sandbox.RuntimeStats]:
        spec = make_spec("basic.sleep", max_concurrency=4, **hard_cap(1))
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            slow = asyncio.ensure_future(pool.invoke(b'{"seconds": 1}'))
            while pool.stats().busy == 0:
                await asyncio.sleep(0.01)
            loop = asyncio.get_running_loop()
            with pytest.raises(FunctionThrottled) as refused:
                await pool.invoke(b'{"seconds": 0}', deadline=loop.time() + 0.2)
            return (await slow).payload, refused.value, pool.stats()

    payload, refused, stats = runner.run(scenario())
    assert payload == b'"woke"'
    assert refused.reason == "ConcurrentInvocationLimitExceeded"
    assert (stats.invocations, stats.throttles, stats.queued, stats.cold_starts) == (1, 1, 1, 1)


def test_slow_handlers_scale_out_above_the_cap_as_lambda_would(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> tuple[list[InvocationResult], sandbox.RuntimeStats]:
        spec = make_spec(
            "basic.sleep", max_concurrency=4, max_environments=1, environment_wait_seconds=0.05
        )
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            results = await asyncio.gather(*(pool.invoke(b'{"seconds": 1}') for _ in range(2)))
            return results, pool.stats()

    results, stats = runner.run(scenario())
    assert [r.payload for r in results] == [b'"woke"'] * 2
    # The second waited, saw the only environment busy for longer than the wait, and got an
    # environment of its own: a cold start, as in Lambda.
    assert sum(r.init_duration_ms is not None for r in results) == 2
    assert (stats.cold_starts, stats.queued, stats.environments) == (2, 1, 2)


def test_request_ids_are_not_repeated_in_a_forked_process() -> None:
    sandbox.new_request_id()  # the parent has drawn its random bytes
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only reports and exits
        os.write(write_end, sandbox.new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert child_id != sandbox.new_request_id()


def test_the_wait_for_an_environment_is_not_the_functions_time(
    runner: asyncio.Runner, zygote: Zygote
) -> None:
    async def scenario() -> list[InvocationResult]:
        # Each handler runs 0.6 s of its 1 s timeout; the second waits 0.6 s for the only
        # environment first, and is timed from its own start, as Lambda times a function.
        spec = make_spec("basic.sleep", max_concurrency=2, **hard_cap(1, timeout_seconds=1))
        async with PythonFunctionPool(spec, zygote=zygote) as pool:
            return list(await asyncio.gather(*(pool.invoke(b'{"seconds": 0.6}') for _ in range(2))))

    results = runner.run(scenario())
    assert [r.payload for r in results] == [b'"woke"'] * 2
