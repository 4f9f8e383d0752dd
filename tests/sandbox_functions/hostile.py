"""A hostile function for the sandbox tests: each probe tries one thing a function must not do.

Used as an ALB-style function origin: the request body is `{"probe": NAME, "args": {...}}`, the
answer's body the probe's JSON outcome (`ok`, and `errno`/`error` when the system said no).
"""

import base64
import ctypes
import json
import os
import signal
import socket
import threading
import time


def _outcome(action):
    try:
        return {"ok": True, "value": action()}
    except OSError as exc:
        return {"ok": False, "errno": exc.errno, "error": f"{type(exc).__name__}: {exc}"}


def _read(path):
    with open(path, "rb") as file:
        return file.read(4096).decode("utf-8", "replace")


def _append(path):
    with open(path, "ab") as file:
        return file.write(b"written by a function\n")


def whoami():
    return {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "pid": os.getpid(),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "environment": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
        "environ": dict(os.environ),
        "tmpdir": os.environ.get("TMPDIR", "/tmp"),
    }


def kill(pid, sig=signal.SIGKILL):
    return _outcome(lambda: os.kill(pid, sig))


def existing_pids(limit):
    """Every pid below `limit` that this process can name (kill(2) with signal 0: EPERM means
    it exists but is not ours to signal)."""
    seen = {}
    for pid in range(1, limit):
        try:
            os.kill(pid, 0)
            seen[pid] = "signalable"
        except ProcessLookupError:
            continue
        except PermissionError:
            seen[pid] = "exists"
    return seen


def read(path):
    return _outcome(lambda: _read(path))


def write(path):
    return _outcome(lambda: _append(path))


def connect(port):
    def attempt():
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True

    return _outcome(attempt)


def environ_files(pids):
    found = {}
    for pid in ["self", *pids]:
        found[str(pid)] = _outcome(lambda pid=pid: _read(f"/proc/{pid}/environ"))
    return found


def write_tmp(secret):
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "secret.txt")
    with open(path, "w") as file:
        file.write(secret)
    return {"path": path}


def fork_bomb():
    """Fork until the system says no; then end the children and tell how far it got."""
    children, failure = [], None
    while len(children) < 5000:
        try:
            pid = os.fork()
        except OSError as exc:
            failure = exc.errno
            break
        if pid == 0:
            signal.pause()
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    for pid in children:
        os.waitpid(pid, 0)
    return {"forked": len(children), "errno": failure}


def thread_bomb():
    """Start threads until the system says no; then let them end and tell how far it got.
    Threads count against the process limit.

    Small stacks and one malloc arena, so that the address-space limit is not what runs out
    first: glibc reserves 64 MB of address space per thread arena, and a thread that cannot
    get memory for its own state never tells `Thread.start` it started (which then waits)."""
    libc = ctypes.CDLL(None)
    libc.mallopt(-8, 1)  # M_ARENA_MAX
    threading.stack_size(64 * 1024)
    stop = threading.Event()
    threads, failure = [], None
    while len(threads) < 5000:
        thread = threading.Thread(target=stop.wait, daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread": pthread_create said EAGAIN
            failure = str(exc)
            break
        threads.append(thread)
    stop.set()
    for thread in threads:
        thread.join()
    return {"started": len(threads), "error": failure}


def fill_tmp(directory, file_mb):
    """Write files of `file_mb` MB into `directory` until the file system is full; remove them
    and tell how much fitted."""
    chunk = b"x" * (1 << 20)
    written, paths, failure = 0, [], None
    try:
        while written < 4096:
            path = os.path.join(directory, f"fill-{len(paths)}")
            paths.append(path)
            with open(path, "wb") as file:
                for _ in range(file_mb):
                    file.write(chunk)
                    file.flush()
                    written += 1
    except OSError as exc:
        failure = exc.errno
    finally:
        for path in paths:
            if os.path.exists(path):
                os.unlink(path)
    return {"written_mb": written, "errno": failure}


def huge_file(path, size):
    """One byte at offset `size`: a file of that size without the space it would take."""

    def attempt():
        with open(path, "wb") as file:
            file.seek(size)
            file.write(b"x")
        return os.path.getsize(path)

    result = _outcome(attempt)
    if os.path.exists(path):
        os.unlink(path)
    return result


def orphan(name, seconds):
    """A double-forked, setsid() daemon named `name` (its /proc/PID/comm), then hang."""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME
            os.closerange(3, 1024)
            time.sleep(600)
        os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(seconds)
    return "not killed"


def sleep(seconds):
    time.sleep(seconds)
    return os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]


PROBES = {
    "whoami": whoami,
    "kill": kill,
    "existing_pids": existing_pids,
    "read": read,
    "write": write,
    "connect": connect,
    "environ_files": environ_files,
    "write_tmp": write_tmp,
    "fork_bomb": fork_bomb,
    "huge_file": huge_file,
    "thread_bomb": thread_bomb,
    "fill_tmp": fill_tmp,
    "orphan": orphan,
    "sleep": sleep,
}


def handler(event, context):
    body = event.get("body") or "{}"
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    request = json.loads(body)
    result = PROBES[request["probe"]](**request.get("args", {}))
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(result),
    }
