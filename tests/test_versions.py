"""Published versions and aliases: `edge publish`, qualified trigger associations, the
management API through boto3, weighted routing, and the state surviving a restart."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.config import load_config
from edge.functions import FunctionRegistry, publish_function
from tests.conftest import EdgeProcess
from tests.invoke_functions.harness import lambda_client, read_jsonl, wait_until

ARN = "arn:aws:lambda:us-east-1:123456789012:function"

# One handler file for both functions: `code` says which working copy this is.
HANDLER = """
import os

CODE = {code!r}


def handler(event, context):
    return {{
        "code": CODE,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "env_version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
    }}


def tag(event, context):
    response = event["Records"][0]["cf"]["response"]
    response["headers"]["x-code"] = [{{"key": "X-Code", "value": CODE}}]
    response["headers"]["x-version"] = [
        {{"key": "X-Version", "value": context.function_version}}
    ]
    return response
"""


def write_code(folder: Path, code: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "app.py").write_text(HANDLER.format(code=code))


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def edge_cli(*args: str, cwd: Path) -> Ran:
    """`edge ARGS...` run in this process (in `cwd`), as a shell would run it."""
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, list(args))
    finally:
        os.chdir(previous)
    return Ran(result.exit_code, result.stdout, result.stderr)


def write_config(tmp: Path, *, workers: int = 1, tagger: str = "tagger:1") -> Path:
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    for folder in ("pinned", "live", "latest"):
        (site / folder).mkdir(exist_ok=True)
        (site / folder / "index.html").write_text("hello")
    path = tmp / "edge.toml"
    path.write_text(
        f"[server]\nworkers = {workers}\n\n"
        f'[origins.site]\ndirectory = "{site}"\n\n'
        f'[invoke]\nqueue_path = "{tmp / "queue.sqlite3"}"\n\n'
        f'[[behaviors]]\npath = "/pinned/*"\norigin = "site"\nviewer-response = "{tagger}"\n\n'
        '[[behaviors]]\npath = "/live/*"\norigin = "site"\nviewer-response = "tagger:live"\n\n'
        '[[behaviors]]\npath = "/latest/*"\norigin = "site"\nviewer-response = "tagger"\n\n'
        '[[behaviors]]\npath = "*"\norigin = "site"\n\n'
        '[functions.tagger]\ncode = "tagger"\nhandler = "app.tag"\n\n'
        '[functions.tagger.aliases.live]\nversion = "1"\n\n'
        '[functions.fn]\ncode = "fn"\nhandler = "app.handler"\n'
        'on_success = "file:succeeded.jsonl"\n'
    )
    return path


def start(tmp: Path, config: Path) -> EdgeProcess:
    edge = EdgeProcess([str(config), "--admin", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
    return edge.start(tmp)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, EdgeProcess]]:
    """An edge whose `tagger` version 1 was published by `edge publish` before its working
    copy changed from "A" to "B"; `fn` has its working copy "A" and nothing published."""
    tmp = tmp_path_factory.mktemp("versions")
    write_code(tmp / "tagger", "A")
    write_code(tmp / "fn", "A")
    config = write_config(tmp)
    # The association names version 1 and the alias it: refused until it is published.
    refused = edge_cli("check", str(config), cwd=tmp)
    assert refused.returncode == 2
    assert (
        "behaviors[0].viewer-response: expected a published version of 'tagger' "
        "(none yet: `edge publish tagger` makes one), found 'tagger:1'"
    ) in refused.stderr
    assert "functions.tagger.aliases.live.version: expected a published version" in (refused.stderr)
    published = edge_cli("publish", "tagger", "--config", str(config), cwd=tmp)
    assert published.returncode == 0, published.stderr
    assert published.stdout.startswith("tagger:1 published")
    write_code(tmp / "tagger", "B")
    edge = start(tmp, config)
    yield tmp, edge
    edge.stop()


@pytest.fixture(scope="module")
def client(site: tuple[Path, EdgeProcess]) -> Any:
    return lambda_client(site[1])


def _tags(edge: EdgeProcess, path: str) -> tuple[str, str]:
    with httpx.Client() as viewer:
        response = viewer.get(edge.url + path)
    assert response.status_code == 200, response.text
    return response.headers["x-code"], response.headers["x-version"]


def test_a_qualified_trigger_runs_the_published_code(site: tuple[Path, EdgeProcess]) -> None:
    _, edge = site
    assert _tags(edge, "/pinned/index.html") == ("A", "1")
    assert _tags(edge, "/live/index.html") == ("A", "1")  # the alias edge.toml declares
    assert _tags(edge, "/latest/index.html") == ("B", "$LATEST")  # the working copy
    edge.wait_for(r"START RequestId: \S+ Version: 1")
    with httpx.Client(base_url=edge.admin_url) as admin:
        metrics = admin.get("/metrics").text
    for version in ("1", "$LATEST"):
        assert (
            f'edge_function_invocations_total{{function="tagger",trigger="viewer-response",'
            f'version="{version}"}}'
        ) in metrics


def _error(call: Any) -> tuple[int, str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    response = caught.value.response
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-errortype"] == response["Error"]["Code"]
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def _invoke(client: Any, name: str, **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    response = client.invoke(FunctionName=name, Payload=b"{}", **extra)
    return response, json.loads(response["Payload"].read())


def test_versions_and_aliases_through_boto3(site: tuple[Path, EdgeProcess], client: Any) -> None:
    tmp, _ = site
    first = client.publish_version(FunctionName="fn", Description="first")
    assert (first["Version"], first["Description"]) == ("1", "first")
    assert first["FunctionArn"] == f"{ARN}:fn:1"
    # The same content again makes no new version (as Lambda).
    assert client.publish_version(FunctionName="fn")["Version"] == "1"
    write_code(tmp / "fn", "B")
    latest_sha = client.get_function(FunctionName="fn")["Configuration"]["CodeSha256"]
    assert _error(lambda: client.publish_version(FunctionName="fn", CodeSha256="x"))[:2] == (
        400,
        "InvalidParameterValueException",
    )
    second = client.publish_version(FunctionName="fn", CodeSha256=latest_sha)
    assert second["Version"] == "2"
    assert second["CodeSha256"] == latest_sha != first["CodeSha256"]

    # Each version runs its own snapshot, and says so.
    response, body = _invoke(client, "fn", Qualifier="1", LogType="Tail")
    assert response["ExecutedVersion"] == "1"
    assert body == {
        "code": "A",
        "function_version": "1",
        "invoked_function_arn": f"{ARN}:fn:1",
        "env_version": "1",
    }
    log = base64.b64decode(response["LogResult"]).decode()
    assert f"START RequestId: {response['ResponseMetadata']['RequestId']} Version: 1\n" in log
    assert _invoke(client, f"{ARN}:fn:2")[1]["code"] == "B"

    versions = client.list_versions_by_function(FunctionName="fn", MaxItems=2)
    assert [v["Version"] for v in versions["Versions"]] == ["$LATEST", "1"]
    rest = client.list_versions_by_function(FunctionName="fn", Marker=versions["NextMarker"])
    assert [v["Version"] for v in rest["Versions"]] == ["2"]
    assert "NextMarker" not in rest
    configuration = client.get_function_configuration(FunctionName="fn", Qualifier="1")
    assert (configuration["Version"], configuration["CodeSha256"]) == ("1", first["CodeSha256"])

    # Aliases: create, read, route, update, list, delete.
    live = client.create_alias(
        FunctionName="fn",
        Name="live",
        FunctionVersion="1",
        Description="production",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.0}},
    )
    assert live["AliasArn"] == f"{ARN}:fn:live"
    assert live["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.0}}
    got = client.get_alias(FunctionName="fn", Name="live")
    assert {k: v for k, v in got.items() if k != "ResponseMetadata"} == {
        k: v for k, v in live.items() if k != "ResponseMetadata"
    }
    response, body = _invoke(client, "fn:live")
    assert (response["ExecutedVersion"], body["code"]) == ("1", "A")
    assert body["invoked_function_arn"] == f"{ARN}:fn:live"
    by_alias = client.get_function(FunctionName="fn", Qualifier="live")["Configuration"]
    assert (by_alias["Version"], by_alias["FunctionArn"]) == ("1", f"{ARN}:fn:live")

    updated = client.update_alias(
        FunctionName="fn", Name="live", FunctionVersion="2", RoutingConfig={}
    )
    assert updated["FunctionVersion"] == "2"
    assert "RoutingConfig" not in updated
    assert updated["RevisionId"] != live["RevisionId"]
    assert _invoke(client, "fn", Qualifier="live")[0]["ExecutedVersion"] == "2"
    client.create_alias(FunctionName="fn", Name="beta", FunctionVersion="$LATEST")
    page = client.list_aliases(FunctionName="fn", MaxItems=1)
    assert [a["Name"] for a in page["Aliases"]] == ["beta"]
    assert [
        a["Name"]
        for a in client.list_aliases(FunctionName="fn", Marker=page["NextMarker"])["Aliases"]
    ] == ["live"]
    assert [
        a["Name"] for a in client.list_aliases(FunctionName="fn", FunctionVersion="2")["Aliases"]
    ] == ["live"]
    client.delete_alias(FunctionName="fn", Name="beta")
    assert [a["Name"] for a in client.list_aliases(FunctionName="fn")["Aliases"]] == ["live"]


def test_an_asynchronous_invocation_runs_the_version_it_named(
    site: tuple[Path, EdgeProcess], client: Any
) -> None:
    tmp, _ = site
    accepted = client.invoke(FunctionName="fn", Qualifier="1", InvocationType="Event")
    assert accepted["StatusCode"] == 202
    [record] = wait_until(lambda: read_jsonl(tmp / "succeeded.jsonl"), what="the record")
    assert record["requestContext"]["functionArn"] == f"{ARN}:fn:1"
    assert record["responseContext"]["executedVersion"] == "1"
    assert record["responsePayload"]["code"] == "A"


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        pytest.param(
            lambda c: c.create_alias(FunctionName="fn", Name="live", FunctionVersion="1"),
            (409, "ResourceConflictException"),
            id="alias-exists",
        ),
        pytest.param(
            lambda c: c.get_alias(FunctionName="fn", Name="nope"),
            (404, "ResourceNotFoundException"),
            id="no-such-alias",
        ),
        pytest.param(
            lambda c: c.create_alias(FunctionName="fn", Name="123", FunctionVersion="1"),
            (400, "InvalidParameterValueException"),
            id="name-all-digits",
        ),
        pytest.param(
            lambda c: c.create_alias(FunctionName="fn", Name="x", FunctionVersion="9"),
            (404, "ResourceNotFoundException"),
            id="unpublished-version",
        ),
        pytest.param(
            lambda c: c.create_alias(FunctionName="fn", Name="x", FunctionVersion="live"),
            (400, "InvalidParameterValueException"),
            id="alias-to-an-alias",
        ),
        pytest.param(
            lambda c: c.create_alias(
                FunctionName="fn",
                Name="x",
                FunctionVersion="$LATEST",
                RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}},
            ),
            (400, "InvalidParameterValueException"),
            id="weights-with-latest",
        ),
        pytest.param(
            lambda c: c.update_alias(FunctionName="fn", Name="live", RevisionId="stale"),
            (412, "PreconditionFailedException"),
            id="stale-revision",
        ),
        pytest.param(
            lambda c: c.delete_alias(FunctionName="tagger", Name="live"),
            (409, "ResourceConflictException"),
            id="alias-named-in-edge-toml",
        ),
        pytest.param(
            lambda c: c.invoke(FunctionName="fn", Qualifier="nope", Payload=b"{}"),
            (404, "ResourceNotFoundException"),
            id="invoke-unknown-alias",
        ),
        pytest.param(
            lambda c: c.invoke(FunctionName="fn:77", Payload=b"{}"),
            (404, "ResourceNotFoundException"),
            id="invoke-unknown-version",
        ),
        pytest.param(
            lambda c: c.publish_version(FunctionName="nope"),
            (404, "ResourceNotFoundException"),
            id="publish-unknown-function",
        ),
    ],
)
def test_errors_in_aws_shapes(
    client: Any, call: Any, expected: tuple[int, str], site: tuple[Path, EdgeProcess]
) -> None:
    assert _error(lambda: call(client))[:2] == expected


def test_update_alias_reaches_every_worker_and_survives_a_restart(
    site: tuple[Path, EdgeProcess], client: Any
) -> None:
    """Runs last: it restarts the module's edge with two workers."""
    tmp, edge = site
    client.publish_version(FunctionName="tagger")  # version 2: the working copy "B"
    edge.stop()
    write_config(tmp, workers=2)
    again = start(tmp, tmp / "edge.toml")
    try:
        client = lambda_client(again)
        assert client.get_alias(FunctionName="fn", Name="live")["FunctionVersion"] == "2"
        versions = client.list_versions_by_function(FunctionName="fn")["Versions"]
        assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
        assert _invoke(client, "fn:1")[1]["code"] == "A"
        # edge.toml's declaration is applied only when it changes: not after a restart.
        client.update_alias(FunctionName="tagger", Name="live", FunctionVersion="2")
        # The admin listener is in the main process, the viewers in two forked workers.
        deadline = time.monotonic() + 10
        seen: list[tuple[str, str]] = []
        while time.monotonic() < deadline:
            seen = [_tags(again, "/live/index.html") for _ in range(20)]
            if set(seen) == {("B", "2")}:
                break
            time.sleep(0.1)
        assert set(seen) == {("B", "2")}
    finally:
        again.stop()
    # Stopped, the state is still there for the CLI.
    listed = edge_cli("alias", "list", "tagger", "--config", str(tmp / "edge.toml"), cwd=tmp)
    assert listed.stdout.splitlines() == ["live\t2\t\t"]


