"""`edge bench`: a real edge, a real counting origin, the real CLI, real load processes.

The edge runs a Python viewer-request hook that sleeps a little under reserved concurrency 1,
so 8 connections throttle most invocations: the report's counts must agree with the edge's
own /metrics and with the origin's request count. Nothing here asserts a time.
"""

from __future__ import annotations

import json
import re
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from edge.bench.histogram import fold, new_histogram
from edge.bench.mix import Mix, MixEntry
from edge.bench.scrape import function_report, parse_metrics
from edge.cli import main
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.conftest import REPO, EdgeProcess
from tests.origin_app import OriginServer, running_origin

REQUESTS = 80
HOOK = """\
import time


def handler(event, context):
    time.sleep(0.05)
    return event["Records"][0]["cf"]["request"]
"""


def _config(tmp: Path, origin_url: str) -> Path:
    (tmp / "hooks").mkdir(exist_ok=True)
    (tmp / "hooks" / "slow.py").write_text(HOOK)
    config = tmp / "edge.toml"
    config.write_text(
        f"""\
[server]
workers = 1

[origins.app]
url = "{origin_url}"

[[behaviors]]
path = "*"
origin = "app"
cache = "disabled"
viewer-request = "slow"

[functions.slow]
handler = "hooks/slow.handler"
reserved_concurrency = 1

[invoke]
queue_path = "{tmp / "queue.sqlite3"}"
"""
    )
    return config


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "bench", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done


@pytest.fixture(scope="module")
def origin() -> Iterator[OriginServer]:
    with running_origin() as server:
        yield server


@pytest.fixture(scope="module")
def throttled_run(
    tmp_path_factory: pytest.TempPathFactory, origin: OriginServer
) -> Iterator[tuple[dict[str, Any], str, Path, int]]:
    """One run against an edge this test started: (result, /metrics after, its dir, the
    origin's count of the run's requests)."""
    tmp = tmp_path_factory.mktemp("bench")
    edge = EdgeProcess(
        [str(_config(tmp, origin.url)), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    ).start(tmp)
    try:
        mix = tmp / "mix.json"
        mix.write_text(
            json.dumps(
                [
                    {"path": "/bytes/1024", "weight": 3},
                    {"path": "/bytes/2048", "weight": 1, "headers": {"X-Mix": "b"}},
                ]
            )
        )
        seen_before = len(origin.log.requests)
        _bench(
            edge.url,
            "--admin",
            edge.admin_url,
            "-c",
            "8",
            "-n",
            str(REQUESTS),
            "--warmup",
            "0s",
            "-p",
            "2",
            "--mix",
            str(mix),
            "--json",
            str(tmp / "result.json"),
            "--html",
            str(tmp / "report.html"),
        )
        with httpx.Client() as client:
            metrics = client.get(edge.admin_url + "/metrics").text
        origin_count = len(origin.log.requests) - seen_before
        yield json.loads((tmp / "result.json").read_text()), metrics, tmp, origin_count
    finally:
        edge.stop()


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    total = 0.0
    for (sample, sample_labels), value in parse_metrics(text).samples.items():
        if sample == name and set(labels.items()) <= set(sample_labels):
            total += value
    return total


def test_counts_agree_with_the_edge_and_the_origin(
    throttled_run: tuple[dict[str, Any], str, Path, int],
) -> None:
    result, metrics, _, origin_count = throttled_run
    assert result["requests"] == REQUESTS
    assert result["errors"] == {}
    statuses = result["statuses"]
    assert set(statuses) == {"200", "503"}  # reserved concurrency 1: 503s are throttles
    assert statuses["200"] + statuses["503"] == REQUESTS
    assert origin_count == statuses["200"]  # only admitted requests reach the origin
    assert result["x_cache"]["values"]["LambdaLimitExceeded from edge"] == statuses["503"]

    slow = result["admin"]["functions"]["slow"]
    assert slow["invocations"] == REQUESTS
    assert slow["throttles"] == statuses["503"]
    assert slow["throttles"] == _metric(metrics, "edge_function_throttles_total", function="slow")
    assert slow["cold_starts"] >= 1
    assert slow["cold_starts"] == _metric(
        metrics, "edge_function_cold_starts_total", function="slow"
    )
    assert slow["invocations"] == _metric(
        metrics, "edge_function_invocations_total", function="slow"
    )
    assert slow["peak_concurrency"] == 1  # reserved concurrency 1 never admits two
    assert slow["billed_ms"] == _metric(
        metrics, "edge_function_billed_duration_milliseconds_total", function="slow"
    )
    assert slow["billed_ms"] > 0
    edge = result["admin"]["edge"]
    assert edge["statuses"] == statuses
    assert edge["cache_results"]["LambdaLimitExceeded"] == statuses["503"]


def test_result_schema_and_cost(throttled_run: tuple[dict[str, Any], str, Path, int]) -> None:
    result, _, _, _ = throttled_run
    assert result["schema"] == "edge-bench/1"
    assert result["load"]["model"] == "closed"
    assert result["load"]["connections"] == 8
    assert set(result["latency_ms"]) == {"min", "mean", "p50", "p90", "p99", "p99_9", "max"}
    latency = result["latency_ms"]
    assert latency["min"] <= latency["p50"] <= latency["p99"] <= latency["max"]
    assert result["latency_distribution"][-1][1] == pytest.approx(latency["max"], rel=0.01)
    assert sum(point["requests"] for point in result["timeline"]) == REQUESTS
    cost = result["admin"]["cost"]
    assert cost["as_of"]
    assert cost["functions"]["slow"]["product"] == "Lambda@Edge"
    billed = cost["functions"]["slow"]["billed_requests"]
    assert billed == result["statuses"]["200"]  # throttled invocations are not billed
    assert cost["total_usd"] > 0
    assert cost["limits"]["concurrent_executions"] == 1000
    assert cost["limits"]["exceeds"] is False


def test_mix_weights_are_honoured(throttled_run: tuple[dict[str, Any], str, Path, int]) -> None:
    result, _, _, _ = throttled_run
    counts = {entry["name"]: entry["requests"] for entry in result["mix"]}
    assert sum(counts.values()) == REQUESTS
    share = counts["GET /bytes/1024"] / REQUESTS
    assert 0.6 <= share <= 0.9  # weights 3:1 (ignoring them would give 0.5)


def test_html_report_is_self_contained_with_its_plots(
    throttled_run: tuple[dict[str, Any], str, Path, int],
) -> None:
    _, _, tmp, _ = throttled_run
    html = (tmp / "report.html").read_text()
    for plot in (
        "latency-over-time",
        "throughput-over-time",
        "concurrency-over-time",
        "latency-distribution",
    ):
        assert re.search(rf'<svg id="{plot}"[^>]*>.*?<polyline ', html, re.DOTALL), plot
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?\s*(https?:)?//""", html)
    assert "<script" not in html
    assert "<link" not in html


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_html_report_draws_its_plots_in_a_browser(
    throttled_run: tuple[dict[str, Any], str, Path, int],
) -> None:
    _, _, tmp, _ = throttled_run
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((tmp / "report.html").as_uri())
            for plot in (
                "latency-over-time",
                "throughput-over-time",
                "concurrency-over-time",
                "latency-distribution",
            ):
                drawn = page.evaluate(
                    """(id) => {
                        const svg = document.getElementById(id);
                        const box = svg.getBoundingClientRect();
                        const lines = [...svg.querySelectorAll('polyline')];
                        const length = lines.reduce((sum, l) => sum + l.getTotalLength(), 0);
                        const marks = svg.querySelectorAll('circle').length;
                        return {width: box.width, height: box.height, drawn: length + marks};
                    }""",
                    plot,
                )
                assert drawn["width"] > 100, (plot, drawn)
                assert drawn["height"] > 50, (plot, drawn)
                # A line (or, for a run of one or two samples, its marks), not just axes.
                assert drawn["drawn"] > 0, (plot, drawn)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "bench-report.png"), full_page=True)
        finally:
            browser.close()


