"""[cluster]: several real `edge serve` nodes sharing one real redis-server.

Reserved concurrency is exact across nodes (a throttled trigger answers 503), an
invalidation sent to one node purges another's cache, a node killed mid-invocation gives its
capacity back when its leases expire, and a Redis that goes away and comes back costs no
request (`edge_cluster_redis_up` follows it). Without Redis, one node's workers share one count.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import EdgeProcess
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

HOOKS = Path(__file__).resolve().parent / "cluster_functions" / "hooks"
RESERVED = 2
LEASE_SECONDS = 2


def _config(tmp: Path, *, redis: str | None, node: str, workers: int = 1) -> Path:
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    (site / "page.html").write_text("<p>cached</p>")
    (site / "slow").write_text("done")
    cluster = (
        f'[cluster]\nredis = "{redis}"\nnode_id = "{node}"\nlease_seconds = {LEASE_SECONDS}\n'
        if redis
        else ""
    )
    path = tmp / f"edge-{node}.toml"
    path.write_text(
        f"""
[server]
workers = {workers}

[origins.site]
directory = "{site}"

[[behaviors]]
path = "/slow*"
origin = "site"
cache = "disabled"
origin-request = "slow"

[[behaviors]]
path = "/*"
origin = "site"
cache = {{ default_ttl = 600 }}

[functions.slow]
handler = "{HOOKS}.slow"
reserved_concurrency = {RESERVED}
max_concurrency = 8
timeout = 30

[invoke]
queue_path = "{tmp / f"queue-{node}.sqlite3"}"

