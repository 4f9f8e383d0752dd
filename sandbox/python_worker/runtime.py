"""Inside an execution environment: the Lambda Python runtime loop of one forked process.

What awslambdaric's bootstrap does, over our framed socket instead of the Runtime API: set up the
process as Lambda's (environment, task root, limits, stdio, the root logger), import the
handler once (Init), then serve invocations one at a time until the host closes the socket.

Output capture: fds 1 and 2 are one memfd (one shared offset, so the interleaving of print(),
logging, sys.stderr and raw os.write is kept), under `sys.stdout`/`sys.stderr` writers that
keep it near the log limit (`output.py`). After each invocation the runtime reads the tail of
it, empties it, and sends those bytes with the result; the host can read the same memfd after a
timeout or a crash. Results are encoded by `marshaller.py`, which never lets orjson's buffer
outgrow the process's limits. Imported by the zygote before it forks, so none of this costs an
import per environment.
"""

from __future__ import annotations

import contextlib
import ctypes
import decimal
import importlib
import logging
import os
import resource
import signal
import socket
import sys
import tempfile
import time
import traceback
from typing import Any, NoReturn

import orjson

from sandbox.python_worker.context import EnvironmentFacts, LambdaContext
from sandbox.python_worker.framing import (
    HEADER,
    KIND_ERROR,
    KIND_INIT,
    KIND_INVOKE,
    KIND_RESULT,
    encode_frame,
)
from sandbox.python_worker.marshaller import marshal_within
from sandbox.python_worker.output import OutputTail, bounded_stdio
from sandbox.runtime.log_lines import format_error_log, format_json_error_log

_THIS_FILE = __file__

# Read by the logging filter: the request being served ("" during Init), as the RIC does.
_current_request_id = ""

# fds 1/2 as `sys.stdout`/`sys.stderr` write them (set up once per environment).
_output: OutputTail | None = None

# A result reaches orjson in one call without the marshaller's size walk while the process's
# peak RSS is within 1/64 of its memory of where it was before Init: no string or data that
# large can exist without the process having touched as much memory (what it can reuse of the
# zygote's free heap is ~0.5 MiB), and orjson's reservation (~16x a string's length) then fits
# in the function's memory many times over. Set in `_serve`.
_FAST_MARSHAL_SHARE = 64
_fast_marshal_ceiling_kib = 0

# An error document is kept under the result limit (the host refuses a larger frame): its
# message and stack trace are clipped to this share of it, in characters (JSON writes at most
# 6 bytes per character, for a control character).
_ERROR_TEXT_SHARE = 8
_ERROR_TYPE_MAX_CHARS = 256

_MARSHAL_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)

# glibc's mallopt(M_ARENA_MAX): per-thread arenas reserve 64 MB of address space each, which
# an RLIMIT_AS sized from the function's memory cannot afford.
_M_ARENA_MAX = -8


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _current_request_id
        return True


# Lambda's JSON log format (`AWS_LAMBDA_LOG_FORMAT=JSON`): set up with logging, per environment.
_json_logs = False

# Attributes every LogRecord has: the rest are the caller's `extra`, which JSON lines carry.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "aws_request_id",
    "message",
    "asctime",
}


class _JsonLogFormatter(logging.Formatter):
    """Records as Lambda's Python runtime writes them in the JSON format: one object a line,
    `timestamp` (UTC, milliseconds), `level`, `message`, `logger`, `requestId`, the error's
    `errorType`/`errorMessage`/`stackTrace`/`location` when one is attached, then `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        level = min(50, max(0, record.levelno)) // 10 * 10
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        document: dict[str, Any] = {
            "timestamp": f"{stamp}.{int(record.msecs):03d}Z",
            "level": logging.getLevelName(level),
            "message": record.getMessage(),
            "logger": record.name,
        }
        if record.exc_info and record.exc_info[0] is not None:
            document["stackTrace"] = traceback.format_tb(record.exc_info[2])
            document["errorType"] = record.exc_info[0].__name__
            document["errorMessage"] = str(record.exc_info[1])
        request_id = getattr(record, "aws_request_id", None)
        if request_id:
            document["requestId"] = request_id
        if record.exc_info:
            document["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in document:
                document[key] = value
        return orjson.dumps(document, default=str).decode() + "\n"


class _LambdaLogHandler(logging.Handler):
    """The RIC's handler on the root logger: formatted records go to the function's stdout."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never fail the function
            self.handleError(record)


class _Fault(Exception):
    """An error the runtime reports with its own errorType (Runtime.*)."""

    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace


