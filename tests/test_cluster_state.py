"""[cluster] shared state: published versions, aliases, the management API's changes and
deployments made on one real `edge serve` node reach the others through a real redis-server.

Two nodes with their own state directories (as two hosts would have) and one code folder:
a version published and an alias made on A run on B; code uploaded on B runs on A and A
publishes it; an alias's weights set on B split A's invocations; a node started later
starts with all of it. While Redis is away changes are refused (and nothing changes), nodes
keep serving, and once Redis is back (empty: it keeps nothing on disk) the nodes share their
replicas again. A deployment started on A shows on B, cannot be stopped from B, and when A is
SIGKILLed B takes it over and finishes it.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import tarfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest
import redis as redis_client
from click.testing import CliRunner

from edge.cli import main
from edge.cluster.state import SharedState
from edge.config import load_config
from edge.lambda_service import FunctionStore, StateUnavailable
from edge.lambda_service.deploy import Deployer
from edge.lambda_service.deploy_record import DeploymentRequest, Sample
from tests.conftest import EdgeProcess
from tests.invoke_functions.harness import lambda_client, wait_until
from tests.redis_server import RedisServer, free_port, redis_server  # noqa: F401 - fixture

HANDLER = """
CODE = {code!r}


def handler(event, context):
    return {{"code": CODE, "version": context.function_version}}
