"""Lambda layers (`functions.NAME.layers`): folders and .zip files merged in order at /opt.

Real worker processes (Python zygotes and `node`) under the sandbox this machine gives: the
layers' modules import in Lambda's order (the code, then `python/lib/pythonX.Y/site-packages`,
then `python/`; NODE_PATH's `nodejs/nodeNN/node_modules` before `nodejs/node_modules`), a later
layer's file replaces an earlier one's, `bin/` is on PATH and `lib/` on LD_LIBRARY_PATH, and
/opt is read-only. Through the real proxy and `edge invoke`: a configured function's layers.
Through the configuration: Lambda's limits, each a clear error under the function's key.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.config import ConfigError, load_config
from sandbox import (
    FunctionSpec,
    NodeFunctionSpec,
    RuntimeHost,
    SandboxPolicy,
    probe_isolation,
)
from sandbox.node_worker.launcher import node_major_version
from sandbox.node_worker.spec import find_node
from sandbox.runtime.layers import LayerInvalid, LayerSet
from tests.conftest import REPO, EdgeProcess
from tests.origin_app import OriginServer

LAYERS = REPO / "tests" / "layers"
FUNCTIONS = LAYERS / "functions"
PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"
HAS_NODE = shutil.which("node") is not None


def _invoke(
    spec: FunctionSpec | NodeFunctionSpec,
    event: dict[str, Any],
    isolation: SandboxPolicy | None = None,
) -> Any:
    async def main() -> Any:
        host = RuntimeHost(isolation=isolation)
        runtime = host.create(spec)
        try:
            result = await runtime.invoke(json.dumps(event).encode())
            return json.loads(result.payload)
        finally:
            await runtime.aclose()
            host.close()

    return asyncio.run(main())


def _confined() -> bool:
    return probe_isolation().level == "namespaces"


@pytest.fixture
def versioned_layer(tmp_path: Path) -> Path:
    """A layer with the same module under `python/lib/pythonX.Y/site-packages` (for the
    running Python) and `python/`: the first wins, as on Lambda."""
    layer = tmp_path / "versioned"
    site = layer / "python" / "lib" / PYTHON / "site-packages"
    site.mkdir(parents=True)
    (site / "versioned.py").write_text('WHERE = "site-packages"\n')
    (layer / "python" / "versioned.py").write_text('WHERE = "python"\n')
    return layer


def _spec(tmp_path: Path, layers: list[Path]) -> FunctionSpec:
    return FunctionSpec(
        name="layered",
        handler="handler.handler",
        code_dir=FUNCTIONS,
        layers=tuple(layers),
        layer_cache_dir=tmp_path / "cache",
        max_environments=1,
    )


def test_python_imports_from_layers_in_lambdas_order(tmp_path: Path, versioned_layer: Path) -> None:
    spec = _spec(tmp_path, [LAYERS / "one", LAYERS / "two", versioned_layer])
    found = _invoke(spec, {"versioned": True})
    root = "/opt" if _confined() else found["LD_LIBRARY_PATH"].removesuffix("/lib")
    # The task root first, then the layers' site-packages, then their python/ (awslambdaric).
    assert found["sys_path"] == [
        str(FUNCTIONS),
        f"{root}/python/lib/{PYTHON}/site-packages",
        f"{root}/python",
    ]
    assert found["versioned"] == "site-packages"
    assert found["shadowed"] == "code"  # the function's own module before a layer's
    assert found["greeting"] == "hello from layer one"
    assert found["shared"] == "layer two"  # the later layer's file replaced the earlier one's


def test_bin_is_on_path_and_lib_on_the_loaders_path(tmp_path: Path) -> None:
    library_layer = tmp_path / "library"
    (library_layer / "lib").mkdir(parents=True)
    system_zlib = sorted(glob.glob("/usr/lib/*/libz.so.1") + glob.glob("/lib/*/libz.so.1"))
    if system_zlib:
        shutil.copy(system_zlib[0], library_layer / "lib" / "libedgelayer.so")
    spec = _spec(tmp_path, [LAYERS / "one", LAYERS / "two", library_layer])
    event: dict[str, Any] = {"tool": True}
    if system_zlib:
        event["library"] = "libedgelayer.so"  # found by name only through LD_LIBRARY_PATH
    found = _invoke(spec, event)
    root = found["LD_LIBRARY_PATH"].removesuffix("/lib")
    assert found["PATH"].endswith(f":{root}/bin")  # Lambda's PATH ends with /opt/bin
    assert found["tool"] == "layer tool ran with x"
    if system_zlib:
        assert found["library"] is True


@pytest.mark.skipif(not _confined(), reason="needs bubblewrap (namespaces isolation)")
def test_under_bubblewrap_the_layers_are_read_only_at_opt(tmp_path: Path) -> None:
    found = _invoke(_spec(tmp_path, [LAYERS / "one"]), {"write": "/opt"})
    assert found["LD_LIBRARY_PATH"] == "/opt/lib"
    assert found["PATH"].endswith(":/opt/bin")
    assert found["written"] == "OSError"  # EROFS
    assert not (LAYERS / "one" / "python" / "new.txt").exists()


def test_unconfined_the_variables_name_the_merged_tree_itself(tmp_path: Path) -> None:
    spec = _spec(tmp_path, [LAYERS / "one", LAYERS / "two"])
    found = _invoke(spec, {"tool": True}, SandboxPolicy(isolation="none"))
    (merged,) = (tmp_path / "cache" / "merged").iterdir()
    assert found["LD_LIBRARY_PATH"] == f"{merged}/lib"
    assert found["sys_path"][1:] == [
        f"{merged}/python/lib/{PYTHON}/site-packages",
        f"{merged}/python",
    ]
    assert found["PATH"].endswith(f":{merged}/bin")
    assert "/opt" not in json.dumps(found)
    assert found["tool"] == "layer tool ran with x"
    assert found["shared"] == "layer two"


def _zip_layer(tmp_path: Path) -> Path:
    """A layer as Lambda publishes one: a .zip, with an executable kept executable."""
    archive = tmp_path / "tools.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        module = zipfile.ZipInfo("python/greeting.py")
        module.external_attr = 0o100644 << 16  # as on Lambda, the function reads it as others
        zipped.writestr(module, 'WORDS = "hello from a zip"\n')
        tool = zipfile.ZipInfo("bin/layer-tool")
        tool.external_attr = 0o100755 << 16
        zipped.writestr(tool, '#!/bin/sh\necho "zipped tool ran with $1"\n')
    return archive


def test_a_zip_layer_is_unpacked_once_and_overrides_a_folder(tmp_path: Path) -> None:
    archive = _zip_layer(tmp_path)
    spec = _spec(tmp_path, [LAYERS / "one", LAYERS / "two", archive])
    found = _invoke(spec, {"tool": True})
    assert found["greeting"] == "hello from a zip"
    assert found["tool"] == "zipped tool ran with x"
    assert found["shared"] == "layer two"
    again = _invoke(spec, {})
    assert again["greeting"] == "hello from a zip"
    # One unpacked copy per archive content, one merged tree per set of layers.
    assert len(os.listdir(tmp_path / "cache" / "zips")) == 1
    assert len(os.listdir(tmp_path / "cache" / "merged")) == 1


def test_a_zip_member_through_a_link_it_made_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "sneaky.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        link = zipfile.ZipInfo("lib")
        link.external_attr = 0o120777 << 16
        zipped.writestr(link, str(tmp_path / "outside"))
        zipped.writestr("lib/planted.txt", "x")
    (tmp_path / "outside").mkdir()
    with pytest.raises(LayerInvalid, match="inside the link"):
        LayerSet.prepare([archive], tmp_path / "cache")
    assert not (tmp_path / "outside" / "planted.txt").exists()


def test_a_layer_that_disappeared_fails_the_functions_invocations(tmp_path: Path) -> None:
    from sandbox import FunctionCodeInvalid

    spec = _spec(tmp_path, [tmp_path / "gone"])
    with pytest.raises(FunctionCodeInvalid, match="layers cannot be used"):
        _invoke(spec, {})


@pytest.mark.skipif(not HAS_NODE, reason="`node` is not installed")
def test_node_resolves_packages_from_layers_as_lambdas_node_path(tmp_path: Path) -> None:
    major = node_major_version(find_node())
    versioned = tmp_path / "node-versioned"
    package = versioned / "nodejs" / f"node{major}" / "node_modules" / "greet"
    package.mkdir(parents=True)
    (package / "index.js").write_text(
        "module.exports = { where: 'nodeNN', greet: (n) => `hi ${n} from nodeNN` };\n"
    )
    spec = NodeFunctionSpec(
        name="layered-node",
        handler="index.handler",
        code_dir=FUNCTIONS / "node",
        layers=(LAYERS / "node", LAYERS / "two"),
        layer_cache_dir=tmp_path / "cache",
        spare_environments=0,
    )
    found = _invoke(spec, {})
    root = found["LD_LIBRARY_PATH"].removesuffix("/lib")
    assert (
        found["NODE_PATH"] == f"{root}/nodejs/node{major}/node_modules:{root}/nodejs/node_modules"
    )
    assert found["where"] == "nodejs/node_modules"
    assert found["greeting"] == "hello node from a layer"
    assert found["PATH"].endswith(f":{root}/bin")
    assert found["tool"] == "layer tool ran with y"
    if _confined():
        assert root == "/opt"
    # The versioned folder comes first on NODE_PATH.
    spec = NodeFunctionSpec(
        name="layered-node",
        handler="index.handler",
        code_dir=FUNCTIONS / "node",
        layers=(LAYERS / "node", LAYERS / "two", versioned),
        layer_cache_dir=tmp_path / "cache",
        spare_environments=0,
    )
    assert _invoke(spec, {})["where"] == "nodeNN"


# -- through the edge ---------------------------------------------------------------------------

CONFIG = """
[origins.web]
url = "{origin}"

