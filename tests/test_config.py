"""Configuration: every error names the file, the key path, what was expected and what was found."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge.config import ConfigError, load_config, parse_config
from edge.events import CustomOrigin, S3Origin
from edge.origins import build_upstreams, close_upstreams, resolve_switched_origin
from tests.conftest import REPO

HTTP = {"url": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param(
            {"origins": {"a": HTTP}, "behavior": []},
            "behavior: unknown key; did you mean 'behaviors'?",
            id="unknown-top-level-key-with-suggestion",
        ),
        pytest.param(
            {"server": {"listne": "127.0.0.1:1"}, "origins": {"a": HTTP}},
            "server.listne: unknown key; did you mean 'listen'?",
            id="unknown-server-key",
        ),
        pytest.param(
            {"server": {"listen": "nohost"}, "origins": {"a": HTTP}},
            "server.listen: expected HOST:PORT such as 127.0.0.1:8080, found 'nohost'",
            id="listen-without-port",
        ),
        pytest.param(
            {"server": {"workers": "two"}, "origins": {"a": HTTP}},
            "server.workers: expected an integer, found 'two'",
            id="wrong-type",
        ),
        pytest.param(
            {"server": {"workers": 0}, "origins": {"a": HTTP}},
            "server.workers: expected a number at least 1, found 0",
            id="out-of-range",
        ),
        pytest.param(
            {"origins": {}},
            "origins: expected at least one [origins.NAME] table, found none",
            id="no-origins",
        ),
        pytest.param({}, "origins: required key is missing", id="origins-missing"),
        pytest.param(
            {"origins": {"a": {"url": "http://x", "directory": "."}}},
            "origins.a: expected exactly one of 'url' (an HTTP origin), 'directory' "
            "(a local folder), 'function' (a Lambda function) or 'primary' with 'secondary' "
            "(an origin group), found 'url', 'directory'",
            id="origin-of-two-kinds",
        ),
        pytest.param(
            {"origins": {"a": HTTP, "g": {"primary": "a", "secondary": "b"}}},
            "origins.g.secondary: expected one of the origins 'a' (not a group), found 'b'",
            id="origin-group-unknown-member",
        ),
        pytest.param(
            {
                "origins": {
                    "a": HTTP,
                    "g": {"primary": "a", "secondary": "a", "failover_statuses": [418]},
                }
            },
            "origins.g.failover_statuses[0]: expected one of 400, 403, 404, 416, 500, 502, 503 "
            "or 504, found 418",
            id="origin-group-status",
        ),
        pytest.param(
            {"origins": {"a": {"function": "nope"}}},
            "origins.a.function: expected one of the functions (none are defined), found 'nope'",
            id="function-origin-unknown-function",
        ),
        pytest.param(
            {"origins": {"a": {"url": "ftp://x"}}},
            "origins.a.url: expected an http:// or https:// URL with a host, found 'ftp://x'",
            id="origin-url-scheme",
        ),
        pytest.param(
            {"origins": {"a": {"url": "http://x", "read_timout": 3}}},
            "origins.a.read_timout: unknown key; did you mean 'read_timeout'?",
            id="origin-unknown-key",
        ),
        pytest.param(
            {"origins": {"a": {"url": "http://x", "read_timeout": -1}}},
            "origins.a.read_timeout: expected a number greater than 0.0, found -1",
            id="origin-negative-timeout",
        ),
        pytest.param(
            {"origins": {"a": {"url": "http://x", "origin_kind": "S3"}}},
            "origins.a.origin_kind: expected one of 'custom' or 's3', found 'S3'",
            id="origin-kind-unknown",
        ),
        pytest.param(
            {"origins": {"a": {"directory": "/nonexistent-edge-dir"}}},
            "origins.a.directory: expected an existing directory, found '/nonexistent-edge-dir'",
            id="origin-directory-missing",
        ),
        pytest.param(
            {"origins": {"a": {"url": "http://x", "headers": {"Bad Name": "v"}}}},
            'origins.a.headers."Bad Name": expected an HTTP header name (RFC 9110 token), '
            "found 'Bad Name'",
            id="origin-header-name",
        ),
        pytest.param(
            {"origins": {"site": HTTP}, "behaviors": [{"path": "*", "origin": "stie"}]},
            "behaviors[0].origin: expected one of the origins 'site', found 'stie' "
            "(did you mean 'site'?)",
            id="behavior-names-unknown-origin",
        ),
        pytest.param(
            {"origins": {"a": HTTP}, "behaviors": [{"path": "*", "origin": "a", "methods": "GET"}]},
            "behaviors[0].methods: expected one of 'get-head', 'get-head-options', 'all' or 'any', "
            "found 'GET'",
            id="behavior-method-set",
        ),
        pytest.param(
            {
                "origins": {"a": HTTP},
                "behaviors": [{"path": "*", "origin": "a"}, {"path": "/x", "origin": "a"}],
            },
            "behaviors[0].path: '*' is the default behavior and must come last, "
            "found it at position 0 of 2",
            id="default-behavior-not-last",
        ),
        pytest.param(
            {"origins": {"a": HTTP, "b": HTTP}, "behaviors": [{"path": "/x", "origin": "a"}]},
            'behaviors: expected a default behavior with path = "*" (needed when there is more '
            "than one origin), found none among 1 behaviors",
            id="no-default-behavior",
        ),
        pytest.param(
            {
                "origins": {"a": HTTP},
                "behaviors": [{"path": "/x", "origin": "a"}, {"path": "/x", "origin": "a"}],
            },
            "behaviors[1].path: each path pattern may appear once, found '/x' again "
            "(first at behaviors[0])",
            id="duplicate-path-pattern",
        ),
        pytest.param(
            {
                "origins": {"a": HTTP},
                "behaviors": [{"path": "*", "origin": "a", "viewer_reqest": "f"}],
            },
            "behaviors[0].viewer_reqest: unknown key; did you mean 'viewer-request'?",
            id="behavior-unknown-key",
        ),
        pytest.param(
            {"origins": {"a": HTTP}, "behaviors": [{"path": "*"}]},
            "behaviors[0].origin: required key is missing",
            id="behavior-without-origin",
        ),
        pytest.param(
            {"server": {"function_logs": "errors"}, "origins": {"a": HTTP}},
            "server.function_logs: expected one of 'full', 'errors-only' or 'none', found "
            "'errors' (did you mean 'errors-only'?)",
            id="function-logs-mode",
        ),
        pytest.param(
            {"origins": {"a": HTTP}, "functions": {"f": {"handler": "auth.py:handler"}}},
            "functions.f.handler: expected a handler as FILE.py::FUNCTION or MODULE.FUNCTION",
            id="handler-spelled-neither-way",
        ),
        pytest.param(
            {"origins": {"a": HTTP}, "behaviors": {"path": "*"}},
            "behaviors: expected an array of tables, found one table; write [[behaviors]]",
            id="behaviors-not-an-array",
        ),
        pytest.param(
            {"origins": {"a": HTTP}, "cache": {"worker_tier": "redis"}},
            "cache.worker_tier: expected one of 'redis-server' or 'none', found 'redis'",
            id="worker-tier-kind",
        ),
        pytest.param(
            {"origins": {"a": HTTP}, "cache": {"worker_tier_bytes": 10}},
            "cache.worker_tier_bytes: expected a number at least 1048576, found 10",
            id="worker-tier-too-small",
        ),
        pytest.param(
            {"origins": {"a": HTTP}, "cluster": {"shared_state": "maybe"}},
            "cluster.shared_state: expected true or false, found 'maybe'",
            id="shared-state-not-a-boolean",
        ),
    ],
)
def test_config_errors_say_where_what_and_found(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, source="edge.toml")
    assert caught.value.source == "edge.toml"
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def _reserving(node: int, *reservations: int | None) -> dict[str, Any]:
    functions = {
        f"f{index}": {
            "handler": "tests/edge_functions/hooks.tag_request",
            "reserved_concurrency": r,
        }
        for index, r in enumerate(reservations)
        if r is not None
    }
    return {
        "origins": {"a": HTTP},
        "invoke": {"node_concurrency": node},
        "functions": functions,
    }


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param(
            _reserving(1000, 901),
            "functions.f0.reserved_concurrency: expected at most 900 (invoke.node_concurrency "
            "1000, less the 100 that must stay unreserved), found 901",
            id="one-reservation",
        ),
        pytest.param(
            _reserving(1000, 500, 0, 401),
            "functions.f2.reserved_concurrency: expected at most 400 (invoke.node_concurrency "
            "1000, less 500 reserved by other functions, less the 100 that must stay "
            "unreserved), found 401",
            id="reservations-together",
        ),
        pytest.param(
            _reserving(100, 1),
            "functions.f0.reserved_concurrency: expected at most 0 (invoke.node_concurrency "
            "100, less the 100 that must stay unreserved), found 1",
            id="small-node-reserves-nothing",
        ),
    ],
)
def test_reserved_concurrency_leaves_100_unreserved(raw: dict[str, Any], problem: str) -> None:
    # Lambda: PutFunctionConcurrency fails (InvalidParameterValueException) when it would leave
    # UnreservedConcurrentExecutions under 100.
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, source="edge.toml", base_dir=REPO)
    assert caught.value.problems == [problem]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_reserving(1000, 900), id="exactly-100-left"),
        pytest.param(_reserving(1000, 450, 450, None), id="several-exactly-100-left"),
        pytest.param(_reserving(50, 0), id="zero-takes-nothing"),
    ],
)
def test_reservations_within_the_rule(raw: dict[str, Any]) -> None:
    parse_config(raw, source="edge.toml", base_dir=REPO)


FN = {"handler": "tests/edge_functions/hooks.tag_request"}


def _behavior(**triggers: Any) -> dict[str, Any]:
    return {
        "origins": {"a": HTTP},
        "behaviors": [{"path": "*", "origin": "a", **triggers}],
        "functions": {"fn": FN},
    }


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param(
            _behavior(**{"viewer-request": "fn:live"}),
            "behaviors[0].viewer-request: expected $LATEST, a published version or an alias of "
            "'fn' (aliases: none; `edge alias create` or [functions.fn.aliases.NAME] makes "
            "one), found 'fn:live'",
            id="alias",
        ),
        pytest.param(
            _behavior(**{"origin-request": {"function": "fn:7", "include_body": True}}),
            "behaviors[0].origin-request.function: expected a published version of 'fn' (none "
            "yet: `edge publish fn` makes one), found 'fn:7'",
            id="version-in-a-table",
        ),
        pytest.param(
            {"origins": {"a": {"function": "fn:live"}}, "functions": {"fn": FN}},
            "origins.a.function: expected $LATEST, a published version or an alias of 'fn' "
            "(aliases: none; `edge alias create` or [functions.fn.aliases.NAME] makes one), "
            "found 'fn:live'",
            id="function-origin",
        ),
        pytest.param(
            {
                "origins": {"a": HTTP},
                "functions": {"fn": {**FN, "aliases": {"live": {"version": "3"}}}},
            },
            "functions.fn.aliases.live.version: expected a published version of 'fn' (none "
            "yet: `edge publish fn` makes one), found '3'",
            id="declared-alias-of-an-unpublished-version",
        ),
        pytest.param(
            {"origins": {"a": HTTP}, "functions": {"fn": {**FN, "on_failure": "function:fn:1"}}},
            "functions.fn.on_failure: qualified function names are not supported for "
            "destinations: expected 'fn', found 'fn:1'",
            id="destination",
        ),
        pytest.param(
            {"origins": {"a": HTTP}, "functions": {"fn": {**FN, "on_success": "function:fnn"}}},
            "functions.fn.on_success: expected 'function:NAME' naming one of the functions "
            "('fn'), found 'function:fnn' (did you mean 'function:fn'?)",
            id="destination-unknown-function",
        ),
    ],
)
def test_references_edge_would_ignore_are_errors(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, source="edge.toml", base_dir=REPO)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


WASM_FN = {"runtime": "wasm", "module": str(REPO / "tests/wasm/echo.wat")}


@pytest.mark.parametrize(
    ("function", "problem"),
    [
        pytest.param(
            {**FN, "fuel": 1000},
            "functions.fn.fuel: expected no fuel for a python function (a wasm setting), "
            "found 1000",
            id="fuel-on-python",
        ),
        pytest.param(
            {**FN, "abi": "wasi"},
            "functions.fn.abi: expected no abi for a python function (a wasm setting), "
            "found 'wasi'",
            id="abi-on-python",
        ),
        pytest.param(
            {**WASM_FN, "network": True},
            "functions.fn.network: expected no network for a wasm function (a python "
            "setting), found True",
            id="network-on-wasm",
        ),
        pytest.param(
            {**WASM_FN, "handler": "x.y"},
            "functions.fn.handler: expected no handler for a wasm function (a python "
            "setting), found 'x.y'",
            id="handler-on-wasm",
        ),
        pytest.param(
            {**FN, "provisioned": 5, "max_concurrency": 4},
            "functions.fn.provisioned: expected at most max_concurrency (4), found 5",
            id="provisioned-over-max-concurrency",
        ),
        pytest.param(
            {**FN, "provisioned": 3, "reserved_concurrency": 2},
            "functions.fn.provisioned: expected at most reserved_concurrency (2), which "
            "provisioned environments count against, found 3",
            id="provisioned-over-reservation",
        ),
    ],
)
def test_function_settings_edge_would_ignore_are_errors(
    function: dict[str, Any], problem: str
) -> None:
    raw = {"origins": {"a": HTTP}, "functions": {"fn": function}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, source="edge.toml", base_dir=REPO)
    assert caught.value.problems == [problem]


def test_edge_check_refuses_an_unknown_alias(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        '[origins.a]\nurl = "http://127.0.0.1:9"\n\n'
        '[[behaviors]]\npath = "*"\norigin = "a"\nviewer-request = "fn:live"\n\n'
        f'[functions.fn]\nhandler = "{REPO}/tests/edge_functions/hooks.tag_request"\n'
    )
    result = _edge("check", str(path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "behaviors[0].viewer-request: expected $LATEST, a published version or an alias of "
        "'fn' (aliases: none; `edge alias create` or [functions.fn.aliases.NAME] makes one), "
        "found 'fn:live'"
    ) in result.stderr


def test_cli_refuses_reservations_over_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        '[origins.a]\nurl = "http://127.0.0.1:9"\n\n[invoke]\nnode_concurrency = 10\n\n'
        f'[functions.f]\nhandler = "{REPO}/tests/edge_functions/hooks.tag_request"\n'
        "reserved_concurrency = 5\n"
    )
    for command in ("check", "serve"):
        result = _edge(command, str(path))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert f"{path}: invalid configuration" in result.stderr
        assert "functions.f.reserved_concurrency: expected at most 0 " in result.stderr


@pytest.mark.parametrize(
    ("origin", "described", "domain"),
    [
        pytest.param({"url": "http://minio.internal:9000/b"}, CustomOrigin, "minio.internal"),
        pytest.param(
            {"url": "http://minio.internal:9000/b", "origin_kind": "s3"}, S3Origin, "minio.internal"
        ),
        pytest.param({"directory": "."}, S3Origin, "a.s3.us-east-1.amazonaws.com"),
        pytest.param(
            {"directory": ".", "origin_kind": "custom"},
            CustomOrigin,
            "a.s3-website-us-east-1.amazonaws.com",
        ),
    ],
)
def test_origin_kind_decides_how_events_describe_the_origin(
    origin: dict[str, Any], described: type, domain: str
) -> None:
    upstreams = build_upstreams(parse_config({"origins": {"a": origin}}))
    try:
        event_origin = upstreams["a"].event_origin
        assert isinstance(event_origin, described)
        assert event_origin.domain_name == domain
        # An origin-request function that names it (unchanged or edited) still reaches it.
        assert resolve_switched_origin(dict(upstreams), event_origin) is upstreams["a"]
    finally:
        asyncio.run(close_upstreams(upstreams))


def test_one_origin_implies_the_default_behavior() -> None:
    config = parse_config({"origins": {"a": HTTP}, "behaviors": [{"path": "/x/*", "origin": "a"}]})
    assert [(b.path, b.origin) for b in config.behaviors] == [("/x/*", "a"), ("*", "a")]


def test_relative_directories_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "public").mkdir()
    (tmp_path / "edge.toml").write_text('[origins.site]\ndirectory = "public"\n')
    config = load_config(tmp_path / "edge.toml")
    assert config.origins["site"].directory == tmp_path / "public"  # type: ignore[union-attr]


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[origins.a\nurl = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.source == str(path)
    assert caught.value.problems[0].startswith("not valid TOML: ")
    assert "line 1" in caught.value.problems[0]


def _edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_cli_reports_config_errors_with_status_2_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        '[origins.a]\nurl = "http://x"\nread_timout = 3\n\n'
        '[[behaviors]]\npath = "*"\norigin = "b"\n'
    )
    for command in ("check", "serve"):
        result = _edge(command, str(path))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert f"{path}: invalid configuration" in result.stderr
        assert "origins.a.read_timout: unknown key; did you mean 'read_timeout'?" in result.stderr


def test_cli_check_prints_the_resolved_configuration() -> None:
    result = _edge("check", "examples/edge.toml")
    assert result.returncode == 0, result.stderr
    assert '"directory": "' in result.stdout
    assert '"path": "*"' in result.stdout
    assert "is valid" in result.stderr


def test_cli_version() -> None:
    result = _edge("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("edge, version ")


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = _edge("check", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "nope.toml: invalid configuration" in result.stderr
    assert "file not found" in result.stderr
