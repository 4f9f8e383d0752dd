"""Hot reload against a real `edge serve`: new function code and a new edge.toml taken while
serving (`--reload`, SIGHUP), a broken one refused, with one worker and with two."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import EdgeProcess
from tests.invoke_functions.harness import shared_directory, wait_until

CONFIG = """\
[server]
admin = "127.0.0.1:0"
workers = {workers}

[origins.site]
directory = "{site}"

{extra}
[[behaviors]]
path = "*"
origin = "site"
viewer-request = "answer"

[functions.answer]
handler = "code/app.handler"
writable_paths = ["shared"]
"""

EXTRA_BEHAVIOR = """\
[[behaviors]]
path = "/static/*"
origin = "site"
"""


def page(url: str) -> str:
    """The body at `url`, over a connection of its own (with several workers, any of them)."""
    with httpx.Client(timeout=10) as client:
        return client.get(url).text


def handler_source(answer: str) -> str:
    # {SHARED}: the folder the function may write (`writable_paths`), filled in per project.
    return (
        "import time\n"
        "def handler(event, context):\n"
        "    if event['Records'][0]['cf']['request']['uri'] == '/slow':\n"
        f"        open('{{SHARED}}/slow-started', 'w').close()\n"
        "        time.sleep(1.5)\n"
        f"    return {{'status': '200', 'body': '{answer}'}}\n"
    )


def write_project(tmp: Path, *, workers: int = 1, extra: str = "") -> Path:
    site = tmp / "site"
    (site / "static").mkdir(parents=True, exist_ok=True)
    (site / "static" / "file.txt").write_text("from the origin\n")
    code = tmp / "code"
    code.mkdir(exist_ok=True)
    (code / "app.py").write_text(source_in(tmp, "v1"))
    shared_directory(tmp)
    config = tmp / "edge.toml"
    config.write_text(CONFIG.format(workers=workers, site=site, extra=extra))
    return config


def source_in(tmp: Path, answer: str) -> str:
    return handler_source(answer).replace("{SHARED}", str(tmp / "shared"))


def rewrite(path: Path, text: str) -> None:
    """Replace a file as an editor does: a new file renamed over the old one."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, EdgeProcess]]:
    tmp = tmp_path_factory.mktemp("reload")
    tmp.chmod(0o755)
    config = write_project(tmp)
    edge = EdgeProcess(
        [str(config), "--listen", "127.0.0.1:0", "--reload", "--function-logs", "none"]
    ).start(tmp)
    yield tmp, edge
    edge.stop()


def test_new_code_is_served_without_losing_a_request(
    project: tuple[Path, EdgeProcess],
) -> None:
    tmp, edge = project
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=edge.url, timeout=10) as client:
            while not stop.is_set():
                response = client.get("/page")
                answers.append((response.status_code, response.text))

    slow: list[str] = []

    def slow_request() -> None:
        slow.append(page(f"{edge.url}/slow"))

    worker = threading.Thread(target=load)
    worker.start()
    in_flight = threading.Thread(target=slow_request)
    try:
        wait_until(lambda: len(answers) > 20, what="the first answers")
        in_flight.start()
        wait_until(lambda: (tmp / "shared" / "slow-started").exists(), what="the slow start")
        rewrite(tmp / "code" / "app.py", source_in(tmp, "v2"))
        wait_until(lambda: answers[-1][1] == "v2", what="the new code's answer")
        seen = len(answers)
        wait_until(lambda: len(answers) > seen + 20, what="answers after the change")
    finally:
        stop.set()
        worker.join()
        in_flight.join()
    # The invocation in flight finished on the environment it started in.
    assert slow == ["v1"]
    assert {status for status, _ in answers} == {200}
    bodies = [body for _, body in answers]
    switched = bodies.index("v2")
    # Once the new code answers, the old never does again.
    assert set(bodies[:switched]) == {"v1"}
    assert set(bodies[switched:]) == {"v2"}
    edge.wait_for(r"config reloaded \(1 function replaced: answer; code of answer changed")


def test_an_edit_of_edge_toml_adds_a_behavior(project: tuple[Path, EdgeProcess]) -> None:
    tmp, edge = project
    assert page(f"{edge.url}/static/file.txt") != "from the origin\n"
    rewrite(tmp / "edge.toml", CONFIG.format(workers=1, site=tmp / "site", extra=EXTRA_BEHAVIOR))
    wait_until(
        lambda: page(f"{edge.url}/static/file.txt") == "from the origin\n",
        what="the new behavior",
    )
    edge.wait_for(r"config reloaded \(0 functions replaced; edge.toml changed")


def test_a_broken_edge_toml_is_refused_and_the_old_one_serves(
    project: tuple[Path, EdgeProcess],
) -> None:
    tmp, edge = project
    before = page(f"{edge.url}/page")
    config = tmp / "edge.toml"
    good = config.read_text()
    rewrite(config, good.replace('origin = "site"', 'origin = "sight"', 1))
    refused = edge.wait_for(r"config refused \(edge.toml changed\).*")
    assert "behaviors[0].origin" in refused.group(0)
    assert "'sight'" in refused.group(0)
    assert page(f"{edge.url}/page") == before
    rewrite(config, good)
    edge.wait_for(r"config refused.*\n(.*\n)*.*config reloaded \(0 functions replaced")
    # A handler that does not parse is refused the same way.
    rewrite(tmp / "code" / "app.py", "def handler(event, context:\n")
    edge.wait_for(r"config refused \(code of answer changed\).*functions\.answer\.handler")
    assert page(f"{edge.url}/page") == before
    metrics = page(f"{edge.admin_url}/metrics")
    assert 'edge_config_reloads_total{outcome="refused"}' in metrics


def test_sighup_reloads_every_worker(tmp_path: Path) -> None:
    config = write_project(tmp_path, workers=2)
    edge = EdgeProcess([str(config), "--listen", "127.0.0.1:0", "--function-logs", "none"]).start(
        tmp_path
    )
    try:
        # Fresh connections reach both workers: each serves, its signal handlers in place.
        for _ in range(12):
            assert page(f"{edge.url}/static/file.txt") == "v1"
        # Without --reload, a change waits for SIGHUP. (workers: read once, at startup.)
        config.write_text(CONFIG.format(workers=3, site=tmp_path / "site", extra=EXTRA_BEHAVIOR))
        (tmp_path / "code" / "app.py").write_text(source_in(tmp_path, "v2"))
        edge.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        # The main process (the admin's functions) and both workers reload.
        wait_until(lambda: edge.log.count("config reloaded") >= 3, what="three processes reloaded")
        assert "server.workers changed from 2 to 3: it takes effect after a restart" in edge.log
        # Fresh connections land on either worker: every one serves the new configuration.
        for _ in range(12):
            with httpx.Client(base_url=edge.url) as client:
                assert client.get("/static/file.txt").text == "from the origin\n"
                assert client.get("/page").text == "v2"
    finally:
        edge.stop()
