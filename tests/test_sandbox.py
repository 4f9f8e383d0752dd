"""Hostile Python functions against the real edge: what the sandbox stops, level by level.

Each test runs `edge serve` with a real origin, an admin listener, a disk cache and the async
queue, and functions (`sandbox_functions/hostile.py`, as ALB-style origins) that try to reach
the edge: kill it, read its environment and configuration, write into the project, connect to
its ports, fork without end, fill the disk, outlive their environment. The namespaced tests
need bubblewrap (CI installs it); the uid switch needs root; each skips with the reason.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.config import ConfigError, parse_config
from edge.functions import sandbox_policy
from sandbox import SandboxError, probe_isolation
from sandbox.python_worker import isolation
from tests.conftest import REPO, EdgeProcess
from tests.origin_app import OriginServer

HOSTILE = Path(__file__).parent / "sandbox_functions" / "hostile.py"
ROUTES = ("probe", "net", "beside", "other", "slow")
MIB = 1 << 20

CONFIG = """
[server]
name = "edge-sandbox"

[origins.web]
url = "{origin}"
headers = {{ "X-Origin-Secret" = "{secret}" }}

{function_origins}

[[behaviors]]
path = "*"
origin = "web"

[functions.probe]
code = "functions"
handler = "hostile.handler"
timeout = 60

[functions.net]
code = "functions"
handler = "hostile.handler"
network = true

[functions.beside]
code = "."
handler = "hostile.handler"

[functions.other]
code = "other"
handler = "hostile.handler"

[functions.slow]
code = "functions"
handler = "hostile.handler"
timeout = 1

[cache]
disk_directory = "cache"
disk_bytes = 1048576

