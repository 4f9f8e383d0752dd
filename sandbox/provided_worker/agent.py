"""Inside a custom-runtime environment: the Lambda Runtime API that its `bootstrap` talks to.

Run by the sandbox's Python (`python -I -S agent.py FD`, standard library only: nothing of the
project is imported), one agent per execution environment. The host starts it ahead of need;
it waits for a CONFIGURE frame on the socket FD (the environment's own variables, the bootstrap,
the limits), then binds the Runtime API (2018-06-01) on 127.0.0.1 (port 9001 in the sandbox's
own network namespace, an ephemeral one on the host's network), starts the bootstrap with
`AWS_LAMBDA_RUNTIME_API` pointing at it, and relays: Init ends with the bootstrap's first
`GET /runtime/invocation/next` (an INIT frame), an INVOKE frame becomes the answer to the
waiting `next`, and `POST .../response` or `.../error` the RESULT or ERROR frame. Frames:
sandbox/runtime/framing.py is the other side.

Output: fds 1 and 2 are one memory file opened for appending, which the host reads after a
timeout or a crash. The bootstrap writes into a pipe that the agent copies into that file,
keeping it near the log limit (a marker line and the tail); each answer carries the output
since the last one and empties the file.

A bootstrap that exits ends the environment: during Init the INIT frame reports
`Runtime.ExitError`; after it, the agent exits with the bootstrap's status, and the host reports
the invocation in progress as Lambda does (`Runtime exited with error: exit status N`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import struct
import sys
import time
from typing import Any

KIND_INVOKE = 1
KIND_INIT = 2
KIND_RESULT = 3
KIND_ERROR = 4
KIND_CONFIGURE = 5
HEADER = struct.Struct("!BIII")
OUT = 1

# The longest request head the API reads (request line and headers), as Lambda's limits go.
MAX_HEAD_BYTES = 64 * 1024
READ_CHUNK_BYTES = 256 * 1024
API_PREFIX = "/2018-06-01/runtime/"
ERROR_TYPE_HEADER = "lambda-runtime-function-error-type"
_MILLIS = 1000.0


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


# -- bounded output -----------------------------------------------------------------------------


class Output:
    """The memory file at fd 1: what the bootstrap wrote since the last answer, within bounds."""

    def __init__(self) -> None:
        self.keep_bytes = 1024 * 1024
        self.dropped = 0
        self.marker_bytes = 0

    @staticmethod
    def _marker(count: int) -> bytes:
        return f"[... {count} bytes of output dropped ...]\n".encode()

    def write(self, data: bytes) -> None:
        end = os.fstat(OUT).st_size
        if len(data) > self.keep_bytes or end + len(data) > 2 * self.keep_bytes:
            self._compact(end, data)
            return
        _write_all(OUT, data)

    def _compact(self, end: int, incoming: bytes) -> None:
        old_tail = b""
        if len(incoming) >= self.keep_bytes:
            self.dropped += end - self.marker_bytes + len(incoming) - self.keep_bytes
            incoming = incoming[len(incoming) - self.keep_bytes :]
        else:
            wanted = min(end - self.marker_bytes, self.keep_bytes - len(incoming))
            old_tail = os.pread(OUT, wanted, end - wanted) if wanted > 0 else b""
            self.dropped += end - self.marker_bytes - wanted
        marker = self._marker(self.dropped)
        os.ftruncate(OUT, 0)
        _write_all(OUT, marker + old_tail + incoming)
        self.marker_bytes = len(marker)

    def drain(self) -> bytes:
        """The output since the last drain (its tail after a marker when more was written);
        the file is emptied."""
        end = os.fstat(OUT).st_size
        written = end - self.marker_bytes
        taken = min(written, self.keep_bytes)
        dropped_now = self.dropped + written - taken
        data = os.pread(OUT, taken, end - taken) if taken > 0 else b""
        if end:
            os.ftruncate(OUT, 0)
        self.dropped = self.marker_bytes = 0
        return self._marker(dropped_now) + data if dropped_now > 0 else data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- HTTP ---------------------------------------------------------------------------------------


class Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "path", "too_large")

    def __init__(self, method: str, path: str, headers: dict[str, str], keep_alive: bool) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.keep_alive = keep_alive
        self.body = b""
        self.too_large = False


class BadRequest(Exception):
    pass


_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
}


def _response(
    status: int, body: bytes, headers: dict[str, str] | None = None, *, close: bool = False
) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines.append("Content-Type: application/json")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    lines.append(f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _error(status: int, error_type: str, message: str, *, close: bool = False) -> bytes:
    return _response(status, _json({"errorMessage": message, "errorType": error_type}), close=close)


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_body: int
) -> Request | None:
    """The next request on a connection (None at its end); a body over `max_body` is read and
    dropped (`too_large`). A client that expects `100 Continue` (curl, for a large body) gets
    it at once."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest("truncated request") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise BadRequest("malformed header")
        headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (
        parts[2] == "HTTP/1.1" or "keep-alive" in connection
    )
    request = Request(parts[0], parts[1], headers, keep_alive)
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        await _read_chunked(reader, request, max_body)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise BadRequest("malformed Content-Length") from None
        if length < 0:
            raise BadRequest("malformed Content-Length")
        await _read_body(reader, request, length, max_body)
    return request


