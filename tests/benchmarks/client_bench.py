"""HTTP origin clients against one local origin: wall and CPU µs per request, in one run.

Run by hand (pytest does not collect it):

    python tests/benchmarks/client_bench.py [-n 5000] [--rounds 3] [--concurrency 64]
                                            [--clients native transport pyreqwest raw]

Each client GETs a 1 KB file from nginx on 127.0.0.1 (`/usr/sbin/nginx`, one worker, started on
an ephemeral port in a temporary directory and stopped by its PID), reads the whole body and
gives the connection back, `-n` times one after the other (`seq`) and `-n` times from
`--concurrency` tasks at once (`conc`). Rounds are interleaved (every client once per round),
so that what else the machine does falls on every client alike; the figures are medians.

| client | what |
|---|---|
| `native` | the edge's seam: `HttpOrigin.fetch` (our HTTP/1.1 transport, called directly) |
| `native-httpx` | the same through httpx's request and response objects (as before December 2026) |
| `transport` | `PooledTransport.handle_async_request` (httpx's interface), request built once |
| `pyreqwest` | pyreqwest's async client (Rust: reqwest on hyper, tokio), body streamed |
| `raw` | a floor: one asyncio protocol per connection, httptools, no pool logic, no checks |

CPU is `time.process_time` of this process (every thread, so a Rust client's runtime threads
count), user and system: the syscalls are part of a client's cost. nginx's CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app_bench import BODY, _new_loop, nginx_origin

from origin_proxy import HttpOrigin, OriginRequest

CLIENTS = ("native", "native-httpx", "transport", "pyreqwest", "raw")

Fetch = Callable[[], Awaitable[int]]


async def _native(
    url: str, *, through_httpx: bool = False
) -> tuple[Fetch, Callable[[], Awaitable[None]]]:
    origin = HttpOrigin("bench", url, max_connections=256)
    host = url.split("//", 1)[1].encode()
    send = origin._fetch_through_httpx if through_httpx else origin.fetch

    async def fetch() -> int:
        request = OriginRequest("GET", b"/file", [(b"host", host)])
        response = await send(request)
        size = 0
        try:
            async for chunk in response.body:
                size += len(chunk)
        finally:
            await response.close()
        return size

    return fetch, origin.aclose


async def _transport(url: str) -> tuple[Fetch, Callable[[], Awaitable[None]]]:
    import httpx

    from origin_proxy.transport import PooledTransport

    transport = PooledTransport(max_connections=256, max_keepalive=256)
    request = httpx.Request("GET", url + "/file")

    async def fetch() -> int:
        response = await transport.handle_async_request(request)
        size = 0
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        try:
            async for chunk in stream:
                size += len(chunk)
        finally:
            await stream.aclose()
        return size

    return fetch, transport.aclose


async def _pyreqwest(url: str) -> tuple[Fetch, Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder

    client = (
        ClientBuilder()
        .base_url(url)
        .max_connections(256)
        .pool_max_idle_per_host(256)
        .follow_redirects(False)
        .gzip(False)
        .brotli(False)
        .zstd(False)
        .deflate(False)
        .http1_only()
        .build()
    )

    async def fetch() -> int:
        size = 0
        async with client.get("/file").build_streamed() as response:
            reader = response.body_reader
            while True:
                chunk = await reader.read_chunk()
                if chunk is None:
                    break
                size += len(chunk)
        return size

    return fetch, client.close


async def _raw(url: str) -> tuple[Fetch, Callable[[], Awaitable[None]]]:
    import httptools

    host, port = url.split("//", 1)[1].split(":")
    head = b"GET /file HTTP/1.1\r\nhost: %s:%s\r\n\r\n" % (host.encode(), port.encode())
    loop = asyncio.get_running_loop()

    class Conn(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpResponseParser(self)
            self.transport: Any = None
            self.waiter: asyncio.Future[None] | None = None
            self.body: list[bytes] = []

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            assert self.waiter is not None
            self.waiter.set_result(None)

    idle: list[Conn] = []
    every: list[Conn] = []

    async def fetch() -> int:
        conn = idle.pop() if idle else None
        if conn is None:
            _, conn = await loop.create_connection(Conn, host, int(port))
            every.append(conn)
        conn.waiter = loop.create_future()
        conn.body = []
        conn.transport.write(head)
        await conn.waiter
        idle.append(conn)
        return sum(len(b) for b in conn.body)

    async def close() -> None:
        for conn in every:
            conn.transport.close()

    return fetch, close


async def _native_httpx(url: str) -> tuple[Fetch, Callable[[], Awaitable[None]]]:
    return await _native(url, through_httpx=True)


MAKERS = {
    "native": _native,
    "native-httpx": _native_httpx,
    "transport": _transport,
    "pyreqwest": _pyreqwest,
    "raw": _raw,
}


async def _run(fetch: Fetch, count: int, concurrency: int) -> tuple[float, float]:
    """(wall µs, CPU µs) per request for `count` fetches from `concurrency` tasks."""

    async def worker(share: int) -> None:
        for _ in range(share):
            if await fetch() != len(BODY):
                raise SystemExit("short body")

    shares = [
        count // concurrency + (1 if i < count % concurrency else 0) for i in range(concurrency)
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    async with asyncio.TaskGroup() as tasks:
        for share in shares:
            tasks.create_task(worker(share))
    return (
        (time.perf_counter() - wall) / count * 1e6,
        (time.process_time() - cpu) / count * 1e6,
    )


async def _bench(
    url: str, args: argparse.Namespace
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    clients = {}
    for name in args.clients:
        clients[name] = await MAKERS[name](url)
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for fetch, _ in clients.values():  # warm-up: connections made, code paths hot
            await _run(fetch, 500, args.concurrency)
        for _ in range(args.rounds):
            for name, (fetch, _) in clients.items():
                figures.setdefault((name, "seq"), []).append(await _run(fetch, args.requests, 1))
                figures.setdefault((name, "conc"), []).append(
                    await _run(fetch, args.requests, args.concurrency)
                )
    finally:
        for _, close in clients.values():
            await close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="client-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx workers run as `nobody` when started by root
        (root / "docroot").mkdir()
        (root / "docroot" / "file").write_bytes(BODY)
        with nginx_origin(root) as url:
            loop = _new_loop()
            try:
                figures = loop.run_until_complete(_bench(url, args))
            finally:
                loop.close()
    print(f"{'client':<10} {'mode':<5} {'wall µs/req':>12} {'CPU µs/req':>11}  (CPU per round)")
    for (name, mode), rows in figures.items():
        wall = statistics.median(w for w, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        spread = " ".join(f"{c:.0f}" for _, c in rows)
        print(f"{name:<10} {mode:<5} {wall:>12.1f} {cpu:>11.1f}  ({spread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
