"""What naming a version or an alias costs a Lambda@Edge hook, per invocation.

Run by hand from the repository root (pytest does not collect it):

    python -m tests.benchmarks.alias_bench [--calls 2000] [--rounds 5]

In one process, the same warm Python viewer-request function (hook_bench's: add a header) is
run through `TriggerRunner.run` (event built, function invoked, result decoded) named four
ways: unqualified (`$LATEST`), a published version (`fn:1`), an alias (`fn:live` -> 1) and a
weighted alias (`fn:canary`: 1, with 10 % to version 2), plus an alias of `$LATEST`
(`fn:head`): the same execution environment as the unqualified row, so the cleanest view of
what routing adds to a hook. The rows run interleaved in blocks
of calls, each row taking each position in turn, over several rounds; the report gives each
row's median per-call time and its ratio to the unqualified row. It also times
`FunctionRegistry.resolve` alone (what routing adds, without the invocation's noise).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge.config import FunctionAssociation, parse_config
from edge.events import EventType
from edge.functions import FunctionRegistry, publish_function
from edge.triggers import TriggerRunner
from tests.benchmarks.hook_bench import (
    HANDLER_FUNCTION,
    HANDLER_MODULE,
    viewer_headers,
    viewer_request,
    write_handler,
)

ROWS = {
    "unqualified": "fn",
    "alias-to-latest": "fn:head",
    "version": "fn:1",
    "alias": "fn:live",
    "weighted-alias": "fn:canary",
}


def registry_for(folder: Path) -> FunctionRegistry:
    code = folder / "code"
    write_handler(code)
    (folder / "site").mkdir()
    raw = {
        "server": {"function_logs": "none"},
        "origins": {"site": {"directory": str(folder / "site")}},
        "functions": {"fn": {"code": str(code), "handler": f"{HANDLER_MODULE}.{HANDLER_FUNCTION}"}},
    }
    config = parse_config(raw, base_dir=folder, qualifiers_exist=False)
    registry = FunctionRegistry(config)
    publish_function(config, registry.store, "fn")
    (code / "changed.txt").write_text("version 2")
    publish_function(config, registry.store, "fn")
    registry.store.create_alias("fn", "head", "$LATEST")
    registry.store.create_alias("fn", "live", "1")
    registry.store.create_alias("fn", "canary", "1", additional_weights={"2": 0.1})
    return registry


async def run(calls: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        registry = registry_for(Path(tmp))
        config = parse_config(
            {"origins": {"site": {"directory": tmp}}}, base_dir=Path(tmp), qualifiers_exist=False
        )
        runner = TriggerRunner.from_config(config, registry)
        request = viewer_request(viewer_headers())
        associations = {row: FunctionAssociation(function=name) for row, name in ROWS.items()}
        per_call: dict[str, list[float]] = {row: [] for row in ROWS}
        await registry.start()
        try:
            for association in associations.values():  # warm every version's environment
                for _ in range(50):
                    await runner.run(EventType.VIEWER_REQUEST, association, request, None, "r")
            block = max(1, calls // 10)
            order = list(associations.items())
            for _ in range(rounds):
                for _ in range(calls // block):
                    order = order[1:] + order[:1]  # every row takes every position in turn
                    for row, association in order:
                        started = time.perf_counter()
                        for _ in range(block):
                            await runner.run(
                                EventType.VIEWER_REQUEST, association, request, None, "r"
                            )
                        per_call[row].append((time.perf_counter() - started) / block)
            resolve: dict[str, list[float]] = {row: [] for row in ROWS}
            for _ in range(rounds * 10):
                for row, association in associations.items():
                    qualifier = association.qualifier
                    started = time.perf_counter()
                    for _ in range(10_000):
                        if qualifier is not None:
                            registry.resolve("fn", qualifier)
                    resolve[row].append((time.perf_counter() - started) / 10_000)
        finally:
            await registry.aclose()
    base = statistics.median(per_call["unqualified"])
    base_resolve = statistics.median(resolve["unqualified"])
    print(f"{calls} calls x {rounds} rounds per row, interleaved in blocks of {block}")
    print(f"{'row':16} {'hook p50 us':>12} {'ratio':>7} {'resolve ns':>11} {'+ns':>6}")
    for row in ROWS:
        median = statistics.median(per_call[row])
        routed = statistics.median(resolve[row])
        print(
            f"{row:16} {median * 1e6:12.1f} {median / base:7.3f} {routed * 1e9:11.0f} "
            f"{(routed - base_resolve) * 1e9:6.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="Hook calls per row per round.")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.rounds))


if __name__ == "__main__":
    main()
