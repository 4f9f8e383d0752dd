"""Gradual deployments against a real `edge serve`: the admin API moves an alias's weights in
the store over time, hooks and alarms roll it back, a deployment outlives a restart, and
`edge deploy` follows one to its end. Intervals run at a small `time_scale`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.config import load_config
from edge.lambda_service import FunctionStore
from tests.conftest import EdgeProcess

GOOD = "def handler(event, context):\n    return {'version': VERSION}\n"
FAILING = "def handler(event, context):\n    raise RuntimeError('version VERSION is broken')\n"
HOOKS = (
    "def ok(event, context):\n"
    "    assert event['DeploymentId'].startswith('d-') and event['LifecycleEventHookExecutionId']\n"
    "    return {'status': 'Succeeded'}\n"
    "def failed(event, context):\n"
    "    return {'status': 'Failed'}\n"
    "def raises(event, context):\n"
    "    raise ValueError('smoke test failed')\n"
)
# For a viewer-response trigger: version 1 passes the response on, version 2 raises.
PASSING_RESPONSE = (
    "def handler(event, context):\n    return event['Records'][0]['cf']['response']\n"
)
FUNCTIONS = ("canary", "hooked", "cli", "restart", "moved", "flaky", "edgy")


def _write_site(tmp: Path) -> Path:
    (tmp / "site" / "edgy").mkdir(parents=True)
    (tmp / "site" / "edgy" / "index.html").write_text("hello")
    (tmp / "hooks").mkdir()
    (tmp / "hooks" / "hooks.py").write_text(HOOKS)
    tables = [
        f'[origins.site]\ndirectory = "{tmp / "site"}"\n',
        f'[invoke]\nqueue_path = "{tmp / "queue.sqlite3"}"\n',
    ]
    tables += [
        f'[functions.hook_{hook}]\ncode = "hooks"\nhandler = "hooks.{hook}"\n'
        for hook in ("ok", "failed", "raises")
    ]
    for name in FUNCTIONS:
        (tmp / name).mkdir()
        (tmp / name / "app.py").write_text(GOOD.replace("VERSION", "0"))
        tables.append(f'[functions.{name}]\ncode = "{name}"\nhandler = "app.handler"\n')
    tables += [
        '[[behaviors]]\npath = "/edgy/*"\norigin = "site"\nviewer-response = "edgy:live"\n',
        '[[behaviors]]\npath = "*"\norigin = "site"\n',
    ]
    path = tmp / "edge.toml"
    path.write_text("\n".join(tables))
    # The trigger's alias must exist when the edge starts.
    _two_versions(path, "edgy", first=PASSING_RESPONSE, second=FAILING)
    return path


def _publish(config_path: Path, function: str, code: str) -> str:
    """Write `code` as the function's $LATEST and publish it; the version's number."""
    version_slot = str(len(FunctionStore(config_path.parent / ".edge").versions(function)) + 1)
    (config_path.parent / function / "app.py").write_text(code.replace("VERSION", version_slot))
    config = load_config(config_path, qualifiers_exist=False)
    store = FunctionStore(config.server.state_dir)
    return store.publish(function, config.functions[function]).number


def _two_versions(
    config_path: Path, function: str, *, first: str = GOOD, second: str = GOOD
) -> FunctionStore:
    """Versions 1 (`first`) and 2 (`second`) of `function`, alias `live` on 1."""
    assert _publish(config_path, function, first) == "1"
    assert _publish(config_path, function, second) == "2"
    store = FunctionStore(config_path.parent / ".edge")
    store.create_alias(function, "live", "1")
    return store


def _start(config_path: Path) -> EdgeProcess:
    edge = EdgeProcess([str(config_path), "--admin", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
    return edge.start(config_path.parent)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("deploy")
    tmp.chmod(0o755)
    return _write_site(tmp)


@pytest.fixture(scope="module")
def edge(site: Path) -> Iterator[EdgeProcess]:
    process = _start(site)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(edge: EdgeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.admin_url, timeout=30) as client:
        yield client


def _until_ended(admin: httpx.Client, deployment_id: str, seen: list[Any] | None = None) -> Any:
    """Poll the deployment until it ends (collecting each document in `seen`)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        document = admin.get(f"/deployments/{deployment_id}").json()
        if seen is not None:
            seen.append(document)
        if document["status"] != "InProgress":
            return document
        time.sleep(0.05)
    raise AssertionError(f"deployment {deployment_id} did not end: {document}")


