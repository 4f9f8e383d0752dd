"""Benchmark of origin transports: requests/s and client CPU µs per 1 KB GET round trip.

Run by hand (pytest does not collect it):

    python tests/benchmarks/transport_bench.py [--requests 10000] [--rounds 3] [--loop uvloop]

A raw asyncio origin answering a fixed 1 KB response runs in a child process (on uvloop), so
the figures are the client's cost: wall-clock throughput, and the CPU time of this process
(user + system, so the loopback syscalls are included) divided by the number of requests.
Each client runs with 1 and 64 concurrent tasks; every body is read to the end and every
response closed. Rows are interleaved over `--rounds` rounds and the median is printed,
because a shared machine is noisy. Two reference rows frame the figures:

- "raw asyncio protocol": a bare `asyncio.Protocol` writing the request bytes and waiting
  for the response bytes, i.e. the loop and kernel floor any client pays;
- "PooledTransport, in memory": the transport against a fake socket that answers at once,
  i.e. its own Python cost with no syscalls at all.

aiohttp is measured when importable (it is not a project dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from origin_proxy.transport import PooledTransport
from origin_proxy.transport.connection import Connection

BODY = b"x" * 1024
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
    b"date: Mon, 23 Nov 2026 12:00:00 GMT\r\nserver: bench\r\n\r\n%b" % (len(BODY), BODY)
)
TARGET = b"/bench?q=1"


class _OriginProtocol(asyncio.Protocol):
    """Answers every request (a head ended by a blank line; no bodies) with RESPONSE."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            self.buffer = self.buffer[self.buffer.rindex(b"\r\n\r\n") + 4 :]
            assert self.transport is not None
            self.transport.write(RESPONSE * count)


async def _serve_origin() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_OriginProtocol, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin


def _make_request(url: httpx.URL, host: bytes) -> httpx.Request:
    return httpx.Request(
        "GET",
        url,
        headers=[(b"host", host), (b"accept", b"*/*")],
        stream=httpx.ByteStream(b""),
        extensions={"target": TARGET},
    )


class _FloorClient(asyncio.Protocol):
    """The least any client does: write the request, wait for the whole response."""

    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None
        self.received = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.received >= len(RESPONSE) and self.waiter is not None:
            self.received -= len(RESPONSE)
            self.waiter.set_result(None)
            self.waiter = None