[sandbox]
isolation = "{isolation}"
"""


@dataclass
class Sandboxed:
    """A running edge with the hostile functions, and what they must not reach."""

    edge: EdgeProcess
    root: Path  # edge.toml's directory: the project
    secret: str  # in the edge's environment and in edge.toml
    origin_port: int

    def call(self, route: str, probe: str, **args: Any) -> Any:
        with httpx.Client(base_url=self.edge.url, timeout=90) as client:
            response = client.post(f"/{route}/", json={"probe": probe, "args": args})
        assert response.status_code == 200, (response.status_code, response.text, self.edge.log)
        return response.json()

    @property
    def admin_port(self) -> int:
        return int(self.edge.admin_url.rsplit(":", 1)[1])

    @property
    def port(self) -> int:
        return int(self.edge.url.rsplit(":", 1)[1])


def _write_project(root: Path, origin: OriginServer, secret: str, level: str) -> Path:
    root.chmod(0o755)
    for folder in ("functions", "other"):
        (root / folder).mkdir()
        (root / folder).chmod(0o755)
        shutil.copy(HOSTILE, root / folder / "hostile.py")
    shutil.copy(HOSTILE, root / "hostile.py")
    function_origins = "\n".join(
        f'[origins.{name}]\nfunction = "{name}"\n\n[[behaviors]]\npath = "/{name}/*"\n'
        f'origin = "{name}"\nmethods = "all"\n'
        for name in ROUTES
    )
    config = root / "edge.toml"
    config.write_text(
        CONFIG.format(
            origin=origin.url,
            secret=secret,
            isolation=level,
            function_origins=function_origins,
        )
    )
    return config


def _start(
    root: Path, origin: OriginServer, level: str, *, env: dict[str, str] | None = None
) -> Sandboxed:
    secret = secrets.token_hex(16)
    config = _write_project(root, origin, secret, level)
    edge = EdgeProcess(
        [str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
        env={"EDGE_TEST_SECRET": secret, **(env or {})},
    ).start(root)
    return Sandboxed(edge, root, secret, int(origin.url.rsplit(":", 1)[1]))


def _namespaces_available() -> str:
    try:
        report = probe_isolation("auto")
    except SandboxError as exc:
        return str(exc)
    return "" if report.level == "namespaces" else report.missing


@pytest.fixture(scope="module")
def namespaced(
    origin: OriginServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sandboxed]:
    missing = _namespaces_available()
    if missing:
        pytest.skip(f"no namespaces for functions here: {missing}")
    running = _start(tmp_path_factory.mktemp("namespaced"), origin, "namespaces")
    yield running
    running.edge.stop()


@pytest.fixture(scope="module")
def uid_only(origin: OriginServer) -> Iterator[Sandboxed]:
    if os.geteuid() != 0:
        pytest.skip("uid-only isolation switches uids: the edge must run as root")
    root = Path(tempfile.mkdtemp(prefix="edge-sandbox-"))
    try:
        running = _start(root, origin, "uid-only")
        yield running
        running.edge.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("a function runs under another uid only when the edge is root")


def _processes() -> Iterator[tuple[int, str, int]]:
    """(pid, comm, parent pid) of every live process of the host (not the zombies a
    container's init may be slow to reap)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
        if state not in ("Z", "X"):
            yield int(entry.name), comm, int(parent)


def _cmdline(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes()).replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _wait_until(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _in_background(action: Callable[[], Any]) -> Callable[[], Any]:
    """Run `action` in a thread; the returned function waits for its result."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(action()), daemon=True)
    thread.start()

    def result() -> Any:
        thread.join(120)
        assert box, "the background call did not finish"
        return box[0]

    return result


def _zygotes_of(edge_pid: int, code_dir: Path) -> list[int]:
    """The zygotes of the edge for the functions whose code is `code_dir`. A confined zygote is
    the child of a bubblewrap whose command line binds that directory; an unconfined one is a
    child of the edge (and names no function). Environments, forked from a zygote, carry its
    command line too: they are the zygote's children, not bubblewrap's or the edge's."""
    table = {pid: (comm, parent) for pid, comm, parent in _processes()}
    found = []
    for pid, (comm, parent) in table.items():
        # bubblewrap's own command line holds the zygote's: only the interpreter counts.
        if comm == "bwrap" or "python_worker.zygote" not in _cmdline(pid):
            continue
        wrapper, grandparent = table.get(parent, ("", 0))
        if wrapper == "bwrap" and grandparent == edge_pid:
            if f"--ro-bind {code_dir} {code_dir} " in _cmdline(parent):
                found.append(pid)
        elif parent == edge_pid:
            found.append(pid)
    return found


@pytest.fixture
def open_project() -> Iterator[Path]:
    """A project directory others can reach: without namespaces, functions run under other
    uids in the host's own view of the files, and pytest's base directory is private."""
    root = Path(tempfile.mkdtemp(prefix="edge-sandbox-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


# -- namespaces ------------------------------------------------------------------------------


def test_the_level_is_said_at_start_in_check_and_on_metrics(namespaced: Sandboxed) -> None:
    assert re.search(r"sandbox: namespaces \(bubblewrap [\d.]+;", namespaced.edge.log)
    with httpx.Client(timeout=10) as client:
        metrics = client.get(f"{namespaced.edge.admin_url}/metrics").text
    assert 'edge_sandbox_isolation{level="namespaces"} 1.0' in metrics
    assert 'edge_sandbox_isolation{level="none"} 0.0' in metrics


def test_function_can_neither_see_nor_kill_the_edge(namespaced: Sandboxed) -> None:
    me = namespaced.call("probe", "whoami")
    assert set(me["pids"]) <= {1, 2}  # its init and itself: no edge, no zygote, no sibling
    outcome = namespaced.call("probe", "kill", pid=namespaced.edge.pid)
    assert outcome["ok"] is False
    assert outcome["errno"] == errno.ESRCH
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{namespaced.edge.url}/").status_code == 200


def test_function_runs_under_a_uid_of_its_own(namespaced: Sandboxed) -> None:
    needs_root()
    probe, other = namespaced.call("probe", "whoami"), namespaced.call("other", "whoami")
    for me in (probe, other):
        assert me["uid"] == me["gid"]
        assert (
            isolation.DEFAULT_UID_BASE
            <= me["uid"]
            < (isolation.DEFAULT_UID_BASE + isolation.DEFAULT_UID_COUNT)
        )
        assert me["groups"] == []
    assert probe["uid"] != other["uid"]


def test_function_cannot_signal_its_zygote_or_a_sibling(namespaced: Sandboxed) -> None:
    sibling = _in_background(lambda: namespaced.call("probe", "sleep", seconds=3))
    time.sleep(0.5)  # the sibling's environment is up and sleeping
    me = namespaced.call("probe", "whoami")
    # Every pid of its namespace's range that exists: only its init (another uid) and itself.
    pids = namespaced.call("probe", "existing_pids", limit=5000)
    assert set(pids) <= {"1", "2"}
    if os.geteuid() == 0:
        assert pids["1"] == "exists"  # the init: not the function's to signal
        assert namespaced.call("probe", "kill", pid=1)["errno"] == errno.EPERM
    slept = sibling()
    assert slept != me["environment"]  # two environments, the sibling undisturbed
    assert namespaced.call("probe", "whoami")["environment"] in (me["environment"], slept)


def test_function_cannot_read_the_edges_environment(namespaced: Sandboxed) -> None:
    me = namespaced.call("probe", "whoami")
    assert namespaced.secret not in repr(me["environ"])
    assert not set(me["environ"]) & {"HOME", "PATH_INFO", "EDGE_TEST_SECRET", "PWD", "USER"}
    files = namespaced.call("probe", "environ_files", pids=[1, namespaced.edge.pid])
    assert namespaced.secret not in repr(files)
    assert files[str(namespaced.edge.pid)]["ok"] is False


def test_function_cannot_read_the_configuration_or_another_functions_tmp(
    namespaced: Sandboxed,
) -> None:
    root = namespaced.root
    written = namespaced.call("other", "write_tmp", secret=namespaced.secret)
    assert namespaced.call("other", "read", path=written["path"])["value"] == namespaced.secret
    for path in (written["path"], str(root / "edge.toml"), str(root / "other" / "hostile.py")):
        outcome = namespaced.call("probe", "read", path=path)
        assert outcome["ok"] is False, path
        assert outcome["errno"] == errno.ENOENT
    # A function whose code sits beside edge.toml sees its code, not the configuration.
    assert namespaced.call("beside", "read", path=str(root / "hostile.py"))["ok"]
    beside = namespaced.call("beside", "read", path=str(root / "edge.toml"))
    assert beside["ok"] is False  # /dev/null over it, on a mount without devices
    assert beside["errno"] == errno.EACCES
    assert namespaced.secret in (root / "edge.toml").read_text()


def test_function_cannot_write_into_the_project_the_cache_or_the_queue(
    namespaced: Sandboxed,
) -> None:
    root = namespaced.root
    targets = [
        root / "edge.toml",
        root / "hostile.py",
        root / "functions" / "hostile.py",
        root / "functions" / "new.py",
        root / "cache" / "planted",
        root / ".edge" / "async-queue.sqlite3",
        root / ".edge" / "planted",
        REPO / "README.md",
    ]
    before = {p: p.read_bytes() for p in targets if p.is_file()}
    for route in ("probe", "beside"):
        for target in targets:
            outcome = namespaced.call(route, "write", path=str(target))
            assert outcome["ok"] is False, (route, target)
            assert outcome["errno"] in (errno.EROFS, errno.ENOENT, errno.EACCES), outcome
    assert {p: p.read_bytes() for p in before} == before
    assert not (root / "functions" / "new.py").exists()
    assert not (root / "cache" / "planted").exists()
    assert not (root / ".edge" / "planted").exists()


def test_function_reaches_no_port_unless_its_network_is_on(namespaced: Sandboxed) -> None:
    for port in (namespaced.admin_port, namespaced.port, namespaced.origin_port):
        outcome = namespaced.call("probe", "connect", port=port)
        assert outcome["ok"] is False, port
        assert outcome["errno"] in (errno.ENETUNREACH, errno.ECONNREFUSED), outcome
    assert namespaced.call("net", "connect", port=namespaced.admin_port) == {
        "ok": True,
        "value": True,
    }


def test_fork_bomb_stops_at_the_process_limit_and_the_edge_serves(namespaced: Sandboxed) -> None:
    bomb = namespaced.call("probe", "fork_bomb")
    assert bomb["errno"] == errno.EAGAIN
    assert 0 < bomb["forked"] < 1024  # Lambda: 1,024 processes and threads
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{namespaced.edge.url}/").status_code == 200
    assert namespaced.call("other", "whoami")["pids"]


def test_a_thread_bomb_stops_at_the_process_limit(namespaced: Sandboxed) -> None:
    # RLIMIT_NPROC counts threads too (Lambda: 1,024 processes and threads).
    bomb = namespaced.call("probe", "thread_bomb")
    assert bomb["error"] is not None
    assert 100 < bomb["started"] < 1024


def test_tmp_holds_512_mb_in_all(namespaced: Sandboxed) -> None:
    # /tmp is a tmpfs of the ephemeral storage's size: many files below the file size limit
    # still stop at 512 MB in all (the file size limit alone would let the disk fill).
    filled = namespaced.call("probe", "fill_tmp", directory="/tmp", file_mb=200)
    assert filled["errno"] == errno.ENOSPC
    assert 400 < filled["written_mb"] <= 512


def test_a_huge_file_stops_at_the_file_size_limit(namespaced: Sandboxed) -> None:
    outcome = namespaced.call("probe", "huge_file", path="/tmp/huge", size=600 * MIB)
    assert outcome["ok"] is False
    assert outcome["errno"] == errno.EFBIG  # RLIMIT_FSIZE: /tmp's 512 MB
    assert namespaced.call("probe", "huge_file", path="/tmp/fits", size=MIB)["ok"]


def _orphan_survives(sandboxed: Sandboxed) -> bool:
    name = "orph" + secrets.token_hex(4)

    def hang() -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            return client.post(
                f"{sandboxed.edge.url}/slow/",
                json={"probe": "orphan", "args": {"name": name, "seconds": 30}},
            )

    answer = _in_background(hang)
    _wait_until(lambda: any(c == name for _, c, _ in _processes()), 10, "the daemon to start")
    assert answer().status_code >= 500  # the 1 s timeout killed the environment
    time.sleep(1.0)
    return any(comm == name for _, comm, _ in _processes())


def test_a_double_forked_daemon_dies_with_its_environment(namespaced: Sandboxed) -> None:
    assert not _orphan_survives(namespaced)


def test_a_killed_zygote_is_relaunched_for_its_function_alone(namespaced: Sandboxed) -> None:
    other = namespaced.call("other", "whoami")["environment"]
    zygotes = _zygotes_of(namespaced.edge.pid, namespaced.root / "functions")
    assert zygotes
    for pid in zygotes:
        os.kill(pid, signal.SIGKILL)
    _wait_until(lambda: not set(zygotes) & {p for p, _, _ in _processes()}, 10, "the zygotes to go")
    assert namespaced.call("other", "whoami")["environment"] == other  # untouched
    assert namespaced.call("probe", "whoami")["pids"]  # a new zygote, a cold start
    assert namespaced.call("slow", "whoami")["pids"]


# -- without namespaces ---------------------------------------------------------------------


def test_uid_only_is_said_loudly(uid_only: Sandboxed) -> None:
    assert "sandbox: uid-only: WARNING" in uid_only.edge.log
    with httpx.Client(timeout=10) as client:
        metrics = client.get(f"{uid_only.edge.admin_url}/metrics").text
    assert 'edge_sandbox_isolation{level="uid-only"} 1.0' in metrics
    assert 'edge_sandbox_isolation{level="namespaces"} 0.0' in metrics


def test_uid_only_function_cannot_kill_the_edge_or_its_zygote(uid_only: Sandboxed) -> None:
    me = uid_only.call("probe", "whoami")
    assert me["uid"] != 0
    assert me["groups"] == []
    zygotes = _zygotes_of(uid_only.edge.pid, uid_only.root / "functions")
    assert zygotes
    for pid in (uid_only.edge.pid, *zygotes):
        assert uid_only.call("probe", "kill", pid=pid)["errno"] == errno.EPERM
    files = uid_only.call("probe", "environ_files", pids=[uid_only.edge.pid])
    assert uid_only.secret not in repr(files) + repr(me["environ"])


def test_uid_only_function_cannot_write_the_project_or_read_another_tmp(
    uid_only: Sandboxed,
) -> None:
    root = uid_only.root
    for target in (root / "edge.toml", root / "functions" / "new.py"):
        assert uid_only.call("probe", "write", path=str(target))["errno"] == errno.EACCES
    written = uid_only.call("other", "write_tmp", secret=uid_only.secret)
    assert uid_only.call("probe", "read", path=written["path"])["errno"] == errno.EACCES


def test_uid_only_limits_processes_and_file_size(uid_only: Sandboxed) -> None:
    bomb = uid_only.call("probe", "fork_bomb")
    assert bomb["errno"] == errno.EAGAIN
    assert 0 < bomb["forked"] < 1024
    threads = uid_only.call("probe", "thread_bomb")
    assert threads["error"] is not None
    assert 100 < threads["started"] < 1024
    me = uid_only.call("probe", "whoami")
    huge = uid_only.call("probe", "huge_file", path=f"{me['tmpdir']}/huge", size=600 * MIB)
    assert huge["errno"] == errno.EFBIG


def test_uid_only_kills_a_double_forked_daemon_by_uid(uid_only: Sandboxed) -> None:
    assert not _orphan_survives(uid_only)


def test_none_is_said_loudly_and_functions_still_run(
    origin: OriginServer, open_project: Path
) -> None:
    running = _start(open_project, origin, "none")
    try:
        assert "sandbox: none: WARNING" in running.edge.log
        assert running.call("probe", "whoami")["pids"]
        with httpx.Client(timeout=10) as client:
            metrics = client.get(f"{running.edge.admin_url}/metrics").text
        assert 'edge_sandbox_isolation{level="none"} 1.0' in metrics
    finally:
        running.edge.stop()


def test_without_bubblewrap_auto_falls_back_and_namespaces_refuses(
    origin: OriginServer, open_project: Path
) -> None:
    hidden = {"PATH": str(open_project / "no-bwrap-here")}  # the interpreter has a full path
    refused_root = open_project / "refused"
    refused_root.mkdir()
    config = _write_project(refused_root, origin, "s", "namespaces")
    refused = EdgeProcess([str(config), "--listen", "127.0.0.1:0"], env=hidden)
    with pytest.raises(AssertionError):
        refused.start(refused_root, timeout=20)
    assert refused.stop(timeout=10) == 2
    assert 'sandbox.isolation: isolation = "namespaces" is not available' in refused.log
    assert "bubblewrap (bwrap) is not installed" in refused.log
    auto = open_project / "auto"
    auto.mkdir()
    running = _start(auto, origin, "auto", env=hidden)
    try:
        expected = "uid-only" if os.geteuid() == 0 else "none"
        assert f"sandbox: {expected}: WARNING" in running.edge.log
        assert "bubblewrap (bwrap) is not installed" in running.edge.log
        assert running.call("probe", "whoami")["pids"]
    finally:
        running.edge.stop()


FUNCTION = {"handler": "functions/hostile.handler"}
ORIGINS = {"web": {"url": "http://127.0.0.1:9"}}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param(
            {"sandbox": {"isolation": "chroot"}},
            "sandbox.isolation: expected one of 'auto', 'namespaces', 'uid-only' or 'none', "
            "found 'chroot'",
            id="unknown-level",
        ),
        pytest.param(
            {"sandbox": {"uid_count": 3000}},
            "sandbox.uid_count: expected a multiple of 1024 (uids per zygote), found 3000",
            id="uid-count-in-blocks",
        ),
        pytest.param(
            {"sandbox": {"uid_base": 0}},
            "sandbox.uid_base: expected a number at least 1000, found 0",
            id="no-system-uids",
        ),
        pytest.param(
            {"functions": {"f": {**FUNCTION, "ephemeral_storage": 100}}},
            "functions.f.ephemeral_storage: expected a number at least 512, found 100",
            id="lambda-minimum-tmp",
        ),
        pytest.param(
            {
                "functions": {"f": {**FUNCTION, "ephemeral_storage": 1024}},
                "behaviors": [{"path": "*", "origin": "web", "viewer-request": "f"}],
            },
            "functions.f.ephemeral_storage: expected at most 512 MB for a function on a "
            "Lambda@Edge trigger (behaviors[0].viewer-request), found 1024",
            id="lambda-at-edge-tmp",
        ),
        pytest.param(
            {"functions": {"f": {**FUNCTION, "writable_paths": ["nowhere"]}}},
            "functions.f.writable_paths[0]: expected an existing directory, found 'nowhere'",
            id="writable-path-must-exist",
        ),
    ],
)
def test_sandbox_settings_are_checked(raw: dict[str, Any], problem: str, tmp_path: Path) -> None:
    (tmp_path / "functions").mkdir()
    with pytest.raises(ConfigError) as caught:
        parse_config({"origins": ORIGINS, **raw}, source="edge.toml", base_dir=tmp_path)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_sandbox_defaults_keep_functions_offline_and_resolve_writable_paths(
    tmp_path: Path,
) -> None:
    (tmp_path / "functions").mkdir()
    (tmp_path / "data").mkdir()
    config = parse_config(
        {"origins": ORIGINS, "functions": {"f": {**FUNCTION, "writable_paths": ["data"]}}},
        base_dir=tmp_path,
    )
    function = config.functions["f"]
    assert (function.network, function.ephemeral_storage) == (False, 512)
    assert function.writable_paths == [(tmp_path / "data").resolve()]
    assert config.sandbox.isolation == "auto"


def test_the_edges_own_files_are_hidden_from_functions(tmp_path: Path) -> None:
    (tmp_path / "functions").mkdir()
    config = parse_config(
        {
            "origins": ORIGINS,
            "functions": {"f": FUNCTION},
            "cache": {"disk_directory": "cache", "disk_bytes": MIB},
            "admin": {"access_key_id": "AKIDEXAMPLE", "secret_access_key_file": "admin.key"},
        },
        source=str(tmp_path / "edge.toml"),
        base_dir=tmp_path,
    )
    hidden = set(sandbox_policy(config).hidden_paths)
    root = tmp_path.resolve()
    assert {
        root / "edge.toml",
        root / "admin.key",
        root / "cache",
        root / ".edge",
        root / ".edge" / "async-queue.sqlite3",
    } <= hidden


def test_edge_check_says_the_level(origin: OriginServer, open_project: Path) -> None:
    config = _write_project(open_project, origin, "s", "auto")
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    level = probe_isolation("auto").level
    assert re.search(rf"^sandbox: {level}\b", done.stderr, re.MULTILINE), done.stderr


def test_probe_refuses_a_level_it_cannot_give(monkeypatch: pytest.MonkeyPatch) -> None:
    probe_isolation.cache_clear()
    monkeypatch.setattr(isolation, "bwrap_path", lambda: None)
    try:
        with pytest.raises(isolation.SandboxUnavailable, match="bwrap"):
            probe_isolation("namespaces")
        if os.geteuid() != 0:
            with pytest.raises(isolation.SandboxUnavailable, match="root"):
                probe_isolation("uid-only")
        assert probe_isolation("none").level == "none"
    finally:
        probe_isolation.cache_clear()
