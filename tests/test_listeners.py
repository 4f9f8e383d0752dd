"""The viewer listeners: HTTPS and HTTP/2 beside plain HTTP under each engine, the errors
`edge serve` gives before the first request (an address it cannot have), and what the
granian engine relies on inside granian."""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
import socket
import ssl
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from packaging.requirements import Requirement

from tests.conftest import ENGINES, REPO, EdgeProcess
from tests.origin_app import OriginServer


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate chain for 127.0.0.1 and its key, made for this run."""
    tmp = tmp_path_factory.mktemp("tls")
    issued = ca.issue_cert("127.0.0.1", "localhost")
    chain, key = tmp / "chain.pem", tmp / "key.pem"
    chain.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return chain, key


def _tls_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="module", params=ENGINES)
def https_edge(
    request: pytest.FixtureRequest,
    origin: OriginServer,
    tls_files: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EdgeProcess, str]]:
    """An edge with both listeners, and its HTTPS base URL."""
    tmp = tmp_path_factory.mktemp("https")
    chain, key = tls_files
    (tmp / "edge.toml").write_text(
        f"""
[server]
https_listen = "127.0.0.1:0"
certificate = "{chain}"
private_key = "{key}"

[origins.app]
url = "{origin.url}"

[[behaviors]]
path = "/secure/*"
origin = "app"
viewer_protocol_policy = "redirect-to-https"

[[behaviors]]
path = "*"
origin = "app"
"""
    )
    process = EdgeProcess(
        [str(tmp / "edge.toml"), "--listen", "127.0.0.1:0"], engine=request.param
    ).start(tmp)
    https = process.wait_for(r"https on https://(\S+?):(\d+)")
    yield process, f"https://127.0.0.1:{https.group(2)}"
    process.stop()


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "http1.1"])
def test_https_serves_the_same_app_as_http(
    https_edge: tuple[EdgeProcess, str], origin: OriginServer, ca: trustme.CA, http2: bool
) -> None:
    edge, https_url = https_edge
    with httpx.Client(verify=_tls_context(ca), http2=http2, timeout=20) as client:
        secure = client.get(f"{https_url}/echo/secure")
        plain = client.get(f"{edge.url}/echo/plain")
    assert secure.status_code == plain.status_code == 200
    assert secure.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert secure.headers["via"] == plain.headers["via"]
    # The scheme travels with the request: the origin is told how the viewer came.
    seen = {entry["target"]: dict(entry["headers"]) for entry in origin.log.requests}
    assert seen["/echo/secure"]["x-forwarded-proto"] == "https"
    assert seen["/echo/plain"]["x-forwarded-proto"] == "http"
    assert re.search(r"GET /echo/secure 200", "\n".join(edge.access_lines()))


def test_redirect_to_https_names_the_https_listener(
    https_edge: tuple[EdgeProcess, str], ca: trustme.CA
) -> None:
    edge, https_url = https_edge
    with httpx.Client(verify=_tls_context(ca), timeout=20) as client:
        redirect = client.get(f"{edge.url}/secure/page?a=1")
        assert redirect.status_code == 301
        assert redirect.headers["location"] == f"{https_url}/secure/page?a=1"
        assert client.get(redirect.headers["location"]).status_code == 200


def test_the_plain_listener_takes_http2_with_prior_knowledge(
    https_edge: tuple[EdgeProcess, str],
) -> None:
    """h2c: a client that knows the server speaks HTTP/2 starts with its preface."""
    edge, _ = https_edge
    with httpx.Client(http1=False, http2=True, timeout=20) as client:
        response = client.get(f"{edge.url}/echo/h2c")
    assert response.status_code == 200
    assert response.http_version == "HTTP/2"


def _edge(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_missing_certificate_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text("not checked before the certificate\n")
    (tmp_path / "edge.toml").write_text(
        """
[server]
https_listen = "127.0.0.1:8443"
certificate = "missing.pem"
private_key = "key.pem"

[origins.app]
url = "http://127.0.0.1:9"
"""
    )
    result = _edge("check", str(tmp_path / "edge.toml"))
    assert result.returncode == 2
    assert "server.certificate: expected a PEM file, found no file at" in result.stderr
    assert "missing.pem" in result.stderr
    assert "private_key" not in result.stderr


def test_a_key_that_does_not_fit_the_certificate_is_a_config_error(
    tmp_path: Path, ca: trustme.CA, tls_files: tuple[Path, Path]
) -> None:
    chain, _ = tls_files
    ca.issue_cert("other.example").private_key_pem.write_to_path(str(tmp_path / "other.pem"))
    (tmp_path / "edge.toml").write_text(
        f"""