async def _read_body(
    reader: asyncio.StreamReader, request: Request, length: int, max_body: int
) -> None:
    if length <= max_body and not request.too_large:
        request.body += await reader.readexactly(length)
        if len(request.body) > max_body:
            request.too_large, request.body = True, b""
        return
    request.too_large, request.body = True, b""
    while length > 0:  # read and drop: the connection stays usable
        length -= len(await reader.readexactly(min(length, READ_CHUNK_BYTES)))


async def _read_chunked(reader: asyncio.StreamReader, request: Request, max_body: int) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest("malformed chunk size") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return
        await _read_body(reader, request, size, max_body - len(request.body))
        if await reader.readexactly(2) != b"\r\n":
            raise BadRequest("malformed chunk")


# -- the environment ----------------------------------------------------------------------------


# Go's names for signals, as Lambda words a runtime's end.
_SIGNAL_NAMES = {6: "aborted", 9: "killed", 11: "segmentation fault", 15: "terminated"}


def _trace_id(epoch: float) -> str:
    """An X-Ray trace header as Lambda passes one (not sampled: there is no daemon), for an
    invocation that came without one (the host passes the request's own, `tr`)."""
    return f"Root=1-{int(epoch):08x}-{os.urandom(12).hex()};Parent={os.urandom(8).hex()};Sampled=0"


class Memory:
    """The bootstrap's peak resident set (VmHWM), in MB, from its /proc status, kept open (one
    read per answer); the agent's own before the bootstrap started."""

    def __init__(self) -> None:
        self.fd = -1

    def watch(self, pid: int) -> None:
        with contextlib.suppress(OSError):
            self.fd = os.open(f"/proc/{pid}/status", os.O_RDONLY | os.O_CLOEXEC)

    def peak_mb(self) -> int:
        try:
            if self.fd < 0:
                with open("/proc/self/status", "rb") as own:
                    status = own.read()
            else:
                status = os.pread(self.fd, 8192, 0)
            start = status.index(b"VmHWM:") + 6
            return int(status[start : status.index(b"kB", start)]) // 1024
        except (OSError, ValueError):
            return 0