def run_environment(sock_fd: int, memfd: int, config: dict[str, Any], fork_time: float) -> NoReturn:
    """Entry point in the forked child; never returns (the process ends with `os._exit`)."""
    code = 1
    try:
        code = _serve(sock_fd, memfd, config, fork_time)
    except SystemExit as exc:
        # A handler calling sys.exit() ends the runtime, as in Lambda (Runtime.ExitError).
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - last resort: report and die, never return to the zygote
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _setup_process(memfd: int, config: dict[str, Any]) -> None:
    os.setpgid(0, 0)  # own process group: a kill reaches the handler's subprocesses too
    for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.dup2(memfd, 1)
    os.dup2(memfd, 2)
    os.close(memfd)
    environ = config["environ"]
    os.environ.clear()
    os.environ.update(environ)
    time.tzset()
    # The zygote's tempfile has cached its own temp dir: make gettempdir() see TMPDIR.
    tempfile.tempdir = None
    code_dir = config["code_dir"]
    try:
        os.chdir(code_dir)
    except PermissionError:
        # The environment runs under a uid of its own: as Lambda, code must be world-readable.
        raise PermissionError(
            f"the code directory {code_dir} cannot be read by the function's uid "
            f"{os.getuid()}: make it readable by others (Lambda: 755 directories, 644 files)"
        ) from None
    sys.path.insert(0, code_dir)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)
    limit = int(config["address_space_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # §14: 1,024 file descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), min(hard, 1024)))
    # §14: 1,024 processes/threads; set by the zygote only when the environment has a uid (or
    # user namespace) of its own, since RLIMIT_NPROC counts per real uid (setrlimit(2)).
    max_processes = config.get("max_processes")
    if max_processes:
        resource.setrlimit(resource.RLIMIT_NPROC, (int(max_processes), int(max_processes)))
    # No file larger than the ephemeral storage (§14: /tmp 512 MB by default). Python ignores
    # SIGXFSZ, so a write past it fails with EFBIG ("File too large") instead of killing.
    max_file_bytes = config.get("max_file_bytes")
    if max_file_bytes:
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(max_file_bytes), int(max_file_bytes)))
    _install_output(int(config["max_log_bytes"]))
    _setup_logging()


def _install_output(max_log_bytes: int) -> None:
    """`sys.stdout`/`sys.stderr` on fds 1/2, through the writer that bounds the memfd.

    `sys.__stdout__`/`sys.__stderr__` too: they are the zygote's streams on the same fds, and
    `print(..., file=sys.__stderr__)` would otherwise bypass the bound."""
    global _output
    _output, sys.stdout, sys.stderr = bounded_stdio(max_log_bytes)
    # typeshed calls them Final: they are, for code that only reads them.
    sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr  # type: ignore[misc]


