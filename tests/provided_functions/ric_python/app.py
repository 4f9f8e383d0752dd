"""Handlers run by awslambdaric inside a custom runtime."""

from __future__ import annotations

import os
import time
from typing import Any

STATE = {"count": 0, "initialised_at": time.time()}
print("app module loaded")


def tag(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A viewer-request hook: the request goes on with a header naming the invocation."""
    STATE["count"] += 1
    request: dict[str, Any] = event["Records"][0]["cf"]["request"]
    request["headers"]["x-ric"] = [{"key": "X-Ric", "value": f"count={STATE['count']}"}]
    print("tagging", request["uri"])
    return request


def echo(event: Any, context: Any) -> dict[str, Any]:
    STATE["count"] += 1
    return {
        "event": event,
        "count": STATE["count"],
        "initialised_at": STATE["initialised_at"],
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function": context.function_name,
        "trace": os.environ.get("_X_AMZN_TRACE_ID", ""),
    }


def fail(event: Any, context: Any) -> None:
    raise ValueError("awslambdaric saw a failure")
