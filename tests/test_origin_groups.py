"""Origin groups: GET, HEAD and OPTIONS fail over to the secondary, as CloudFront does."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import EdgeProcess
from tests.origin_app import OriginServer, running_origin

HOOKS = Path(__file__).resolve().parent / "edge_functions" / "hooks"

CONFIG = """
[server]
name = "edge-group"

[origins.primary]
url = "{primary}"

[origins.dead]
url = "http://127.0.0.1:{dead_port}"

[origins.secondary]
url = "{secondary}"

[origins.group]
primary = "primary"
secondary = "secondary"
failover_statuses = [500, 503]

[origins.dead-group]
primary = "dead"
secondary = "secondary"

[[behaviors]]
path = "/dead/*"
origin = "dead-group"
cache = "disabled"

[[behaviors]]
path = "/named/*"
origin = "group"
cache = "disabled"
origin-request = "name-the-origin"

[[behaviors]]
path = "*"
origin = "group"
cache = "disabled"

[functions.name-the-origin]
handler = "{hooks}.name_the_origin"
"""


@pytest.fixture(scope="module")
def servers(
    origin: OriginServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EdgeProcess, OriginServer, OriginServer]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    with running_origin() as secondary:
        tmp = tmp_path_factory.mktemp("group")
        config = tmp / "edge.toml"
        config.write_text(
            CONFIG.format(
                primary=origin.url, secondary=secondary.url, dead_port=dead_port, hooks=HOOKS
            )
        )
        edge = EdgeProcess([str(config), "--listen", "127.0.0.1:0"]).start(tmp)
        yield edge, origin, secondary
        edge.stop()


@pytest.mark.parametrize(
    ("method", "path", "served_by"),
    [
        pytest.param("GET", "/status/200", "primary", id="success-stays-on-primary"),
        pytest.param("GET", "/status/503", "secondary", id="configured-status-fails-over"),
        pytest.param("GET", "/status/502", "primary", id="unconfigured-status-does-not"),
        pytest.param("HEAD", "/status/500", "secondary", id="head-fails-over"),
        pytest.param("OPTIONS", "/status/500", "secondary", id="options-fails-over"),
        pytest.param("POST", "/status/500", "primary", id="post-never-fails-over"),
        pytest.param("GET", "/dead/x", "secondary", id="connection-error-fails-over"),
    ],
)
def test_failover(
    servers: tuple[EdgeProcess, OriginServer, OriginServer],
    method: str,
    path: str,
    served_by: str,
) -> None:
    edge, primary, secondary = servers
    before = {"primary": len(primary.log.requests), "secondary": len(secondary.log.requests)}
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        client.request(method, path)
    after = {"primary": len(primary.log.requests), "secondary": len(secondary.log.requests)}
    assert (after["secondary"] > before["secondary"]) is (served_by == "secondary")


def test_origin_request_runs_again_for_the_secondary(
    servers: tuple[EdgeProcess, OriginServer, OriginServer],
) -> None:
    """lambda-edge-spec §5.7: the second attempt runs origin-request again, on the request as
    it was before the first run, with the secondary as the event's origin."""
    edge, primary, secondary = servers
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        answer = client.get("/named/status/503?attempt=second")
    assert answer.status_code == 503  # the secondary's own answer
    seen = {}
    for name, server in (("primary", primary), ("secondary", secondary)):
        entry = server.log.wait_for_target("/status/503?attempt=second")
        seen[name] = [value for key, value in entry["headers"] if key == "x-event-origin"]
    assert seen == {
        "primary": [f"127.0.0.1:{primary.port}"],
        "secondary": [f"127.0.0.1:{secondary.port}"],
    }
