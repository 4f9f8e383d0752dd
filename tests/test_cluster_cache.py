"""Scale-out on Redis, end to end: real `edge serve` nodes sharing a real redis-server.

The shared cache tier (an object one node fetched is a hit on another, with one origin request
in all; concurrent misses on two nodes make one origin fetch; an invalidation removes the
shared copy) and the async queue on Redis Streams (an event accepted by a node that dies runs
exactly once on another; Redis stopped and restarted under load loses no accepted event and
makes no 5xx).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cache_origin import CacheOrigin, Reply, running_cache_origin
from tests.conftest import EdgeProcess
from tests.invoke_functions.harness import (
    function_table,
    lambda_client,
    read_jsonl,
    shared_directory,
    wait_until,
)
from tests.redis_fixture_cache import REDIS_SERVER, RedisServer

HIT = "Hit from edge"
MISS = "Miss from edge"
FRESH = (("Cache-Control", "max-age=300"),)


@pytest.fixture(scope="module")
def cache_origin() -> Iterator[CacheOrigin]:
    with running_cache_origin() as server:
        yield server


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, persistent (skipped without one installed)."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A viewer. One Host for every node, as behind a load balancer: the key holds it."""
    with httpx.Client(timeout=20, headers={"Host": "shop.example"}) as client:
        yield client


def _config(
    tmp: Path, node: str, redis: RedisServer, origin: str, functions: str = "", extra: str = ""
) -> Path:
    directory = tmp / node
    directory.mkdir(exist_ok=True)
    path = directory / "edge.toml"
    path.write_text(
        f'[origins.o]\nurl = "{origin}"\n\n'
        f'[invoke]\nqueue_path = "{directory / "queue.sqlite3"}"\n\n'
        f'[cluster]\nredis = "{redis.url}"\nnode_id = "{node}"\n{extra}\n\n{functions}'
    )
    return path


