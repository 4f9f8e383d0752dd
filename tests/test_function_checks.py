"""Errors before the first request: a Python handler that cannot import is a configuration
error at `edge check` and when `edge serve` starts (exit 2), named by its key (or flag), with
what was expected and what was found; nothing of the function runs to find out. Both spellings
of a handler (`auth.py::handler`, `auth.handler`) name the same thing everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import load_config
from edge.config.handlers import parse_handler
from edge.functions import check_functions


def _edge(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _config(tmp_path: Path, handler: str, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "site").mkdir(exist_ok=True)
    config = tmp_path / "edge.toml"
    config.write_text(
        '[origins.s]\ndirectory = "site"\n'
        '[[behaviors]]\npath = "*"\norigin = "s"\nviewer-request = "auth"\n'
        f'[functions.auth]\nhandler = "{handler}"\n'
    )
    return config


OK = "def handler(event, context):\n    return event\n"


@pytest.mark.parametrize(
    ("handler", "files", "problem"),
    [
        pytest.param(
            "fns/auth.py::handler",
            {"fns/other.py": OK},
            "functions.auth.handler: expected the file {dir}/fns/auth.py (module 'auth'; or "
            "{dir}/fns/auth/__init__.py), found no such file",
            id="missing-file",
        ),
        pytest.param(
            "fns/auth.handler",
            {"fns/auth.py": "import os\n\ndef handler(event, context)\n    return event\n"},
            "functions.auth.handler: expected Python code in {dir}/fns/auth.py, found a syntax "
            "error at line 3, column 28: expected ':'",
            id="syntax-error-with-line-and-column",
        ),
        pytest.param(
            "fns/auth.py::handle",
            {"fns/auth.py": OK},
            "functions.auth.handler: expected a function 'handle' in {dir}/fns/auth.py, found "
            "no top-level def, assignment or import of that name (it defines 'handler'); did "
            "you mean 'handler'?",
            id="missing-function",
        ),
        pytest.param(
            "fns/pkg.auth.handler",
            {"fns/pkg/__init__.py": "x = (\n", "fns/pkg/auth.py": OK},
            "functions.auth.handler: expected Python code in {dir}/fns/pkg/__init__.py, found a "
            "syntax error at line 1, column 5: '(' was never closed",
            id="syntax-error-in-the-package",
        ),
        pytest.param(
            "sys.handler",
            {},
            "functions.auth.handler: expected a module of your own, found 'sys', a built-in module",
            id="a-built-in-module",
        ),
    ],
)
def test_a_handler_that_cannot_import_is_a_config_error(
    tmp_path: Path, handler: str, files: dict[str, str], problem: str
) -> None:
    config = load_config(_config(tmp_path, handler, files))
    assert check_functions(config, link_modules=False) == [problem.format(dir=tmp_path)]


@pytest.mark.parametrize(
    ("handler", "files"),
    [
        pytest.param("fns/auth.py::handler", {"fns/auth.py": OK}, id="def"),
        pytest.param(
            "fns/auth.handler",
            {"fns/auth.py": "from fns_impl import run as handler\n"},
            id="imported-under-the-name",
        ),
        pytest.param(
            "fns/auth.handler",
            {"fns/auth.py": "def _h(e, c):\n    return e\n\nhandler = _h\n"},
            id="assigned",
        ),
        pytest.param(
            "fns/auth.handler",
            {
                "fns/auth.py": "try:\n    from fast import handler\nexcept ImportError:\n"
                "    def handler(e, c):\n        return e\n"
            },
            id="defined-in-a-top-level-try",
        ),
        pytest.param("fns/auth.handler", {"fns/auth.py": "from impl import *\n"}, id="star-import"),
        pytest.param(
            "fns/pkg/auth.py::handler",
            {"fns/pkg/auth.py": OK},
            id="namespace-package-in-a-folder",
        ),
        pytest.param(
            "fns/auth.handler",
            {"fns/auth/__init__.py": "from .impl import handler\n"},
            id="a-package",
        ),
    ],
)
def test_handlers_that_import_pass(tmp_path: Path, handler: str, files: dict[str, str]) -> None:
    config = load_config(_config(tmp_path, handler, files))
    assert check_functions(config, link_modules=False) == []


@pytest.mark.parametrize(
    ("spelling", "folder", "lambda_handler"),
    [
        pytest.param("auth.handler", ".", "auth.handler", id="module"),
        pytest.param("auth.py::handler", ".", "auth.handler", id="file"),
        pytest.param("fns/auth.handler", "fns", "auth.handler", id="folder-module"),
        pytest.param("fns/auth.py::handler", "fns", "auth.handler", id="folder-file"),
        pytest.param("pkg.auth.handler", ".", "pkg.auth.handler", id="dotted-module"),
    ],
)
def test_both_spellings_name_the_same_handler(
    spelling: str, folder: str, lambda_handler: str
) -> None:
    ref = parse_handler(spelling)
    assert (str(ref.folder), ref.lambda_handler) == (folder, lambda_handler)


def test_edge_check_and_serve_refuse_a_broken_handler_before_serving(tmp_path: Path) -> None:
    config = _config(tmp_path, "auth.py::handler", {"auth.py": "def handler(event, context\n"})
    expected = f"functions.auth.handler: expected Python code in {tmp_path}/auth.py, found a "
    for args in (["check", str(config)], ["serve", str(config), "--listen", "127.0.0.1:0"]):
        result = _edge(*args, cwd=tmp_path)
        command = args[0]
        assert result.returncode == 2, (command, result.stderr)
        assert f"error: {config}: invalid configuration" in result.stderr
        assert expected in result.stderr
        assert "syntax error at line 1" in result.stderr
        assert "listening" not in result.stderr
        assert "Traceback" not in result.stderr


def test_serve_origin_names_the_flag_of_a_missing_handler(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    result = _edge(
        "serve",
        "--origin",
        "site",
        "--viewer-request",
        "missing.py::handler",
        "--listen",
        "127.0.0.1:0",
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert (
        f"--viewer-request: expected the file {tmp_path}/missing.py (module 'missing'; or "
        f"{tmp_path}/missing/__init__.py), found no such file"
    ) in result.stderr
    assert "listening" not in result.stderr


def test_edge_check_resolves_both_spellings_alike(tmp_path: Path) -> None:
    (tmp_path / "fns").mkdir()
    (tmp_path / "fns" / "auth.py").write_text(OK)
    (tmp_path / "site").mkdir()
    (tmp_path / "edge.toml").write_text(
        '[origins.s]\ndirectory = "site"\n'
        '[functions.a]\nhandler = "fns/auth.py::handler"\n'
        '[functions.b]\nhandler = "fns/auth.handler"\n'
    )
    result = _edge("check", "edge.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    functions = json.loads(result.stdout)["functions"]
    assert functions["a"]["handler"] == functions["b"]["handler"] == "auth.handler"
    assert functions["a"]["code"] == functions["b"]["code"] == str(tmp_path / "fns")