def _binomial_ok(count: int, trials: int, share: float, sigmas: float = 4.5) -> bool:
    spread = sigmas * math.sqrt(trials * share * (1 - share))
    return abs(count - trials * share) <= spread


def test_weighted_alias_splits_invocations(tmp_path: Path) -> None:
    write_code(tmp_path / "fn", "A")
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "edge.toml").write_text(
        f'[origins.site]\ndirectory = "{site}"\n\n'
        '[functions.fn]\ncode = "fn"\nhandler = "app.handler"\n'
    )
    config = load_config(tmp_path / "edge.toml")
    registry = FunctionRegistry(config)
    publish_function(config, registry.store, "fn")
    write_code(tmp_path / "fn", "B")
    publish_function(config, registry.store, "fn")
    registry.store.create_alias("fn", "canary", "1", additional_weights={"2": 0.25})
    trials = 2000

    async def run() -> Counter[str]:
        ran: Counter[str] = Counter()
        await registry.start()
        try:
            for _ in range(trials):
                version = registry.resolve("fn", "canary")
                result = await registry.invoke(
                    "fn", b"{}", request_id="", deadline=time.monotonic() + 10, version=version
                )
                code = json.loads(result.payload)["code"]
                ran[f"{result.executed_version}{code}"] += 1
        finally:
            await registry.aclose()
        return ran

    ran = asyncio.run(run())
    assert set(ran) == {"1A", "2B"}  # each version runs its own code
    assert _binomial_ok(ran["2B"], trials, 0.25), ran


