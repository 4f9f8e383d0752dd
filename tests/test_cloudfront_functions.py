"""CloudFront Functions (cloudfront-js-2.0 / 1.0) through the real proxy: events, results, the
restrictions CloudFront enforces, a KeyValueStore, and a behavior that mixes a viewer-request
CloudFront Function with a Lambda@Edge origin-request function.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import EdgeProcess
from tests.origin_app import OriginServer

HERE = Path(__file__).resolve().parent
JS = HERE / "cloudfront_functions"
HOOKS = HERE / "edge_functions" / "hooks"


def _config(origin: str, store: Path) -> str:
    functions = {
        "rewrite": ("cloudfront-js-2.0", "rewrite.js"),
        "legacy": ("cloudfront-js-1.0", "legacy.js"),
        "redirect": ("cloudfront-js-1.0", "redirect.js"),
        "evil-eval": ("cloudfront-js-2.0", "evil-eval.js"),
        "evil-function": ("cloudfront-js-2.0", "evil-function.js"),
        "evil-loop": ("cloudfront-js-2.0", "evil-loop.js"),
        "evil-memory": ("cloudfront-js-2.0", "evil-memory.js"),
        "evil-method": ("cloudfront-js-2.0", "evil-method.js"),
    }
    tables = [
        f'[functions.{name}]\nruntime = "{runtime}"\ncode = "{JS / file}"'
        for name, (runtime, file) in functions.items()
    ]
    tables.append(
        f'[functions.kvs]\nruntime = "cloudfront-js-2.0"\ncode = "{JS / "kvs.js"}"\n'
        'key_value_store = "settings"'
    )
    tables.append(f'[key_value_stores.settings]\nfile = "{store}"')
    tables.append(f'[functions.tag-request]\nhandler = "{HOOKS}.tag_request"')
    behaviors = [
        ("/cf/*", 'viewer-request = "rewrite"\norigin-request = "tag-request"'),
        ("/legacy/*", 'viewer-response = "legacy"'),
        ("/redirect/*", 'viewer-request = "redirect"'),
        ("/kvs/*", 'viewer-request = "kvs"'),
        *[(f"/{name}/*", f'viewer-request = "{name}"') for name in functions if "evil" in name],
        ("*", ""),
    ]
    for path, triggers in behaviors:
        tables.append(f'[[behaviors]]\npath = "{path}"\norigin = "app"\n{triggers}')
    return f'[server]\nname = "edge-cf"\n\n[origins.app]\nurl = "{origin}"\n\n' + "\n\n".join(
        tables
    )


def _store(path: Path, **values: str) -> None:
    data = {"data": [{"key": k, "value": v} for k, v in values.items()]}
    path.with_suffix(".tmp").write_text(json.dumps(data))
    path.with_suffix(".tmp").replace(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kvs") / "settings.json"
    _store(path, greeting="hello", config='{"weight": 30}')
    return path


@pytest.fixture(scope="module")
def edge(
    origin: OriginServer, store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("edge-cf")
    config = tmp / "edge.toml"
    config.write_text(_config(origin.url, store))
    process = EdgeProcess([str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]).start(
        tmp
    )
    yield process
    process.stop()


@pytest.fixture
def client(edge: EdgeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=30) as c:
        yield c


def test_viewer_request_function_next_to_a_lambda_edge_origin_request(
    client: httpx.Client,
) -> None:
    for _ in range(2):  # the second run sees nothing of the first
        response = client.get("/cf/page?x=1")
        assert response.status_code == 200
        echo = response.json()
        seen = dict(echo["headers"])
        assert echo["target"].startswith("/rewritten/page")
        assert seen["x-cf-runs"] == "1"
        assert seen["x-cf-polluted"] == "undefined"  # built-ins are frozen
        assert seen["x-cf-qs"] == "a=b%20c"
        assert seen["x-cf-buffer"] == "ZWRnZQ=="
        assert seen["x-cf-ip"] == "127.0.0.1"
        assert seen["x-cf-settimeout"] == "undefined"
        assert seen["x-cf-date"] == "true"
        assert seen["x-cf-error"] == "Custom: x"
        assert seen["x-origin-request"] == "ran"  # Lambda@Edge ran after the CloudFront Function


def test_sha256_matches_python(client: httpx.Client) -> None:
    import hashlib

    seen = dict(client.get("/cf/x").json()["headers"])
    assert seen["x-cf-sha256"] == hashlib.sha256(b"edge").hexdigest()


def test_viewer_response_function_1_0_changes_headers_and_status(client: httpx.Client) -> None:
    import hashlib

    response = client.get("/legacy/x")
    assert response.status_code == 203
    assert response.headers["x-cf-viewer-response"] == "ran"
    assert response.headers["x-cf-md5"] == hashlib.md5(b"edge").hexdigest()


def test_generated_response(client: httpx.Client, origin: OriginServer) -> None:
    before = len(origin.log.requests)
    response = client.get("/redirect/a/b")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/redirect/a/b"
    assert response.headers["x-cache"] == "FunctionGeneratedResponse from edge-cf"
    assert len(origin.log.requests) == before


@pytest.mark.parametrize(
    ("path", "status", "kind", "log"),
    [
        ("/evil-eval/x", 503, "FunctionExecutionError", "eval' is not defined"),
        ("/evil-function/x", 503, "FunctionExecutionError", "Code generation from strings"),
        ("/evil-loop/x", 503, "FunctionExecutionError", "compute budget"),
        ("/evil-memory/x", 503, "FunctionExecutionError", r"memory limit \(2 MB\)"),
        ("/evil-method/x", 502, "FunctionValidationError", "method is read-only"),
    ],
)
def test_restrictions_fail_as_cloudfront_fails(
    client: httpx.Client, edge: EdgeProcess, path: str, status: int, kind: str, log: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["x-cache"] == f"{kind} from edge-cf"
    assert response.headers["x-edge-error"]
    edge.wait_for(log, 10)
    assert client.get("/cf/x").status_code == 200  # the edge goes on serving


def test_key_value_store_reads_and_reloads(client: httpx.Client, store: Path) -> None:
    seen = dict(client.get("/kvs/x").json()["headers"])
    assert seen["x-kvs-greeting"] == "hello"
    assert seen["x-kvs-weight"] == "30"
    assert seen["x-kvs-missing"] == "false"
    assert seen["x-kvs-count"] == "2"
    _store(store, greeting="bonjour", config='{"weight": 70}', extra="1")
    os.utime(store, (time.time() + 5, time.time() + 5))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = dict(client.get("/kvs/x").json()["headers"])
        if seen["x-kvs-greeting"] == "bonjour":
            break
        time.sleep(0.2)
    assert seen["x-kvs-greeting"] == "bonjour"
    assert seen["x-kvs-weight"] == "70"
    assert seen["x-kvs-count"] == "3"


def _check(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "edge.toml"
    config.write_text('[origins.app]\nurl = "http://127.0.0.1:9"\n\n' + body)
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_edge_check_refuses_what_cloudfront_refuses(tmp_path: Path) -> None:
    big = tmp_path / "big.js"
    big.write_text("function handler(e) { return e.request; }\n" + "// pad\n" * 2000)
    node = tmp_path / "node.js"
    node.write_text("import fs from 'fs';\nfunction handler(e) { return e.request; }\n")
    result = _check(
        tmp_path,
        f'[functions.big]\nruntime = "cloudfront-js-2.0"\ncode = "{big}"\n\n'
        f'[functions.node]\nruntime = "cloudfront-js-2.0"\ncode = "{node}"\n\n'
        '[[behaviors]]\npath = "/c/*"\norigin = "app"\nviewer-request = "big"\n\n'
        '[[behaviors]]\npath = "/d/*"\norigin = "app"\nviewer-request = "node"\n',
    )
    assert result.returncode != 0
    assert "at most 10240 bytes" in result.stdout + result.stderr
    assert "cannot import 'fs'" in result.stdout + result.stderr
    store = tmp_path / "kvs.json"
    store.write_text(json.dumps({"data": [{"key": "k", "value": "v" * 1025}]}))
    result = _check(
        tmp_path,
        f'[key_value_stores.s]\nfile = "{store}"\n\n'
        f'[functions.k]\nruntime = "cloudfront-js-2.0"\ncode = "{JS / "kvs.js"}"\n'
        'key_value_store = "s"\n\n'
        '[[behaviors]]\npath = "/k/*"\norigin = "app"\nviewer-request = "k"\n',
    )
    assert result.returncode != 0
    assert "expected at most 1024 bytes (1 KB), found 1025" in result.stdout + result.stderr
    result = _check(
        tmp_path,
        f'[functions.ok]\nruntime = "cloudfront-js-2.0"\ncode = "{JS / "redirect.js"}"\n\n'
        f'[functions.le]\nhandler = "{HOOKS}.tag_request"\n\n'
        '[[behaviors]]\npath = "/a/*"\norigin = "app"\norigin-request = "ok"\n\n'
        '[[behaviors]]\npath = "/b/*"\norigin = "app"\nviewer-request = "ok"\n'
        'viewer-response = "le"\n',
    )
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "runs only on viewer-request and viewer-response" in out
    assert "not both" in out
    config = tmp_path / "origin.toml"
    config.write_text(
        '[origins.app]\nfunction = "cf"\n\n'
        f'[functions.cf]\nruntime = "cloudfront-js-2.0"\ncode = "{JS / "redirect.js"}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "is a CloudFront Function, which runs only on viewer triggers" in result.stderr


def test_admin_api_puts_lists_and_deletes_keys(
    edge: EdgeProcess, client: httpx.Client, store: Path
) -> None:
    with httpx.Client(base_url=edge.admin_url, timeout=30) as admin:
        put = admin.put("/key-value-stores/settings/keys/greeting", json={"value": "hej"})
        assert put.status_code == 200
        too_big = admin.put("/key-value-stores/settings/keys/big", json={"value": "v" * 1025})
        assert too_big.status_code == 400
        assert "at most 1024 bytes" in too_big.json()["error"]
        keys = {
            item["key"]: item["value"]
            for item in admin.get("/key-value-stores/settings/keys").json()["items"]
        }
        assert keys["greeting"] == "hej"
        assert "big" not in keys
        deadline = time.monotonic() + 10
        seen = {}
        while time.monotonic() < deadline:  # each worker reloads within a second
            seen = dict(client.get("/kvs/x").json()["headers"])
            if seen["x-kvs-greeting"] == "hej":
                break
            time.sleep(0.2)
        assert seen["x-kvs-greeting"] == "hej"
        assert admin.delete("/key-value-stores/settings/keys/extra").status_code in (204, 404)
        assert admin.delete("/key-value-stores/settings/keys/extra").status_code == 404
        assert admin.get("/key-value-stores/nope/keys").status_code == 404
