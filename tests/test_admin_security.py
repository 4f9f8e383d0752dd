"""The admin listener under attack and in honest use, through a real `edge serve`: pages of
other sites and DNS rebinding get nothing; boto3, the AWS CLI and `edge invalidate` sign when
credentials are configured and are refused in AWS's words when they sign wrong; bodies and
batches are bounded; a large invalidation does not stop the proxy."""

from __future__ import annotations

import datetime
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config

from edge.cli import exposure_warning
from tests.conftest import REPO, EdgeProcess, vm_kib
from tests.invoke_functions.harness import HANDLERS, shared_directory
from tests.rawhttp import exchange, read_response, status_of

KEY_ID = "AKIAEDGEADMINTEST"
SECRET = "s3cr3t/admin+key"
STORED_OBJECTS = 6000
EVIL = "http://evil.example"


def _site(tmp: Path) -> Path:
    site = tmp / "site"
    (site / "f").mkdir(parents=True)
    for number in range(STORED_OBJECTS):
        (site / "f" / f"{number}.txt").write_bytes(b"x")
    (site / "stored.txt").write_bytes(b"stored")
    return site


def _config(tmp: Path, site: Path, admin: str) -> Path:
    path = tmp / "edge.toml"
    path.write_text(
        f'[origins.site]\ndirectory = "{site}"\n\n'
        '[[behaviors]]\npath = "*"\norigin = "site"\ncache = "caching-optimized"\n\n'
        f'[invoke]\nqueue_path = "{tmp / "queue.sqlite3"}"\n\n'
        f"[admin]\n{admin}\n\n"
        f'[functions.echo]\nhandler = "{HANDLERS}.echo"\n\n'
        f'[functions.gated]\nhandler = "{HANDLERS}.gated"\n'
        # Its marks go where the test reads them: the one host directory it may write.
        f'writable_paths = ["{shared_directory(tmp)}"]\n'
    )
    return path


def _marks(edge: EdgeProcess, tmp_path: Path) -> Path:
    """This test's marks file, in the writable directory beside the edge's configuration
    (the directory the edge was started in)."""
    assert edge.stdout_path is not None
    return edge.stdout_path.parent / "shared" / f"marks-{tmp_path.name}.jsonl"


def _start(tmp: Path, config: Path, env: dict[str, str] | None = None) -> EdgeProcess:
    edge = EdgeProcess(
        [str(config), "--admin", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--no-access-log"],
        env=env,
    )
    return edge.start(tmp)


@pytest.fixture(scope="module")
def open_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """No credentials: the Host and Origin checks alone."""
    tmp = tmp_path_factory.mktemp("admin-open")
    admin = 'allowed_hosts = ["edge.internal"]\nallowed_origins = ["https://admin.example.com"]'
    edge = _start(tmp, _config(tmp, _site(tmp), admin))
    yield edge
    edge.stop()


@pytest.fixture(scope="module")
def signed_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    """Credentials configured: the secret comes from the environment."""
    tmp = tmp_path_factory.mktemp("admin-signed")
    admin = f'access_key_id = "{KEY_ID}"\nsecret_access_key_env = "EDGE_ADMIN_SECRET"'
    edge = _start(tmp, _config(tmp, _site(tmp), admin), env={"EDGE_ADMIN_SECRET": SECRET})
    yield edge
    edge.stop()


def _port(url: str) -> int:
    return int(url.rpartition(":")[2])


def _x_cache(edge: EdgeProcess, path: str = "/stored.txt") -> str:
    with httpx.Client(base_url=edge.url) as viewer:
        return viewer.get(path).headers["x-cache"]


def _stored(edge: EdgeProcess) -> None:
    _x_cache(edge)
    assert _x_cache(edge) == "Hit from edge"


def lambda_client(edge: EdgeProcess, *, key: str = KEY_ID, secret: str = SECRET) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=edge.admin_url,
        region_name="eu-west-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 0}, read_timeout=30),
    )


def _client_error(call: Any) -> dict[str, Any]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response  # type: ignore[no-any-return]


# -- pages of other sites ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": EVIL}, id="origin"),
        pytest.param({"Origin": "null"}, id="opaque-origin"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="sec-fetch-site-only"),
        pytest.param({"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}, id="port"),
    ],
)
def test_a_cross_site_simple_post_invalidates_nothing(
    open_edge: EdgeProcess, headers: dict[str, str]
) -> None:
    _stored(open_edge)
    with httpx.Client(base_url=open_edge.admin_url) as admin:
        # What an HTML form on any page can send: text/plain, no preflight.
        response = admin.post(
            "/invalidations",
            content=b'{"paths": ["/*"]}',
            headers={"Content-Type": "text/plain", **headers},
        )
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"] == "AccessDeniedException"
    assert "Cross-site request refused" in response.json()["message"]
    assert "access-control-allow-origin" not in response.headers
    assert _x_cache(open_edge) == "Hit from edge"


