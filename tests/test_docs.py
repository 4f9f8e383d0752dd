"""What the documentation tells a user is true: README's configuration reference is the one the
schema generates, the demo's tour gives the answers it says against a real `edge serve`, the
WASM examples build with their documented command, LICENSE is the license pyproject.toml names,
and nothing in the repository points at files a user does not have."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from edge.cli import main
from edge.config import reference
from tests.conftest import REPO, EdgeProcess

README = REPO / "README.md"


def _section(text: str, heading: str) -> str:
    """The text of README's `## heading` section, up to the next `## `."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


# ---- the configuration reference -------------------------------------------------------------


def test_readme_configuration_reference_is_the_generated_one() -> None:
    block = reference.readme_block(README.read_text(encoding="utf-8"))
    assert block == reference.render_markdown(), (
        "README's configuration reference differs from the schema's: refresh it with "
        "`.venv/bin/python -m edge.config.reference README.md`"
    )


def _models() -> set[type[BaseModel]]:
    """Every model of the schema reachable from EdgeConfig."""
    import edge.config.schema as schema

    return {
        value
        for value in vars(schema).values()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == schema.__name__
        and not value.__name__.startswith("_")
    }


def test_explain_prints_every_key_in_plain_words() -> None:
    result = CliRunner().invoke(main, ["check", "--explain"])
    assert result.exit_code == 0, result.output
    text = result.output
    sections = reference.sections()
    assert [s.title for s in sections][:2] == ["[server]", "[origins.NAME] with `url`"]
    titles = "\n".join(s.title for s in sections)
    for table in ("[[behaviors]]", "[functions.NAME]", "cache = { ... }", "[invoke]", "[admin]"):
        assert table in titles
    covered = {model for model in _models() if model.__name__ != "EdgeConfig"}
    for model in covered:
        for key in reference.keys_of(model):
            assert re.search(rf"^  {re.escape(key)}[ =]", text, re.M), f"{model.__name__}.{key}"
    # Every key has a meaning, and no type is spelled as Python or pydantic spells it.
    for section in sections:
        assert section.intro, section.title
        for key in section.keys:
            assert key.meaning, f"{section.title} {key.name} has no description"
    for model in _models():
        assert model.__name__ not in text
    for word in ("Literal", "Annotated", "Optional", "None", "NoneType", "Path", "[A-Za-z", "^["):
        assert word not in text, word


def test_check_needs_a_config_or_explain() -> None:
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 2
    assert "--explain" in result.output


# ---- the demo's tour ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    tmp = tmp_path_factory.mktemp("tour")
    process = EdgeProcess(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]).start(tmp)
    yield process
    process.stop()


def _tour_commands() -> list[tuple[str, str]]:
    """(command, comment) for every line of the tour's shell blocks."""
    tour = _section(README.read_text(encoding="utf-8"), "A tour of the demo")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", tour, re.S):
        for line in block.splitlines():
            command, _, comment = line.partition(" # ")
            if command.strip():
                commands.append((command.strip(), comment.strip()))
    return commands


def _request(tokens: list[str], demo: EdgeProcess, cwd: Path) -> httpx.Response:
    """A curl command line of the tour, sent with httpx (the options the tour uses)."""
    method, url, content = "", "", None
    headers: list[tuple[str, str]] = []
    args = iter(tokens[1:])
    for arg in args:
        if arg in ("-i", "-s"):
            continue
        if arg == "-u":
            token = base64.b64encode(next(args).encode()).decode()
            headers.append(("Authorization", f"Basic {token}"))
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers.append((name.strip(), value.strip()))
        elif arg == "-b":
            headers.append(("Cookie", next(args)))
        elif arg == "-d":
            data = next(args)
            content = (cwd / data[1:]).read_bytes() if data.startswith("@") else data.encode()
            content = content.replace(b"\n", b"").replace(b"\r", b"")  # as curl -d reads it
        elif arg == "-X":
            method = next(args)
        elif arg.startswith("-"):
            raise AssertionError(f"the tour uses a curl option this test cannot check: {arg}")
        else:
            url = arg
    if content is not None and not any(n.lower() == "content-type" for n, _ in headers):
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    url = url.replace("http://127.0.0.1:8080", demo.url)
    url = url.replace("http://127.0.0.1:9180", demo.admin_url)
    method = method or ("POST" if content is not None else "GET")
    with httpx.Client(timeout=30) as client:
        return client.request(method, url, headers=headers, content=content)


