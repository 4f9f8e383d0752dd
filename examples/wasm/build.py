"""Build the example WASM guests (examples/wasm/) from source with the `ziglang` toolchain.

    .venv/bin/pip install -q -e '.[wasm-examples]' && .venv/bin/python examples/wasm/build.py

Each guest compiles to `<out_dir>/<language>/<name>.wasm` (default: examples/wasm/build/). A
build is skipped when a stamp next to the module records the same key: a hash of the sources,
the ABI header, the flags and the toolchain version, so repeated runs cost nothing. Outputs are
replaced atomically, so two builds at once cannot read a half-written module. The test suite
imports this file (through tests/wasm_guests/build.py) to build the guests it drives.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[2]
# The extra of pyproject.toml that installs the toolchain (the test extra has it too).
TOOLCHAIN_EXTRA = "wasm-examples"
EXAMPLES = REPO / "examples" / "wasm"
ABI_HEADER = REPO / "sandbox" / "wasm" / "edge_abi.h"
DEFAULT_OUT_DIR = EXAMPLES / "build"

Language = Literal["c", "zig"]
LANGUAGES: tuple[Language, ...] = ("c", "zig")

# The toolchain's default wasm stack is 1 MiB; these guests need a few KiB (the C parser stops
# at 256 levels of nesting), and every instance pays for its stack pages.
STACK_BYTES = 64 * 1024

# wasm32-freestanding: the core ABI, nothing imported but edge.log. No libc (-nostdlib): the
# guests bring their own heap; -Wl,--no-entry because a reactor has no _start.
C_FLAGS = (
    "-target",
    "wasm32-freestanding",
    "-Os",
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-nostdlib",
    "-Wl,--no-entry",
    f"-Wl,-z,stack-size={STACK_BYTES}",
)
C_LIBRARY = ("edge_guest.h", "edge_guest.c", "edge_json.c")

# -rdynamic exports every `export fn`; -fno-entry for the same reason as above.
ZIG_FLAGS = (
    "-target",
    "wasm32-freestanding",
    "-fno-entry",
    "-rdynamic",
    "-O",
    "ReleaseSmall",
    "--stack",
    str(STACK_BYTES),
)
ZIG_LIBRARY = ("edge.zig",)

STAMP_SUFFIX = ".sha256"


class GuestBuildFailed(RuntimeError):
    """The compiler rejected a guest (the message carries its command and diagnostics), or
    there is no compiler (the message says what to install)."""


def missing_toolchain() -> str | None:
    """What to install when this Python has no `ziglang` package; None when it has."""
    if importlib.util.find_spec("ziglang") is not None:
        return None
    return (
        "the WASM examples are compiled with the Zig toolchain of the `ziglang` package,\n"
        f"which this Python ({sys.executable}) does not have.\n"
        f"Install it with edge's `{TOOLCHAIN_EXTRA}` extra:\n"
        f"    {sys.executable} -m pip install -e '{REPO}[{TOOLCHAIN_EXTRA}]'"
    )


@dataclass(frozen=True)
class Guest:
    """One example function in one language, and the entry points it exports."""

    name: str
    language: Language
    entry_points: tuple[str, ...]

    @property
    def source_dir(self) -> Path:
        return EXAMPLES / self.language

    @property
    def main_source(self) -> Path:
        return self.source_dir / f"{self.name}.{self.language}"

    @property
    def sources(self) -> tuple[Path, ...]:
        """Every file the build reads, for the cache key."""
        if self.language == "c":
            library = tuple(self.source_dir / name for name in C_LIBRARY)
            return (self.main_source, *library, ABI_HEADER)
        return (self.main_source, *(self.source_dir / name for name in ZIG_LIBRARY))

    def output(self, out_dir: Path) -> Path:
        return out_dir / self.language / f"{self.name}.wasm"

    def command(self, output: Path) -> list[str]:
        zig = [sys.executable, "-m", "ziglang"]
        if self.language == "c":
            c_files = [str(self.main_source)]
            c_files += [str(self.source_dir / n) for n in C_LIBRARY if n.endswith(".c")]
            include = f"-I{ABI_HEADER.parent}"
            return [*zig, "cc", *C_FLAGS, include, "-o", str(output), *c_files]
        return [
            *zig,
            "build-exe",
            *ZIG_FLAGS,
            f"-femit-bin={output}",
            str(self.main_source),
        ]


_ENTRY_POINTS = {
    "security_headers": ("origin_response", "handler"),
    "ab_testing": ("viewer_request", "viewer_response", "handler"),
    "redirects": ("viewer_request", "handler"),
}

GUESTS: tuple[Guest, ...] = tuple(
    Guest(name, language, entries)
    for language in LANGUAGES
    for name, entries in _ENTRY_POINTS.items()
)


def find_guest(name: str, language: Language) -> Guest:
    for guest in GUESTS:
        if guest.name == name and guest.language == language:
            return guest
    raise KeyError(f"no {language} guest named {name!r}")


def toolchain_version() -> str:
    problem = missing_toolchain()
    if problem is not None:
        raise GuestBuildFailed(problem)
    return importlib.metadata.version("ziglang")


def cache_key(guest: Guest) -> str:
    digest = hashlib.sha256()
    digest.update(f"ziglang {toolchain_version()}\0".encode())
    digest.update("\0".join(guest.command(Path("OUT"))[1:]).encode())
    for source in guest.sources:
        digest.update(f"\0{source.relative_to(REPO)}\0".encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def build_guest(guest: Guest, out_dir: Path = DEFAULT_OUT_DIR) -> Path:
    """Compile `guest` into `out_dir` (unless an identical build is there) and return its path."""
    output = guest.output(out_dir)
    stamp = output.with_name(output.name + STAMP_SUFFIX)
    key = cache_key(guest)
    if output.is_file() and stamp.is_file() and stamp.read_text() == key:
        return output
    output.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{guest.name}-"))
    try:
        built = workdir / output.name
        command = guest.command(built)
        # Zig's caches (compiled std, compiler_rt) go next to the outputs, not into $HOME or
        # the source tree; the scratch directory catches any intermediate file.
        cache = out_dir / ".zig-cache"
        env = {
            **os.environ,
            "ZIG_GLOBAL_CACHE_DIR": str(cache / "global"),
            "ZIG_LOCAL_CACHE_DIR": str(cache / "local"),
        }
        done = subprocess.run(
            command, cwd=workdir, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0 or not built.is_file():
            raise GuestBuildFailed(
                f"{guest.language} guest {guest.name} failed to build\n"
                f"$ {' '.join(command)}\n{done.stderr}"
            )
        os.replace(built, output)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _write_atomically(stamp, key.encode())
    return output


def build_all(
    out_dir: Path = DEFAULT_OUT_DIR, guests: Iterable[Guest] = GUESTS
) -> dict[Guest, Path]:
    """Build several guests at once (the compiler runs in child processes, so threads suffice)."""
    todo = list(guests)
    with ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1) or 1) as pool:
        paths = list(pool.map(lambda g: build_guest(g, out_dir), todo))
    return dict(zip(todo, paths, strict=True))


def main(argv: list[str]) -> int:
    """`python examples/wasm/build.py [OUT_DIR]`: build every guest and print its size."""
    if any(arg.startswith("-") for arg in argv) or len(argv) > 1:
        print("usage: python examples/wasm/build.py [OUT_DIR]", file=sys.stderr)
        return 2
    out_dir = Path(argv[0]).resolve() if argv else DEFAULT_OUT_DIR
    try:
        built = build_all(out_dir)
    except GuestBuildFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for guest, path in built.items():
        print(f"{guest.language:4} {guest.name:17} {path.stat().st_size:7} B  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
