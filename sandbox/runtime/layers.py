"""Lambda layers: a function's extra directories and .zip archives, seen merged at /opt.

Lambda extracts a function's layers in order into /opt (a file of a later layer replaces the
same file of an earlier one) and points the runtime's search paths there: `/opt/bin` ends PATH,
`/opt/lib` ends LD_LIBRARY_PATH, a Python function imports from
`/opt/python/lib/pythonX.Y/site-packages` then `/opt/python` (after its own code, before the
runtime's packages), a Node.js function resolves bare names through
`NODE_PATH=/opt/nodejs/nodeNN/node_modules:/opt/nodejs/node_modules:...`.

Here the layers are merged once per content into a read-only tree in a cache directory
(`LayerSet.prepare`: a .zip is unpacked once per content hash, the tree is made of hard links
where the filesystem allows, copies where not). Under bubblewrap the tree is mounted at /opt
(`bwrap_arguments`); unconfined, the same variables point at the tree itself (`root`). Every
runtime uses the same `LayerSet`: a runtime adds its own search paths with `python_paths`,
`node_path` or nothing, and `search_variables` for PATH and LD_LIBRARY_PATH.

`check_layers` gives Lambda's limits as problems (5 layers; 250 MB unzipped, the function's
code and every layer together; each layer an existing directory or .zip file) for `edge check`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import shutil
import stat
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.runtime.errors import FunctionCodeInvalid, SandboxError
from sandbox.runtime.limits import MAX_LAYERS, MIB

OPT = "/opt"

# §14: 250 MB unzipped for the deployment package with every layer (at most MAX_LAYERS).
MAX_UNZIPPED_BYTES = 250 * MIB

_CHUNK_BYTES = 1 << 20


class LayerInvalid(SandboxError):
    """A layer cannot be used (missing, neither a directory nor a .zip, an unsafe archive)."""


# -- limits, for `edge check` -----------------------------------------------------------------


def layer_problem(path: Path) -> str | None:
    """Why `path` cannot be a layer (as "expected ..., found ..."), or None."""
    if path.is_dir():
        return None
    if not path.exists():
        return f"expected an existing directory or .zip file, found nothing at {str(path)!r}"
    if path.suffix.lower() != ".zip" or not path.is_file():
        return f"expected a directory or a .zip file, found {str(path)!r}, which is neither"
    if not zipfile.is_zipfile(path):
        return f"expected a .zip archive, found {str(path)!r}, which is not a valid one"
    try:
        with zipfile.ZipFile(path) as archive:
            unsafe = next((n for n in archive.namelist() if not _safe_member(n)), None)
    except (OSError, zipfile.BadZipFile) as exc:
        return f"expected a readable .zip archive, found {str(path)!r}: {exc}"
    if unsafe is not None:
        return (
            f"expected a .zip whose members stay inside it, found {str(path)!r} with the "
            f"member {unsafe!r}"
        )
    return None


def _safe_member(name: str) -> bool:
    """A member that unpacks inside the tree: relative, with no `..` part."""
    parts = Path(name).parts
    return bool(parts) and not name.startswith("/") and ".." not in parts


def unzipped_size_bytes(path: Path, *, excluded: Sequence[Path] = ()) -> int:
    """What `path` (a directory, a .zip or a file) occupies unzipped: the apparent size of its
    regular files (a sparse file counts whole), as Lambda counts an unzipped package; nothing
    under `excluded` (absolute paths) counts."""
    if path.is_dir():
        total = 0
        skipped = {str(p) for p in excluded}
        for _relative, entry in _walk(path, skipped=skipped):
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
        return total
    if path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist() if not info.is_dir())
    return path.stat().st_size if path.is_file() else 0


def check_layers(
    layers: Sequence[Path], code_dir: Path | None, *, excluded: Sequence[Path] = ()
) -> list[tuple[int | None, str]]:
    """Lambda's limits on `layers` (absolute paths) for a function whose code is `code_dir`:
    (the layer's index, or None for the whole list; the problem). `excluded`: folders inside
    the code that are not the function's (the edge's own, hidden from it). Reads the file
    system."""
    if len(layers) > MAX_LAYERS:
        return [
            (None, f"expected at most {MAX_LAYERS} layers (Lambda's limit), found {len(layers)}")
        ]
    problems: list[tuple[int | None, str]] = []
    for index, layer in enumerate(layers):
        problem = layer_problem(layer)
        if problem is not None:
            problems.append((index, problem))
    if problems or not layers:
        return problems
    sizes = [unzipped_size_bytes(layer) for layer in layers]
    code_bytes = 0
    if code_dir is not None and code_dir.is_dir():
        code_bytes = unzipped_size_bytes(code_dir, excluded=excluded)
    total = code_bytes + sum(sizes)
    if total > MAX_UNZIPPED_BYTES:
        parts = ", ".join(
            [f"code {code_bytes / MIB:.1f}"]
            + [f"layers[{i}] {s / MIB:.1f}" for i, s in enumerate(sizes)]
        )
        problems.append(
            (
                None,
                f"expected the function's code and layers to total at most "
                f"{MAX_UNZIPPED_BYTES // MIB} MB unzipped (Lambda's limit), found "
                f"{total / MIB:.1f} MB ({parts})",
            )
        )
    return problems


# -- search paths: pure -------------------------------------------------------------------------


def python_paths(root: str, major: int, minor: int) -> list[str]:
    """What a Python function imports from, after its own code and before the runtime's
    packages, in Lambda's order (awslambdaric's bootstrap: the task root, then
    `/opt/python/lib/pythonX.Y/site-packages`, then `/opt/python`)."""
    return [f"{root}/python/lib/python{major}.{minor}/site-packages", f"{root}/python"]


def node_path(root: str, node_major: int) -> str:
    """NODE_PATH as Lambda's Node.js runtimes set it, but for its own directories (the task
    root's node_modules is found by Node's own lookup from the handler's file)."""
    return f"{root}/nodejs/node{node_major}/node_modules:{root}/nodejs/node_modules"