"""
LEASE_SECONDS = 2


def _write_code(folder: Path, code: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(HANDLER.format(code=code))


def _zip(code: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER.format(code=code))
    return buffer.getvalue()


def _start(root: Path, node: str, redis_url: str, *, extra: str = "") -> EdgeProcess:
    home = root / f"node-{node}"
    home.mkdir(exist_ok=True)
    site = home / "site"
    site.mkdir(exist_ok=True)
    (site / "index.html").write_text("hello")
    config = home / "edge.toml"
    config.write_text(
        f'[origins.site]\ndirectory = "{site}"\n\n'
        f"{extra}"
        '[[behaviors]]\npath = "*"\norigin = "site"\n\n'
        f'[invoke]\nqueue_path = "{home / "queue.sqlite3"}"\n\n'
        f'[functions.fn]\ncode = "{root / "code"}"\nhandler = "app.handler"\n\n'
        f'[cluster]\nredis = "{redis_url}"\nnode_id = "{node}"\n'
        f'lease_seconds = {LEASE_SECONDS}\nasync_queue = "local"\n'
    )
    edge = EdgeProcess([str(config), "--admin", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
    try:
        return edge.start(home)
    except BaseException:
        if edge.proc is not None:
            edge.stop(signal.SIGKILL)
        raise


@pytest.fixture(scope="module")
def cluster(
    redis_server: RedisServer,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("shared-state")
    _write_code(root / "code", "A")
    a = _start(root, "a", redis_server.url)
    b = _start(root, "b", redis_server.url)
    nodes = {"root": root, "redis": redis_server, "a": a, "b": b}
    yield nodes
    stuck = []
    for key in ("a", "b", "c"):
        edge = nodes.get(key)
        if isinstance(edge, EdgeProcess) and edge.proc is not None and edge.proc.poll() is None:
            try:
                edge.stop()
            except subprocess.TimeoutExpired:  # killed by stop(); the others still stopped
                stuck.append(key)
    assert not stuck, f"nodes {stuck} did not stop on SIGTERM"


def _invoke(client: Any, qualified: str) -> tuple[str, str]:
    """(the code's tag, the version that ran) of one invocation."""
    result = client.invoke(FunctionName=qualified, Payload=b"{}")
    assert "FunctionError" not in result, result["Payload"].read()
    body = json.loads(result["Payload"].read())
    assert body["version"] == result["ExecutedVersion"]
    return body["code"], body["version"]


def _alias_on(client: Any, name: str) -> Any:
    try:
        return client.get_alias(FunctionName="fn", Name=name)
    except client.exceptions.ResourceNotFoundException:
        return None


def test_versions_aliases_and_code_reach_every_node(cluster: dict[str, Any]) -> None:
    a, b = lambda_client(cluster["a"]), lambda_client(cluster["b"])

    assert a.publish_version(FunctionName="fn")["Version"] == "1"
    a.create_alias(FunctionName="fn", Name="live", FunctionVersion="1")
    started = time.monotonic()
    found = wait_until(lambda: _alias_on(b, "live"), timeout=10, what="the alias on node b")
    print(f"alias made on a seen by b after {(time.monotonic() - started) * 1000:.0f} ms")
    assert found["FunctionVersion"] == "1"
    assert _invoke(b, "fn:live") == ("A", "1")
    assert [v["Version"] for v in b.list_versions_by_function(FunctionName="fn")["Versions"]] == [
        "$LATEST",
        "1",
    ]

    # Code uploaded on b is a's $LATEST too, and a publishes it: b runs a's snapshot.
    b.update_function_code(FunctionName="fn", ZipFile=_zip("B"))
    wait_until(lambda: _invoke(a, "fn")[0] == "B", timeout=10, what="b's upload running on a")
    assert a.publish_version(FunctionName="fn")["Version"] == "2"
    wait_until(
        lambda: (
            "2"
            in {v["Version"] for v in b.list_versions_by_function(FunctionName="fn")["Versions"]}
        ),
        timeout=10,
        what="version 2 on node b",
    )
    assert _invoke(b, "fn:2") == ("B", "2")
    assert _invoke(b, "fn:1") == ("A", "1")

    # Weights set on b split a's invocations.
    b.update_alias(
        FunctionName="fn", Name="live", RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}}
    )
    wait_until(
        lambda: a.get_alias(FunctionName="fn", Name="live").get("RoutingConfig"),
        timeout=10,
        what="the weights on node a",
    )
    # Its router reads the replica at most every tenth of a second.
    wait_until(
        lambda: len({_invoke(a, "fn:live") for _ in range(20)}) == 2,
        timeout=5,
        what="node a's router splitting",
    )
    ran = Counter(_invoke(a, "fn:live") for _ in range(200))
    assert set(ran) == {("A", "1"), ("B", "2")}, ran
    # 200 draws at 0.5: 4.5 standard deviations (7.1 each) either side of 100.
    assert 68 <= ran[("B", "2")] <= 132, ran

    # The CLI on a node's edge.toml changes the cluster's state, not only that node's folder.
    made = CliRunner().invoke(
        main,
        [
            "alias",
            "create",
            "fn",
            "pinned",
            "--version",
            "1",
            "--config",
            str(cluster["root"] / "node-a" / "edge.toml"),
        ],
    )
    assert made.exit_code == 0, made.output
    found = wait_until(lambda: _alias_on(b, "pinned"), timeout=10, what="the CLI's alias on b")
    assert found["FunctionVersion"] == "1"

    # A node that joins later starts with all of it, on a state directory of its own.
    # Its edge.toml names the alias (a function origin): checked against the cluster's state.
    cluster["c"] = _start(
        cluster["root"],
        "c",
        cluster["redis"].url,
        extra='[origins.live]\nfunction = "fn:live"\n\n'
        '[[behaviors]]\npath = "/live"\norigin = "live"\n\n',
    )
    c = lambda_client(cluster["c"])
    assert c.get_alias(FunctionName="fn", Name="live")["RoutingConfig"] == {
        "AdditionalVersionWeights": {"2": 0.5}
    }
    assert _invoke(c, "fn:2") == ("B", "2")
    assert _invoke(c, "fn") == ("B", "$LATEST")
    cluster["c"].stop()