{cluster}
"""
    )
    return path


def _start(tmp: Path, *, redis: str | None, node: str, workers: int = 1) -> EdgeProcess:
    config = _config(tmp, redis=redis, node=node, workers=workers)
    edge = EdgeProcess([str(config), "--admin", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
    try:
        return edge.start(tmp)
    except BaseException:
        if edge.proc is not None:
            edge.stop(signal.SIGKILL)
        raise


def _statuses(urls: list[str], timeout: float = 30) -> list[int]:
    """GET every URL at once; their statuses, in order."""
    with httpx.Client(timeout=timeout) as http, ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(lambda url: http.get(url).status_code, urls))


def _admin(edge: EdgeProcess, path: str) -> httpx.Response:
    with httpx.Client(timeout=10) as http:
        return http.get(f"{edge.admin_url}{path}")


def _metric(edge: EdgeProcess, name: str) -> float | None:
    text = _admin(edge, "/metrics").text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def _wait_until(condition: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def nodes(
    redis_server: RedisServer,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EdgeProcess, EdgeProcess]]:
    """Two nodes of one cluster, as two hosts behind a load balancer would run them."""
    a = _start(tmp_path_factory.mktemp("node-a"), redis=redis_server.url, node="a")
    b = _start(tmp_path_factory.mktemp("node-b"), redis=redis_server.url, node="b")
    yield a, b
    for node in (a, b):
        if node.proc is not None and node.proc.poll() is None:
            node.stop()


def test_reserved_concurrency_is_exact_across_nodes(
    nodes: tuple[EdgeProcess, EdgeProcess],
) -> None:
    a, b = nodes
    # Four slow invocations at once, two through each node: the cluster admits two.
    statuses = _statuses([f"{node.url}/slow?sleep=1" for node in (a, b, a, b)])
    assert sorted(statuses) == [200, 200, 503, 503]
    # The capacity is back once they finish.
    assert _statuses([f"{a.url}/slow?sleep=0", f"{b.url}/slow?sleep=0"]) == [200, 200]


def test_an_invalidation_on_one_node_purges_the_others(
    nodes: tuple[EdgeProcess, EdgeProcess],
) -> None:
    a, b = nodes
    with httpx.Client(timeout=10) as http:
        http.get(f"{b.url}/page.html")
        assert http.get(f"{b.url}/page.html").headers["x-cache"].startswith("Hit")
        started = time.monotonic()
        response = http.post(f"{a.admin_url}/invalidations", json={"paths": ["/page.html"]})
        assert response.status_code == 201
        entry = response.json()["id"]
        # Node B logs each invalidation it applies, with the id node A gave it.
        b.wait_for(rf"invalidation {entry} from a \(/page\.html\): 1 stored", timeout=10)
        print(f"invalidation reached node b in {(time.monotonic() - started) * 1000:.1f} ms")
        assert http.get(f"{b.url}/page.html").headers["x-cache"].startswith("Miss")


def test_a_killed_node_gives_its_capacity_back(
    nodes: tuple[EdgeProcess, EdgeProcess],
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    _a, b = nodes
    doomed = _start(tmp_path, redis=redis_server.url, node="doomed")
    key = "edge:concurrency:function:slow"
    with ThreadPoolExecutor(RESERVED) as pool:
        calls = [
            pool.submit(_statuses, [f"{doomed.url}/slow?sleep=20"], 60) for _ in range(RESERVED)
        ]
        _wait_until(
            lambda: redis_server.command("ZCARD", key) == b":%d\r\n" % RESERVED,
            "the doomed node's leases",
        )
        first = _expiries(redis_server, key)
        # A running invocation's lease is renewed while it runs (a live node keeps its slots).
        _wait_until(lambda: min(_expiries(redis_server, key)) > max(first), "renewed leases")
        assert _statuses([f"{b.url}/slow?sleep=0"]) == [503]
        doomed.stop(signal.SIGKILL)
        for call in calls:
            with pytest.raises(httpx.TransportError):
                call.result()
    # Its leases still hold the function's reserved concurrency...
    assert _statuses([f"{b.url}/slow?sleep=0"]) == [503]
    # ...until they expire (lease_seconds, never renewed by a dead node): then all of it is back.
    _wait_until(
        lambda: _statuses([f"{b.url}/slow?sleep=0.5"] * RESERVED) == [200] * RESERVED,
        "expired leases",
    )


def _expiries(server: RedisServer, key: str) -> list[float]:
    """The expiry times of the leases in `key` (their scores)."""
    reply = server.command("ZRANGE", key, "0", "-1", "WITHSCORES").split(b"\r\n")
    # *4, $n, member, $n, score, ...: every fourth line from the fifth is a score.
    return [float(value) for value in reply[4::4] if value]


def test_redis_going_away_costs_no_request(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path).start()
    try:
        edge = _start(tmp_path, redis=redis.url, node="lonely")
        try:
            _serve_through_an_outage(edge, redis)
        finally:
            edge.stop()
    finally:
        redis.stop()


def _serve_through_an_outage(edge: EdgeProcess, redis: RedisServer) -> None:
    statuses: list[int] = []
    stop = threading.Event()

    def steady_load() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set() and len(statuses) < 5000:
                statuses.extend(
                    http.get(f"{edge.url}{path}").status_code
                    for path in ("/page.html", "/slow?sleep=0")
                )

    assert _metric(edge, "edge_cluster_redis_up") == 1
    loader = threading.Thread(target=steady_load)
    loader.start()
    try:
        _wait_until(lambda: len(statuses) > 20, "requests before the outage")
        redis.stop()
        _wait_until(lambda: _metric(edge, "edge_cluster_redis_up") == 0, "redis_up 0")
        status = _admin(edge, "/status.json").json()["cluster"]
        assert status["available"] is False
        assert status["node_id"] == "lonely"
        during = len(statuses)
        _wait_until(lambda: len(statuses) > during + 20, "requests during the outage")
        # An invalidation meanwhile purges this node now, and the others once Redis is back.
        with httpx.Client(timeout=10) as http:
            posted = http.post(f"{edge.admin_url}/invalidations", json={"paths": ["/page*"]})
        assert posted.status_code == 201
        entry = posted.json()["id"]
        redis.start()
        _wait_until(lambda: _metric(edge, "edge_cluster_redis_up") == 1, "redis_up 1")
        edge.wait_for(rf"invalidation {entry} published after redis came back")
        assert entry.encode() in redis.command("XRANGE", "edge:invalidations", "-", "+")
        after = len(statuses)
        _wait_until(lambda: len(statuses) > after + 20, "requests after the outage")
    finally:
        stop.set()
        loader.join(30)
    assert statuses
    assert {status for status in statuses if status >= 500} == set()
    assert len(re.findall(r"cluster: redis unavailable", edge.log)) == 1
    assert "cluster: redis back" in edge.log
    assert _admin(edge, "/status.json").json()["cluster"]["available"]


def test_workers_of_one_node_share_the_count_and_the_cache_without_redis(
    tmp_path: Path,
) -> None:
    edge = _start(tmp_path, redis=None, node="solo", workers=2)
    tier = edge.find(r"the workers share a tier in redis-server \(pid (\d+)")
    try:
        # Six at once over two workers (the kernel spreads the connections): two admitted.
        statuses = _statuses([f"{edge.url}/slow?sleep=1"] * 6)
        assert sorted(statuses) == [200] * RESERVED + [503] * (6 - RESERVED)
        assert _statuses([f"{edge.url}/slow?sleep=0"] * RESERVED) == [200] * RESERVED

        # The cache: a redis-server of the node's own is the tier both workers share.
        assert tier is not None, edge.log
        results = []
        for _ in range(12):  # a connection each: the kernel spreads them over the workers
            with httpx.Client(timeout=10) as http:
                results.append(http.get(f"{edge.url}/page.html").headers["x-cache"])
        assert results.count("Miss from edge") == 1, results
        # Concurrent misses in both workers make one origin request per object.
        for index in range(5):
            (tmp_path / "site" / f"c{index}.html").write_text(f"object {index}")
        urls = [f"{edge.url}/c{index}.html" for index in range(5) for _ in range(4)]
        with (
            httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as http,
            ThreadPoolExecutor(len(urls)) as pool,
        ):
            caches = list(pool.map(lambda url: http.get(url).headers["x-cache"], urls))
        assert caches.count("Miss from edge") == 5, caches
    finally:
        edge.stop()
    # The server went with the edge.
    assert not Path(f"/proc/{tier.group(1)}").exists()
