"""The cache as operators see it: hits in X-Cache and /metrics, and invalidations through the
admin listener and `edge invalidate`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, EdgeProcess
from tests.origin_app import OriginServer


def _admin_port(edge: EdgeProcess) -> str:
    return edge.admin_url.removeprefix("http://")


@pytest.mark.parametrize("workers", [1, 2])
def test_invalidation_through_the_admin_api_and_the_cli(
    start_edge: Any, origin: OriginServer, workers: int
) -> None:
    edge: EdgeProcess = start_edge(
        "--origin", origin.url, "--admin", "127.0.0.1:0", "--workers", str(workers)
    )
    paths = [f"/cacheable/w{workers}/img/{n}.png" for n in range(3)] + [f"/cacheable/w{workers}/a"]
    with httpx.Client(base_url=edge.url) as viewer:
        for path in paths:
            # New connections: with two workers, each (very likely) gets its own copy.
            for _ in range(6):
                viewer.get(path, headers={"Connection": "close"})
        if workers == 1:
            for path in paths:
                assert viewer.get(path).headers["x-cache"] == "Hit from edge"
        result = subprocess.run(
            [sys.executable, "-m", "edge.cli", "invalidate", f"/cacheable/w{workers}/img/*",
             "--admin", _admin_port(edge)],
            capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        if workers == 1:
            assert re.search(r"invalidation \w+: /cacheable/w1/img/\*: 3 cached responses removed",
                             result.stdout)  # fmt: skip
        else:
            assert "sent to every worker" in result.stdout
            edge.wait_for(r"invalidation \w+ \(/cacheable/w2/img/\*\): \d+ stored responses")
            edge.wait_for(
                r"(?s)invalidation \w+ \(/cacheable/w2/img/\*\).*"
                r"invalidation \w+ \(/cacheable/w2/img/\*\)"
            )
        again = viewer.get(paths[0])
        assert again.headers["x-cache"] == "Miss from edge"
        if workers == 1:
            assert viewer.get(paths[-1]).headers["x-cache"] == "Hit from edge"


def test_invalid_invalidation_requests_are_refused(start_edge: Any, origin: OriginServer) -> None:
    edge: EdgeProcess = start_edge("--origin", origin.url, "--admin", "127.0.0.1:0")
    with httpx.Client(base_url=edge.admin_url) as admin:
        for document in ({"paths": []}, {"paths": ["no-slash"]}, {"paths": ["/a*b"]}, {}):
            response = admin.post("/invalidations", json=document)
            assert response.status_code == 400, document
            assert "invalid invalidation request" in response.json()["error"]


def test_edge_invalidate_finds_the_admin_listener_in_the_config(
    start_edge: Any, origin: OriginServer, tmp_path: Path
) -> None:
    edge: EdgeProcess = start_edge("--origin", origin.url, "--admin", "127.0.0.1:0")
    port = _admin_port(edge).rpartition(":")[2]
    origin_table = f'[origins.o]\nurl = "{origin.url}"\n'
    # An unspecified address is reached on loopback; the current folder's edge.toml is read.
    (tmp_path / "edge.toml").write_text(f'[server]\nadmin = "0.0.0.0:{port}"\n' + origin_table)
    (tmp_path / "other.toml").write_text(origin_table)

    def invalidate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge.cli", "invalidate", "/a/*", *args],
            capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip

    found = invalidate()
    assert found.returncode == 0, found.stderr
    assert re.search(r"invalidation \w+: /a/\*: 0 cached responses removed", found.stdout)
    missing = invalidate("--config", "other.toml")
    assert missing.returncode == 2
    assert "other.toml has no admin listener ([server] admin)" in missing.stderr


def test_cache_results_in_metrics(start_edge: Any, origin: OriginServer) -> None:
    edge: EdgeProcess = start_edge("--origin", origin.url, "--admin", "127.0.0.1:0")
    with httpx.Client(base_url=edge.url) as viewer:
        first = viewer.get("/cacheable/metrics")
        second = viewer.get("/cacheable/metrics")
        viewer.get("/cacheable/metrics-next")  # the previous one is counted before this is read
    assert first.headers["x-cache"] == "Miss from edge"
    assert second.headers["x-cache"] == "Hit from edge"
    assert second.text == first.text  # the stored body: the origin was asked once
    assert int(second.headers["age"]) >= 0
    with httpx.Client(base_url=edge.admin_url) as admin:
        metrics = admin.get("/metrics").text
    assert re.search(r'edge_cache_results_total\{behavior="\*",result="Hit"\} [1-9]', metrics)
    assert re.search(r'edge_cache_results_total\{behavior="\*",result="Miss"\} [1-9]', metrics)
    assert re.search(
        r'edge_cache_result_body_bytes_total\{behavior="\*",result="Hit"\} [1-9]', metrics
    )