def search_variables(root: str, path: str) -> dict[str, str]:
    """PATH (`path`, then `/opt/bin`) and LD_LIBRARY_PATH (`/opt/lib`), as Lambda ends them."""
    return {"PATH": f"{path}:{root}/bin", "LD_LIBRARY_PATH": f"{root}/lib"}


def default_cache_dir() -> Path:
    """Where trees are made when a spec names no cache directory: `~/.cache/edge/layers`
    (the edge gives its own, `.edge/layers` beside edge.toml)."""
    return Path.home() / ".cache" / "edge" / "layers"


# -- the merged tree ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LayerSet:
    """A function's layers merged into `merged_dir` (read-only by convention: the functions'
    own view of it is a read-only mount, or the edge's files when unconfined).

    `entries`: the names at the top of the tree (`python`, `nodejs`, `bin`...), each mounted
    at /opt under bubblewrap.
    """

    merged_dir: Path
    entries: tuple[str, ...]

    @classmethod
    def prepare(cls, layers: Sequence[Path], cache_dir: Path) -> LayerSet | None:
        """The merged tree of `layers` (directories or .zip files, in order), made under
        `cache_dir` unless one for the same content is there already; None for no layers.
        Blocking (it reads every layer's metadata, hashes each .zip). Raises `LayerInvalid`."""
        if not layers:
            return None
        cache_dir = Path(cache_dir)
        sources: list[Path] = []
        keys: list[str] = []
        for layer in layers:
            layer = Path(layer)
            problem = layer_problem(layer)
            if problem is not None:
                raise LayerInvalid(f"layer {str(layer)!r}: {problem}")
            if layer.is_dir():
                sources.append(layer)
                keys.append("d:" + _tree_fingerprint(layer))
            else:
                digest = _file_sha256(layer)
                sources.append(_unpacked(layer, cache_dir / "zips" / digest))
                keys.append("z:" + digest)
        key = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:32]
        merged = cache_dir / "merged" / key
        if not merged.is_dir():
            _publish(merged, lambda staging: _merge(sources, staging))
        entries = tuple(sorted(os.listdir(merged)))
        return cls(merged, entries)

    def root(self, confined: bool) -> str:
        """Where the function sees the layers: /opt under bubblewrap, else the tree itself."""
        return OPT if confined else str(self.merged_dir)

    def bwrap_arguments(self) -> list[str]:
        """bwrap(1) arguments that show the tree read-only at /opt: a tmpfs there with each
        top entry bound read-only (so that an installation the sandbox binds under /opt, a
        Python in /opt/venv, still finds its mount point). Follow with `bwrap_closing`."""
        args = ["--perms", "0755", "--tmpfs", OPT]
        for name in self.entries:
            source = self.merged_dir / name
            if source.is_symlink():  # resolved inside the sandbox, as on Lambda (/opt/...)
                args += ["--symlink", os.readlink(source), f"{OPT}/{name}"]
            else:
                args += ["--ro-bind", str(source), f"{OPT}/{name}"]
        return args

    def variables(self, confined: bool, path: str) -> dict[str, str]:
        """PATH and LD_LIBRARY_PATH of a process that sees the layers (`search_variables`)."""
        return search_variables(self.root(confined), path)

    @staticmethod
    def bwrap_closing() -> list[str]:
        """What ends the /opt view once every other bind is made: the tmpfs read-only too."""
        return ["--remount-ro", OPT]