[[behaviors]]
path = "/layered/*"
origin = "web"
viewer-request = "layered"

[functions.layered]
code = "code"
handler = "handler.viewer"
layers = ["layers/one", "layers/two"]
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, origin: OriginServer) -> Path:
    """edge.toml with relative paths to the function's code and layers."""
    folder = tmp_path_factory.mktemp("layers-project")
    shutil.copytree(FUNCTIONS, folder / "code")
    shutil.copytree(LAYERS / "one", folder / "layers" / "one")
    shutil.copytree(LAYERS / "two", folder / "layers" / "two")
    (folder / "edge.toml").write_text(CONFIG.format(origin=origin.url))
    return folder


@pytest.fixture(scope="module")
def edge(project: Path) -> Iterator[EdgeProcess]:
    process = EdgeProcess([str(project / "edge.toml"), "--listen", "127.0.0.1:0"]).start(project)
    yield process
    process.stop()


def test_a_function_behind_the_proxy_imports_from_its_layers(
    edge: EdgeProcess, project: Path
) -> None:
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        response = client.get("/layered/a")
    assert response.status_code == 200
    assert response.text == "hello from layer one; layer two"
    # The merged tree is kept in the edge's own folder beside edge.toml.
    assert os.listdir(project / ".edge" / "layers" / "merged")


