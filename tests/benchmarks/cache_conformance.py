"""The independent HTTP cache conformance suite (cache-tests.fyi) against `edge serve --origin`.

Run by hand (pytest does not collect it):

    python tests/benchmarks/cache_conformance.py [--version 0.4.5] [--id TEST_ID] [--json FILE]

What it does, all on 127.0.0.1:
1. Fetches the suite's npm release (`npm pack http-cache-tests@VERSION`, the package registry is
   the only network used) into ~/.cache/edge/ and installs its dependencies once.
2. Starts the suite's own origin server (`server/server.mjs`) on an ephemeral port, and
   `edge serve --origin http://127.0.0.1:PORT` in front of it: the default RFC 9111 policy,
   exactly what a user gets from that command.
3. Runs the suite's command-line client against the edge and prints the suite's own summary
   (its `determineTestResult`: pass, "yes" checks, failures by kind, dependency failures), the
   raw number of tests that returned true, and every test that did not pass, with its reason.

`--id` runs one test with the suite's verbose dump, to see the exchange. `--package DIR` runs
an unpacked suite instead of the npm release, e.g. the 0.4.5 harness with a newer checkout's
tests/ in place of its own (the harness must know the keys those tests use). Node.js (>= 14.8) and
npm must be installed; the script says so and exits 2 when they are not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge"
START_TIMEOUT_SECONDS = 30.0
RUN_TIMEOUT_SECONDS = 600.0

# The suite's result logic, run by node over its own test definitions and a results file.
SUMMARIZE_JS = r"""
import fs from 'fs'
import tests from './tests/index.mjs'
import surrogate from './tests/surrogate-control.mjs'
import { determineTestResult } from './lib/display.mjs'
// As the suite's own cli.mjs does (0.4.5 adds Surrogate-Control to its default list).
if (fs.readFileSync('cli.mjs', 'utf8').includes('tests.push(surrogate)')) tests.push(surrogate)
// determineTestResult answers with its display row; [2] is the symbol shown.
const names = { '-': 'untested', '\u2705': 'pass', '\u26d4\ufe0f': 'fail',
  '\u26a0\ufe0f': 'optional_fail', Y: 'yes', N: 'no', '\ud83d\udd39': 'setup_fail',
  '\u2049\ufe0f': 'harness_fail',
  '\u26aa\ufe0f': 'dependency_fail', '\u21bb': 'retry' }
const results = JSON.parse(fs.readFileSync(process.argv[2]))
const rows = []
for (const suite of tests) {
  for (const test of suite.tests) {
    const symbol = determineTestResult(tests, test.id, results)[2]
    const verdict = names[symbol] || symbol
    rows.push({ suite: suite.id, id: test.id, kind: test.kind || 'required', verdict,
                raw: results[test.id] === undefined ? null : results[test.id] })
  }
}
console.log(JSON.stringify(rows))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with status {process.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on port {port} within {START_TIMEOUT_SECONDS} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def fetch_suite(version: str) -> Path:
    """The unpacked package, with its dependencies installed (cached between runs)."""
    target = CACHE_DIR / f"http-cache-tests-{version}"
    package = target / "package"
    if (package / "node_modules").is_dir():
        return package
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["npm", "pack", f"http-cache-tests@{version}", "--silent"],
        cwd=target,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tarball = target / f"http-cache-tests-{version}.tgz"
    with tarfile.open(tarball) as archive:
        archive.extractall(target, filter="data")
    subprocess.run(
        ["npm", "install", "--omit=dev", "--no-audit", "--no-fund", "--silent"],
        cwd=package,
        check=True,
    )
    return package


def run_suite(package: Path, test_id: str, workdir: Path) -> tuple[str, str]:
    """Start the suite's origin and the edge, run the client; its stdout and the edge's log."""
    origin_port = free_port()
    edge_port = free_port()
    env = dict(os.environ, npm_config_port=str(origin_port), npm_config_protocol="http")
    env["npm_config_pidfile"] = str(workdir / "server.pid")
    origin = subprocess.Popen(
        ["node", "server/server.mjs"],
        cwd=package,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    edge_log = workdir / "edge.log"
    edge = None
    try:
        wait_for_port(origin_port, origin, "the suite's origin server")
        with edge_log.open("wb") as log:
            edge = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "edge.cli",
                    "serve",
                    "--origin",
                    f"http://127.0.0.1:{origin_port}",
                    "--listen",
                    f"127.0.0.1:{edge_port}",
                    "--no-access-log",
                ],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(edge_port, edge, "edge serve")
        client_env = dict(
            os.environ,
            npm_config_base=f"http://127.0.0.1:{edge_port}",
            npm_config_id=test_id,
            npm_package_config_id="",
        )
        completed = subprocess.run(
            ["node", "--no-warnings", "cli.mjs"],
            cwd=package,
            env=client_env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )
        if completed.returncode != 0:
            raise SystemExit(f"the suite's client failed:\n{completed.stderr}")
        return completed.stdout, edge_log.read_text(errors="replace")
    finally:
        if edge is not None:
            stop(edge)
        stop(origin)


def summarize(package: Path, results_file: Path) -> list[dict[str, object]]:
    script = package / "edge-summarize.mjs"
    script.write_text(SUMMARIZE_JS)
    completed = subprocess.run(
        ["node", "--no-warnings", str(script), str(results_file)],
        cwd=package,
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[dict[str, object]] = json.loads(completed.stdout)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--version", default="0.4.5", help="http-cache-tests release")
    parser.add_argument("--id", default="", help="run one test, with the suite's dump")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--package",
        type=Path,
        help="an unpacked suite to run instead of the npm release (e.g. a newer checkout)",
    )
    args = parser.parse_args()
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            print(f"{tool} is needed to run the suite and is not on PATH", file=sys.stderr)
            return 2
    package = args.package.resolve() if args.package else fetch_suite(args.version)
    with tempfile.TemporaryDirectory(prefix="edge-cache-tests-") as temp:
        workdir = Path(temp)
        started = time.monotonic()
        output, edge_log = run_suite(package, args.id, workdir)
        elapsed = time.monotonic() - started
        if args.id:
            print(output)
            print("--- edge log ---")
            print(edge_log)
            return 0
        results_file = workdir / "results.json"
        results_file.write_text(output)
        if args.json is not None:
            args.json.write_text(output)
        rows = summarize(package, results_file)
    counts = Counter(str(row["verdict"]) for row in rows)
    raw_true = sum(1 for row in rows if row["raw"] is True)
    suite = str(args.package) if args.package else f"http-cache-tests {args.version}"
    print(f"{suite} against edge serve --origin ({elapsed:.0f} s)")
    print(f"tests defined: {len(rows)}; ran: {sum(1 for row in rows if row['raw'] is not None)}")
    for verdict, count in counts.most_common():
        print(f"  {verdict:16} {count}")
    print(f"pass + yes: {counts['pass'] + counts['yes']}; tests returning true: {raw_true}")
    for verdict in ("fail", "optional_fail", "no", "dependency_fail", "setup_fail", "retry"):
        listed = [row for row in rows if row["verdict"] == verdict]
        if listed:
            print(f"\n{verdict}:")
            for row in listed:
                print(f"  {row['suite']} | {row['id']} | {row['kind']} | {json.dumps(row['raw'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