def test_a_cross_site_simple_post_runs_no_function(open_edge: EdgeProcess, tmp_path: Path) -> None:
    marks = _marks(open_edge, tmp_path)
    body = json.dumps({"marks": str(marks), "id": "x"}).encode()
    path = "/2015-03-31/functions/gated/invocations"
    with httpx.Client(base_url=open_edge.admin_url, timeout=30) as admin:
        refused = admin.post(
            path, content=body, headers={"Content-Type": "text/plain", "Origin": EVIL}
        )
        assert refused.status_code == 403
        assert not marks.exists()
        # The same request from a client that is not a browser page runs it.
        assert admin.post(path, content=body).status_code == 200
    assert marks.exists()


def test_a_rebound_host_name_is_refused(open_edge: EdgeProcess) -> None:
    _stored(open_edge)
    port = _port(open_edge.admin_url)
    with httpx.Client(base_url=open_edge.admin_url, timeout=30) as admin:
        for path, method in [
            ("/invalidations", "POST"),
            ("/2015-03-31/functions/echo/invocations", "POST"),
            ("/metrics", "GET"),
        ]:
            response = admin.request(
                method, path, content=b'{"paths": ["/*"]}', headers={"Host": f"evil.example:{port}"}
            )
            assert response.status_code == 421, path
            assert response.headers["x-amzn-errortype"] == "MisdirectedRequestException"
            assert "does not name this admin listener" in response.json()["message"]
        assert (
            admin.get("/metrics", headers={"Host": f"sub.edge.internal:{port}"}).status_code == 421
        )
        for host in (f"localhost:{port}", f"edge.internal:{port}", f"[::1]:{port}"):
            assert admin.get("/healthz", headers={"Host": host}).status_code == 200, host
    assert _x_cache(open_edge) == "Hit from edge"


def test_a_cors_preflight_is_granted_nothing(open_edge: EdgeProcess) -> None:
    with httpx.Client(base_url=open_edge.admin_url) as admin:
        response = admin.options(
            "/invalidations",
            headers={
                "Origin": "https://admin.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
    assert response.status_code == 403
    assert not [name for name in response.headers if name.startswith("access-control-")]


def test_the_listener_itself_and_configured_origins_are_allowed(open_edge: EdgeProcess) -> None:
    with httpx.Client(base_url=open_edge.admin_url) as admin:
        for origin in (open_edge.admin_url, "https://admin.example.com"):
            response = admin.post(
                "/invalidations",
                json={"paths": ["/nothing-stored-here"]},
                headers={"Origin": origin, "Sec-Fetch-Site": "cross-site"},
            )
            assert response.status_code == 201, origin


def test_serve_warns_when_an_unsigned_listener_is_reachable_beyond_loopback() -> None:
    assert exposure_warning("127.0.0.1:9180", signed=False) is None
    assert exposure_warning("[::1]:9180", signed=False) is None
    assert exposure_warning("localhost:9180", signed=False) is None
    assert exposure_warning("0.0.0.0:9180", signed=True) is None
    for admin in ("0.0.0.0:9180", ":9180", "10.1.2.3:9180", "admin.internal:9180"):
        warning = exposure_warning(admin, signed=False)
        assert warning is not None
        assert "beyond loopback" in warning


# -- signatures -------------------------------------------------------------------------------


def test_boto3_with_the_right_key_works(signed_edge: EdgeProcess) -> None:
    client = lambda_client(signed_edge)
    response = client.invoke(FunctionName="echo", Payload=b'{"n": 1}')
    assert json.loads(response["Payload"].read())["echo"] == {"n": 1}
    assert client.invoke(FunctionName="echo:$LATEST", Payload=b"{}")["StatusCode"] == 200
    names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
    assert names == ["echo", "gated"]
    assert client.get_function(FunctionName="gated")["Configuration"]["Handler"]


@pytest.mark.parametrize(
    ("key", "secret", "code", "words"),
    [
        pytest.param(
            KEY_ID, "wrong", "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
            id="wrong-secret",
        ),
        pytest.param(
            "AKIAUNKNOWN", SECRET, "UnrecognizedClientException",
            "The security token included in the request is invalid.", id="unknown-key",
        ),
    ],
)  # fmt: skip
def test_boto3_signing_wrong_gets_aws_errors(
    signed_edge: EdgeProcess, tmp_path: Path, key: str, secret: str, code: str, words: str
) -> None:
    marks = _marks(signed_edge, tmp_path)
    payload = json.dumps({"marks": str(marks), "id": "x"}).encode()
    client = lambda_client(signed_edge, key=key, secret=secret)
    for call in (
        lambda: client.invoke(FunctionName="gated", Payload=payload),
        lambda: client.list_functions(),
    ):
        response = _client_error(call)
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert response["Error"]["Code"] == code
        assert words in response["Error"]["Message"]
    assert not marks.exists()


@pytest.mark.parametrize(
    ("minutes", "words"),
    [
        pytest.param(-20, "Signature expired: ", id="slow-clock"),
        pytest.param(20, "Signature not yet current: ", id="fast-clock"),
    ],
)
def test_a_skewed_clock_gets_aws_error(
    signed_edge: EdgeProcess, monkeypatch: pytest.MonkeyPatch, minutes: int, words: str
) -> None:
    skewed = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)
    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda *_a, **_k: skewed.replace(tzinfo=None)
    )
    response = _client_error(lambda: lambda_client(signed_edge).list_functions())
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert response["Error"]["Code"] == "InvalidSignatureException"
    assert response["Error"]["Message"].startswith(words)
    assert "15 min.)" in response["Error"]["Message"]


