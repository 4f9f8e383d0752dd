"""Lambda's calls that change a running function, driven by boto3 against a real `edge serve`:
UpdateFunctionCode (served at once, kept across a restart), UpdateFunctionConfiguration,
GetFunctionConfiguration, reserved and provisioned concurrency, and their errors."""

from __future__ import annotations

import base64
import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest

from tests.conftest import EdgeProcess
from tests.invoke_functions.harness import lambda_client, wait_until

CONFIG = """\
[server]
admin = "127.0.0.1:0"
workers = {workers}

[origins.site]
directory = "{tmp}/site"

[invoke]
queue_path = "{tmp}/queue.sqlite3"

[[behaviors]]
path = "*"
origin = "site"
viewer-request = "answer"

[functions.answer]
handler = "code/app.handler"

[functions.plain]
handler = "plain/main.handler"
"""

PLAIN = """\
import os


def handler(event, context):
    return {"greeting": os.environ.get("GREETING"), "memory": context.memory_limit_in_mb}
"""


def page(url: str) -> str:
    """The body at `url`, over a connection of its own (with several workers, any of them)."""
    with httpx.Client(timeout=10) as client:
        return client.get(url).text


def answer_source(answer: str) -> str:
    return f'def handler(event, context):\n    return {{"status": "200", "body": "{answer}"}}\n'


def deployment_package(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def write_project(tmp: Path, workers: int) -> Path:
    tmp.chmod(0o755)
    (tmp / "site").mkdir(exist_ok=True)
    (tmp / "code").mkdir(exist_ok=True)
    (tmp / "code" / "app.py").write_text(answer_source("from edge.toml"))
    (tmp / "plain").mkdir(exist_ok=True)
    (tmp / "plain" / "main.py").write_text(PLAIN)
    config = tmp / "edge.toml"
    config.write_text(CONFIG.format(workers=workers, tmp=tmp))
    return config


def start(config: Path, tmp: Path) -> EdgeProcess:
    return EdgeProcess([str(config), "--listen", "127.0.0.1:0", "--function-logs", "none"]).start(
        tmp
    )


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("config-api")
    process = start(write_project(tmp, workers=1), tmp)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(edge: EdgeProcess) -> Any:
    return lambda_client(edge)


def error_of(call: Any, **arguments: Any) -> tuple[str, int, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**arguments)
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"],
    )


def invoke(client: Any, name: str) -> Any:
    return json.loads(client.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())


def test_update_function_configuration_reaches_the_function(client: Any) -> None:
    assert invoke(client, "plain") == {"greeting": None, "memory": "128"}
    updated = client.update_function_configuration(
        FunctionName="plain",
        Environment={"Variables": {"GREETING": "hello"}},
        MemorySize=256,
        Timeout=9,
        Description="says hello",
    )
    assert updated["Environment"] == {"Variables": {"GREETING": "hello"}}
    assert (updated["MemorySize"], updated["Timeout"]) == (256, 9)
    assert invoke(client, "plain") == {"greeting": "hello", "memory": "256"}
    got = client.get_function_configuration(FunctionName="plain")
    assert got["Description"] == "says hello"
    assert got["RevisionId"] == updated["RevisionId"]
    del got["ResponseMetadata"]
    assert client.get_function(FunctionName="plain")["Configuration"] == got


def test_update_function_configuration_refusals(client: Any) -> None:
    call = client.update_function_configuration
    assert error_of(call, FunctionName="plain", Role="arn:aws:iam::1:role/x") == (
        "InvalidParameterValueException",
        400,
        "InvalidParameterValueException",
    )
    assert error_of(call, FunctionName="plain", Timeout=901)[0] == (
        "InvalidParameterValueException"
    )
    # A Lambda@Edge function keeps its trigger's limits: 5 s at viewer-request.
    assert error_of(call, FunctionName="answer", Timeout=30)[0] == "InvalidParameterValueException"
    assert error_of(call, FunctionName="plain", RevisionId="stale")[0] == (
        "PreconditionFailedException"
    )
    assert error_of(call, FunctionName="missing", Timeout=3) == (
        "ResourceNotFoundException",
        404,
        "ResourceNotFoundException",
    )


def test_update_function_code_refuses_code_that_cannot_start(
    client: Any, edge: EdgeProcess
) -> None:
    before = page(f"{edge.url}/")
    package = deployment_package({"other.py": "x = 1\n"})
    code, status, _ = error_of(client.update_function_code, FunctionName="answer", ZipFile=package)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert error_of(client.update_function_code, FunctionName="answer", ZipFile=b"not a zip")[
        0
    ] == ("InvalidParameterValueException")
    assert page(f"{edge.url}/") == before


def test_reserved_concurrency(client: Any) -> None:
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(
        FunctionName="plain"
    )
    client.put_function_concurrency(FunctionName="plain", ReservedConcurrentExecutions=0)
    assert (
        client.get_function_concurrency(FunctionName="plain")["ReservedConcurrentExecutions"] == 0
    )
    # Reserved concurrency 0 throttles every invocation.
    assert error_of(client.invoke, FunctionName="plain", Payload=b"{}")[0] == (
        "TooManyRequestsException"
    )
    client.delete_function_concurrency(FunctionName="plain")
    assert invoke(client, "plain")["memory"]
    # The node keeps 100 unreserved (node_concurrency 1000).
    assert error_of(
        client.put_function_concurrency, FunctionName="plain", ReservedConcurrentExecutions=950
    )[0] == ("InvalidParameterValueException")