def _run_edge(tokens: list[str], cwd: Path) -> None:
    """`.venv/bin/edge ARGS [> FILE]` of the tour."""
    output = None
    if ">" in tokens:
        at = tokens.index(">")
        tokens, output = tokens[:at], tokens[at + 1]
    result = CliRunner().invoke(main, tokens[1:])
    assert result.exit_code == 0, result.output
    if output is not None:
        (cwd / output).write_text(result.stdout)


def test_the_tour_gives_what_it_says(demo: EdgeProcess, tmp_path: Path) -> None:
    commands = _tour_commands()
    assert len(commands) >= 20
    for command, comment in commands:
        tokens = shlex.split(command)
        if tokens[0].endswith("/edge"):
            _run_edge(tokens, tmp_path)
            continue
        assert tokens[0] == "curl", command
        response = _request(tokens, demo, tmp_path)
        claim = re.match(r"(\d{3})\b ?(.*)", comment)
        assert claim, f"the comment of `{command}` does not start with a status"
        status, rest = int(claim.group(1)), claim.group(2)
        assert response.status_code == status, (command, response.status_code, response.text)
        location = re.match(r"to (\S+?)[,:]?(?:\s|$)", rest)
        if location:
            assert response.headers["location"] == location.group(1), command
        for name, value in re.findall(r"\b(X-Cache|Location|Set-Cookie): ([\w/=. -]+)", rest):
            assert response.headers[name].startswith(value.strip().rstrip(".")), (command, name)
        for quoted in re.findall(r'"([^"]+)"', rest) if rest.startswith('"') else []:
            assert quoted in response.text, command
        if rest.startswith("{"):
            assert rest.split()[0] in response.text, command


# ---- the WASM examples' build ------------------------------------------------------------------


def _wasm_build_command() -> str:
    text = (REPO / "examples" / "wasm" / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        if "examples/wasm/build.py" in block:
            return block.strip()
    raise AssertionError("examples/wasm/README.md documents no build command")


def test_the_documented_wasm_build_works() -> None:
    command = _wasm_build_command()
    install, _, build = command.partition(" && ")
    # The extra it installs exists and brings the toolchain.
    extra = re.search(r"\.\[([\w-]+)\]", install)
    assert extra, install
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    extras = pyproject["project"]["optional-dependencies"]
    assert any(d.startswith("ziglang") for d in extras[extra.group(1)])
    # The build itself, with this venv (which has the extra's packages through the test extra).
    assert build == ".venv/bin/python examples/wasm/build.py"
    done = subprocess.run(
        [sys.executable, "examples/wasm/build.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    built = [line.split() for line in done.stdout.splitlines()]
    assert sorted((row[0], row[1]) for row in built) == sorted(
        (language, name)
        for language in ("c", "zig")
        for name in ("ab_testing", "redirects", "security_headers")
    )
    assert all(Path(row[-1]).is_file() for row in built)


def test_the_wasm_build_without_ziglang_says_what_to_install() -> None:
    # -S: a Python without site-packages, so without ziglang.
    done = subprocess.run(
        [sys.executable, "-S", "examples/wasm/build.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "ziglang" in done.stderr
    assert "[wasm-examples]" in done.stderr


# ---- the license ---------------------------------------------------------------------------------

# sha256 of each license's standard text, as its steward publishes it.
LICENSE_TEXTS = {
    "Apache-2.0": "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
}


def test_license_file_is_the_license_pyproject_names() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    license = project["license"]
    spdx = license["text"] if isinstance(license, dict) else license
    assert spdx in LICENSE_TEXTS, f"pyproject.toml names {spdx!r}: add its text's hash here"
    digest = hashlib.sha256((REPO / "LICENSE").read_bytes()).hexdigest()
    assert digest == LICENSE_TEXTS[spdx], "LICENSE is not the standard text of " + spdx


# ---- nothing points outside the repository ----------------------------------------------------

# Spelled in pieces so that this file does not mention them itself.
OUTSIDE = tuple(
    "".join(parts)
    for parts in (
        ("shared/", "PERFORMANCE"),
        ("shared/", "DESIGN"),
        ("shared/", "reference"),
        ("/wo", "rk/"),
    )
)


def _tracked_files() -> list[str]:
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, timeout=30, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        # Not a git checkout: every file but hidden folders and build outputs.
        names = []
        for root, dirs, files in os.walk(REPO):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("build", "dist")]
            names += [str(Path(root, name).relative_to(REPO)) for name in files]
        return names
    return [name for name in done.stdout.decode().split("\0") if name]


def test_no_file_points_outside_the_repository() -> None:
    found = []
    for name in _tracked_files():
        path = REPO / name
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        found += [f"{name}: {word}" for word in OUTSIDE if word in text]
    assert not found, "files that point at what users do not have:\n" + "\n".join(found)
