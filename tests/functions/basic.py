"""Handlers for the runtime's tests: ordinary Lambda code."""

import json
import logging
import os
import sys
import time

COUNTER = {"calls": 0}
print("init: module imported")

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def echo(event, context):
    return event


def count(event, context):
    COUNTER["calls"] += 1
    return {
        "calls": COUNTER["calls"],
        "pid": os.getpid(),
        # One per execution environment (a pid is 2 in every namespaced environment).
        "environment": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
    }


def add_header(event, context):
    request = event["Records"][0]["cf"]["request"]
    request["headers"]["x-edge"] = [{"key": "X-Edge", "value": "yes"}]
    return request


def describe(event, context):
    keys = [
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "_HANDLER",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "TZ",
        "TMPDIR",
        "GREETING",
        "HOME",
    ]
    return {
        "env": {k: os.environ.get(k) for k in keys},
        "cwd": os.getcwd(),
        "sys_path_0": sys.path[0],
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "identity": [
                context.identity.cognito_identity_id,
                context.identity.cognito_identity_pool_id,
            ],
            "client_context": None
            if context.client_context is None
            else {
                "installation_id": context.client_context.client.installation_id,
                "custom": context.client_context.custom,
            },
        },
        "localtime_offset": time.localtime().tm_gmtoff,
    }


def chatty(event, context):
    print("to stdout")
    sys.stderr.write("to stderr\n")
    logger.info("logged %s", "info")
    os.write(1, b"raw fd 1\n")
    os.write(2, b"raw fd 2\n")
    context.log("context.log line\n")
    return "ok"


def fail(event, context):
    return event["action"]


def not_serialisable(event, context):
    return {"s": {1, 2}}


def returns_bytes(event, context):
    return b"raw-bytes"


def sleep(event, context):
    print(f"pid {os.getpid()}", flush=True)
    time.sleep(event.get("seconds", 60))
    return "woke"


def ignore_sigterm(event, context):
    import signal

    if event.get("quick"):
        return "quick"
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print(f"pid {os.getpid()}", flush=True)
    while True:
        pass


def hog_memory(event, context):
    blocks = []
    while True:
        blocks.append(bytearray(16 * 1024 * 1024))


def segfault(event, context):
    import ctypes

    print("about to crash", flush=True)
    ctypes.string_at(0)


def hard_exit(event, context):
    os._exit(3)


def big_result(event, context):
    return "x" * event["size"]


def write_tmp(event, context):
    import tempfile

    path = os.path.join(tempfile.gettempdir(), "note.txt")
    with open(path, "w") as f:
        f.write(json.dumps(event))
    return {"path": path, "tmpdir": tempfile.gettempdir()}