def test_unsigned_requests_are_refused_and_healthz_stays_open(signed_edge: EdgeProcess) -> None:
    _stored(signed_edge)
    with httpx.Client(base_url=signed_edge.admin_url) as admin:
        for method, path in [
            ("POST", "/invalidations"),
            ("GET", "/metrics"),
            ("GET", "/2015-03-31/functions/"),
            ("POST", "/2015-03-31/functions/echo/invocations"),
            ("GET", "/no-such-path"),
        ]:
            response = admin.request(method, path, content=b'{"paths": ["/*"]}')
            assert response.status_code == 403, path
            assert response.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
            assert response.json()["message"] == "Missing Authentication Token"
        assert admin.get("/healthz").text == "ok\n"
    assert _x_cache(signed_edge) == "Hit from edge"


def test_a_signed_request_from_a_page_of_another_site_is_still_refused(
    signed_edge: EdgeProcess,
) -> None:
    client = lambda_client(signed_edge)
    client.meta.events.register(
        "before-sign.lambda.ListFunctions",
        lambda request, **_: request.headers.__setitem__("Origin", EVIL),
    )
    assert _client_error(client.list_functions)["Error"]["Code"] == "AccessDeniedException"


def _edge_invalidate(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "invalidate", *args],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_edge_invalidate_signs_with_the_configured_key(signed_edge: EdgeProcess) -> None:
    _stored(signed_edge)
    admin = signed_edge.admin_url.removeprefix("http://")
    config = signed_edge.args[0]
    unsigned = _edge_invalidate("/stored.txt", "--admin", admin)
    assert unsigned.returncode == 1
    assert "403: Missing Authentication Token" in unsigned.stderr
    wrong = _edge_invalidate(
        "/stored.txt", "--admin", admin, "--config", config, env={"EDGE_ADMIN_SECRET": "nope"}
    )
    assert wrong.returncode == 1
    assert "The request signature we calculated does not match" in wrong.stderr
    assert _x_cache(signed_edge) == "Hit from edge"
    signed = _edge_invalidate(
        "/stored.txt", "--admin", admin, "--config", config, env={"EDGE_ADMIN_SECRET": SECRET}
    )
    assert signed.returncode == 0, signed.stderr
    assert "/stored.txt: 1 cached responses removed" in signed.stdout
    assert _x_cache(signed_edge) == "Miss from edge"


def test_a_secret_file_and_unsigned_metrics(tmp_path: Path) -> None:
    secret = tmp_path / "admin-secret"
    secret.write_text(SECRET + "\n")
    admin = (
        f'access_key_id = "{KEY_ID}"\nsecret_access_key_file = "admin-secret"\n'
        "unsigned_metrics = true"
    )
    (tmp_path / "site").mkdir()
    edge = _start(tmp_path, _config(tmp_path, tmp_path / "site", admin))
    try:
        with httpx.Client(base_url=edge.admin_url) as http:
            assert http.get("/metrics").status_code == 200  # Prometheus cannot sign
            assert http.post("/invalidations", json={"paths": ["/a"]}).status_code == 403
            assert http.get("/metrics", headers={"Origin": EVIL}).status_code == 403
        assert lambda_client(edge).invoke(FunctionName="echo", Payload=b"{}")["StatusCode"] == 200
    finally:
        edge.stop()