def test_changes_are_refused_while_redis_is_away_and_shared_again_after(
    cluster: dict[str, Any],
) -> None:
    a, b = lambda_client(cluster["a"]), lambda_client(cluster["b"])
    before = b.get_alias(FunctionName="fn", Name="live")
    redis: RedisServer = cluster["redis"]
    redis.stop()
    try:
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            b.update_alias(FunctionName="fn", Name="live", FunctionVersion="2", RoutingConfig={})
        error = refused.value.response["Error"]
        assert error["Code"] == "ServiceException"
        assert "Redis cannot be reached" in error["Message"]
        with pytest.raises(botocore.exceptions.ClientError):
            a.publish_version(FunctionName="fn", Description="while redis is away")
        # Nothing changed, on either node; both keep serving what they have.
        assert b.get_alias(FunctionName="fn", Name="live")["RevisionId"] == before["RevisionId"]
        assert {_invoke(a, "fn:live")[1] for _ in range(20)} <= {"1", "2"}
        assert _invoke(b, "fn:2") == ("B", "2")
        assert len(a.list_versions_by_function(FunctionName="fn")["Versions"]) == 3
        with httpx.Client() as viewer:
            assert viewer.get(cluster["a"].url + "/index.html").status_code == 200
    finally:
        redis.start()
    # Redis came back empty (no persistence): the nodes share their replicas again, and a
    # change made on one reaches the other.
    b_alias = wait_until(
        lambda: _retrying(
            lambda: b.update_alias(
                FunctionName="fn", Name="live", FunctionVersion="2", RoutingConfig={}
            )
        ),
        timeout=20,
        what="a change accepted after redis came back",
    )
    assert b_alias["FunctionVersion"] == "2"
    wait_until(
        lambda: (
            a.get_alias(FunctionName="fn", Name="live")["FunctionVersion"] == "2"
            and not a.get_alias(FunctionName="fn", Name="live").get("RoutingConfig")
        ),
        timeout=10,
        what="node a following the change",
    )
    # Its router reads the replica at most every tenth of a second.
    wait_until(
        lambda: {_invoke(a, "fn:live") for _ in range(10)} == {("B", "2")},
        timeout=5,
        what="node a's router on version 2",
    )
    assert [v["Version"] for v in a.list_versions_by_function(FunctionName="fn")["Versions"]] == [
        "$LATEST",
        "1",
        "2",
    ]


def _retrying(call: Any) -> Any:
    try:
        return call()
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] == "ServiceException":
            return None
        raise


def _deployment(edge: EdgeProcess, deployment_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=edge.admin_url, timeout=10) as admin:
        response = admin.get(f"/deployments/{deployment_id}")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def _start_deployment(edge: EdgeProcess) -> str:
    with httpx.Client(base_url=edge.admin_url, timeout=10) as admin:
        started = admin.post(
            "/deployments",
            json={
                "function": "fn",
                "alias": "live",
                "version": "2",
                "strategy": "Linear10PercentEvery1Minute",
                "time_scale": 0.1,  # ten steps of 6 s
            },
        )
    assert started.status_code == 201, started.text
    deployment_id: str = started.json()["id"]
    return deployment_id


def _stop_on(edge: EdgeProcess, deployment_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=edge.admin_url, timeout=30) as admin:
        stopped = admin.post(f"/deployments/{deployment_id}/stop")
    assert stopped.status_code == 200, stopped.text
    document: dict[str, Any] = stopped.json()
    return document


def _alias_back_on_1(client: Any) -> None:
    alias = client.get_alias(FunctionName="fn", Name="live")
    assert alias["FunctionVersion"] == "1"
    assert not alias.get("RoutingConfig")


