"""Hot reload: how long a function's new code takes to answer, and what a load loses meanwhile.

Run by hand (pytest does not collect it):

    python tests/benchmarks/reload_bench.py [--tries 5] [--clients 4] [--workers 1 2]

For each worker count, starts `edge serve --reload` with a viewer-request function that answers
a version string, and keeps CLIENTS threads sending GETs through the proxy (each its own
keep-alive connection; with several workers they land on different ones). TRIES times, the
handler file is rewritten (a new file renamed over it, as an editor saves) with the next
version, and the time from the rename to the first answer of the new version on every client
is taken. Then the same through UpdateFunctionCode (the state file, followed by every worker).
Prints p50 and max of those times, and the requests that got anything but a 200 (lost).

Figures from a shared 2-core machine: compare runs of one machine, not absolute numbers.
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import boto3
import httpx
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
[server]
admin = "127.0.0.1:0"
workers = {workers}
access_log = false
function_logs = "none"

[origins.site]
directory = "{tmp}/site"

[[behaviors]]
path = "*"
origin = "site"
viewer-request = "answer"

[functions.answer]
handler = "code/app.handler"
"""


def source(version: str) -> str:
    return f'def handler(event, context):\n    return {{"status": "200", "body": "{version}"}}\n'


def start(config: Path) -> tuple[subprocess.Popen[str], str, str, list[str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge.cli",
            "serve",
            str(config),
            "--listen=127.0.0.1:0",
            "--reload",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    url = admin = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (url and admin):
        line = proc.stderr.readline()
        lines.append(line)
        if found := re.search(r"listening on (http://\S+)", line):
            url = found[1].replace("0.0.0.0", "127.0.0.1")
        if found := re.search(r"admin on (http://\S+)", line):
            admin = found[1]
    stream = proc.stderr
    threading.Thread(target=lambda: lines.extend(stream), daemon=True).start()
    return proc, url, admin, lines


class Load:
    """CLIENTS threads of back-to-back GETs; the latest body each saw, and the failures."""

    def __init__(self, url: str, clients: int) -> None:
        self.url = url
        self.latest = [""] * clients
        self.failed = 0
        self.sent = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(clients)]
        for thread in self.threads:
            thread.start()

    def run(self, index: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self.stop.is_set():
                try:
                    response = client.get("/")
                    ok = response.status_code == 200
                    self.latest[index] = response.text
                except httpx.HTTPError:
                    ok = False
                self.sent += 1
                self.failed += 0 if ok else 1

    def wait_all(self, version: str, timeout: float = 20) -> float:
        started = time.perf_counter()
        while any(body != version for body in self.latest):
            if time.perf_counter() - started > timeout:
                raise AssertionError(f"not every client saw {version}: {self.latest}")
            time.sleep(0.002)
        return time.perf_counter() - started

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def package(version: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source(version))
    return buffer.getvalue()


def run(workers: int, tries: int, clients: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        tmp.chmod(0o755)
        (tmp / "site").mkdir()
        (tmp / "code").mkdir()
        handler = tmp / "code" / "app.py"
        handler.write_text(source("v0"))
        config = tmp / "edge.toml"
        config.write_text(CONFIG.format(workers=workers, tmp=tmp))
        proc, url, admin, log = start(config)
        load = Load(url, clients)
        try:
            load.wait_all("v0")
            by_file: list[float] = []
            for n in range(1, tries + 1):
                time.sleep(0.5)
                temporary = handler.with_name("app.py.tmp")
                temporary.write_text(source(f"file-{n}"))
                temporary.replace(handler)
                by_file.append(load.wait_all(f"file-{n}"))
            lam = boto3.client(
                "lambda",
                endpoint_url=admin,
                region_name="us-east-1",
                aws_access_key_id="x",
                aws_secret_access_key="x",
                config=Config(retries={"max_attempts": 0}),
            )
            by_api: list[float] = []
            for n in range(1, tries + 1):
                time.sleep(0.5)
                zipped = package(f"api-{n}")
                started = time.perf_counter()
                lam.update_function_code(FunctionName="answer", ZipFile=zipped)
                load.wait_all(f"api-{n}")
                by_api.append(time.perf_counter() - started)
        finally:
            load.close()
            proc.terminate()
            proc.wait(30)
        took = [
            float(m) for m in re.findall(r"config reloaded \(1 function.*?, (\d+) ms", "".join(log))
        ]
        print(
            "  the reload itself (read, check, new runtime started): "
            f"p50 {statistics.median(took or [0]):.0f} ms"
        )
        print(
            f"workers={workers} clients={clients}: file write -> every client on the new code: "
            f"p50 {statistics.median(by_file) * 1000:.0f} ms, max {max(by_file) * 1000:.0f} ms; "
            f"UpdateFunctionCode -> every client: p50 {statistics.median(by_api) * 1000:.0f} ms, "
            f"max {max(by_api) * 1000:.0f} ms; requests {load.sent}, lost {load.failed}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    for workers in args.workers:
        run(workers, args.tries, args.clients)


if __name__ == "__main__":
    main()