class _InstantSocket(asyncio.Transport):
    """A fake socket whose peer answers every write with RESPONSE on the next loop pass."""

    def __init__(self, protocol: asyncio.Protocol, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._protocol = protocol
        self._loop = loop

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._loop.call_soon(self._protocol.data_received, RESPONSE)

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


class _InMemoryTransport(PooledTransport):
    async def _connect(  # type: ignore[override]
        self, key: tuple[bytes, bytes, int], timeout_seconds: float | None, loop: object
    ) -> object:
        running = asyncio.get_running_loop()
        conn = Connection(self, key, running)
        conn.connection_made(_InstantSocket(conn, running))
        self._open += 1
        self._connections.add(conn)
        return conn


Sender = Callable[[], Awaitable[int]]


async def _run(send: Sender, total: int, concurrency: int) -> tuple[float, float]:
    """Send `total` requests over `concurrency` tasks; return (req/s, CPU µs per request)."""
    for _ in range(100):  # warm up: connections opened, code paths hot
        await send()
    per_task = max(1, total // concurrency)

    async def worker() -> None:
        for _ in range(per_task):
            size = await send()
            assert size == len(BODY), size

    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    done = per_task * concurrency
    return done / wall, cpu / done * 1e6


async def _read_stream(response: httpx.Response) -> int:
    stream = cast(httpx.AsyncByteStream, response.stream)
    size = 0
    async for chunk in stream:
        size += len(chunk)
    await response.aclose()
    return size


async def _measure(name: str, port: int, concurrency: int, total: int) -> tuple[float, float]:
    url = httpx.URL(f"http://127.0.0.1:{port}{TARGET.decode()}")
    host = b"127.0.0.1:%d" % port
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    loop = asyncio.get_running_loop()

    if name == "raw asyncio protocol":
        clients: list[_FloorClient] = []
        for _ in range(concurrency):
            _, floor_client = await loop.create_connection(_FloorClient, "127.0.0.1", port)
            clients.append(floor_client)
        free = list(clients)
        head = b"GET %b HTTP/1.1\r\nhost: %b\r\naccept: */*\r\n\r\n" % (TARGET, host)

        async def via_floor() -> int:
            client = free.pop()
            client.waiter = loop.create_future()
            assert client.transport is not None
            client.transport.write(head)
            await client.waiter
            free.append(client)
            return len(BODY)

        try:
            return await _run(via_floor, total, concurrency)
        finally:
            for floor_client in clients:
                assert floor_client.transport is not None
                floor_client.transport.close()

    if name == "httpx.AsyncClient.send":
        async with httpx.AsyncClient(limits=limits) as httpx_client:

            async def via_client() -> int:
                response = await httpx_client.send(_make_request(url, host), stream=True)
                return await _read_stream(response)

            return await _run(via_client, total // 8, concurrency)

    if name == "httpcore pool (transport)":
        async with httpx.AsyncHTTPTransport(limits=limits) as httpcore_transport:

            async def via_httpcore() -> int:
                request = _make_request(url, host)
                return await _read_stream(await httpcore_transport.handle_async_request(request))

            return await _run(via_httpcore, total // 4, concurrency)

    if name in ("PooledTransport", "PooledTransport, in memory"):
        transport = PooledTransport() if name == "PooledTransport" else _InMemoryTransport()
        try:

            async def via_pooled() -> int:
                request = _make_request(url, host)
                return await _read_stream(await transport.handle_async_request(request))

            return await _run(via_pooled, total, concurrency)
        finally:
            await transport.aclose()

    if name == "aiohttp ClientSession":
        import aiohttp  # type: ignore[import-not-found, unused-ignore]

        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            plain_url = str(url)

            async def via_aiohttp() -> int:
                async with session.get(plain_url, headers={"accept": "*/*"}) as response:
                    return len(await response.read())

            return await _run(via_aiohttp, total // 2, concurrency)

    raise ValueError(name)


async def _bench(port: int, total: int, rounds: int) -> list[tuple[str, int, float, float]]:
    names = [
        "raw asyncio protocol",
        "httpx.AsyncClient.send",
        "httpcore pool (transport)",
        "PooledTransport",
        "PooledTransport, in memory",
    ]
    try:
        import aiohttp  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        print("aiohttp is not importable: skipped", file=sys.stderr)
    else:
        names.append("aiohttp ClientSession")
    samples: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for concurrency in (1, 64):
            for name in names:
                result = await _measure(name, port, concurrency, total)
                samples.setdefault((name, concurrency), []).append(result)
    return [
        (
            name,
            concurrency,
            statistics.median(rate for rate, _ in results),
            statistics.median(cpu for _, cpu in results),
        )
        for (name, concurrency), results in samples.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000, help="requests per fast client")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--origin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.origin:
        import uvloop

        uvloop.run(_serve_origin())
        return

    origin = subprocess.Popen(
        [sys.executable, __file__, "--origin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert origin.stdout is not None
        port = int(origin.stdout.readline())
        if args.loop == "uvloop":
            import uvloop

            rows = uvloop.run(_bench(port, args.requests, args.rounds))
        else:
            rows = asyncio.run(_bench(port, args.requests, args.rounds))
    finally:
        with contextlib.suppress(OSError):
            assert origin.stdin is not None
            origin.stdin.close()
        origin.wait(timeout=10)

    print(f"\nloop: {args.loop}; 1 KB GET; medians of {args.rounds} rounds")
    print(f"{'client':<28} {'tasks':>5} {'req/s':>9} {'CPU µs/req':>11}")
    for name, concurrency, rate, cpu_us in sorted(rows, key=lambda row: row[1]):
        print(f"{name:<28} {concurrency:>5} {rate:>9,.0f} {cpu_us:>11.1f}")


if __name__ == "__main__":
    main()
