"""Lambda's Invoke API on the admin listener, driven by boto3 against a real `edge serve`."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import httpx
import pytest

from edge.invoke.names import FunctionRef, parse_function_name
from tests.conftest import EdgeProcess
from tests.invoke_functions.harness import edge_config, function_table, lambda_client, start_edge

ARN = "arn:aws:lambda:us-east-1:123456789012:function"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("invoke-api")
    functions = "".join(
        [
            function_table("echo", "echo"),
            function_table("context", "client_context"),
            function_table("fail", "fail"),
            function_table("chatty", "chatty"),
            function_table("sleepy", "sleepy", timeout=1),
            function_table("closed", "echo", reserved_concurrency=0),
            function_table(
                "described",
                "echo",
                timeout=7,
                memory=256,
                environment={"GREETING": "hi"},
                ephemeral_storage=1024,
            ),
        ]
    )
    invoke = "sync_payload_bytes = 65536\nasync_payload_bytes = 4096\n"
    process = start_edge(edge_config(tmp, functions, invoke), tmp)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(edge: EdgeProcess) -> Any:
    return lambda_client(edge)


def test_sync_invoke_returns_the_result(client: Any) -> None:
    response = client.invoke(FunctionName="echo", Payload=b'{"n": 1}')
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    body = json.loads(response["Payload"].read())
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    assert body["echo"] == {"n": 1}
    # The function's context sees the request id the caller got back.
    assert body["request_id"] == headers["x-amzn-requestid"]


@pytest.mark.parametrize(
    ("name", "qualifier"),
    [
        pytest.param("echo:$LATEST", None, id="name-with-qualifier"),
        pytest.param("echo", "$LATEST", id="qualifier-parameter"),
        pytest.param(f"{ARN}:echo", None, id="full-arn"),
        pytest.param(f"{ARN}:echo:$LATEST", None, id="qualified-arn"),
        pytest.param("123456789012:function:echo", None, id="partial-arn"),
    ],
)
def test_every_name_form_reaches_the_function(
    client: Any, name: str, qualifier: str | None
) -> None:
    extra = {"Qualifier": qualifier} if qualifier else {}
    response = client.invoke(FunctionName=name, Payload=b"[1]", **extra)
    assert json.loads(response["Payload"].read())["echo"] == [1]


def test_client_context_reaches_the_handlers_context(client: Any) -> None:
    sent = {
        "client": {"installation_id": "inst-7", "app_title": "Edge App"},
        "custom": {"tenant": "blue"},
        "env": {"platform": "Android"},
    }
    encoded = base64.b64encode(json.dumps(sent).encode()).decode()
    response = client.invoke(FunctionName="context", Payload=b"{}", ClientContext=encoded)
    assert json.loads(response["Payload"].read()) == {
        "client_context": {
            "installation_id": "inst-7",
            "app_title": "Edge App",
            "custom": {"tenant": "blue"},
            "env": {"platform": "Android"},
        }
    }


def test_no_client_context_unless_sent(client: Any) -> None:
    response = client.invoke(FunctionName="context", Payload=b"{}")
    assert json.loads(response["Payload"].read()) == {"client_context": None}


def test_function_error_is_a_200_with_the_error_document(client: Any) -> None:
    response = client.invoke(FunctionName="fail", Payload=b"{}")
    document = json.loads(response["Payload"].read())
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert document["errorType"] == "KeyError"
    assert document["errorMessage"] == "'action'"
    assert document["requestId"] == response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert document["stackTrace"]


def test_timeout_uses_the_function_timeout(client: Any) -> None:
    response = client.invoke(FunctionName="sleepy", Payload=b'{"seconds": 10}')
    document = json.loads(response["Payload"].read())
    assert response["FunctionError"] == "Unhandled"
    assert document["errorType"] == "Sandbox.Timedout"
    assert document["errorMessage"].endswith("Task timed out after 1.00 seconds")


def test_log_tail_is_the_last_4_kb_of_the_log(client: Any) -> None:
    response = client.invoke(FunctionName="chatty", Payload=b"{}", LogType="Tail")
    tail = base64.b64decode(response["LogResult"]).decode()
    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert len(tail.encode()) == 4096
    assert "line 0499 of a long log" in tail
    assert "line 0000 of a long log" not in tail
    assert tail.splitlines()[-1].startswith(f"REPORT RequestId: {request_id}")


def test_log_tail_of_a_function_error(client: Any) -> None:
    response = client.invoke(FunctionName="fail", Payload=b"{}", LogType="Tail")
    tail = base64.b64decode(response["LogResult"]).decode()
    assert "about to fail" in tail
    assert "[ERROR] KeyError" in tail


def test_no_log_tail_unless_asked(client: Any) -> None:
    response = client.invoke(FunctionName="echo", Payload=b"{}")
    assert "LogResult" not in response


def test_dry_run_validates_without_running(client: Any) -> None:
    response = client.invoke(FunctionName="echo", InvocationType="DryRun", Payload=b"{}")
    assert response["StatusCode"] == 204
    assert response["Payload"].read() == b""


def _error(call: Any) -> dict[str, Any]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "message"),
    [
        pytest.param(
            {"FunctionName": "missing", "Payload": b"{}"},
            404,
            "ResourceNotFoundException",
            f"Function not found: {ARN}:missing",
            id="unknown-function",
        ),
        pytest.param(
            {"FunctionName": "echo", "Qualifier": "live", "Payload": b"{}"},
            404,
            "ResourceNotFoundException",
            f"Function not found: {ARN}:echo:live",
            id="unknown-alias",
        ),
        pytest.param(
            {"FunctionName": "echo:3", "Payload": b"{}"},
            404,
            "ResourceNotFoundException",
            f"Function not found: {ARN}:echo:3",
            id="unknown-version",
        ),
        pytest.param(
            {"FunctionName": "echo", "Payload": b'{"a": "' + b"x" * 70_000 + b'"}'},
            413,
            "RequestTooLargeException",
            "exceeded maximum allowed payload size (65536 bytes)",
            id="sync-payload-over-limit",
        ),
        pytest.param(
            {
                "FunctionName": "echo",
                "InvocationType": "Event",
                "Payload": b"[" + b"1," * 3000 + b"1]",
            },
            413,
            "RequestTooLargeException",
            "exceeded maximum allowed payload size (4096 bytes)",
            id="async-payload-over-limit",
        ),
        pytest.param(
            {"FunctionName": "echo", "Payload": b"{not json"},
            400,
            "InvalidRequestContentException",
            "Could not parse request body into json",
            id="invalid-json",
        ),
        pytest.param(
            {"FunctionName": "echo", "Payload": b"{}", "ClientContext": "not base64!"},
            400,
            "InvalidRequestContentException",
            "Client context must be a valid Base64-encoded JSON object",
            id="client-context-not-base64",
        ),
        pytest.param(
            {
                "FunctionName": "echo",
                "Payload": b"{}",
                "ClientContext": base64.b64encode(b"[1, 2]").decode(),
            },
            400,
            "InvalidRequestContentException",
            "Client context must be a valid Base64-encoded JSON object",
            id="client-context-not-an-object",
        ),
        pytest.param(
            {"FunctionName": "echo", "InvocationType": "Later", "Payload": b"{}"},
            400,
            "InvalidParameterValueException",
            "invocationType",
            id="unknown-invocation-type",
        ),
        pytest.param(
            {"FunctionName": "echo:a:b", "Payload": b"{}"},
            400,
            "InvalidParameterValueException",
            "functionName",
            id="malformed-name",
        ),
    ],
)
def test_error_responses(
    client: Any, kwargs: dict[str, Any], status: int, code: str, message: str
) -> None:
    response = _error(lambda: client.invoke(**kwargs))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["Error"]["Code"] == code
    assert message in response["Error"]["Message"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


def test_throttled_is_429_with_reason_and_retry_after(client: Any) -> None:
    response = _error(lambda: client.invoke(FunctionName="closed", Payload=b"{}"))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["Error"]["Code"] == "TooManyRequestsException"
    assert response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert response["retryAfterSeconds"] == "1"


def test_error_wire_shape_is_rest_json(edge: EdgeProcess) -> None:
    with httpx.Client(base_url=edge.admin_url) as http:
        response = http.post("/2015-03-31/functions/missing/invocations", content=b"{}")
    assert response.status_code == 404
    assert response.headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert response.headers["x-amzn-requestid"]
    assert response.json() == {"Type": "User", "Message": f"Function not found: {ARN}:missing"}


def test_get_function_describes_the_configuration(client: Any) -> None:
    described = client.get_function(FunctionName="described")
    configuration = described["Configuration"]
    assert configuration["FunctionName"] == "described"
    assert configuration["FunctionArn"] == f"{ARN}:described"
    assert configuration["Runtime"].startswith("python3.")
    assert configuration["Handler"] == "handlers.echo"
    assert configuration["Timeout"] == 7
    assert configuration["MemorySize"] == 256
    assert configuration["Version"] == "$LATEST"
    assert configuration["Environment"] == {"Variables": {"GREETING": "hi"}}
    assert configuration["EphemeralStorage"] == {"Size": 1024}
    assert client.get_function(FunctionName="echo")["Configuration"]["Timeout"] == 3
    assert client.get_function(FunctionName="echo")["Configuration"]["EphemeralStorage"] == {
        "Size": 512
    }
    assert client.get_function(FunctionName="closed")["Concurrency"] == {
        "ReservedConcurrentExecutions": 0
    }


def test_get_function_of_an_unknown_function_is_404(client: Any) -> None:
    response = _error(lambda: client.get_function(FunctionName="missing"))
    assert response["Error"]["Code"] == "ResourceNotFoundException"


def test_list_functions_lists_every_function(client: Any) -> None:
    names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
    assert names == ["chatty", "closed", "context", "described", "echo", "fail", "sleepy"]
    pages = client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 4})
    assert [f["FunctionName"] for page in pages for f in page["Functions"]] == names


def test_invoke_metrics_are_published(client: Any, edge: EdgeProcess) -> None:
    _error(lambda: client.invoke(FunctionName="closed", Payload=b"{}"))
    with httpx.Client(base_url=edge.admin_url) as http:
        text = http.get("/metrics").text
        health = http.get("/healthz").text
    assert health == "ok\n"
    assert 'edge_throttles_total{function="closed",' in text
    assert "edge_async_queue_depth" in text
    assert "edge_concurrent_executions" in text


@pytest.mark.parametrize(
    ("text", "qualifier", "expected"),
    [
        pytest.param("f", None, FunctionRef("f", None), id="bare-name"),
        pytest.param("f:live", None, FunctionRef("f", "live"), id="name-and-alias"),
        pytest.param("f", "7", FunctionRef("f", "7"), id="qualifier-parameter"),
        pytest.param("f:7", "7", FunctionRef("f", "7"), id="agreeing-qualifiers"),
        pytest.param(f"{ARN}:f:$LATEST", None, FunctionRef("f", "$LATEST"), id="qualified-arn"),
        pytest.param(
            "arn:aws:lambda:eu-west-3:123456789012:function:f",
            None,
            FunctionRef("f", None),
            id="arn-of-another-region",
        ),
        pytest.param("123456789012:function:f", None, FunctionRef("f", None), id="partial-arn"),
    ],
)
def test_function_names_parse(text: str, qualifier: str | None, expected: FunctionRef) -> None:
    assert parse_function_name(text, qualifier) == expected


@pytest.mark.parametrize(
    ("text", "qualifier"),
    [
        pytest.param("f:1", "2", id="disagreeing-qualifiers"),
        pytest.param("x" * 65, None, id="name-too-long"),
        pytest.param("f g", None, id="space"),
        pytest.param("f", "", id="empty-qualifier"),
        pytest.param("f:", None, id="empty-qualifier-in-name"),
    ],
)
def test_bad_function_names_are_refused(text: str, qualifier: str | None) -> None:
    with pytest.raises(ValueError, match=r"qualifier|functionName"):
        parse_function_name(text, qualifier)