def test_compare_prints_two_runs_side_by_side(
    throttled_run: tuple[dict[str, Any], str, Path, int], tmp_path: Path
) -> None:
    result, _, _, _ = throttled_run
    faster = json.loads(json.dumps(result))
    faster["requests_per_second"] = result["requests_per_second"] * 2
    (tmp_path / "a.json").write_text(json.dumps(result))
    (tmp_path / "b.json").write_text(json.dumps(faster))
    outcome = CliRunner().invoke(
        main,
        ["bench", "--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")],
        env={"COLUMNS": "160"},
    )
    assert outcome.exit_code == 0, outcome.output
    row = next(line for line in outcome.output.splitlines() if "req/s" in line)
    assert "+100.0%" in row
    assert "slow throttles" in outcome.output


def test_open_model_runs_on_schedule(origin: OriginServer, tmp_path: Path) -> None:
    out = tmp_path / "open.json"
    _bench(
        origin.url + "/bytes/100",
        "--rate",
        "100",
        "-d",
        "1s",
        "--warmup",
        "0s",
        "-c",
        "4",
        "-p",
        "1",
        "--json",
        str(out),
    )
    result = json.loads(out.read_text())
    assert result["load"]["model"] == "open"
    assert result["load"]["rate"] == 100
    assert result["statuses"] == {"200": result["requests"]}
    # Never more than the schedule: 100 a second for one second, one per connection at most
    # in flight at the end.
    assert 0 < result["requests"] <= 100 + 4
    assert result["admin"] is None


