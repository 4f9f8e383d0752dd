"""The package layering of DESIGN.md, checked on the source: edge -> (sandbox, origin_proxy),
and the pure modules stay pure."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.conftest import REPO


def _module_imports(package: str) -> dict[str, set[str]]:
    """Per file, the full names of the modules it imports (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(REPO))] = names
    return found


def _imports(package: str) -> dict[str, set[str]]:
    """Per file, the top-level packages it imports."""
    return {
        path: {name.split(".")[0] for name in names}
        for path, names in _module_imports(package).items()
    }


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        pytest.param("origin_proxy", {"edge", "sandbox"}, id="origin_proxy-knows-no-functions"),
        pytest.param("sandbox", {"edge", "origin_proxy"}, id="sandbox-knows-no-http"),
    ],
)
def test_lower_packages_never_import_upward(package: str, forbidden: set[str]) -> None:
    offenders = {
        path: sorted(names & forbidden)
        for path, names in _imports(package).items()
        if names & forbidden
    }
    assert offenders == {}


def test_event_translation_is_pure() -> None:
    impure = {"httpx", "starlette", "anyio", "asyncio", "wasmtime", "hypercorn", "socket", "time"}
    offenders = {
        path: sorted(names & impure)
        for path, names in _imports("edge/events").items()
        if names & impure
    }
    assert offenders == {}


def test_field_grammar_is_pure() -> None:
    """origin_proxy/fields: no I/O, no clock, nothing of the rest of the project."""
    allowed = {"__future__", "calendar", "collections.abc", "datetime", "functools", "typing"}
    offenders = {}
    for path, names in _module_imports("origin_proxy/fields").items():
        foreign = {name for name in names if not name.startswith("origin_proxy.fields")}
        if foreign - allowed:
            offenders[path] = sorted(foreign - allowed)
    assert offenders == {}
    clocks = {"now", "today", "utcnow", "time", "monotonic", "perf_counter", "gmtime"}
    reads = {
        f"{path.name}:{node.lineno}"
        for path in (REPO / "origin_proxy" / "fields").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in clocks
    }
    assert reads == set()


def test_the_cache_uses_no_io_origin() -> None:
    offenders = {
        path
        for path, names in _module_imports("origin_proxy/cache").items()
        if names & {"origin_proxy.directory", "origin_proxy.client", "origin_proxy.transport"}
    }
    assert offenders == set()


@pytest.mark.parametrize("package", ["edge", "edge.events", "origin_proxy", "sandbox"])
def test_public_surface_is_small_and_real(package: str) -> None:
    module = importlib.import_module(package)
    exported = module.__all__
    assert len(exported) <= 30
    assert exported == sorted(exported)
    for name in exported:
        assert getattr(module, name) is not None, name


def test_top_level_layout() -> None:
    allowed = {
        "pyproject.toml",
        "README.md",
        "edge",
        "sandbox",
        "origin_proxy",
        "tests",
        "examples",
    }
    present = {
        p.name
        for p in REPO.iterdir()
        if not p.name.startswith(".")
        and p.name not in {"build", "dist"}
        and not p.name.endswith(".egg-info")
    }
    assert present <= allowed, present - allowed
    assert Path(REPO / ".ci" / "run").is_file()