def _node(config: Path, tmp: Path) -> EdgeProcess:
    process = EdgeProcess([str(config), "--admin", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
    return process.start(tmp)


def _nodes(configs: list[Path], tmp: Path) -> list[EdgeProcess]:
    """Start the nodes at once (each takes seconds to start)."""
    with concurrent.futures.ThreadPoolExecutor(len(configs)) as pool:
        return list(pool.map(lambda config: _node(config, tmp), configs))


@pytest.fixture(scope="module")
def two_nodes(
    tmp_path_factory: pytest.TempPathFactory, cache_origin: CacheOrigin
) -> Iterator[tuple[EdgeProcess, EdgeProcess]]:
    """Nodes a and b sharing one Redis (the tests use paths of their own)."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed")
    tmp = tmp_path_factory.mktemp("two-nodes")
    redis = RedisServer(tmp / "redis").start()
    configs = [_config(tmp, name, redis, cache_origin.url) for name in ("a", "b")]
    nodes = _nodes(configs, tmp)
    try:
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.stop()
        redis.stop()


def test_an_object_one_node_fetched_is_a_hit_on_another(
    two_nodes: tuple[EdgeProcess, EdgeProcess], cache_origin: CacheOrigin, http: httpx.Client
) -> None:
    a, b = two_nodes
    cache_origin.script("/shared/one", Reply(headers=FRESH, body=b"from the origin"))
    first = http.get(a.url + "/shared/one")
    assert first.headers["x-cache"] == MISS
    second = http.get(b.url + "/shared/one")
    assert second.headers["x-cache"] == HIT
    assert second.content == b"from the origin"
    assert "age" in second.headers
    assert http.get(b.url + "/shared/one").headers["x-cache"] == HIT  # now in b's own tier
    assert cache_origin.count("/shared/one") == 1


def test_concurrent_misses_on_two_nodes_make_one_origin_fetch(
    two_nodes: tuple[EdgeProcess, EdgeProcess], cache_origin: CacheOrigin, http: httpx.Client
) -> None:
    a, b = two_nodes
    cache_origin.script(
        "/shared/slow", Reply(headers=FRESH, body=b"slow answer", delay_seconds=0.5)
    )
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda url: http.get(url + "/shared/slow", timeout=20), [a.url, b.url] * 2)
        )
    assert [r.status_code for r in answers] == [200] * 4
    assert {r.content for r in answers} == {b"slow answer"}
    assert cache_origin.count("/shared/slow") == 1


def test_an_invalidation_removes_the_shared_copy(
    two_nodes: tuple[EdgeProcess, EdgeProcess], cache_origin: CacheOrigin, http: httpx.Client
) -> None:
    a, b = two_nodes
    for name in ("x", "y"):
        cache_origin.script(f"/gone/{name}", Reply(headers=FRESH, body=name.encode()))
        assert http.get(f"{a.url}/gone/{name}").headers["x-cache"] == MISS
    cache_origin.script("/kept", Reply(headers=FRESH, body=b"kept"))
    http.get(a.url + "/kept")
    done = http.post(
        a.admin_url + "/invalidations", json={"paths": ["/gone/*"]}, headers={"Host": "127.0.0.1"}
    )
    assert done.status_code < 300, done.text
    # b never held them itself: what it finds is the shared tier's, and the copies are gone.
    assert http.get(b.url + "/gone/x").headers["x-cache"] == MISS
    assert http.get(b.url + "/kept").headers["x-cache"] == HIT
    assert cache_origin.count("/gone/x") == 2
    assert cache_origin.count("/kept") == 1


# -- the async queue on Redis Streams -----------------------------------------------------------


def _invoke_async(client: Any, payload: dict[str, Any]) -> None:
    answer = client.invoke(
        FunctionName="gated", InvocationType="Event", Payload=json.dumps(payload).encode()
    )
    assert answer["StatusCode"] == 202


def _gated(shared: Path, timeout: int = 4) -> str:
    return function_table("gated", "gated", timeout=timeout, writable_paths=[str(shared)])


def _kill_node(node: EdgeProcess) -> None:
    """SIGKILL the node (its function environments die with it: their zygote sees it go)."""
    os.kill(node.pid, signal.SIGKILL)
    node.stop()


def test_an_event_accepted_by_a_node_that_dies_runs_once_on_another(
    tmp_path: Path, persistent_redis: RedisServer, cache_origin: CacheOrigin
) -> None:
    shared = shared_directory(tmp_path)
    marks, gate = shared / "marks.jsonl", shared / "gate"
    extra = "event_visibility = 1"
    a = _node(
        _config(tmp_path, "a", persistent_redis, cache_origin.url, _gated(shared), extra), tmp_path
    )
    try:
        _invoke_async(lambda_client(a), {"id": 1, "marks": str(marks), "gate": str(gate)})
        wait_until(lambda: any("start" in m for m in read_jsonl(marks)), what="the run started")
    finally:
        _kill_node(a)
    gate.touch()
    b = _node(
        _config(tmp_path, "b", persistent_redis, cache_origin.url, _gated(shared), extra), tmp_path
    )
    try:
        wait_until(lambda: any("done" in m for m in read_jsonl(marks)), timeout=30, what="run on b")
        time.sleep(0.5)  # anything run twice would show by now
    finally:
        b.stop()
    assert [m["done"] for m in read_jsonl(marks) if "done" in m] == [1]


def test_redis_stopped_and_restarted_under_load(
    tmp_path: Path, persistent_redis: RedisServer, cache_origin: CacheOrigin
) -> None:
    shared = shared_directory(tmp_path)
    marks = shared / "marks.jsonl"
    for n in range(20):
        cache_origin.script(f"/load/{n}", Reply(headers=FRESH, body=b"x" * 100))
    config = _config(
        tmp_path, "a", persistent_redis, cache_origin.url, _gated(shared), "event_visibility = 1"
    )
    node = _node(config, tmp_path)
    statuses: list[int] = []
    accepted: list[int] = []
    stop = threading.Event()

    def viewers() -> None:
        with httpx.Client(base_url=node.url, timeout=20) as viewer:
            n = 0
            while not stop.is_set():
                statuses.append(viewer.get(f"/load/{n % 20}?v={n // 20}").status_code)
                n += 1

    def invokes() -> None:
        client = lambda_client(node)
        n = 0
        while not stop.is_set():
            _invoke_async(client, {"id": n, "marks": str(marks)})
            accepted.append(n)
            n += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=viewers), threading.Thread(target=invokes)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        persistent_redis.stop()
        time.sleep(1.0)
        persistent_redis.start()
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    try:
        wait_until(
            lambda: {m["done"] for m in read_jsonl(marks) if "done" in m} >= set(accepted),
            timeout=30,
            what="every accepted event",
        )
    finally:
        node.stop()
    assert accepted
    assert statuses
    assert max(statuses) < 500
