"""What the admin listener costs the proxy: an invalidation's stall, and a huge body's memory.

Run by hand (pytest does not collect it):

    python tests/benchmarks/admin_bench.py [--objects 20000] [--wildcards 3000] [--body-mb 300]

1. Starts `edge serve` with a directory origin of OBJECTS small files under a cache policy
   that stores them, and fills the cache with every file (pipelined GETs).
2. Stall: one thread sends GETs for a stored file back to back over a keep-alive connection
   while another POSTs an invalidation of WILDCARDS wildcard paths (`/f/<n>.*`, one stored
   file each) to the admin listener. Reports the invalidation's time and the GET latencies
   (p50, p99, max) while it ran.
3. Memory: POSTs `/invalidations` with a BODY-MB Content-Length and streams that many bytes
   (the server may answer early and close), then reports the edge's VmRSS and VmHWM growth.

Figures from a shared 2-core machine: compare runs of one machine, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def start_edge(config: Path) -> tuple[subprocess.Popen[str], int, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "serve", str(config), "--no-access-log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stderr is not None
    listen = admin = 0
    for line in proc.stderr:
        if found := re.search(r"listening on http://\S+?:(\d+)", line):
            listen = int(found.group(1))
        if found := re.search(r"admin on http://\S+?:(\d+)", line):
            admin = int(found.group(1))
        if line.startswith("config: "):
            break
    threading.Thread(target=lambda: [None for _ in proc.stderr or ()], daemon=True).start()
    return proc, listen, admin


def read_responses(sock: socket.socket, count: int, buffer: bytearray) -> list[int]:
    """`count` responses with Content-Length bodies; returns their statuses."""
    statuses = []
    while len(statuses) < count:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            buffer += chunk
            continue
        head = bytes(buffer[:end])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        while len(buffer) < end + 4 + length:
            buffer += sock.recv(1 << 16)
        statuses.append(int(head.split(b" ", 2)[1]))
        del buffer[: end + 4 + length]
    return statuses


def fill(port: int, objects: int, connections: int = 4, batch: int = 200) -> None:
    def worker(paths: list[str]) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            buffer = bytearray()
            for start in range(0, len(paths), batch):
                part = paths[start : start + batch]
                sock.sendall(
                    b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in part)
                )
                assert set(read_responses(sock, len(part), buffer)) == {200}

    paths = [f"/f/{n}.txt" for n in range(objects)]
    threads = [
        threading.Thread(target=worker, args=(paths[i::connections],)) for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def stall(port: int, admin: int, objects: int, wildcards: int) -> dict[str, float]:
    # Each path names one stored file (`/f/17.*`), so every wildcard removes one object.
    names = range(0, objects, max(1, objects // wildcards))[:wildcards]
    body = json.dumps({"paths": [f"/f/{n}.*" for n in names]}).encode()
    request = (
        f"POST /invalidations HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def getter() -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            buffer = bytearray()
            while not done.is_set():
                sent = time.perf_counter()
                sock.sendall(b"GET /stored.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                read_responses(sock, 1, buffer)
                samples.append((sent, time.perf_counter()))

    thread = threading.Thread(target=getter)
    thread.start()
    time.sleep(0.5)
    with socket.create_connection(("127.0.0.1", admin)) as sock:
        started = time.perf_counter()
        sock.sendall(request)
        status = read_responses(sock, 1, bytearray())[0]
        finished = time.perf_counter()
    time.sleep(0.2)
    done.set()
    thread.join()
    # Every GET that was waiting at some moment of the invalidation.
    during = [end - sent for sent, end in samples if end >= started and sent <= finished]
    before = [end - sent for sent, end in samples if end < started]
    return {
        "status": status,
        "invalidation_ms": (finished - started) * 1000,
        "gets_during": len(during),
        "p50_ms": statistics.median(during) * 1000,
        "p99_ms": sorted(during)[int(len(during) * 0.99)] * 1000,
        "max_ms": max(during) * 1000,
        "p99_before_ms": sorted(before)[int(len(before) * 0.99)] * 1000,
    }


def big_body(pid: int, admin: int, megabytes: int) -> dict[str, float]:
    rss, hwm = vm_kib(pid, "VmRSS"), vm_kib(pid, "VmHWM")
    size = megabytes * 1024 * 1024
    chunk = b"[" * (1 << 20)
    status = 0
    with socket.create_connection(("127.0.0.1", admin), timeout=120) as sock:
        sock.sendall(
            f"POST /invalidations HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        try:
            for _ in range(megabytes):
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered early and closed
        try:
            status = read_responses(sock, 1, bytearray())[0]
        except OSError:
            status = -1
    return {
        "status": status,
        "rss_growth_mb": (vm_kib(pid, "VmRSS") - rss) / 1024,
        "hwm_growth_mb": (vm_kib(pid, "VmHWM") - hwm) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--wildcards", type=int, default=3_000)
    parser.add_argument("--body-mb", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        (site / "f").mkdir(parents=True)
        for n in range(args.objects):
            (site / "f" / f"{n}.txt").write_bytes(b"x")
        (site / "stored.txt").write_bytes(b"stored")
        config = Path(tmp) / "edge.toml"
        config.write_text(
            '[server]\nlisten = "127.0.0.1:0"\nadmin = "127.0.0.1:0"\n\n'
            f'[origins.site]\ndirectory = "{site}"\n\n'
            '[[behaviors]]\npath = "*"\norigin = "site"\ncache = "caching-optimized"\n'
        )
        proc, port, admin = start_edge(config)
        try:
            began = time.perf_counter()
            fill(port, args.objects)
            fill_seconds = time.perf_counter() - began
            print(f"filled {args.objects} objects in {fill_seconds:.1f} s")
            result = stall(port, admin, args.objects, args.wildcards)
            print(
                f"invalidation of {args.wildcards} wildcard paths over {args.objects} objects: "
                f"{result['status']} in {result['invalidation_ms']:.0f} ms; GETs meanwhile: "
                f"{result['gets_during']}, p50 {result['p50_ms']:.1f} ms, "
                f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms "
                f"(p99 before: {result['p99_before_ms']:.2f} ms)"
            )
            if args.body_mb:
                memory = big_body(proc.pid, admin, args.body_mb)
                print(
                    f"{args.body_mb} MB invalidation body: status {memory['status']}, "
                    f"VmRSS +{memory['rss_growth_mb']:.1f} MB, "
                    f"VmHWM +{memory['hwm_growth_mb']:.1f} MB"
                )
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