def test_provisioned_concurrency_takes_a_version_or_alias(client: Any) -> None:
    put = client.put_provisioned_concurrency_config
    assert (
        error_of(put, FunctionName="plain", Qualifier="$LATEST", ProvisionedConcurrentExecutions=1)[
            0
        ]
        == "InvalidParameterValueException"
    )
    # No version is published here: a version or alias names nothing yet.
    assert (
        error_of(put, FunctionName="plain", Qualifier="1", ProvisionedConcurrentExecutions=1)[0]
        == "ResourceNotFoundException"
    )
    get = client.get_provisioned_concurrency_config
    assert error_of(get, FunctionName="plain", Qualifier="live")[0] == "ResourceNotFoundException"


def test_update_function_code_serves_the_upload_on_every_worker_and_after_a_restart(
    tmp_path: Path,
) -> None:
    config = write_project(tmp_path, workers=2)
    edge = start(config, tmp_path)
    try:
        client = lambda_client(edge)
        package = deployment_package({"app.py": answer_source("uploaded")})
        updated = client.update_function_code(FunctionName="answer", ZipFile=package)
        assert updated["CodeSize"] == len(package)
        # Both workers follow the state file; fresh connections reach either.
        wait_until(
            lambda: all(page(f"{edge.url}/") == "uploaded" for _ in range(8)),
            what="the uploaded code on every worker",
        )
        # The user's folder is untouched.
        assert "from edge.toml" in (tmp_path / "code" / "app.py").read_text()
    finally:
        edge.stop()
    edge = start(config, tmp_path)
    try:
        assert page(f"{edge.url}/") == "uploaded"
        sha = lambda_client(edge).get_function_configuration(FunctionName="answer")["CodeSha256"]
        assert sha == updated["CodeSha256"]
    finally:
        edge.stop()


def _idle_environments(edge: EdgeProcess, function: str) -> float:
    with httpx.Client(timeout=10) as http:
        text = http.get(f"{edge.admin_url}/metrics").text
    pattern = (
        rf'edge_function_environments\{{function="{re.escape(function)}",state="idle"\}} (\S+)'
    )
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def _eventually(condition: Any, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_provisioned_concurrency_starts_a_versions_environments(
    edge: EdgeProcess, client: Any
) -> None:
    version = client.publish_version(FunctionName="plain")["Version"]
    client.put_provisioned_concurrency_config(
        FunctionName="plain", Qualifier=version, ProvisionedConcurrentExecutions=2
    )
    assert _eventually(lambda: _idle_environments(edge, f"plain:{version}") == 2)
    # A provisioned environment ran its Init in advance: no Init Duration on the first call.
    response = client.invoke(FunctionName=f"plain:{version}", Payload=b"{}", LogType="Tail")
    log = base64.b64decode(response["LogResult"]).decode()
    assert "REPORT RequestId:" in log
    assert "Init Duration" not in log
    client.delete_provisioned_concurrency_config(FunctionName="plain", Qualifier=version)
    assert _eventually(lambda: _idle_environments(edge, f"plain:{version}") == 0)


@pytest.mark.parametrize(
    "member", ["../escape.py", "/tmp/edge-absolute-escape.py"], ids=["dot-dot", "absolute"]
)
def test_update_function_code_refuses_members_outside_the_package(
    client: Any, edge: EdgeProcess, member: str
) -> None:
    before = page(f"{edge.url}/")
    package = deployment_package({"app.py": answer_source("uploaded"), member: "x = 1\n"})
    code, status, _ = error_of(client.update_function_code, FunctionName="answer", ZipFile=package)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert not Path("/tmp/edge-absolute-escape.py").exists()
    assert page(f"{edge.url}/") == before


def test_publish_version_after_update_function_code_snapshots_the_upload(
    tmp_path: Path,
) -> None:
    """PublishVersion takes `$LATEST` as the API left it, not as edge.toml started it."""
    edge = start(write_project(tmp_path, workers=1), tmp_path)
    try:
        client = lambda_client(edge)
        first = client.publish_version(FunctionName="plain")["Version"]
        package = deployment_package({"main.py": PLAIN.replace("GREETING", "UPLOADED")})
        client.update_function_code(FunctionName="plain", ZipFile=package)
        second = client.publish_version(FunctionName="plain")["Version"]
        assert (first, second) == ("1", "2")
        shas = [
            client.get_function_configuration(FunctionName="plain", Qualifier=q)["CodeSha256"]
            for q in ("1", "2")
        ]
        assert shas[0] != shas[1]
        # The second version runs the uploaded handler file, the first the original.
        snapshot = tmp_path / ".edge" / "lambda" / "functions" / "plain"
        assert "UPLOADED" in (snapshot / "2" / "code" / "main.py").read_text()
        assert "GREETING" in (snapshot / "1" / "code" / "main.py").read_text()
    finally:
        edge.stop()
