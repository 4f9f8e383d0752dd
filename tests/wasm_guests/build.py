"""The example WASM guests' builder, examples/wasm/build.py (it lives with the examples, for
users), imported here for the tests and benchmarks that build the guests they drive."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_PATH = Path(__file__).resolve().parents[2] / "examples" / "wasm" / "build.py"
_NAME = "edge_examples_wasm_build"


def _load() -> ModuleType:
    if _NAME in sys.modules:
        return sys.modules[_NAME]
    spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


_builder = _load()
GUESTS = _builder.GUESTS
LANGUAGES = _builder.LANGUAGES
DEFAULT_OUT_DIR = _builder.DEFAULT_OUT_DIR
Guest = _builder.Guest
GuestBuildFailed = _builder.GuestBuildFailed
Language = _builder.Language
build_all = _builder.build_all
build_guest = _builder.build_guest
find_guest = _builder.find_guest
main = _builder.main

__all__ = [
    "DEFAULT_OUT_DIR",
    "GUESTS",
    "LANGUAGES",
    "Guest",
    "GuestBuildFailed",
    "Language",
    "build_all",
    "build_guest",
    "find_guest",
    "main",
]
