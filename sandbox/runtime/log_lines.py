"""Lambda's log text for one invocation: START / END / REPORT lines and the runtime's own messages.

Pure formatting (spec §12.2): no clock, no I/O; times are passed in. The formats are AWS's, byte
for byte: REPORT fields are tab-separated with a trailing tab, Duration has two decimals, Billed
Duration is whole milliseconds rounded up.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from typing import Any

import orjson

# awslambdaric renders traceback indentation with NO-BREAK SPACEs so that log viewers keep it.
_TRACE_INDENT = "\u00a0"


# The longest dropped-output marker (a 20-digit count): how far a kept tail plus its marker may
# go over the log limit.
DROPPED_MARKER_MAX_BYTES = len(f"[... {2**64} bytes of output dropped ...]\n")


def dropped_marker(dropped_bytes: int) -> str:
    """The line that stands for output left out of an invocation's log (its head: the tail is
    kept, as the end of a failing invocation's output is what explains it)."""
    return f"[... {dropped_bytes} bytes of output dropped ...]\n"


def billed_duration_ms(duration_ms: float) -> int:
    """Lambda bills whole milliseconds, rounded up, at least 1 (1 ms granularity since 2020)."""
    return max(1, math.ceil(duration_ms))


def start_line(request_id: str, version: str) -> str:
    """`START RequestId: <id> Version: <version>`."""
    return f"START RequestId: {request_id} Version: {version}\n"


def end_line(request_id: str) -> str:
    """`END RequestId: <id>`."""
    return f"END RequestId: {request_id}\n"


def report_line(
    request_id: str,
    *,
    duration_ms: float,
    memory_size_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float | None = None,
    status: str | None = None,
    error_type: str | None = None,
) -> str:
    """The REPORT line; `Init Duration` only on an environment's first invocation.

    `status` (`timeout`, `error`) and `error_type` are what current Lambda appends when the
    runtime itself failed the invocation.
    """
    # One f-string: this runs once per invocation, on the hot path of every runtime.
    extra = "" if init_duration_ms is None else f"Init Duration: {init_duration_ms:.2f} ms\t"
    if status is not None:
        extra += f"Status: {status}\t"
    if error_type is not None:
        extra += f"Error Type: {error_type}\t"
    return (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {billed_duration_ms(duration_ms)} ms\t"
        f"Memory Size: {memory_size_mb} MB\tMax Memory Used: {max_memory_used_mb} MB\t{extra}\n"
    )


def invocation_log(
    request_id: str, version: str, output: str, report: str, prefix: str = ""
) -> str:
    """One invocation's whole log: `prefix` (what Init wrote, on a cold start), START, the
    function's `output`, END and the `report` line (`report_line`)."""
    return (
        f"{prefix}START RequestId: {request_id} Version: {version}\n"
        f"{output}END RequestId: {request_id}\n{report}"
    )


