"""What a user reads when a configuration or a flag is wrong: the real `edge` command, its exit
status 2, and a message that names the key, what was expected and what was found, in words (no
pydantic class names, no regular expressions, no tracebacks), with a hint where one helps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _edge(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


_ORIGIN = '[origins.s]\ndirectory = "site"\n'


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        pytest.param(
            _ORIGIN + '[[behaviors]]\npath = "*"\norigin = "s"\ncache = "disable"\n',
            "behaviors[0].cache: expected one of 'rfc9111', 'caching-optimized' or 'disabled', "
            "or a table, found 'disable' (did you mean 'disabled'?)",
            id="cache-name-typo",
        ),
        pytest.param(
            _ORIGIN + '[functions.f]\nhandler = "auth.py.handler"\n',
            "functions.f.handler: expected a handler as FILE.py::FUNCTION or MODULE.FUNCTION, "
            "with an optional FOLDER/ before it, found 'auth.py.handler'; did you mean "
            "'auth.py::handler'?",
            id="handler-mixing-the-spellings",
        ),
        pytest.param(
            _ORIGIN + '[behaviors]\npath = "*"\norigin = "s"\n',
            "behaviors: expected an array of tables, found one table; write [[behaviors]]",
            id="single-brackets-behaviors",
        ),
        pytest.param(
            '[server]\nlisten = "127.0.0.1:99999"\n' + _ORIGIN,
            "server.listen: expected a port from 0 to 65535 in HOST:PORT, found '127.0.0.1:99999'",
            id="port-out-of-range",
        ),
        pytest.param(
            _ORIGIN + '[[behaviors]]\npath = "/a[b]*"\norigin = "s"\n',
            "behaviors[0].path: expected a path pattern of A-Z a-z 0-9",
            id="path-pattern-characters",
        ),
    ],
)
def test_config_errors_are_said_in_words(tmp_path: Path, toml: str, expected: str) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "edge.toml").write_text(toml)
    result = _edge("check", "edge.toml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr, result.stderr
    for leak in ("Traceback", "literal[", "CachePolicyConfig", "^[", "pydantic"):
        assert leak not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["--origin", "127.0.0.1:9000"],
            "did you mean 'http://127.0.0.1:9000'?",
            id="origin-without-scheme",
        ),
        pytest.param(
            ["--origin", "site", "--listen", "20080"],
            "--listen: expected HOST:PORT such as 127.0.0.1:8080, found '20080'",
            id="listen-port-only",
        ),
        pytest.param(
            ["--origin", "site", "--listen", "127.0.0.1:70000"],
            "--listen: expected a port from 0 to 65535",
            id="listen-port-out-of-range",
        ),
    ],
)
def test_flag_errors_are_said_in_words(tmp_path: Path, args: list[str], expected: str) -> None:
    (tmp_path / "site").mkdir()
    result = _edge("serve", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr, result.stderr
    assert "validation error" not in result.stderr
    assert "Traceback" not in result.stderr