def _setup_logging() -> None:
    # The RIC's text format (or its JSON format, by AWS_LAMBDA_LOG_FORMAT); UTC times; the
    # root level is left alone (WARNING unless the function or AWS_LAMBDA_LOG_LEVEL changes
    # it), which is why logging.info needs setLevel.
    global _json_logs
    logging.Formatter.converter = time.gmtime
    handler = _LambdaLogHandler()
    _json_logs = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
    if _json_logs:
        handler.setFormatter(_JsonLogFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
                "%Y-%m-%dT%H:%M:%S",
            )
        )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    level = {"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)
    if level in logging.getLevelNamesMapping():
        root.setLevel(level)
    root.addHandler(handler)


def _error_log(payload: dict[str, Any]) -> str:
    """How the runtime logs an unhandled error, in the function's log format."""
    if _json_logs:
        return format_json_error_log(payload, time.time())
    return format_error_log(payload)


def _drain_output(max_bytes: int) -> bytes:
    """The last `max_bytes` written to fds 1/2 since the last drain (after a marker line when
    more was written); the memfd is emptied."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    assert _output is not None
    return _output.drain(max_bytes)


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _max_memory_used_mb() -> int:
    return _peak_rss_kib() // 1024


def _error_document(
    message: str, error_type: str, trace: list[str] | None, request_id: str
) -> dict[str, Any]:
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": trace or [],
    }


def _user_frames(tb: Any) -> list[str]:
    """The traceback without the runtime's own leading frames (as the RIC strips bootstrap)."""
    frames = traceback.extract_tb(tb)
    start = 0
    while start < len(frames) and (
        frames[start].filename == _THIS_FILE or frames[start].filename.startswith("<frozen ")
    ):
        start += 1
    # Plain tuples, as the RIC passes: no 3.11 column carets in Lambda's stackTrace.
    return traceback.format_list(
        [(f.filename, f.lineno, f.name, f.line) for f in frames[start:]]  # type: ignore[misc]
    )


def _load_handler(handler: str) -> Any:
    """Import the handler's module and return the function; raises `_Fault` like the RIC."""
    try:
        module_name, function_name = handler.rsplit(".", 1)
    except ValueError as exc:
        raise _Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {exc}") from None
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise _Fault(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {module_name} as a handler module",
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise _Fault(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from None
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise _Fault(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            trace,
        ) from None
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise _Fault(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        ) from None


def _marshal_default(value: Any) -> Any:
    # Lambda's marshaller writes Decimals as JSON numbers; anything else json cannot encode
    # is an error with json's wording.
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return None
        return orjson.Fragment(str(value))
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _too_large(size_bytes: int, max_bytes: int) -> _Fault:
    return _Fault(
        "Function.ResponseSizeTooLarge",
        f"Response payload size ({size_bytes} bytes) exceeded maximum allowed payload size "
        f"({max_bytes} bytes).",
    )


def _marshal(result: Any, max_bytes: int, peak_rss_kib: int) -> bytes:
    """The result's JSON, or `_Fault`: Runtime.MarshalError, Function.ResponseSizeTooLarge.
    `peak_rss_kib`: the process's peak RSS after the handler returned."""
    if isinstance(result, bytes):
        if len(result) > max_bytes:
            raise _too_large(len(result), max_bytes)
        return result  # the RIC sends bytes through untouched
    try:
        encoded = marshal_within(
            result,
            max_bytes,
            default=_marshal_default,
            option=_MARSHAL_OPTIONS,
            known_small=peak_rss_kib <= _fast_marshal_ceiling_kib,
        )
    except orjson.JSONEncodeError as exc:
        cause = exc.__cause__ or exc
        raise _Fault("Runtime.MarshalError", f"Unable to marshal response: {cause}") from None
    if isinstance(encoded, int):
        raise _too_large(encoded, max_bytes)
    return encoded


def _clip(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]} [... {len(text) - max_chars} characters dropped ...]"


def _encodable(text: str) -> str:
    # What orjson refuses in a str is a lone surrogate: written out as its escape instead.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _marshal_error(error: dict[str, Any], max_bytes: int) -> bytes | int:
    try:
        return marshal_within(error, max_bytes, default=_marshal_default, option=_MARSHAL_OPTIONS)
    except orjson.JSONEncodeError:
        error["errorMessage"] = _encodable(error["errorMessage"])
        error["errorType"] = _encodable(error["errorType"])
        if "stackTrace" in error:
            error["stackTrace"] = [_encodable(line) for line in error["stackTrace"]]
        return marshal_within(error, max_bytes, default=_marshal_default, option=_MARSHAL_OPTIONS)


def _bounded_error(error: dict[str, Any], max_bytes: int) -> tuple[dict[str, Any], bytes]:
    """The error document as sent (and logged), and its JSON, within `max_bytes`: when the whole
    would not fit, the message keeps its head and the stack trace its innermost frames."""
    encoded = _marshal_error(error, max_bytes)
    if isinstance(encoded, bytes):
        return error, encoded
    budget = max(16, max_bytes // _ERROR_TEXT_SHARE // 6)
    trace: list[str] = []
    for line in reversed(error.get("stackTrace") or []):
        budget_left = budget - sum(map(len, trace))
        if budget_left <= 0:
            break
        trace.insert(0, _clip(line, budget_left))
    clipped = {
        **error,
        "errorMessage": _clip(error["errorMessage"], budget),
        "errorType": _clip(error["errorType"], _ERROR_TYPE_MAX_CHARS),
        "stackTrace": trace,
    }
    encoded = _marshal_error(clipped, max_bytes)
    if isinstance(encoded, bytes):
        return clipped, encoded
    # Only a result limit of a few dozen bytes gets here: say so in the fewest bytes.
    minimal = {"errorMessage": "", "errorType": clipped["errorType"][:32]}
    return minimal, orjson.dumps(minimal)


def _serve(sock_fd: int, memfd: int, config: dict[str, Any], fork_time: float) -> int:
    global _fast_marshal_ceiling_kib
    _setup_process(memfd, config)
    _fast_marshal_ceiling_kib = _peak_rss_kib() + int(config["memory_mb"]) * 1024 // (
        _FAST_MARSHAL_SHARE
    )
    sock = socket.socket(fileno=sock_fd)
    reader = sock.makefile("rb")
    max_log_bytes = int(config["max_log_bytes"])

    init_start = time.perf_counter()
    handler: Any = None
    init_error: dict[str, Any] | None = None
    try:
        handler = _load_handler(config["handler"])
    except _Fault as fault:
        init_error = _error_document(fault.message, fault.error_type, fault.trace, "")
    except Exception as exc:  # noqa: BLE001 - any exception at import time is an init error
        init_error = _error_document(
            str(exc), type(exc).__name__, _user_frames(exc.__traceback__), ""
        )
    init_ms = (time.perf_counter() - init_start) * 1000.0
    start_ms = (time.monotonic() - fork_time) * 1000.0
    max_result_bytes = int(config["max_result_bytes"])
    blob = b""
    if init_error is not None:
        init_error, blob = _bounded_error(init_error, max_result_bytes)
        sys.stdout.write(_error_log(init_error))
    meta = {"i": init_ms, "s": start_ms, "m": _max_memory_used_mb()}
    log = _drain_output(max_log_bytes)
    sock.sendall(encode_frame(KIND_INIT, orjson.dumps(meta), blob, log))
    if init_error is not None:
        return 1  # as the RIC: report the init error, then exit

    facts = EnvironmentFacts.from_environ()
    header_size = HEADER.size
    while True:
        header = reader.read(header_size)
        if len(header) < header_size:
            return 0  # the host closed the environment
        kind, meta_length, log_length, blob_length = HEADER.unpack(header)
        body_length = meta_length + log_length + blob_length
        body = reader.read(body_length)
        if len(body) < body_length or kind != KIND_INVOKE:
            return 0
        event = body[meta_length + log_length :]
        reply = _invoke(handler, body[:meta_length], event, max_result_bytes, facts)
        kind, meta, blob, exit_after = reply
        log = _drain_output(max_log_bytes)
        sock.sendall(encode_frame(kind, orjson.dumps(meta), blob, log))
        if exit_after:
            return 1


def _invoke(
    handler: Any,
    meta_bytes: bytes,
    event_bytes: bytes,
    max_result_bytes: int,
    facts: EnvironmentFacts,
) -> tuple[int, dict[str, Any], bytes, bool]:
    """Run one invocation: (reply kind, reply meta, reply blob, whether to exit after)."""
    global _current_request_id
    started = time.perf_counter()
    meta = orjson.loads(meta_bytes)
    request_id = meta["id"]
    _current_request_id = request_id
    # Per invocation, as Lambda's runtime client sets it (and removes it when there is none).
    trace = meta.get("tr")
    if trace is not None:
        os.environ["_X_AMZN_TRACE_ID"] = trace
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    error: dict[str, Any] | None = None
    kind_of_error = "function"
    payload = b""
    peak_kib = -1
    try:
        context = LambdaContext(
            aws_request_id=request_id,
            invoked_function_arn=meta["arn"],
            deadline_epoch_ms=meta["dl"],
            client_context=meta.get("cc"),
            cognito_identity=meta.get("ci"),
            facts=facts,
        )
        try:
            event = orjson.loads(event_bytes)
        except orjson.JSONDecodeError as exc:
            raise _Fault("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}") from None
        result = handler(event, context)
        # One getrusage for both the marshaller's choice and the REPORT (a result small enough
        # for the fast path adds no memory worth a megabyte).
        peak_kib = _peak_rss_kib()
        payload = _marshal(result, max_result_bytes, peak_kib)
        if peak_kib > _fast_marshal_ceiling_kib:
            peak_kib = _peak_rss_kib()
    except _Fault as fault:
        error = _error_document(fault.message, fault.error_type, fault.trace, request_id)
    except MemoryError as exc:
        # Free what the failed handler still holds through its frames before doing anything.
        traceback.clear_frames(exc.__traceback__)
        exc.__traceback__ = None
        del exc
        kind_of_error = "memory"
        error = {"errorType": "Runtime.OutOfMemory", "errorMessage": ""}
    except Exception as exc:  # noqa: BLE001 - the handler's exception is the function error
        error = _error_document(
            str(exc), type(exc).__name__, _user_frames(exc.__traceback__), request_id
        )
    duration_ms = (time.perf_counter() - started) * 1000.0
    _current_request_id = ""
    if error is not None or peak_kib < 0:
        peak_kib = _peak_rss_kib()
    reply_meta: dict[str, Any] = {"d": duration_ms, "m": peak_kib // 1024}
    if error is None:
        return KIND_RESULT, reply_meta, payload, False
    error, blob = _bounded_error(error, max_result_bytes)
    if kind_of_error == "function":
        sys.stdout.write(_error_log(error))
    reply_meta["k"] = kind_of_error
    return KIND_ERROR, reply_meta, blob, kind_of_error == "memory"