def test_a_deployment_shows_on_every_node_and_survives_its_node(cluster: dict[str, Any]) -> None:
    a, b = lambda_client(cluster["a"]), lambda_client(cluster["b"])
    a.update_alias(FunctionName="fn", Name="live", FunctionVersion="1", RoutingConfig={})
    wait_until(
        lambda: b.get_alias(FunctionName="fn", Name="live")["FunctionVersion"] == "1",
        timeout=10,
        what="the alias back on version 1 on node b",
    )
    first = _start_deployment(cluster["a"])
    on_b = wait_until(lambda: _listed(cluster["b"], first), timeout=10, what="the deployment on b")
    assert on_b["status"] == "InProgress"
    assert on_b["node"] == "a"
    # One deployment per alias in the whole cluster.
    with httpx.Client(base_url=cluster["b"].admin_url, timeout=10) as admin:
        again = admin.post(
            "/deployments",
            json={"function": "fn", "alias": "live", "version": "2", "strategy": "AllAtOnce"},
        )
    assert again.status_code == 409, again.text
    assert first in again.text
    # Both nodes run the split the deployment set.
    wait_until(
        lambda: b.get_alias(FunctionName="fn", Name="live").get("RoutingConfig"),
        timeout=10,
        what="the first step's weight on node b",
    )
    # A stop sent to b reaches a, which runs it: the alias goes back whole to version 1.
    stopped = _stop_on(cluster["b"], first)
    assert stopped["status"] == "Stopped", stopped
    _alias_back_on_1(b)
    wait_until(lambda: _alias_on(a, "live").get("RoutingConfig") is None, timeout=10)

    # A deployment whose node dies: b takes it over within the lease, then stops it.
    second = _start_deployment(cluster["a"])
    wait_until(lambda: _listed(cluster["b"], second), timeout=10, what="the second on b")
    cluster["a"].stop(signal.SIGKILL)
    taken = wait_until(
        lambda: (d := _deployment(cluster["b"], second))["node"] == "b" and d,
        timeout=LEASE_SECONDS * 5,
        what="node b taking the deployment over",
    )
    messages = [event["message"] for event in taken["events"]]
    assert any("taken over from node a" in m for m in messages), messages
    assert _stop_on(cluster["b"], second)["status"] == "Stopped"
    _alias_back_on_1(b)


def _listed(edge: EdgeProcess, deployment_id: str) -> dict[str, Any] | None:
    with httpx.Client(base_url=edge.admin_url, timeout=10) as admin:
        listed = admin.get("/deployments").json()["deployments"]
    return next((d for d in listed if d["id"] == deployment_id), None)


# -- what a node accepts from Redis, in process ------------------------------------------------


def _packed(members: dict[str, bytes], *, link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if link is not None:
            info = tarfile.TarInfo("escape")
            info.type = tarfile.SYMTYPE
            info.linkname = link
            archive.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("members", "link", "inside"),
    [
        ({"../../outside.txt": b"x"}, None, None),
        # tarfile's data filter takes the leading / away: it lands inside the folder.
        ({"/tmp/absolute.txt": b"x"}, None, "tmp/absolute.txt"),
        ({}, "/etc", None),
    ],
    ids=["dot-dot", "absolute", "symlink-out"],
)
def test_a_folder_from_redis_never_lands_outside_the_state_directory(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
    members: dict[str, bytes],
    link: str | None,
    inside: str | None,
) -> None:
    prefix = f"hostile-{tmp_path.name}:"
    raw = redis_client.Redis.from_url(redis_server.url)
    state = {"functions": {"fn": {"versions": [{"number": "1"}], "aliases": {}}}}
    raw.set(f"{prefix}state:blob:lambda/functions/fn/1", _packed(members, link=link))
    raw.hset(f"{prefix}state:docs", "lambda/state.json", json.dumps(state))
    raw.incr(f"{prefix}state:rev")
    node = tmp_path / "node" / ".edge"
    shared = SharedState(redis_server.url, node, key_prefix=prefix)
    folder = node / "lambda" / "functions" / "fn" / "1"
    if inside is None:
        # Refused whole: no folder, and no document naming it.
        assert shared.pull() is False
        assert not folder.exists()
        assert not (node / "lambda" / "state.json").exists()
    else:
        assert shared.pull() is True
        assert (folder / inside).read_bytes() == b"x"
    assert not (tmp_path / "outside.txt").exists()
    assert not Path("/tmp/absolute.txt").exists()


