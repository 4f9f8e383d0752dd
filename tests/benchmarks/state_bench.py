"""Shared function state: how long a change made on one node takes to steer another.

Run by hand (pytest does not collect it):

    python tests/benchmarks/state_bench.py [--changes 20] [--workers 1]

Starts a redis-server on a free port of 127.0.0.1 (no persistence, stopped by its PID) and two
`edge serve` nodes with their own state directories and `[cluster] redis`. A function is
published twice on node A and given an alias. Then, CHANGES times, the alias is moved on A
(UpdateAlias, alternating versions 1 and 2) while a client invokes `fn:live` on node B back to
back; the time from A's answer to the first invocation on B that ran the new version is taken.
Prints p50 / max of that, the UpdateAlias call's own time on A (the cluster's lock, the
upload and the local write), and the same call's time on a node without `[cluster]`, run
interleaved.

Figures from a shared 2-core machine: compare runs of one machine, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.redis_server import RedisServer  # noqa: E402

HANDLER = "def handler(event, context):\n    return context.function_version\n"


def node(root: Path, name: str, redis: str | None, workers: int) -> Path:
    home = root / name
    home.mkdir()
    (home / "site").mkdir()
    cluster = f'[cluster]\nredis = "{redis}"\nnode_id = "{name}"\nasync_queue = "local"\n'
    config = home / "edge.toml"
    config.write_text(
        f"[server]\nworkers = {workers}\n\n"
        f'[origins.site]\ndirectory = "{home / "site"}"\n\n'
        '[[behaviors]]\npath = "*"\norigin = "site"\n\n'
        f'[invoke]\nqueue_path = "{home / "queue.sqlite3"}"\n\n'
        f'[functions.fn]\ncode = "{root / "code"}"\nhandler = "app.handler"\n\n'
        + (cluster if redis else "")
    )
    return config


def start(config: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge.cli",
            "serve",
            str(config),
            "--listen=127.0.0.1:0",
            "--admin=127.0.0.1:0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stderr is not None
    admin = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not admin:
        line = proc.stderr.readline()
        if found := re.search(r"admin on (http://\S+)", line):
            admin = found[1]
    stream = proc.stderr
    threading.Thread(target=lambda: list(stream), daemon=True).start()
    if not admin:
        proc.kill()
        raise SystemExit(f"{config}: the edge did not start")
    return proc, admin


def client(admin: str) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=admin,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 0}),
    )


def invoked_version(lam: Any) -> str:
    result = lam.invoke(FunctionName="fn:live", Payload=b"{}")
    return str(json.loads(result["Payload"].read()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="state-bench-") as tmp:
        root = Path(tmp)
        (root / "code").mkdir()
        (root / "code" / "app.py").write_text(HANDLER)
        redis = RedisServer(root).start()
        procs: list[subprocess.Popen[str]] = []
        try:
            a_proc, a_admin = start(node(root, "a", redis.url, args.workers))
            b_proc, b_admin = start(node(root, "b", redis.url, args.workers))
            solo_proc, solo_admin = start(node(root, "solo", None, args.workers))
            procs += [a_proc, b_proc, solo_proc]
            a, b, solo = client(a_admin), client(b_admin), client(solo_admin)
            for lam in (a, solo):
                lam.publish_version(FunctionName="fn")
                (root / "code" / "app.py").write_text(HANDLER + "# 2\n")
                lam.publish_version(FunctionName="fn")
                (root / "code" / "app.py").write_text(HANDLER)
                lam.create_alias(FunctionName="fn", Name="live", FunctionVersion="1")
            while True:
                try:
                    if invoked_version(b) == "1":
                        break
                except b.exceptions.ResourceNotFoundException:
                    pass  # the alias has not reached b yet
                time.sleep(0.05)
            seen, call_cluster, call_solo = [], [], []
            for index in range(args.changes):
                target = "2" if index % 2 == 0 else "1"
                started = time.perf_counter()
                a.update_alias(FunctionName="fn", Name="live", FunctionVersion=target)
                answered = time.perf_counter()
                call_cluster.append(answered - started)
                while invoked_version(b) != target:
                    pass
                seen.append(time.perf_counter() - answered)
                started = time.perf_counter()
                solo.update_alias(FunctionName="fn", Name="live", FunctionVersion=target)
                call_solo.append(time.perf_counter() - started)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            redis.stop()

    def ms(values: list[float]) -> str:
        return f"p50 {statistics.median(values) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms"

    print(f"changes: {args.changes}, workers per node: {args.workers}")
    print(f"UpdateAlias on a node with [cluster]     {ms(call_cluster)}")
    print(f"UpdateAlias on a node without [cluster]  {ms(call_solo)}")
    print(f"change on A -> B's invocations follow    {ms(seen)}")


if __name__ == "__main__":
    main()