def test_a_config_target_starts_and_stops_its_edge(origin: OriginServer, tmp_path: Path) -> None:
    out = tmp_path / "config.json"
    _bench(
        str(_config(tmp_path, origin.url)), "-c", "2", "-n", "20", "--warmup", "0s",
        "-p", "1", "--json", str(out),
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["requests"] == 20
    assert result["admin"]["functions"]["slow"]["invocations"] == 20
    with pytest.raises(httpx.ConnectError), httpx.Client() as client:
        client.get(result["target"])  # the edge was stopped after the run


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([1, 2, 3, 1000, 2047, 2048, 2049], id="around-the-first-bucket"),
        pytest.param([10**n for n in range(10)], id="every-magnitude"),
        pytest.param([7] * 50, id="repeated"),
    ],
)
def test_fold_records_as_hdrhistogram_does(values: list[int]) -> None:
    folded, recorded = new_histogram(), new_histogram()
    fold(folded, values)
    for value in values:
        recorded.record_value(min(value, recorded.highest_trackable_value))
    assert list(folded.counts) == list(recorded.counts)
    assert folded.get_total_count() == recorded.get_total_count()
    assert folded.get_max_value() == recorded.get_max_value()


def test_mix_cycle_spreads_requests_by_weight() -> None:
    mix = Mix((MixEntry(path="/a", weight=3), MixEntry(path="/b", weight=1)))
    cycle = mix.cycle()
    assert sorted(cycle) == [0, 0, 0, 1]
    raw = MixEntry(method="POST", path="/p", body=b"{}").raw("h:1")
    assert raw == b"POST /p HTTP/1.1\r\nHost: h:1\r\nContent-Length: 2\r\n\r\n{}"


class _Framings(socketserver.StreamRequestHandler):
    """Keep-alive HTTP/1.1 answers in several framings, and an HTTP/1.0 one that closes."""

    def handle(self) -> None:
        while True:
            line = self.rfile.readline()
            if not line:
                return
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            path = line.split()[1]
            if path == b"/chunked":  # two chunks, a trailer, written in pieces
                self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
                self.wfile.flush()
                self.wfile.write(b"lo\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
            elif path == b"/empty":
                self.wfile.write(b"HTTP/1.1 204 No Content\r\nX-Cache: Hit from test\r\n\r\n")
            else:  # HTTP/1.0: the body ends where the connection does
                self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Cache: Miss from test\r\n\r\nbye")
                return


def test_every_framing_is_read_to_its_end(tmp_path: Path) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Framings)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        mix = tmp_path / "mix.toml"
        mix.write_text(
            '[[request]]\npath = "/chunked"\n\n[[request]]\npath = "/empty"\n\n'
            '[[request]]\npath = "/close"\nname = "closing"\n'
        )
        out = tmp_path / "framings.json"
        port = server.server_address[1]
        _bench(
            f"http://127.0.0.1:{port}/", "--mix", str(mix), "-c", "3", "-n", "60",
            "--warmup", "0s", "-p", "1", "--json", str(out),
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    result = json.loads(out.read_text())
    assert result["errors"] == {}
    assert result["requests"] == 60
    counts = {entry["name"]: entry["requests"] for entry in result["mix"]}
    assert set(counts) == {"GET /chunked", "GET /empty", "closing"}
    assert all(10 <= count <= 30 for count in counts.values())  # equal weights
    empty, closing = counts["GET /empty"], counts["closing"]
    assert result["statuses"] == {"200": 60 - empty, "204": empty}
    assert result["x_cache"]["values"] == {"Hit from test": empty, "Miss from test": closing}
    assert result["x_cache"]["hit_ratio"] == pytest.approx(empty / 60, abs=1e-3)


def test_metrics_are_read_by_function_and_version_whatever_other_labels() -> None:
    def text(invocations: int, cold: int) -> str:
        return (
            "# TYPE edge_function_invocations counter\n"
            f'edge_function_invocations_total{{function="f",trigger="viewer-request",version="2",'
            f'zone="a"}} {invocations}\n'
            f'edge_function_invocations_total{{function="f",trigger="origin-request",version="2",'
            f'zone="b"}} {invocations}\n'
            "# TYPE edge_function_cold_starts counter\n"
            f'edge_function_cold_starts_total{{function="f",version="2"}} {cold}\n'
        )

    report = function_report(parse_metrics(text(5, 1)), parse_metrics(text(12, 3)), [])
    assert list(report) == ["f:2"]
    assert report["f:2"]["invocations"] == 14
    assert report["f:2"]["cold_starts"] == 2
    assert report["f:2"]["version"] == "2"


def test_an_answer_too_late_is_a_timeout(origin: OriginServer, tmp_path: Path) -> None:
    out = tmp_path / "late.json"
    _bench(
        origin.url + "/slow/5", "--timeout", "1s", "-c", "2", "-n", "2", "--warmup", "0s",
        "-p", "1", "--json", str(out),
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["requests"] == 0
    assert result["errors"] == {"timeout": 2}