class Agent:
    def __init__(self, ipc: socket.socket) -> None:
        self.loop = asyncio.get_running_loop()
        self.ipc = ipc
        self.output = Output()
        self.writer: asyncio.StreamWriter | None = None
        self.max_result_bytes = 6 * 1024 * 1024
        self.state = "Started"  # Started, Ready, Invoking, InitError, Exited
        self.started = 0.0
        self.bootstrap_pid = 0
        self.pipe = -1
        # The invocation sent by the host and not yet handed to the bootstrap; the invocation in
        # progress (meta, started); the bootstrap's waiting `next`.
        self.pending: tuple[dict[str, Any], bytes] | None = None
        self.current: tuple[dict[str, Any], float] | None = None
        self.next_waiter: asyncio.Future[None] | None = None
        self.memory = Memory()
        self.done = self.loop.create_future()
        # The bootstrap's exit status (negative: the signal that ended it), the agent's own.
        self.exit_code = 0

    # -- frames

    def send(self, kind: int, meta: dict[str, Any], blob: bytes = b"") -> None:
        self.copy_output()
        log = self.output.drain()
        meta_bytes = _json(meta)
        frame = HEADER.pack(kind, len(meta_bytes), len(log), len(blob)) + meta_bytes + log + blob
        assert self.writer is not None
        self.writer.write(frame)

    async def read_frames(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                header = await reader.readexactly(HEADER.size)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            kind, meta_length, log_length, blob_length = HEADER.unpack(header)
            meta = json.loads(await reader.readexactly(meta_length))
            await reader.readexactly(log_length)
            blob = await reader.readexactly(blob_length)
            if kind == KIND_CONFIGURE and self.state == "Started" and not self.bootstrap_pid:
                await self.configure(meta)
            elif kind == KIND_INVOKE and self.pending is None and self.current is None:
                self.pending = (meta, blob)
                if self.next_waiter is not None and not self.next_waiter.done():
                    self.next_waiter.set_result(None)
            else:
                return  # the host never sends anything else: nothing to answer

    # -- Init

    async def configure(self, config: dict[str, Any]) -> None:
        self.max_result_bytes = int(config["max_result_bytes"])
        self.output.keep_bytes = int(config["max_log_bytes"])
        server = await asyncio.start_server(
            self.serve, "127.0.0.1", int(config["port"]), limit=MAX_HEAD_BYTES
        )
        port = server.sockets[0].getsockname()[1]
        environment = dict(os.environ)
        environment.update(config["env"])
        environment["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{port}"
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        self.pipe = read_end
        self.started = time.monotonic()
        os.chdir(config["code_dir"])  # the bootstrap's working directory: the task root
        bootstrap = config["bootstrap"]
        try:
            # posix_spawn returns once the bootstrap is exec'd: it never waits for it.
            self.bootstrap_pid = os.posix_spawn(  # noqa: ASYNC221
                bootstrap,
                [bootstrap],
                environment,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, write_end, 1),
                    (os.POSIX_SPAWN_DUP2, write_end, 2),
                ],
            )
        except OSError as exc:
            os.close(write_end)
            reason = exc.strerror or str(exc)
            self.init_failed(
                "Runtime.InvalidEntrypoint",
                f"fork/exec {bootstrap}: {reason.lower()}",
            )
            return
        os.close(write_end)
        self.memory.watch(self.bootstrap_pid)
        self.loop.add_reader(read_end, self.copy_output)
        pidfd = os.pidfd_open(self.bootstrap_pid)
        self.loop.add_reader(pidfd, self.bootstrap_exited, pidfd)

    def init_failed(self, error_type: str, message: str, document: Any = None) -> None:
        self.state = "InitError"
        if not isinstance(document, dict):
            document = {"errorMessage": message, "errorType": error_type}
        init_ms = (time.monotonic() - self.started) * _MILLIS
        memory = self.memory.peak_mb()
        self.send(KIND_INIT, {"i": init_ms, "m": memory}, _json(document))

    def copy_output(self) -> None:
        """Move what the bootstrap wrote so far into the output file."""
        while self.pipe >= 0:
            try:
                data = os.read(self.pipe, READ_CHUNK_BYTES)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                data = b""
            if not data:
                self.loop.remove_reader(self.pipe)
                os.close(self.pipe)
                self.pipe = -1
                return
            self.output.write(data)

    def bootstrap_exited(self, pidfd: int) -> None:
        self.loop.remove_reader(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(self.bootstrap_pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self.copy_output()
        if self.state == "Started":
            reason = f"exit status {code}"
            if code < 0:
                reason = f"signal: {_SIGNAL_NAMES.get(-code, f'signal {-code}')}"
            self.init_failed("Runtime.ExitError", f"Runtime exited with error: {reason}")
            code = 0
        elif self.state == "InitError":
            code = 0
        self.state = "Exited"
        # After Init the host learns of the exit from the agent's own, with the same status.
        self.exit_code = code
        if not self.done.done():
            self.done.set_result(None)

    # -- the Runtime API

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    request = await _read_request(reader, writer, self.max_result_bytes)
                except BadRequest as exc:
                    writer.write(_error(400, "InvalidRequest", str(exc), close=True))
                    break
                if request is None:
                    break
                try:
                    answer = await self.handle(request)
                except Exception as exc:  # noqa: BLE001 - the agent's own fault: Lambda's 500
                    os.write(2, f"runtime API: {type(exc).__name__}: {exc}\n".encode())
                    answer = _error(500, "InternalServerError", "Internal Server Error")
                writer.write(answer)
                if not request.keep_alive:
                    break
                await writer.drain()
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def handle(self, request: Request) -> bytes:
        path = request.path
        if not path.startswith(API_PREFIX):
            return _error(404, "NotFound", f"no such path: {path}")
        route = path[len(API_PREFIX) :]
        if route == "invocation/next":
            if request.method != "GET":
                return _error(405, "MethodNotAllowed", "use GET")
            return await self.next_invocation()
        if request.method != "POST":
            if route == "init/error" or route.startswith("invocation/"):
                return _error(405, "MethodNotAllowed", "use POST")
            return _error(404, "NotFound", f"no such path: {path}")
        if route == "init/error":
            return self.init_error(request)
        parts = route.split("/")
        if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            return self.answer(request, parts[1], parts[2])
        return _error(404, "NotFound", f"no such path: {path}")

    def forbidden(self, target: str) -> bytes:
        return _error(
            403,
            "InvalidStateTransition",
            f"State transition from {self.state} to {target} failed for runtime. "
            "Error: State transition is not allowed",
        )

    async def next_invocation(self) -> bytes:
        if self.state == "Started":
            self.state = "Ready"
            init_ms = (time.monotonic() - self.started) * _MILLIS
            self.send(KIND_INIT, {"i": init_ms, "m": self.memory.peak_mb()})
        elif self.state != "Ready" or self.next_waiter is not None:
            return self.forbidden("Ready")
        while self.pending is None:
            self.next_waiter = self.loop.create_future()
            try:
                await self.next_waiter
            finally:
                self.next_waiter = None
        meta, event = self.pending
        self.pending = None
        self.state = "Invoking"
        self.current = (meta, time.monotonic())
        headers = {
            "Lambda-Runtime-Aws-Request-Id": meta["id"],
            "Lambda-Runtime-Deadline-Ms": str(meta["dl"]),
            "Lambda-Runtime-Invoked-Function-Arn": meta["arn"],
            "Lambda-Runtime-Trace-Id": meta.get("tr") or _trace_id(time.time()),
        }
        if "cc" in meta:
            headers["Lambda-Runtime-Client-Context"] = json.dumps(meta["cc"])
        if "ci" in meta:
            headers["Lambda-Runtime-Cognito-Identity"] = json.dumps(meta["ci"])
        return _response(200, event, headers)

    def init_error(self, request: Request) -> bytes:
        if self.state != "Started":
            return self.forbidden("InitError")
        document = _error_document(request, "Runtime.Unknown")
        if request.too_large or len(_json(document)) > self.max_result_bytes:
            document = {"errorMessage": "", "errorType": str(document.get("errorType", ""))[:64]}
        self.init_failed(str(document.get("errorType", "")), "", document)
        return _response(202, _json({"status": "OK"}))

    def answer(self, request: Request, request_id: str, outcome: str) -> bytes:
        target = "InvocationResponse" if outcome == "response" else "InvocationErrorResponse"
        if self.current is None:
            return self.forbidden(target)
        meta, started = self.current
        if request_id != meta["id"]:
            return _error(400, "InvalidRequestID", "Invalid request ID")
        self.current = None
        self.state = "Ready"
        duration_ms = (time.monotonic() - started) * _MILLIS
        memory = {"d": duration_ms, "m": self.memory.peak_mb()}
        error = b""
        if outcome == "error" and not request.too_large:
            error = _json(_error_document(request, "Runtime.Unknown"))
        if request.too_large or len(error) > self.max_result_bytes:
            limit = self.max_result_bytes
            document = {
                "errorMessage": f"Response payload size exceeded maximum allowed payload size "
                f"({limit} bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
            }
            self.send(KIND_ERROR, memory, _json(document))
            return _error(
                413,
                "RequestEntityTooLarge",
                f"Exceeded maximum allowed payload size ({limit} bytes).",
            )
        if outcome == "response":
            self.send(KIND_RESULT, memory, request.body)
        else:
            self.send(KIND_ERROR, memory, error)
        return _response(202, _json({"status": "OK"}))


def _error_type(header: str, default_type: str) -> str:
    """The `Lambda-Runtime-Function-Error-Type` header as Lambda keeps it: `Runtime.X` and
    `Function.X` names pass, another `Function.` one is `Function.Unknown`, anything else
    `Runtime.Unknown` (`default_type` when there is none)."""
    if not header:
        return default_type
    category, dot, reason = header.partition(".")
    if dot and reason and category in ("Runtime", "Function"):
        return header
    return "Function.Unknown" if category == "Function" else "Runtime.Unknown"


def _error_document(request: Request, default_type: str) -> dict[str, Any]:
    """Lambda's error document from a runtime's error report: its JSON body, the error type
    header (see `_error_type`) when the body names none (or is no JSON object)."""
    header = _error_type(request.headers.get(ERROR_TYPE_HEADER, ""), default_type)
    try:
        document = json.loads(request.body) if request.body else None
    except ValueError:
        document = None
    if not isinstance(document, dict):
        text = request.body.decode("utf-8", "replace")
        return {"errorMessage": text, "errorType": header}
    if not document.get("errorType"):
        document["errorType"] = header
    document.setdefault("errorMessage", "")
    return document


async def main(ipc_fd: int) -> int:
    ipc = socket.socket(fileno=ipc_fd)
    os.set_inheritable(ipc_fd, False)
    agent = Agent(ipc)
    reader, writer = await asyncio.open_unix_connection(sock=ipc)
    agent.writer = writer
    frames = asyncio.ensure_future(agent.read_frames(reader))
    await asyncio.wait([frames, agent.done], return_when=asyncio.FIRST_COMPLETED)
    if agent.done.done():
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return agent.exit_code
    return 0


if __name__ == "__main__":
    code = asyncio.run(main(int(sys.argv[-1])))
    sys.stdout.flush()
    # Whatever the bootstrap left running ends with the environment (its process group).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.killpg(os.getpgrp(), signal.SIGTERM)
    if code < 0:  # die of the bootstrap's signal, so that the host reads the same status
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)