def test_canary_shifts_then_promotes(site: Path, admin: httpx.Client) -> None:
    store = _two_versions(site, "canary")
    started = admin.post(
        "/deployments",
        json={
            "function": "canary",
            "alias": "live",
            "version": "2",
            "strategy": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
            "time_scale": 0.005,  # 5 minutes in 1.5 s
        },
    )
    assert started.status_code == 201, started.text
    deployment = started.json()
    assert deployment["strategy"] == "Canary10Percent5Minutes"
    assert (deployment["from_version"], deployment["to_version"]) == ("1", "2")

    # One deployment per alias at a time.
    again = admin.post(
        "/deployments",
        json={"function": "canary", "alias": "live", "version": "2", "strategy": "AllAtOnce"},
    )
    assert again.status_code == 409
    assert deployment["id"] in again.json()["error"]

    seen: list[Any] = []
    aliases: list[dict[str, float]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen.append(admin.get(f"/deployments/{deployment['id']}").json())
        aliases.append(dict(store.alias("canary", "live").additional_weights))
        if seen[-1]["status"] != "InProgress":
            break
        time.sleep(0.05)
    final = seen[-1]
    assert final["status"] == "Succeeded", final
    weights = [d["weight"] for d in seen]
    assert 0.1 in weights
    assert weights[-1] == 1.0
    # The alias held 10 % on version 2 during the step, then version 2 whole.
    assert {"2": 0.1} in aliases
    alias = store.alias("canary", "live")
    assert (alias.version, dict(alias.additional_weights)) == ("2", {})

    metrics = admin.get("/metrics").text
    assert 'edge_deployment_weight{alias="live",function="canary"} 1.0' in metrics
    assert 'edge_deployments_total{outcome="Succeeded"}' in metrics
    listed = admin.get("/deployments", params={"function": "canary"}).json()["deployments"]
    assert [d["id"] for d in listed] == [deployment["id"]]


@pytest.mark.parametrize(
    ("function", "path"),
    [
        pytest.param(
            "flaky", "/2015-03-31/functions/flaky/invocations?Qualifier=live", id="invoke"
        ),
        pytest.param("edgy", "/edgy/index.html", id="viewer-response-trigger"),
    ],
)
def test_a_failing_version_rolls_back_on_its_error_rate(
    site: Path, edge: EdgeProcess, admin: httpx.Client, function: str, path: str
) -> None:
    store = FunctionStore(site.parent / ".edge")
    if function == "flaky":
        _two_versions(site, function, second=FAILING)
    deployment = admin.post(
        "/deployments",
        json={
            "function": function,
            "alias": "live",
            "version": "2",
            "strategy": "canary:50:10m",
            "time_scale": 0.5,  # 5 minutes: ended by the alarm long before
            "max_error_rate": 0.2,
            "min_invocations": 10,
        },
    ).json()
    statuses: list[int] = []
    url = (edge.admin_url if path.startswith("/2015") else edge.url) + path
    # A version's first invocation starts its runtime: seconds on a busy machine.
    with httpx.Client(timeout=60) as traffic:
        deadline = time.monotonic() + 120
        while admin.get(f"/deployments/{deployment['id']}").json()["status"] == "InProgress":
            assert time.monotonic() < deadline
            response = traffic.request("POST" if path.startswith("/2015") else "GET", url)
            statuses.append(
                500 if response.headers.get("x-amz-function-error") else response.status_code
            )
        # Once the routers saw the rollback (within half a second), version 1 serves alone.
        in_a_row = 0
        deadline = time.monotonic() + 30
        while in_a_row < 10:
            assert time.monotonic() < deadline
            response = traffic.request("POST" if path.startswith("/2015") else "GET", url)
            good = response.status_code == 200 and "x-amz-function-error" not in response.headers
            in_a_row = in_a_row + 1 if good else 0
    final = admin.get(f"/deployments/{deployment['id']}").json()
    assert final["status"] == "Failed"
    assert "alarm on version 2, step 1: error rate" in final["reason"]
    # Both versions served during the step (version 2's error: a 200 with X-Amz-Function-Error
    # from the Invoke API, counted as 500 here; a 503 LambdaExecutionError from the trigger).
    assert {500, 503} & set(statuses)
    assert 200 in statuses
    alias = store.alias(function, "live")
    assert (alias.version, dict(alias.additional_weights)) == ("1", {})
    assert final["current"]["2"]["errors"] >= 10


@pytest.mark.parametrize(
    ("hook", "reason"),
    [
        pytest.param("hook_failed", '"status": "Failed"', id="returns-failed"),
        pytest.param("hook_raises", "smoke test failed", id="function-error"),
    ],
)
def test_failing_pre_traffic_hook_rolls_back_before_any_shift(
    site: Path, admin: httpx.Client, hook: str, reason: str
) -> None:
    function = "hooked"
    store = FunctionStore(site.parent / ".edge")
    if not store.versions(function):
        _two_versions(site, function)
    started = admin.post(
        "/deployments",
        json={
            "function": function,
            "alias": "live",
            "version": "2",
            "strategy": "Linear10PercentEvery1Minute",
            "pre_traffic_hook": hook,
            "post_traffic_hook": "hook_ok",
        },
    ).json()
    seen: list[Any] = []
    final = _until_ended(admin, started["id"], seen)
    assert final["status"] == "Failed"
    assert f"pre-traffic hook {hook}" in final["reason"]
    assert reason in final["reason"]
    assert all(d["weight"] == 0 for d in seen)
    assert not any("step" in e["message"] for e in final["events"])
    alias = store.alias(function, "live")
    assert (alias.version, dict(alias.additional_weights)) == ("1", {})


def test_refusals(site: Path, admin: httpx.Client) -> None:
    cases = [
        ({"function": "canary", "alias": "nope", "version": "2", "strategy": "AllAtOnce"}, 404),
        ({"function": "cli", "alias": "live", "version": "9", "strategy": "AllAtOnce"}, 404),
        ({"function": "canary", "alias": "live", "version": "1", "strategy": "Canary5"}, 400),
        ({"function": "canary", "alias": "live", "version": "1", "strategy": "AllAtOnce",
          "pre_traffic_hook": "missing"}, 404),
        ({"function": "canary", "alias": "live"}, 400),
    ]  # fmt: skip
    for body, status in cases:
        response = admin.post("/deployments", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]


def test_edge_deploy_follows_to_the_end_and_stops(site: Path, edge: EdgeProcess) -> None:
    store = _two_versions(site, "cli")
    admin = edge.admin_url.removeprefix("http://")
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["deploy", "cli", "--alias", "live", "--version", "2", "--strategy", "linear:50:1m",
         "--post-traffic-hook", "hook_ok", "--time-scale", "0.01", "--admin", admin],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "from version 1 to 2, linear:50:1m" in result.output
    assert "step 1: 50 % to version 2" in result.output
    assert "post-traffic hook hook_ok succeeded" in result.output
    assert result.output.rstrip().endswith("Succeeded")
    assert store.alias("cli", "live").version == "2"

    # Back to version 1, slowly; --no-wait returns at once; --stop rolls it back.
    started = runner.invoke(
        main,
        ["deploy", "cli", "--alias", "live", "--version", "1", "--strategy",
         "Canary10Percent30Minutes", "--no-wait", "--admin", admin],
    )  # fmt: skip
    assert started.exit_code == 0, started.output
    deployment_id = started.output.split()[1].rstrip(":")
    refused = runner.invoke(
        main,
        ["deploy", "cli", "--alias", "live", "--version", "1", "--strategy", "AllAtOnce",
         "--admin", admin],
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "409" in refused.output
    stopped = runner.invoke(
        main, ["deployments", deployment_id, "--stop", "--json", "--admin", admin]
    )
    assert stopped.exit_code == 0, stopped.output
    document = json.loads(stopped.output)
    assert document["status"] == "Stopped"
    alias = store.alias("cli", "live")
    assert (alias.version, dict(alias.additional_weights)) == ("2", {})


def test_a_deployment_resumes_after_a_restart(tmp_path: Path) -> None:
    site = _write_site(tmp_path)
    store = _two_versions(site, "restart")
    _two_versions(site, "moved")
    edge = _start(site)
    try:
        with httpx.Client(base_url=edge.admin_url, timeout=30) as admin:
            ids = {
                function: admin.post(
                    "/deployments",
                    json={
                        "function": function,
                        "alias": "live",
                        "version": "2",
                        "strategy": "linear:25:1m",
                        "time_scale": 0.03,  # 1.8 s a step, 5.4 s in all
                    },
                ).json()["id"]
                for function in ("restart", "moved")
            }
            deadline = time.monotonic() + 30
            while admin.get(f"/deployments/{ids['restart']}").json()["step"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        edge.stop()
    # Stopped mid-way: the alias stays shifted, owned by the deployment on disk.
    assert dict(store.alias("restart", "live").additional_weights) in ({"2": 0.5}, {"2": 0.25})
    # Meanwhile someone moves the other alias by hand: that deployment must not undo it.
    store.update_alias("moved", "live", version="2", additional_weights={})
    edge = _start(site)
    try:
        with httpx.Client(base_url=edge.admin_url, timeout=30) as admin:
            final = _until_ended(admin, ids["restart"])
            moved = _until_ended(admin, ids["moved"])
    finally:
        edge.stop()
    assert final["status"] == "Succeeded", final
    assert any("resumed after a restart" in e["message"] for e in final["events"])
    alias = store.alias("restart", "live")
    assert (alias.version, dict(alias.additional_weights)) == ("2", {})
    assert moved["status"] == "Failed"
    assert "cannot resume after a restart" in moved["reason"]
    assert "moved to version 2 outside the deployment" in moved["reason"]
    alias = store.alias("moved", "live")
    assert (alias.version, dict(alias.additional_weights)) == ("2", {})
