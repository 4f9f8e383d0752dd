"""A handler that cannot import, refused before any environment starts.

What Init would fail on with `Runtime.ImportModuleError`, `Runtime.UserCodeSyntaxError` or
`Runtime.HandlerNotFound`, found without running a line of the function: the handler's module
is looked up in the code directory as Python's path finder would (`pkg/auth.py`,
`pkg/auth/__init__.py`), parsed with `ast` (with its packages' `__init__.py`), and the
function's name must be bound at the module's top level: a `def`, a class, an assignment or an
import (also inside top-level `if`/`try`/`with` blocks). A module that may bind names no parser
can see (`from x import *`, a module `__getattr__`) gets the benefit of the doubt, as do
modules found only outside the code directory or compiled ones (nothing to parse).
"""

from __future__ import annotations

import ast
import difflib
import importlib.machinery
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

from sandbox.python_worker.spec import FunctionSpec
from sandbox.runtime.errors import FunctionCodeInvalid

_COMPILED_SUFFIXES = (*importlib.machinery.EXTENSION_SUFFIXES, ".pyc")


def check_handler(spec: FunctionSpec) -> None:
    """Raise `FunctionCodeInvalid` when `spec`'s handler cannot be imported; its reason says
    what was expected and what was found (a syntax error with its line and column)."""
    module_name, _, function = spec.handler.rpartition(".")
    module_name = module_name.replace("/", ".")
    parts = module_name.split(".")
    code_dir = Path(spec.code_dir)
    if parts[0] in sys.builtin_module_names:
        _refuse(spec, f"expected a module of your own, found {parts[0]!r}, a built-in module")
    found = _find_module(code_dir, parts)
    if found is None:
        folder = code_dir.joinpath(*parts[:-1])
        if any((folder / f"{parts[-1]}{s}").is_file() for s in _COMPILED_SUFFIXES):
            return  # compiled: nothing to parse
        if _installed(parts[0]):
            return  # installed beside the edge: importable, not ours to parse
        where = code_dir.joinpath(*parts)
        _refuse(
            spec,
            f"expected the file {where}.py (module {module_name!r}; or {where}/__init__.py), "
            "found no such file",
        )
    for package_init in _package_inits(code_dir, parts):
        _parse(spec, package_init)
    tree = _parse(spec, found)
    names, open_ended = _top_level_names(tree.body)
    if function in names or open_ended:
        return
    defined = sorted(name for name in names if not name.startswith("_"))
    close = difflib.get_close_matches(function, defined, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    shown = ", ".join(repr(name) for name in defined[:8]) or "nothing public"
    _refuse(
        spec,
        f"expected a function {function!r} in {found}, found no top-level def, assignment or "
        f"import of that name (it defines {shown}){hint}",
    )


def _refuse(spec: FunctionSpec, reason: str) -> NoReturn:
    raise FunctionCodeInvalid(spec.name, reason)


def _installed(top_level: str) -> bool:
    """Whether `top_level` is importable from the interpreter's own paths (the working
    directory, which environments do not see, left out)."""
    here = Path.cwd()
    paths = [p for p in sys.path if p and Path(p).resolve() != here]
    return importlib.machinery.PathFinder.find_spec(top_level, paths) is not None


def _find_module(code_dir: Path, parts: list[str]) -> Path | None:
    base = code_dir.joinpath(*parts)
    for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_inits(code_dir: Path, parts: list[str]) -> Iterable[Path]:
    """The `__init__.py` files importing the module runs first (namespace packages have none)."""
    for depth in range(1, len(parts)):
        init = code_dir.joinpath(*parts[:depth], "__init__.py")
        if init.is_file():
            yield init


def _parse(spec: FunctionSpec, path: Path) -> ast.Module:
    try:
        source = path.read_bytes()
    except OSError as exc:
        _refuse(spec, f"expected a readable file {path}, found {exc.strerror or exc}")
    try:
        return ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        if isinstance(exc, SyntaxError):
            where = f"line {exc.lineno}, column {exc.offset}" if exc.lineno else "its start"
            what = f"a syntax error at {where}: {exc.msg}"
        else:  # null bytes
            what = f"text that is not Python source ({exc})"
        _refuse(spec, f"expected Python code in {path}, found {what}")


def _top_level_names(body: Iterable[ast.stmt]) -> tuple[set[str], bool]:
    """(the names a module binds at its top level, whether it may bind others unseen)."""
    names: set[str] = set()
    open_ended = False
    for statement in body:
        match statement:
            case (
                ast.FunctionDef(name=name)
                | ast.AsyncFunctionDef(name=name)
                | ast.ClassDef(name=name)
            ):
                names.add(name)
            case ast.Assign(targets=targets):
                for target in targets:
                    names |= _bound(target)
            case ast.AnnAssign(target=target, value=value) if value is not None:
                names |= _bound(target)
            case ast.AugAssign(target=target):
                names |= _bound(target)
            case ast.Import(names=aliases):
                names |= {alias.asname or alias.name.split(".")[0] for alias in aliases}
            case ast.ImportFrom(names=aliases):
                for alias in aliases:
                    if alias.name == "*":
                        open_ended = True
                    names.add(alias.asname or alias.name)
            case ast.For(target=target) | ast.AsyncFor(target=target):
                names |= _bound(target)
        for block in _blocks(statement):
            inner, inner_open = _top_level_names(block)
            names |= inner
            open_ended = open_ended or inner_open
        if isinstance(statement, ast.With | ast.AsyncWith):
            for item in statement.items:
                if item.optional_vars is not None:
                    names |= _bound(item.optional_vars)
    return names, open_ended or "__getattr__" in names


def _blocks(statement: ast.stmt) -> Iterable[list[ast.stmt]]:
    """The statement lists that run at the same (module) level as `statement` itself."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return
    for field in ("body", "orelse", "finalbody"):
        block = getattr(statement, field, None)
        if isinstance(block, list):
            yield block
    for handler in getattr(statement, "handlers", ()):
        yield handler.body
    for case in getattr(statement, "cases", ()):
        yield case.body


def _bound(target: ast.expr) -> set[str]:
    match target:
        case ast.Name(id=name):
            return {name}
        case ast.Tuple(elts=elements) | ast.List(elts=elements):
            return set().union(*(_bound(e) for e in elements))
        case ast.Starred(value=value):
            return _bound(value)
    return set()
