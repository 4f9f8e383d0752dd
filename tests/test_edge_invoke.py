"""`edge invoke`, the author's one-shot tool: any runtime, and Lambda@Edge's result rules.

The function runs once in a real environment (a Python worker process, a WASM instance); when
the event is a Lambda@Edge event (or `--trigger` names one), its result is held to the rules
CloudFront applies, and an invalid one fails the command with CloudFront's validation error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from edge.events import EventType, decode_result, event_from_document, sample_event
from tests.conftest import REPO

WAT = REPO / "tests" / "wasm"

CHANGES_HOST = """
def handler(event, context):
    request = event["Records"][0]["cf"]["request"]
    request["headers"]["host"] = [{"key": "Host", "value": "elsewhere.example"}]
    return request
"""


def _edge(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def _event_file(tmp_path: Path, trigger: EventType) -> Path:
    path = tmp_path / f"{trigger}.json"
    path.write_text(json.dumps(sample_event(trigger)))
    return path


def test_a_python_result_that_breaks_a_lambda_edge_rule_fails(tmp_path: Path) -> None:
    (tmp_path / "rewrite.py").write_text(CHANGES_HOST)
    event = _event_file(tmp_path, EventType.VIEWER_REQUEST)
    result = _edge("invoke", f"{tmp_path}/rewrite.py::handler", "--event", str(event))
    assert result.returncode == 1, result.stderr
    assert "REPORT RequestId: " in result.stderr  # the function ran and its log is shown
    assert "CloudFront answers 502 (X-Cache: LambdaValidationError)" in result.stderr
    assert "changes 'host', which is read-only in viewer-request" in result.stderr
    assert "(rule: read-only-header)" in result.stderr
    assert json.loads(result.stdout)["headers"]["host"][0]["value"] == "elsewhere.example"


def test_the_same_result_is_fine_where_host_may_change(tmp_path: Path) -> None:
    (tmp_path / "rewrite.py").write_text(CHANGES_HOST)
    event = _event_file(tmp_path, EventType.ORIGIN_REQUEST)
    result = _edge("invoke", f"{tmp_path}/rewrite.py::handler", "--event", str(event))
    assert result.returncode == 0, result.stderr
    assert "LambdaValidationError" not in result.stderr


def test_a_wasm_module_runs_at_a_trigger_with_a_sample_event() -> None:
    result = _edge("invoke", str(WAT / "echo.wat"), "--trigger", "viewer-request")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"status": "200", "statusDescription": "OK"}
    assert "START RequestId: " in result.stderr
    assert "REPORT RequestId: " in result.stderr


def test_a_wasm_module_without_the_entry_point_continues_unchanged() -> None:
    result = _edge("invoke", str(WAT / "echo.wat"), "--trigger", "origin-request")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "continue unchanged" in result.stderr


def test_an_invalid_wasm_result_fails_like_at_the_edge() -> None:
    # echo.wat's viewer_response returns the text "1": not a response object.
    result = _edge("invoke", str(WAT / "echo.wat"), "--trigger", "viewer-response")
    assert result.returncode == 1
    assert "CloudFront answers 502 (X-Cache: LambdaValidationError)" in result.stderr
    assert "(rule: json-not-object)" in result.stderr


def test_a_wasm_module_without_a_trigger_runs_its_handler(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"n": 1}')
    result = _edge("invoke", str(WAT / "echo.wat"), "--event", str(event))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"n": 1}  # `handler` echoes the event


def test_a_wasm_guest_failure_prints_lambdas_error_document() -> None:
    result = _edge("invoke", str(WAT / "limits.wat"), "--trigger", "origin-request")
    assert result.returncode == 1
    assert json.loads(result.stdout)["errorType"] == "Runtime.Trap"


def test_a_module_that_cannot_start_is_an_error() -> None:
    result = _edge("invoke", str(WAT / "imports_abort.wat"), "--trigger", "viewer-request")
    assert result.returncode == 1
    assert "the module imports 'env.abort'" in result.stderr


def test_the_trigger_must_match_the_event(tmp_path: Path) -> None:
    event = _event_file(tmp_path, EventType.ORIGIN_RESPONSE)
    result = _edge(
        "invoke", str(WAT / "echo.wat"), "--event", str(event), "--trigger", "viewer-request"
    )
    assert result.returncode == 2
    assert "origin-response event" in result.stderr


# A function that shows what its environment gave it, at any trigger.
SHOWS_SETTINGS = """
import os

