"""The package layering of DESIGN.md, checked on the source: edge -> (sandbox, origin_proxy),
the pure modules stay pure, and sandbox's runtimes are siblings over one seam."""

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


def _modules_imported(package: str) -> dict[str, set[str]]:
    """Every module each file of `package` imports (absolute names; `from a import b` counts
    as `a`, and as `a.b` too, since b may be a module)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(REPO))] = names
    return found


# The runtimes under sandbox/: each a package of its own beside the seam (`sandbox/runtime`).
RUNTIMES = sorted(
    p.name
    for p in (REPO / "sandbox").iterdir()
    if (p / "__init__.py").is_file() and p.name != "runtime"
)
# The runtimes whose environments are processes, and so use the pool of environments.
PROCESS_RUNTIMES = {"node_worker", "provided_worker", "python_worker"}
SANDBOX_MODULES = {
    f"sandbox.{p.stem}" for p in (REPO / "sandbox").glob("*.py") if p.name != "__init__.py"
}


def _sandbox_imports(names: set[str]) -> set[str]:
    return {n for n in names if n == "sandbox" or n.startswith("sandbox.")}


def _runtime_package(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RUNTIMES else None


def test_the_runtimes_are_found() -> None:
    assert {"python_worker", "wasm"} <= set(RUNTIMES)
    assert set(RUNTIMES) >= PROCESS_RUNTIMES


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_runtimes_are_siblings_that_import_only_the_seam(runtime: str) -> None:
    """DESIGN rule 8: a runtime imports no other runtime, and of sandbox only the seam
    (`sandbox.runtime`) and, when its environments are processes, the pool."""
    allowed_modules = {"sandbox.pool"} if runtime in PROCESS_RUNTIMES else set()
    offenders: dict[str, list[str]] = {}
    for path, names in _modules_imported(f"sandbox/{runtime}").items():
        bad = sorted(
            name
            for name in _sandbox_imports(names)
            if not (
                name.startswith(("sandbox.runtime.", f"sandbox.{runtime}."))
                or name in {"sandbox.runtime", f"sandbox.{runtime}"}
                or name in allowed_modules
                or (name.rpartition(".")[0] in allowed_modules)
            )
        )
        if bad:
            offenders[path] = bad
    assert offenders == {}


def test_the_seam_and_the_pool_know_no_runtime() -> None:
    """The shared core (`sandbox.runtime`, `sandbox.pool`) imports no runtime: runtimes build
    on it, never the other way round."""
    files = {**_modules_imported("sandbox/runtime")}
    files["sandbox/pool.py"] = _modules_imported("sandbox")["sandbox/pool.py"]
    offenders = {
        path: sorted(n for n in _sandbox_imports(names) if _runtime_package(n) is not None)
        for path, names in files.items()
    }
    assert {path: names for path, names in offenders.items() if names} == {}
    pool = _sandbox_imports(files["sandbox/pool.py"])
    assert all(n.startswith("sandbox.runtime.") for n in pool), pool


def test_edge_uses_sandbox_only_through_its_face() -> None:
    """DESIGN rule 9: edge imports `sandbox` itself, and only names its `__all__` exports."""
    import sandbox

    exported = {f"sandbox.{name}" for name in sandbox.__all__}
    offenders: dict[str, list[str]] = {}
    for path, names in _modules_imported("edge").items():
        bad = sorted(
            name for name in _sandbox_imports(names) if name != "sandbox" and name not in exported
        )
        if bad:
            offenders[path] = bad
    assert offenders == {}


def test_edge_uses_origin_proxy_only_through_its_faces() -> None:
    """DESIGN rule 9: edge imports `origin_proxy` and `origin_proxy.cache` themselves, and only
    the names their `__all__` export, so their insides can change without touching edge."""
    faces = {"origin_proxy", "origin_proxy.cache"}
    allowed = faces | {
        f"{face}.{name}" for face in faces for name in importlib.import_module(face).__all__
    }
    offenders = {
        path: sorted(bad)
        for path, names in _modules_imported("edge").items()
        if (bad := {n for n in names if n.startswith("origin_proxy") and n not in allowed})
    }
    assert offenders == {}


def test_the_face_is_loaded_lazily_and_imports_no_runtime_eagerly() -> None:
    """The zygote imports `sandbox` before it forks: the face must not import asyncio, a
    runtime or wasmtime when it is imported (its names load on first use)."""
    eager = {
        name
        for node in ast.parse((REPO / "sandbox" / "__init__.py").read_text()).body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
        )
    }
    assert eager <= {"__future__", "importlib", "typing"}, eager
    assert {"sandbox.host", "sandbox.pool"} <= SANDBOX_MODULES


def test_top_level_layout() -> None:
    allowed = {
        "pyproject.toml",
        "LICENSE",
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


# Code that runs inside a function's execution environment, after the zygote forked it (or as a
# custom runtime's agent, which passes its variables to the bootstrap): there the process
# environment is the function's own (Lambda's variables, which the runtime sets and reads as
# Lambda's runtime does), not the edge's configuration.
IN_ENVIRONMENT = {
    "sandbox/python_worker/runtime.py",
    "sandbox/python_worker/context.py",
    "sandbox/provided_worker/agent.py",
}
# Where those modules may be imported from: the zygote and each other.
INSIDE_THE_SANDBOX = IN_ENVIRONMENT | {"sandbox/python_worker/zygote.py"}
_ENVIRONMENT_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def _uses_the_environment(node: ast.AST) -> bool:
    """Whether `node` reads or changes the process environment through `os`."""
    if isinstance(node, ast.Attribute):
        return (
            node.attr in _ENVIRONMENT_NAMES
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        )
    return (
        isinstance(node, ast.ImportFrom)
        and node.module == "os"
        and any(alias.name in _ENVIRONMENT_NAMES for alias in node.names)
    )


def _environment_uses(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), str(path))
    return [node.lineno for node in ast.walk(tree) if _uses_the_environment(node)]


def test_only_the_cli_reads_the_environment() -> None:
    """Only the CLI reads the environment; everything else is given what it needs."""
    offenders = {
        f"{relative}:{line}"
        for package in ("edge", "sandbox", "origin_proxy")
        for path in sorted((REPO / package).rglob("*.py"))
        if (relative := str(path.relative_to(REPO))) != "edge/cli.py"
        and relative not in IN_ENVIRONMENT
        for line in _environment_uses(path)
    }
    assert offenders == set()


def test_code_that_uses_a_functions_environment_runs_only_in_it() -> None:
    inside = {path.removesuffix(".py").replace("/", ".") for path in IN_ENVIRONMENT}
    importers = set()
    for package in ("edge", "sandbox", "origin_proxy"):
        for path in sorted((REPO / package).rglob("*.py")):
            relative = str(path.relative_to(REPO))
            for node in ast.walk(ast.parse(path.read_text(), relative)):
                if isinstance(node, ast.Import):
                    names = {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = {f"{node.module}.{alias.name}" for alias in node.names}
                    names.add(node.module)
                else:
                    continue
                if names & inside and relative not in INSIDE_THE_SANDBOX:
                    importers.add(relative)
    assert importers == set()
