"""The admin listener's status page, in a real headless browser (Debian's Chromium, driven by
Playwright): a function's cold start, a throttle and a failure with its request id appear on
the page while it is open, without a reload. A screenshot is kept under `.test-artifacts/`."""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.conftest import EdgeProcess
from tests.redis_server import RedisServer, redis_server  # noqa: F401 - the fixture

FUNCTIONS = Path(__file__).resolve().parent / "status_functions"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")

CONFIG = """
[origins.site]
directory = "{site}"

[[behaviors]]
path = "/slow/*"
origin = "site"
viewer-request = "slow"

[[behaviors]]
path = "/broken/*"
origin = "site"
viewer-request = "broken"

[[behaviors]]
path = "*"
origin = "site"

[functions.slow]
handler = "{functions}/handlers.slow"
reserved_concurrency = 1

[functions.broken]
handler = "{functions}/handlers.broken"
"""


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("status")
    site = tmp / "site"
    site.mkdir()
    (site / "index.html").write_text("hello\n")
    (site / "slow").mkdir()
    for n in range(3):
        (site / "slow" / str(n)).write_text("slow\n")
    config = tmp / "edge.toml"
    config.write_text(CONFIG.format(site=site, functions=FUNCTIONS))
    process = EdgeProcess(
        [str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--workers", "1"]
    ).start(tmp)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(edge: EdgeProcess, browser: Any) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{edge.admin_url}/status")
    page.wait_for_selector('#functions tr[data-function="slow"]')
    yield page
    page.close()


def _cell(page: Any, function: str, column: str) -> str:
    text: str = page.text_content(f'#functions tr[data-function="{function}"] td.{column}')
    return text


def test_the_page_lists_the_functions_before_any_request(page: Any) -> None:
    assert _cell(page, "slow", "runtime") == "python"
    assert _cell(page, "slow", "cold-starts") == "0"
    assert _cell(page, "broken", "invocations") == "0"
    assert page.is_hidden("#cluster")  # no [cluster]: no such section


def test_the_cluster_section_follows_redis_going_away_and_back(
    redis_server: RedisServer,  # noqa: F811
    browser: Any,
    tmp_path: Path,
) -> None:
    (tmp_path / "site").mkdir()
    config = tmp_path / "edge.toml"
    config.write_text(
        f'[origins.site]\ndirectory = "{tmp_path / "site"}"\n\n'
        '[[behaviors]]\npath = "*"\norigin = "site"\n\n'
        f'[invoke]\nqueue_path = "{tmp_path / "queue.sqlite3"}"\n\n'
        f'[cluster]\nredis = "{redis_server.url}"\nnode_id = "status-node"\n'
    )
    edge = EdgeProcess([str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
    edge.start(tmp_path)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(f"{edge.admin_url}/status")
            page.wait_for_selector("#cluster-redis.good")
            assert page.text_content("#cluster-redis") == "up"
            assert page.text_content("#cluster-node") == "status-node"
            redis_server.stop()
            page.wait_for_selector("#cluster-redis.bad", timeout=15_000)
            detail = page.text_content("#cluster-detail") or ""
            assert "serving with local limits and caches" in detail
            page.screenshot(path=str(ARTIFACTS / "status-page-redis-down.png"), full_page=True)
            redis_server.start()
            page.wait_for_selector("#cluster-redis.good", timeout=15_000)
            assert "1 reconnections" in (page.text_content("#cluster-reconnects") or "")
        finally:
            page.close()
    finally:
        if redis_server.proc is None:
            redis_server.start()
        edge.stop()


def test_a_cold_start_and_a_throttle_appear_live(edge: EdgeProcess, page: Any) -> None:
    # Three at once against a reserved concurrency of 1: one runs (a cold start), the others
    # are throttled.
    with httpx.Client(timeout=30) as client, concurrent.futures.ThreadPoolExecutor(3) as pool:
        statuses = list(
            pool.map(lambda n: client.get(f"{edge.url}/slow/{n}").status_code, range(3))
        )
    assert sorted(statuses) == [200, 503, 503]
    sent = time.monotonic()
    selector = '#functions tr[data-function="slow"]'
    page.wait_for_function(
        f"""() => {{
            const row = document.querySelector('{selector}');
            return row && row.querySelector('.cold-starts').textContent === '1'
                && row.querySelector('.throttles').textContent === '2';
        }}""",
        timeout=10_000,
    )
    # Reported, not asserted: the page polls twice a second.
    print(f"status page showed the cold start and throttles {time.monotonic() - sent:.2f} s later")
    assert _cell(page, "slow", "invocations") == "3"


def test_a_failure_appears_with_its_request_id(edge: EdgeProcess, page: Any) -> None:
    with httpx.Client(timeout=30) as client:
        response = client.get(f"{edge.url}/broken/x")
    assert response.status_code == 503  # CloudFront's answer to a Lambda@Edge function error
    request_id = response.headers["x-amz-cf-id"]
    row = f'#recent-errors tr[data-request-id="{request_id}"]'
    page.wait_for_selector(row, timeout=10_000)
    assert page.text_content(f"{row} td.function") == "broken"
    assert "coupon service is down" in (page.text_content(f"{row} td.cause") or "")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000


def test_warm_starts_and_memory_used_are_on_metrics(edge: EdgeProcess) -> None:
    with httpx.Client(timeout=30) as client:
        assert client.get(f"{edge.url}/slow/0").status_code == 200  # its environment is warm
        text = client.get(f"{edge.admin_url}/metrics").text
    warm = re.search(
        r'edge_function_warm_starts_total\{function="slow",version="\$LATEST"\} (\S+)', text
    )
    assert warm is not None
    assert float(warm.group(1)) >= 1
    memory = re.search(
        r'edge_function_max_memory_used_mb\{function="slow",version="\$LATEST"\} (\S+)', text
    )
    assert memory is not None
    assert float(memory.group(1)) > 0