def test_a_missing_secret_stops_serve_before_it_listens(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    admin = f'access_key_id = "{KEY_ID}"\nsecret_access_key_env = "EDGE_TEST_UNSET_SECRET"'
    config = _config(tmp_path, tmp_path / "site", admin)
    env = {k: v for k, v in os.environ.items() if k != "EDGE_TEST_UNSET_SECRET"}
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "serve", str(config), "--admin", "127.0.0.1:0",
         "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 2
    assert "the environment variable EDGE_TEST_UNSET_SECRET" in result.stderr


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_the_aws_cli_signs_and_is_checked(signed_edge: EdgeProcess, tmp_path: Path) -> None:
    def aws(secret: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["aws", "lambda", "invoke", "--endpoint-url", signed_edge.admin_url,
             "--function-name", "echo", "--payload", '{"from": "cli"}',
             str(tmp_path / "out.json")],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": secret,
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1",
                 "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull},
        )  # fmt: skip

    assert aws(SECRET).returncode == 0
    assert json.loads((tmp_path / "out.json").read_text())["echo"] == {"from": "cli"}
    wrong = aws("wrong")
    assert wrong.returncode != 0
    assert "InvalidSignatureException" in wrong.stderr


# -- bounds -----------------------------------------------------------------------------------


def _huge_post(admin_url: str, path: str, *, declared: bool, megabytes: int = 300) -> int:
    """POST `megabytes` of body; stop sending once the server answers. Its status."""
    port = _port(admin_url)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\n"
    head += (
        f"Content-Length: {megabytes << 20}\r\n" if declared else "Transfer-Encoding: chunked\r\n"
    )
    chunk = b"[" * (1 << 20)
    frame = chunk if declared else b"100000\r\n" + chunk + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode() + b"\r\n")
        for _ in range(megabytes):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the answer came before the body was sent: stop sending
            try:
                sock.sendall(frame)
            except OSError:
                break  # the server answered and closed
        return status_of(read_response(sock))


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_300_mb_invalidation_body_is_refused_before_it_is_read(
    open_edge: EdgeProcess, declared: bool
) -> None:
    peak = vm_kib(open_edge.pid, "VmHWM")
    assert _huge_post(open_edge.admin_url, "/invalidations", declared=declared) == 413
    assert vm_kib(open_edge.pid, "VmHWM") - peak < 32 * 1024
    with httpx.Client(base_url=open_edge.admin_url) as admin:
        response = admin.post(
            "/invalidations", content=b'{"paths": ["/a"' + b" " * (1 << 20) + b"]}"
        )
    assert response.status_code == 413
    assert response.json()["code"] == "BatchTooLarge"
    assert "Invalidation batch specified is too large" in response.json()["error"]


def test_a_huge_body_to_a_signed_listener_is_refused_before_it_is_read(
    signed_edge: EdgeProcess,
) -> None:
    peak = vm_kib(signed_edge.pid, "VmHWM")
    # Unsigned: refused at the headers. Signed headers with a huge body: refused at its size.
    assert _huge_post(signed_edge.admin_url, "/invalidations", declared=True) == 403
    client = lambda_client(signed_edge)
    client.meta.events.register(
        "before-send.lambda.Invoke",
        lambda request, **_: request.headers.__setitem__("Content-Length", str(300 << 20)),
    )
    response = _client_error(lambda: client.invoke(FunctionName="echo", Payload=b"{}"))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert response["Error"]["Code"] == "RequestTooLargeException"
    assert vm_kib(signed_edge.pid, "VmHWM") - peak < 32 * 1024


def test_3001_paths_are_refused_in_cloudfronts_words(open_edge: EdgeProcess) -> None:
    _stored(open_edge)
    with httpx.Client(base_url=open_edge.admin_url) as admin:
        response = admin.post("/invalidations", json={"paths": ["/*"] + ["/p"] * 3000})
    assert response.status_code == 400
    assert response.json()["code"] == "TooManyInvalidationsInProgress"
    assert (
        "Processing your request will cause you to exceed the maximum number of in-progress "
        "invalidations" in response.json()["error"]
    )
    assert _x_cache(open_edge) == "Hit from edge"