def test_edge_invoke_of_a_configured_function_uses_its_layers(project: Path) -> None:
    config = project / "edge.toml"
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "invoke", "layered", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["body"] == "hello from layer one; layer two"


# -- limits -------------------------------------------------------------------------------------


def _problems(tmp_path: Path, function: str) -> list[str]:
    (tmp_path / "code").mkdir(exist_ok=True)
    (tmp_path / "code" / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    config = tmp_path / "edge.toml"
    config.write_text(f'[origins.web]\nurl = "http://127.0.0.1:9"\n\n[functions.fn]\n{function}')
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.source == str(config)
    return caught.value.problems


def test_more_than_five_layers_are_refused(tmp_path: Path) -> None:
    for index in range(6):
        (tmp_path / f"l{index}").mkdir()
    layers = ", ".join(f'"l{i}"' for i in range(6))
    problems = _problems(tmp_path, f'handler = "code/handler.handler"\nlayers = [{layers}]\n')
    assert problems == ["functions.fn.layers: expected at most 5 layers (Lambda's limit), found 6"]


def test_code_and_layers_over_250_mb_unzipped_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big" / "python"
    big.mkdir(parents=True)
    with open(big / "data.bin", "wb") as sparse:  # no blocks written: cheap
        sparse.truncate(251 * 1024 * 1024)
    problems = _problems(tmp_path, 'handler = "code/handler.handler"\nlayers = ["big"]\n')
    assert len(problems) == 1
    assert problems[0].startswith(
        "functions.fn.layers: expected the function's code and layers to total at most 250 MB "
        "unzipped (Lambda's limit), found 251.0 MB (code 0.0, layers[0] 251.0)"
    )


def test_the_edges_own_folder_is_not_counted_as_code(tmp_path: Path) -> None:
    (tmp_path / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    (tmp_path / "layer").mkdir()
    (tmp_path / ".edge" / "layers").mkdir(parents=True)
    with open(tmp_path / ".edge" / "layers" / "tree.bin", "wb") as sparse:
        sparse.truncate(300 * 1024 * 1024)
    config = tmp_path / "edge.toml"
    config.write_text(
        '[origins.web]\nurl = "http://127.0.0.1:9"\n\n[functions.fn]\n'
        'handler = "handler.handler"\nlayers = ["layer"]\n'
    )
    assert load_config(config).functions["fn"].layers == [tmp_path / "layer"]


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        pytest.param(
            "missing", "expected an existing directory or .zip file, found nothing at", id="missing"
        ),
        pytest.param(
            "notes.txt", "expected a directory or a .zip file, found", id="neither-dir-nor-zip"
        ),
        pytest.param("broken.zip", "expected a .zip archive, found", id="invalid-zip"),
        pytest.param(
            "unsafe.zip", "expected a .zip whose members stay inside it, found", id="zip-slip"
        ),
    ],
)
def test_a_layer_that_is_not_a_folder_or_zip_is_refused(
    tmp_path: Path, layer: str, expected: str
) -> None:
    (tmp_path / "notes.txt").write_text("not a layer")
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with zipfile.ZipFile(tmp_path / "unsafe.zip", "w") as unsafe:
        unsafe.writestr("python/../../escaped.py", "")
    (tmp_path / "ok").mkdir()
    problems = _problems(
        tmp_path, f'handler = "code/handler.handler"\nlayers = ["ok", "{layer}"]\n'
    )
    assert len(problems) == 1
    assert problems[0].startswith(f"functions.fn.layers[1]: {expected}")
    assert str(tmp_path / layer) in problems[0]


def test_layers_are_refused_on_a_wasm_function(tmp_path: Path) -> None:
    (tmp_path / "l").mkdir()
    (tmp_path / "fn.wat").write_text("(module)")
    problems = _problems(tmp_path, 'runtime = "wasm"\nmodule = "fn.wat"\nlayers = ["l"]\n')
    assert problems == [
        "functions.fn.layers: expected no layers for a wasm function (layers are extracted to "
        "/opt for python, nodejs and provided functions), found 1"
    ]