def utc_timestamp(epoch_seconds: float) -> str:
    """ISO 8601 UTC with milliseconds and a `Z`, as Lambda's own log lines print times."""
    whole = int(epoch_seconds)
    millis = int((epoch_seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def timeout_message(request_id: str, timeout_seconds: float) -> str:
    """The `errorMessage` of `Sandbox.Timedout` (`events/invoke-timeout-error-body.json`)."""
    return f"RequestId: {request_id} Error: Task timed out after {timeout_seconds:.2f} seconds"


def timeout_log_line(request_id: str, timeout_seconds: float, epoch_seconds: float) -> str:
    """The line Lambda writes into the function's log when it times out."""
    stamp = utc_timestamp(epoch_seconds)
    return f"{stamp} {request_id} Task timed out after {timeout_seconds:.2f} seconds\n"


def exit_reason(wait_status: int | None) -> str:
    """How Lambda names a dead runtime: Go's `ProcessState` wording (`signal: killed`...)."""
    if wait_status is None:
        return "signal: killed"
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        return f"signal: {_SIGNAL_NAMES.get(number, f'signal {number}')}"
    return f"exit status {os.waitstatus_to_exitcode(wait_status)}"


# The wording Go's syscall.Signal.String() uses, which is what Lambda's logs show.
_SIGNAL_NAMES = {
    1: "hangup",
    2: "interrupt",
    3: "quit",
    4: "illegal instruction",
    5: "trace/breakpoint trap",
    6: "aborted",
    7: "bus error",
    8: "floating point exception",
    9: "killed",
    11: "segmentation fault",
    13: "broken pipe",
    15: "terminated",
}


def format_error_log(payload: Mapping[str, Any]) -> str:
    """`[ERROR] <errorType>: <errorMessage>` + traceback, as the RIC logs an unhandled error."""
    description = "[ERROR]"
    error_type = payload.get("errorType")
    error_message = payload.get("errorMessage")
    if error_type:
        description += f" {error_type}"
    if error_message:
        description += f"{':' if error_type else ''} {error_message}"
    lines = [description]
    stack_trace = payload.get("stackTrace")
    if stack_trace is not None:
        lines.append("Traceback (most recent call last):")
        for element in stack_trace:
            if element == "":
                lines.append("")
                continue
            for line in str(element).splitlines():
                stripped = line.lstrip(" ")
                lines.append(_TRACE_INDENT * (len(line) - len(stripped)) + stripped)
    return "\n".join(lines) + "\n"


def log_tail(log: str, limit_bytes: int = 4096) -> bytes:
    """The last `limit_bytes` of a log, as the Invoke API's `X-Amz-Log-Result` carries (§8.2)."""
    data = log.encode("utf-8")
    return data[-limit_bytes:] if len(data) > limit_bytes else data


# -- Lambda's JSON log format (LoggingConfig.LogFormat = JSON) -------------------------------

# The REPORT fields and their keys in a `platform.report` record's metrics.
_REPORT_METRICS = {
    "Duration": ("durationMs", float),
    "Billed Duration": ("billedDurationMs", int),
    "Memory Size": ("memorySizeMB", int),
    "Max Memory Used": ("maxMemoryUsedMB", int),
    "Init Duration": ("initDurationMs", float),
}


def json_system_log(log: str, epoch_seconds: float, *, failed: bool = False) -> str:
    """`log` (one invocation's text, START..REPORT) with Lambda's system lines as its JSON
    log format writes them: START becomes a `platform.start` record, REPORT a
    `platform.report` record (its metrics, and `status`: `success`, `error` when the function
    failed, or the REPORT's own `Status`), END is left out; the function's own lines (JSON
    already where its runtime's logger writes JSON; print output stays text) pass unchanged.
    `epoch_seconds` is the invocation's end: START is stamped that long before by its
    Duration."""
    lines = log.splitlines(keepends=True)
    report_at = next(
        (i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("REPORT RequestId: ")),
        None,
    )
    duration_ms = 0.0
    out: list[str] = []
    report = None
    if report_at is not None:
        report = _report_record(lines[report_at], failed)
        duration_ms = float(report["record"]["metrics"].get("durationMs", 0.0))
    for index, line in enumerate(lines):
        if line.startswith("START RequestId: "):
            head, _, version = line.rstrip("\n").partition(" Version: ")
            record = {"requestId": head.removeprefix("START RequestId: "), "version": version}
            out.append(_json_line(epoch_seconds - duration_ms / 1000, "platform.start", record))
        elif line.startswith("END RequestId: "):
            continue
        elif index == report_at and report is not None:
            out.append(_json_line(epoch_seconds, "platform.report", report["record"]))
        else:
            out.append(line)
    return "".join(out)


def _report_record(line: str, failed: bool) -> dict[str, Any]:
    fields = line.rstrip("\n").split("\t")
    request_id = fields[0].removeprefix("REPORT RequestId: ")
    metrics: dict[str, float | int] = {}
    status = "error" if failed else "success"
    error_type = None
    for field in fields[1:]:
        key, _, value = field.partition(": ")
        if key in _REPORT_METRICS:
            name, kind = _REPORT_METRICS[key]
            number = value.rsplit(" ", 1)[0]
            try:
                metrics[name] = kind(number)
            except ValueError:
                continue
        elif key == "Status":
            status = value
        elif key == "Error Type":
            error_type = value
    record: dict[str, Any] = {"requestId": request_id, "metrics": metrics, "status": status}
    if error_type is not None:
        record["errorType"] = error_type
    return {"record": record}


def _json_line(epoch_seconds: float, kind: str, record: Mapping[str, Any]) -> str:
    document = {"time": utc_timestamp(epoch_seconds), "type": kind, "record": record}
    return orjson.dumps(document).decode() + "\n"


def format_json_error_log(payload: Mapping[str, Any], epoch_seconds: float) -> str:
    """An unhandled error as Lambda's Python runtime logs it in the JSON format."""
    document = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_seconds)),
        "log_level": "ERROR",
        **payload,
    }
    return orjson.dumps(document).decode() + "\n"