def test_documents_redis_names_outside_the_known_ones_are_ignored(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = f"names-{tmp_path.name}:"
    raw = redis_client.Redis.from_url(redis_server.url)
    raw.hset(f"{prefix}state:docs", "../../escaped.json", "{}")
    raw.hset(f"{prefix}state:docs", "deployments/../../x.json", "{}")
    raw.hset(f"{prefix}state:docs", "functions.json", '{"functions": {}}')
    raw.incr(f"{prefix}state:rev")
    node = tmp_path / "node" / ".edge"
    assert SharedState(redis_server.url, node, key_prefix=prefix).pull() is True
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")) == [
        "node/.edge/functions.json"
    ]


def test_a_change_without_redis_is_refused_and_made_nowhere(tmp_path: Path) -> None:
    closed = free_port()
    store = FunctionStore(
        tmp_path / ".edge",
        SharedState(f"redis://127.0.0.1:{closed}/0", tmp_path / ".edge", timeout=0.5),
    )
    with pytest.raises(StateUnavailable, match="Redis cannot be reached"):
        store.create_alias("fn", "live", "$LATEST")
    assert not (tmp_path / ".edge" / "lambda" / "state.json").exists()
    assert store.aliases("fn") == []


def test_a_deployment_waits_for_redis_instead_of_failing(tmp_path: Path) -> None:
    """A deployment (in process, on a store whose changes go through a real Redis of its own)
    whose next alias change falls while Redis is away waits, and finishes once it is back."""
    code = tmp_path / "code"
    _write_code(code, "A")
    config_path = tmp_path / "edge.toml"
    (tmp_path / "site").mkdir()
    config_path.write_text(
        f'[origins.site]\ndirectory = "{tmp_path / "site"}"\n\n'
        '[[behaviors]]\npath = "*"\norigin = "site"\n\n'
        f'[functions.fn]\ncode = "{code}"\nhandler = "app.handler"\n'
    )
    function = load_config(config_path).functions["fn"]
    redis = RedisServer(tmp_path).start()
    try:
        shared = SharedState(redis.url, tmp_path / ".edge", node_id="solo", timeout=0.5)
        store = FunctionStore(tmp_path / ".edge", shared)
        store.publish("fn", function)
        _write_code(code, "B")
        store.publish("fn", function)
        store.create_alias("fn", "live", "1")

        async def no_hook(_name: str, _payload: bytes) -> bytes:
            return b"{}"

        deployer = Deployer(
            store,
            run_hook=no_hook,
            sample=lambda _f, _v: Sample(),
            state_dir=tmp_path / ".edge",
            owners=shared,
            claim_seconds=2.0,
        )

        async def scenario() -> dict[str, Any]:
            async with deployer.running():
                started = deployer.start(
                    DeploymentRequest("fn", "live", "2", "linear:50:1m", time_scale=0.02)
                )
                # The first step (50 %) is stored; Redis goes away before the promotion.
                while started.weight < 0.5:
                    await asyncio.sleep(0.02)
                await asyncio.to_thread(redis.stop)
                await asyncio.sleep(2.5)  # past the step's 1.2 s: the promotion waits
                waiting = deployer.get(started.id).to_api(time.time())
                await asyncio.to_thread(redis.start)
                deadline = time.monotonic() + 20
                while deployer.get(started.id).status == "InProgress":
                    assert time.monotonic() < deadline, "the deployment did not end"
                    await asyncio.sleep(0.05)
                return {"waiting": waiting, "ended": deployer.get(started.id).to_api(time.time())}

        outcome = asyncio.run(scenario())
        assert outcome["waiting"]["status"] == "InProgress"
        messages = [event["message"] for event in outcome["ended"]["events"]]
        assert any("waiting for the cluster's Redis" in m for m in messages), messages
        assert outcome["ended"]["status"] == "Succeeded", messages
        assert store.alias("fn", "live").version == "2"
        # Redis has it too (it came back empty, the change was stored after).
        replica = SharedState(redis.url, tmp_path / "other" / ".edge")
        replica.pull()
        assert FunctionStore(tmp_path / "other" / ".edge").alias("fn", "live").version == "2"
    finally:
        redis.stop()
