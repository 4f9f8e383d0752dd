"""A real origin server for the tests: echoes requests, streams bytes, answers slowly on demand.

Runs under hypercorn on its own event loop in a background thread, on 127.0.0.1:0.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from hypercorn.asyncio import serve
from hypercorn.config import Config

Scope = dict[str, Any]

CHUNK = b"x" * 65536


@dataclass
class OriginLog:
    """What the origin saw, for assertions."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    connections: set[tuple[str, int]] = field(default_factory=set)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, entry: dict[str, Any]) -> None:
        with self.changed:
            self.requests.append(entry)
            self.changed.notify_all()

    def wait_for_target(self, target: str, timeout: float = 10) -> dict[str, Any]:
        """Block until the origin has received a request for `target`."""

        def seen() -> dict[str, Any] | None:
            return next((r for r in self.requests if r["target"] == target), None)

        with self.changed:
            if not self.changed.wait_for(lambda: seen() is not None, timeout):
                raise AssertionError(f"the origin never saw {target}")
            entry = seen()
            assert entry is not None
            return entry


async def _read_body(receive: Any) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while True:
        message = await receive()
        body = message.get("body", b"")
        size += len(body)
        digest.update(body)
        if not message.get("more_body"):
            return size, digest.hexdigest()


def make_origin_app(log: OriginLog) -> Any:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path: str = scope["path"]
        log.connections.add(tuple(scope["client"]))
        target = scope["raw_path"] + (
            b"?" + scope["query_string"] if scope["query_string"] else b""
        )
        entry = {
            "method": scope["method"],
            "target": target.decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "client": list(scope["client"]),
        }
        log.add(entry)
        parts = path.strip("/").split("/")
        if parts[0] in ("prefix", "keep"):  # the origin path prefixes used by the tests
            parts = parts[1:] or [""]
        if parts[0] == "bytes":
            total = int(parts[1])
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/octet-stream"),
                        (b"content-length", str(total).encode()),
                    ],
                }
            )
            left = total
            while left > 0:
                chunk = CHUNK if left >= len(CHUNK) else CHUNK[:left]
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
            return
        if parts[0] == "slow":
            await asyncio.sleep(float(parts[1]))
            body = b"slow answer"
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if parts[0] == "status":
            body = f"status {parts[1]}".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": int(parts[1]),
                    "headers": [(b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if parts[0] == "cacheable":
            # A cacheable answer that says how many times the origin was asked for it.
            seen = sum(1 for r in log.requests if r["target"] == entry["target"])
            body = f"{entry['target']} #{seen}".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"cache-control", b"max-age=60"),
                        (b"content-type", b"text/plain"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if parts[0] == "hop":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"connection", b"x-secret-hop"),
                        (b"x-secret-hop", b"1"),
                        (b"keep-alive", b"timeout=5"),
                        (b"proxy-authenticate", b"Basic"),
                        (b"upgrade", b"h2c"),
                        (b"x-end-to-end", b"kept"),
                        (b"via", b"1.1 origin-cache"),
                        (b"content-length", b"2"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b"ok"})
            return
        size, digest = await _read_body(receive)
        entry["body_size"] = size
        entry["body_sha256"] = digest
        body = orjson.dumps(entry)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""}
        )

    return app


class OriginServer:
    """The origin app served from a thread; `url` is its base URL."""

    def __init__(self) -> None:
        self.log = OriginLog()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        config = Config()
        config.bind = [f"fd://{self._sock.fileno()}"]
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = 0.5
        self._loop.call_soon(self._ready.set)
        await serve(make_origin_app(self.log), config, shutdown_trigger=self._stop.wait)

    def start(self) -> OriginServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        with contextlib.suppress(OSError):
            self._sock.close()


@contextlib.contextmanager
def running_origin() -> Iterator[OriginServer]:
    server = OriginServer().start()
    try:
        yield server
    finally:
        server.stop()
