"""Benchmark of Lambda layers (run by hand): what preparing a function's layers costs at start,
and what they add to a Python function's cold start.

    python tests/benchmarks/layers_bench.py [--packages pydantic,rich,httpx] [--rounds 5]

The layer is a copy of some of this virtualenv's installed packages under `python/` (a folder
layer, and the same as a .zip). Preparing: the first `LayerSet.prepare` (the merged tree made,
by hard links; a .zip unpacked first) and a later one (the tree found by the layer's
fingerprint: a stat per file, or the .zip's SHA-256). Cold start: a Python function's first
invocation (zygote launch, fork, Init) with and without the layer, the rows interleaved over
`--rounds`; medians and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

from sandbox import FunctionSpec, RuntimeHost
from sandbox.runtime.layers import LayerSet

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"


def _layer(root: Path, packages: list[str]) -> tuple[Path, int, int]:
    """A folder layer of `packages` (copied from site-packages): (path, files, bytes)."""
    site = Path(sysconfig.get_paths()["purelib"])
    layer = root / "layer"
    for name in packages:
        source = site / name
        if source.is_dir():
            shutil.copytree(source, layer / "python" / name)
    files = [p for p in layer.rglob("*") if p.is_file()]
    return layer, len(files), sum(p.stat().st_size for p in files)


def _zip(layer: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(layer.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(layer)))
                info.external_attr = 0o100644 << 16
                zipped.writestr(info, path.read_bytes())
    return archive


def _timed_prepare(layer: Path, cache: Path) -> float:
    started = time.perf_counter()
    LayerSet.prepare([layer], cache)
    return (time.perf_counter() - started) * 1000


async def _cold_start(spec: FunctionSpec) -> float:
    host = RuntimeHost()
    runtime = host.create(spec)
    started = time.perf_counter()
    try:
        await runtime.invoke(b"{}")
        return (time.perf_counter() - started) * 1000
    finally:
        await runtime.aclose()
        host.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", default="pydantic,rich,httpx,click")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-layers-bench-") as tmp:
        root = Path(tmp)
        layer, files, size = _layer(root, args.packages.split(","))
        archive = _zip(layer, root / "layer.zip")
        zipped_mb = archive.stat().st_size / 1e6
        print(f"layer: {files} files, {size / 1e6:.1f} MB ({zipped_mb:.1f} MB zipped)")
        print(f"prepare folder, first : {_timed_prepare(layer, root / 'cache-dir'):8.1f} ms")
        print(f"prepare folder, again : {_timed_prepare(layer, root / 'cache-dir'):8.1f} ms")
        print(f"prepare .zip, first   : {_timed_prepare(archive, root / 'cache-zip'):8.1f} ms")
        print(f"prepare .zip, again   : {_timed_prepare(archive, root / 'cache-zip'):8.1f} ms")
        plain = FunctionSpec(
            name="bench", handler="basic.echo", code_dir=FUNCTIONS, max_environments=1
        )
        layered = FunctionSpec(
            name="bench",
            handler="basic.echo",
            code_dir=FUNCTIONS,
            max_environments=1,
            layers=(layer,),
            layer_cache_dir=root / "cache-dir",
        )
        rows: dict[str, list[float]] = {"no layers": [], "one layer": []}
        for _ in range(args.rounds):
            rows["no layers"].append(asyncio.run(_cold_start(plain)))
            rows["one layer"].append(asyncio.run(_cold_start(layered)))
        medians = {name: statistics.median(times) for name, times in rows.items()}
        for name, times in rows.items():
            print(
                f"cold start, {name:9}: median {medians[name]:7.1f} ms "
                f"(min {min(times):.1f}, max {max(times):.1f}, {len(times)} rounds)"
            )
        print(f"ratio one layer / no layers: {medians['one layer'] / medians['no layers']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