def _fill(port: int, paths: list[str]) -> None:
    """GET every path once, pipelined in batches, so each is stored."""
    host = f"127.0.0.1:{port}"  # the cache key holds the Host, as a viewer client sends it
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        for start in range(0, len(paths), 250):
            batch = paths[start : start + 250]
            sock.sendall(
                b"".join(f"GET {p} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() for p in batch)
            )
            data = b""
            while data.count(b"HTTP/1.1 200") < len(batch):
                chunk = sock.recv(1 << 16)
                assert chunk, "the edge closed the connection"
                data += chunk


def _post(client: httpx.Client, document: object, results: list[httpx.Response]) -> None:
    results.append(client.post("/invalidations", json=document))


def test_the_proxy_answers_while_3000_wildcards_are_invalidated(open_edge: EdgeProcess) -> None:
    """A proxy request that starts after a 3,000-wildcard invalidation began, and ends before
    it finished. "Still in progress" is the admin's own answer: a one-path probe is refused
    with TooManyInvalidationsInProgress while the 3,000 paths are (the edge's in-progress
    limit), so the order is observed, not timed. Each try scans every stored object and
    removes none (the wildcards match no stored path); tries repeat until one interleaves."""
    _fill(_port(open_edge.url), [f"/f/{n}.txt" for n in range(STORED_OBJECTS)])
    _stored(open_edge)
    wildcards = {"paths": [f"/f/{n}.txt/*" for n in range(3000)]}
    probe = {"paths": ["/nothing-stored-here"]}

    def in_progress(admin: httpx.Client) -> bool:
        response = admin.post("/invalidations", json=probe)
        return response.status_code == 400 and "in-progress" in response.json()["error"]

    interleaved = False
    with (
        httpx.Client(base_url=open_edge.admin_url, timeout=60) as admin,
        httpx.Client(base_url=open_edge.admin_url, timeout=60) as big,
        httpx.Client(base_url=open_edge.url, timeout=60) as viewer,
    ):
        # Tries until one interleaves, for at most a minute (on a loaded 2-core machine the
        # batch often ends before the viewer's request is scheduled).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            results: list[httpx.Response] = []
            sender = threading.Thread(target=_post, args=(big, wildcards, results))
            sender.start()
            while sender.is_alive() and not in_progress(admin):
                pass
            answered = False
            if sender.is_alive():
                served = viewer.get("/stored.txt")
                answered = served.status_code == 200 and in_progress(admin)
            sender.join()
            if results[0].status_code == 400 and "in-progress" in results[0].json()["error"]:
                continue  # a probe was in progress as the batch arrived (3,001 paths): again
            assert results[0].status_code == 201
            assert results[0].json()["invalidated"] == 0
            if answered:
                interleaved = True
                break
    assert interleaved, "no proxy request was answered while an invalidation was in progress"
    # The stored objects are still there (asked for as the fill asked, without Accept-Encoding).
    port = _port(open_edge.url)
    again = exchange(port, f"GET /f/7.txt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    assert re.search(rb"(?i)\r\nx-cache: Hit from edge\r\n", again)


_SWITCH_TO_ADMIN = """
def handler(event, context):
    request = event["Records"][0]["cf"]["request"]
    request["origin"] = {"custom": {
        "domainName": "localhost", "port": PORT, "protocol": "http", "path": "",
        "sslProtocols": ["TLSv1.2"], "readTimeout": 5, "keepaliveTimeout": 5,
        "customHeaders": {}}}
    request["uri"] = "/metrics"
    return request
"""


@pytest.mark.parametrize("behavior_origin", ["url", "directory"])
def test_a_function_cannot_reach_the_admin_listener_through_the_proxy(
    tmp_path: Path, start_edge: Any, origin: Any, behavior_origin: str
) -> None:
    with socket.socket() as probe:  # a free port for the admin listener, known to the function
        probe.bind(("127.0.0.1", 0))
        admin_port = probe.getsockname()[1]
    code = tmp_path / "code"
    code.mkdir()
    (code / "switch.py").write_text(_SWITCH_TO_ADMIN.replace("PORT", str(admin_port)))
    code.chmod(0o755)
    # A directory origin takes no forwarded headers: the switch must still add them.
    where = f'url = "{origin.url}"' if behavior_origin == "url" else f'directory = "{tmp_path}"'
    config = f"""
[origins.o]
{where}

[[behaviors]]
path = "*"
origin = "o"
origin-request = "switch"

[functions.switch]
code = "{code}"
handler = "switch.handler"
"""
    edge = start_edge("--admin", f"127.0.0.1:{admin_port}", config=config)
    with httpx.Client() as client:
        response = client.get(f"{edge.url}/anything")
        assert response.status_code == 403
        assert "came through this edge's proxy" in response.text
        assert "edge_sandbox_isolation" not in response.text
        # The listener itself still answers its own clients.
        assert client.get(f"http://127.0.0.1:{admin_port}/metrics").status_code == 200