async def prepare_layers(
    name: str, layers: Sequence[Path], cache_dir: Path | None
) -> LayerSet | None:
    """`LayerSet.prepare` off the event loop, for function `name` (`cache_dir` None: the
    default); a layer that cannot be used raises `FunctionCodeInvalid` (the function then
    fails its own invocations, as with code that cannot run)."""
    if not layers:
        return None
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(
            None, LayerSet.prepare, tuple(layers), cache_dir or default_cache_dir()
        )
    except (LayerInvalid, OSError, zipfile.BadZipFile) as exc:
        raise FunctionCodeInvalid(name, f"its layers cannot be used: {exc}") from None


def _walk(
    top: Path, relative: str = "", *, skipped: set[str] | None = None
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry under `top`, parents first, without following symbolic links (nor going
    into the directories whose paths are `skipped`)."""
    with os.scandir(top / relative if relative else top) as entries:
        found = sorted(entries, key=lambda e: e.name)
    for entry in found:
        if skipped and entry.path in skipped:
            continue
        name = f"{relative}/{entry.name}" if relative else entry.name
        yield name, entry
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(top, name, skipped=skipped)


def _tree_fingerprint(top: Path) -> str:
    """A directory's content as far as its metadata tells (names, types, modes, sizes,
    modification times, link targets): a changed file changes it, at the cost of a stat each."""
    digest = hashlib.sha256()
    for name, entry in _walk(top):
        info = entry.stat(follow_symlinks=False)
        target = os.readlink(entry.path) if entry.is_symlink() else ""
        digest.update(
            f"{name}\0{info.st_mode}\0{info.st_size}\0{info.st_mtime_ns}\0{target}\n".encode()
        )
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _publish(final: Path, build: Callable[[Path], None]) -> None:
    """Build a tree in a staging directory beside `final`, then rename it into place; another
    process that published the same tree first wins (its tree is the same)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.{uuid.uuid4().hex}"
    staging.mkdir(mode=0o755)
    try:
        build(staging)
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, final)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _unpacked(archive: Path, target: Path) -> Path:
    """`archive` unpacked at `target` (once per content hash)."""
    if not target.is_dir():
        _publish(target, lambda staging: _extract(archive, staging))
    return target


def _extract(archive: Path, into: Path) -> None:
    """Unpack a layer archive as Lambda does: Unix modes kept (an executable stays one),
    symbolic links kept; a member outside the tree or inside a link is refused."""
    made: set[tuple[str, ...]] = set()
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            parts = Path(info.filename).parts
            if not _safe_member(info.filename):
                raise LayerInvalid(f"layer {str(archive)!r}: unsafe member {info.filename!r}")
            target = into.joinpath(*parts)
            if parts[:-1] not in made:
                _make_parents(into, parts[:-1], archive)
                made.add(parts[:-1])
            mode = info.external_attr >> 16
            if info.is_dir():
                if not target.is_dir():
                    target.mkdir(mode=0o755)
                continue
            if stat.S_ISLNK(mode):
                made.clear()  # a link may now stand where a parent was: check them again
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
                os.symlink(zipped.read(info).decode(), target)
                continue
            with zipped.open(info) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, _CHUNK_BYTES)
            os.chmod(target, (mode & 0o777) or 0o644)


def _make_parents(top: Path, parts: Sequence[str], archive: Path) -> None:
    current = top
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise LayerInvalid(f"layer {str(archive)!r}: a member inside the link {part!r}")
        if not current.is_dir():
            current.mkdir(mode=0o755)


def _merge(sources: Sequence[Path], into: Path) -> None:
    """Lay each source over the last, as Lambda extracts layers into /opt in order: a later
    file (or link) replaces the earlier one at its path, directories merge."""
    for source in sources:
        for name, entry in _walk(source):
            target = into / name
            if entry.is_dir(follow_symlinks=False):
                if target.is_symlink() or (target.exists() and not target.is_dir()):
                    target.unlink()
                if not target.is_dir():
                    target.mkdir(mode=0o755)
                continue
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), target)
            elif entry.is_file(follow_symlinks=False):
                _link_or_copy(Path(entry.path), target)


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (no bytes copied) where the file system allows one, else a copy."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)