def handler(event, context):
    print("greeting", os.environ.get("GREETING"))
    cf = event["Records"][0]["cf"]
    request = cf["request"]
    request["headers"]["x-seen"] = [{"key": "X-Seen", "value": " ".join([
        cf["config"]["eventType"],
        os.environ.get("GREETING", "-"),
        context.memory_limit_in_mb,
        str(context.get_remaining_time_in_millis() // 1000),
    ])}]
    return request
"""

NAMED_CONFIG = """
[origins.site]
directory = "site"

[origins.api]
function = "answer"

[[behaviors]]
path = "/api/*"
origin = "api"

[[behaviors]]
path = "*"
origin = "site"
origin-request = "settings"
viewer-request = "both"
viewer-response = "both"

[lambda_edge]
allow_environment = true

[functions.settings]
handler = "fns/settings.handler"
memory = 256
timeout = 7
environment = { GREETING = "hej" }

[functions.both]
handler = "fns/settings.py::handler"

[functions.answer]
handler = "fns/answer.py::handler"
"""


def _named(tmp_path: Path) -> Path:
    (tmp_path / "site").mkdir()
    (tmp_path / "fns").mkdir()
    (tmp_path / "fns" / "settings.py").write_text(SHOWS_SETTINGS)
    (tmp_path / "fns" / "answer.py").write_text(
        "def handler(event, context):\n    return {'statusCode': 'two hundred'}\n"
    )
    config = tmp_path / "edge.toml"
    config.write_text(NAMED_CONFIG)
    return config


def test_a_function_runs_by_its_config_name_with_its_settings(tmp_path: Path) -> None:
    config = _named(tmp_path)
    result = _edge("invoke", "settings", "--config", str(config))
    assert result.returncode == 0, result.stderr
    # The trigger it is associated with gives the sample event; its own memory, timeout and
    # environment apply.
    seen = json.loads(result.stdout)["headers"]["x-seen"][0]["value"]
    assert seen == "origin-request hej 256 6"
    assert "settings origin-request | greeting hej" in result.stderr
    assert "\x1b[" not in result.stderr  # a pipe gets plain text


def test_flags_override_a_named_functions_settings(tmp_path: Path) -> None:
    config = _named(tmp_path)
    result = _edge(
        "invoke", "settings", "--config", str(config), "--memory", "512", "--env", "GREETING=hi"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["headers"]["x-seen"][0]["value"].startswith(
        "origin-request hi 512 "
    )


def test_a_function_on_several_triggers_needs_one_named(tmp_path: Path) -> None:
    config = _named(tmp_path)
    result = _edge("invoke", "both", "--config", str(config))
    assert result.returncode == 2
    assert "function 'both' runs at viewer-request, viewer-response: say which" in result.stderr
    result = _edge("invoke", "both", "--config", str(config), "--trigger", "viewer-request")
    assert result.returncode == 0, result.stderr
    # No timeout of its own: the trigger's limit (5 s at viewer triggers).
    assert json.loads(result.stdout)["headers"]["x-seen"][0]["value"] == ("viewer-request - 128 4")


def test_a_function_origin_runs_with_an_alb_event_and_its_rules(tmp_path: Path) -> None:
    config = _named(tmp_path)
    result = _edge("invoke", "answer", "--config", str(config))
    assert result.returncode == 1
    assert "the load balancer answers 502" in result.stderr


def test_an_unknown_name_lists_the_functions(tmp_path: Path) -> None:
    config = _named(tmp_path)
    result = _edge("invoke", "setings", "--config", str(config))
    assert result.returncode == 2
    assert "expected a function of" in result.stderr
    assert "(did you mean 'settings'?)" in result.stderr


def test_a_handler_runs_in_either_spelling(tmp_path: Path) -> None:
    (tmp_path / "rewrite.py").write_text(CHANGES_HOST)
    for target in (f"{tmp_path}/rewrite.py::handler", f"{tmp_path}/rewrite.handler"):
        result = _edge("invoke", target, "--trigger", "origin-request")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["headers"]["host"][0]["value"] == "elsewhere.example"


@pytest.mark.parametrize("trigger", list(EventType))
def test_an_event_read_back_validates_like_the_one_built(trigger: EventType) -> None:
    document = orjson.loads(orjson.dumps(sample_event(trigger, headers=[("X-A", "1")])))
    event = event_from_document(document)
    assert event.trigger is trigger
    cf = document["Records"][0]["cf"]
    unchanged = cf["request"] if trigger.is_request else cf["response"]
    outcome = decode_result(event, orjson.dumps(unchanged))
    assert ("X-A", "1") in outcome.headers or not trigger.is_request


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({}, id="empty"),
        pytest.param({"Records": []}, id="no-record"),
        pytest.param({"Records": [{"cf": {"config": {"eventType": "later"}}}]}, id="no-trigger"),
        pytest.param(
            {"Records": [{"cf": {"config": {"eventType": "viewer-response"}, "request": {}}}]},
            id="response-trigger-without-response",
        ),
        pytest.param([1], id="not-an-object"),
    ],
)
def test_what_is_not_a_lambda_edge_event_is_refused(document: object) -> None:
    with pytest.raises(ValueError, match="not a Lambda@Edge event"):
        event_from_document(document)


def test_a_handler_that_cannot_import_is_named_before_it_runs(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def handler(event, context):\n    return {\n")
    result = _edge("invoke", f"{tmp_path}/broken.handler")
    assert result.returncode == 1
    assert (
        f"function 'broken': expected Python code in {tmp_path}/broken.py, found a syntax "
        "error at line 2, column 12: '{' was never closed"
    ) in result.stderr
