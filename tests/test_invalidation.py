"""Invalidation requests' bounds (CloudFront's), the in-progress limits of one process, and
the journal the workers follow."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from edge.invalidation import (
    MAX_PATHS,
    MAX_WILDCARD_BATCHES_IN_PROGRESS,
    InvalidationJournal,
    InvalidationRefused,
    Invalidator,
    check_paths,
)


@pytest.mark.parametrize(
    ("paths", "code"),
    [
        pytest.param([], "InvalidArgument", id="empty"),
        pytest.param("/a", "InvalidArgument", id="not-a-list"),
        pytest.param(["a"], "InvalidArgument", id="no-leading-slash"),
        pytest.param(["/a*b"], "InvalidArgument", id="star-inside"),
        pytest.param([1], "InvalidArgument", id="not-a-string"),
        pytest.param(["/p"] * (MAX_PATHS + 1), "TooManyInvalidationsInProgress", id="3001"),
    ],
)
def test_requests_cloudfront_refuses_are_refused(paths: object, code: str) -> None:
    with pytest.raises(InvalidationRefused) as refused:
        check_paths(paths)
    assert refused.value.code == code


def test_three_thousand_paths_are_one_request() -> None:
    assert len(check_paths([f"/p/{n}*" for n in range(MAX_PATHS)])) == MAX_PATHS


class Gate:
    """An apply function that holds every batch until released, recording what it got."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.batches: list[list[str]] = []

    async def __call__(self, paths: Sequence[str]) -> int:
        self.batches.append(list(paths))
        await self.open.wait()
        return len(paths)


def test_paths_in_progress_are_bounded_and_batches_run_one_at_a_time() -> None:
    async def scenario() -> None:
        gate = Gate()
        invalidator = Invalidator(gate)
        async with asyncio.TaskGroup() as group:
            first = group.create_task(invalidator.run(["/a"] * 2000))
            second = group.create_task(invalidator.run(["/b"] * 1000))
            while not gate.batches:
                await asyncio.sleep(0)
            with pytest.raises(InvalidationRefused, match="in-progress") as refused:
                await invalidator.run(["/c"])
            assert refused.value.code == "TooManyInvalidationsInProgress"
            assert len(gate.batches) == 1  # the second waits for its turn
            gate.open.set()
        assert (first.result(), second.result()) == (2000, 1000)
        assert await invalidator.run(["/c"]) == 1  # the limit frees up as batches finish

    asyncio.run(scenario())


def test_batches_with_wildcards_in_progress_are_bounded() -> None:
    async def scenario() -> None:
        gate = Gate()
        invalidator = Invalidator(gate)
        async with asyncio.TaskGroup() as group:
            for n in range(MAX_WILDCARD_BATCHES_IN_PROGRESS):
                group.create_task(invalidator.run([f"/w{n}/*"]))
            while not gate.batches:
                await asyncio.sleep(0)
            with pytest.raises(InvalidationRefused, match="wildcards"):
                await invalidator.run(["/more/*"])
            exact = group.create_task(invalidator.run(["/exact"]))  # exact paths still go
            gate.open.set()
        assert exact.result() == 1

    asyncio.run(scenario())


def test_the_journal_applies_each_entry_as_one_batch_and_skips_bad_lines(
    tmp_path: Path,
) -> None:
    async def scenario() -> list[list[str]]:
        journal = InvalidationJournal(tmp_path / "journal.jsonl")
        applied: list[list[str]] = []
        done = asyncio.Event()

        async def apply(paths: Sequence[str]) -> int:
            applied.append(list(paths))
            if paths == ["/last"]:
                done.set()
            return 0

        async with asyncio.TaskGroup() as group:
            follower = group.create_task(journal.follow(apply))
            await asyncio.sleep(0)  # the follower starts at the end of the (empty) journal
            journal.append([f"/img/{n}*" for n in range(3000)])
            with journal.path.open("ab") as raw:
                raw.write(b"not json\n")
                raw.write(orjson.dumps({"id": "X", "paths": ["/p"] * 3001}) + b"\n")
            journal.append(["/last"])
            await done.wait()
            follower.cancel()
        return applied

    applied = asyncio.run(scenario())
    assert [len(batch) for batch in applied] == [3000, 1]