def test_check_names_the_unknown_qualifier(tmp_path: Path) -> None:
    write_code(tmp_path / "fn", "A")
    (tmp_path / "edge.toml").write_text(
        '[origins.a]\nurl = "http://127.0.0.1:9"\n\n'
        '[origins.f]\nfunction = "fn:prod"\n\n'
        '[[behaviors]]\npath = "*"\norigin = "a"\nviewer-request = "fn:$LATEST"\n\n'
        '[functions.fn]\ncode = "fn"\nhandler = "app.handler"\n'
    )
    result = edge_cli("check", "edge.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n  ") == 1  # $LATEST is fine
    assert (
        "origins.f.function: expected $LATEST, a published version or an alias of 'fn' "
        "(aliases: none; `edge alias create` or [functions.fn.aliases.NAME] makes one), "
        "found 'fn:prod'"
    ) in result.stderr


def test_alias_cli(tmp_path: Path) -> None:
    write_code(tmp_path / "fn", "A")
    (tmp_path / "edge.toml").write_text(
        '[origins.a]\nurl = "http://127.0.0.1:9"\n\n'
        '[functions.fn]\ncode = "fn"\nhandler = "app.handler"\n'
    )
    assert edge_cli("publish", "fn", cwd=tmp_path).stdout.startswith("fn:1 published")
    assert edge_cli("publish", "fn", cwd=tmp_path).stdout.startswith("fn:1 unchanged since")
    write_code(tmp_path / "fn", "B")
    edge_cli("publish", "fn", "--description", "second", cwd=tmp_path)
    created = edge_cli(
        "alias", "create", "fn", "live", "--version", "1", "--weight", "2=0.1", cwd=tmp_path
    )
    assert created.stdout == "created fn:live -> 1 (+ 2=0.1)\n", created.stderr
    again = edge_cli("alias", "create", "fn", "live", "--version", "1", cwd=tmp_path)
    assert again.returncode == 1
    assert "Alias already exists: fn:live" in again.stderr
    promoted = edge_cli(
        "alias", "update", "fn", "live", "--version", "2", "--no-weights", cwd=tmp_path
    )
    assert promoted.stdout == "updated fn:live -> 2\n"
    assert edge_cli("versions", "fn", cwd=tmp_path).stdout.count("\n") == 2
    assert edge_cli("alias", "delete", "fn", "live", cwd=tmp_path).returncode == 0
    missing = edge_cli("alias", "delete", "fn", "live", cwd=tmp_path)
    assert missing.returncode == 1
    assert "no such version or alias: fn:live" in missing.stderr