[server]
https_listen = "127.0.0.1:8443"
certificate = "{chain}"
private_key = "other.pem"

[origins.app]
url = "http://127.0.0.1:9"
"""
    )
    result = _edge("check", str(tmp_path / "edge.toml"))
    assert result.returncode == 2
    assert "server.certificate: expected a PEM certificate chain that goes with" in result.stderr


def test_check_flags_admin_on_the_viewer_address(tmp_path: Path) -> None:
    (tmp_path / "edge.toml").write_text(
        """
[server]
listen = "127.0.0.1:8080"
admin = "127.0.0.1:8080"

[origins.app]
url = "http://127.0.0.1:9"
"""
    )
    result = _edge("check", str(tmp_path / "edge.toml"))
    assert result.returncode == 2
    assert "server.admin: expected an address of its own, found '127.0.0.1:8080'" in result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(
            ["--listen", "no-such-host.invalid:8080"],
            "error: --listen: cannot listen on no-such-host.invalid:8080: cannot resolve the host",
            id="unresolvable-host",
        ),
        pytest.param(
            ["--listen", "127.0.0.1:{port}", "--admin", "127.0.0.1:{port}"],
            "error: --admin: cannot listen on 127.0.0.1:{port}: the same address as listen; "
            "choose another with --admin HOST:PORT",
            id="admin-is-listen",
        ),
    ],
)
def test_an_address_that_cannot_be_had_is_one_clear_error(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    port = _free_port()
    result = _edge(
        "serve", "--origin", "http://127.0.0.1:9", *(flag.format(port=port) for flag in flags)
    )
    assert result.returncode == 2
    assert message.format(port=port) in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_port_in_use_names_the_config_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        (tmp_path / "edge.toml").write_text(
            f'[server]\nlisten = "127.0.0.1:{port}"\n\n[origins.app]\nurl = "http://127.0.0.1:9"\n'
        )
        result = _edge("serve", str(tmp_path / "edge.toml"))
    assert result.returncode == 2
    assert (
        f"error: [server] listen in {tmp_path / 'edge.toml'}: cannot listen on 127.0.0.1:{port}: "
        "address already in use; choose another with --listen HOST:PORT"
    ) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_server_on_a_multi_worker_address_fails(
    start_edge: object, origin: OriginServer
) -> None:
    """SO_REUSEPORT lets several workers share one address; it must not let a second `edge
    serve` take a share of the first one's traffic."""
    port = _free_port()
    first = start_edge(  # type: ignore[operator]
        "--origin", origin.url, "--listen", f"127.0.0.1:{port}", "--workers", "2"
    )
    second = _edge("serve", "--origin", origin.url, "--listen", f"127.0.0.1:{port}")
    again = _edge(
        "serve", "--origin", origin.url, "--listen", f"127.0.0.1:{port}", "--workers", "2"
    )
    for result in (second, again):
        assert result.returncode == 2
        assert f"--listen: cannot listen on 127.0.0.1:{port}: address already in use" in (
            result.stderr
        )
    with httpx.Client() as client:
        assert client.get(f"{first.url}/echo/still").status_code == 200


def test_the_granian_internals_the_engine_relies_on() -> None:
    """edge/server/granian_engine.py hands granian's embedded server the edge's own socket by
    overriding a private method: this fails when a granian release changes what it relies
    on (the version pinned, the method, the socket holder), and shows requests in flight
    finishing after shutdown begins."""
    from edge.server import Listen, ServerOptions, bind_socket, granian_engine

    installed = importlib.metadata.version("granian")
    assert installed in granian_engine.TESTED_VERSIONS
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = next(Requirement(line) for line in dependencies if line.startswith("granian"))
    assert all(pinned.specifier.contains(v) for v in granian_engine.TESTED_VERSIONS)

    in_flight = asyncio.Event()
    lifespan: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                lifespan.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        in_flight.set()
        await asyncio.sleep(0.3)  # still answering when shutdown begins
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async def main() -> tuple[int, bytes]:
        sock = bind_socket(Listen("127.0.0.1", 0), reuse_port=False)
        port = sock.getsockname()[1]
        shutdown = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(
                granian_engine.serve_sockets([(sock, False)], app, ServerOptions(), shutdown)
            )
            async with httpx.AsyncClient() as client:
                request = group.create_task(client.get(f"http://127.0.0.1:{port}/answered"))
                await in_flight.wait()
                shutdown.set()
                response = await request
        sock.close()
        return response.status_code, response.content

    assert asyncio.run(main()) == (200, b"/answered")
    assert lifespan == ["lifespan.startup", "lifespan.shutdown"]
