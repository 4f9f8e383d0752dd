"""Hostile handlers for the output-bounds tests: each tries to make the host hold too much.

Some write frames of their own to the environment's socket, as any code in the function can.
They speak the layout of the framing module the runtime uses (its 9-byte header before the log
section existed, its 13-byte header after), so that they attack whichever host runs them.
"""

import os
import stat
import sys
import time

MIB = 1024 * 1024


def _socket_fd():
    for fd in range(3, 1024):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                return fd
        except OSError:
            pass
    raise RuntimeError("the runtime's socket is not among the first 1024 descriptors")


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _send_zeros(fd, count):
    chunk = bytes(MIB)
    while count > 0:
        _write_all(fd, chunk[: min(count, MIB)])
        count -= MIB


def forge_large_result(event, context):
    """Announce a result of `mb` MiB on the socket and send all of it (never more than 1 MiB
    held here), then wait for the host to react."""
    framing = sys.modules["sandbox.python_worker.framing"]
    size = int(event.get("mb", 250)) * MIB
    if not size:
        return None  # an ordinary answer, to show the next invocation works
    fd = _socket_fd()
    if framing.HEADER.size == 9:  # body length, kind, meta length
        header = framing.HEADER.pack(size, framing.KIND_RESULT, 0)
    else:  # kind, meta length, log length, blob length
        header = framing.HEADER.pack(framing.KIND_RESULT, 0, 0, size)
    _write_all(fd, header)
    _send_zeros(fd, size)
    time.sleep(60)


def forge_large_log(event, context):
    """Answer with a well-formed result whose log is `mb` MiB of 'y'."""
    framing = sys.modules["sandbox.python_worker.framing"]
    size = int(event.get("mb", 100)) * MIB
    if not size:
        return None
    fd = _socket_fd()
    payload = b'{"forged": true}'
    chunk = b"y" * MIB
    if framing.HEADER.size == 9:  # the log travels in the meta document's "o"
        head, tail = b'{"d":1.0,"m":1,"o":"', b'"}'
        meta_length = len(head) + size + len(tail)
        _write_all(fd, framing.HEADER.pack(meta_length + len(payload), 3, meta_length) + head)
        for _ in range(size // MIB):
            _write_all(fd, chunk)
        _write_all(fd, tail + payload)
    else:
        meta = b'{"d":1.0,"m":1}'
        _write_all(fd, framing.HEADER.pack(3, len(meta), size, len(payload)) + meta)
        for _ in range(size // MIB):
            _write_all(fd, chunk)
        _write_all(fd, payload)
    time.sleep(60)


def forge_garbage_answer(event, context):
    """A small frame whose meta document is not JSON."""
    framing = sys.modules["sandbox.python_worker.framing"]
    _write_all(_socket_fd(), framing.encode_frame(framing.KIND_RESULT, b"\xff not json", b"{}"))
    time.sleep(60)


def print_a_lot(event, context):
    """Print `mb` MiB in 1 MiB lines (to `stream`, a name in `sys`); report how large stdout's
    file grew."""
    line = "z" * (MIB - 1)
    stream = getattr(sys, event.get("stream", "stdout"))
    largest = 0
    for _ in range(int(event.get("mb", 300))):
        print(line, file=stream)
        largest = max(largest, os.fstat(1).st_size)
    sys.stderr.write("the last line\n")
    return {"largest_stdout_bytes": largest}


def print_then_hang(event, context):
    """Print `mb` MiB, then outlive the timeout (the host reads the output after the kill)."""
    line = "h" * (MIB - 1)
    for _ in range(int(event.get("mb", 50))):
        print(line)
    print("still here")
    time.sleep(60)


def large_result(event, context):
    """A result of about `mb` MiB of `char` (its JSON is larger for multi-byte characters)."""
    return {"body": event.get("char", "r") * int(float(event.get("mb", 10)) * MIB)}


def raise_large_message(event, context):
    """An exception whose message is `mb` MiB."""
    raise ValueError("m" * (int(event.get("mb", 100)) * MIB))


def raise_unencodable_message(event, context):
    """An exception whose message JSON cannot carry as it is (a lone surrogate)."""
    raise ValueError("before \ud800 after")


def ok(event, context):
    print("fine")
    return {"ok": True}
