"""Handlers that show the trace they ran under (`_X_AMZN_TRACE_ID`), for tests/test_traces.py."""

import json
import os


def viewer_request(event, context):
    request = event["Records"][0]["cf"]["request"]
    seen = os.environ.get("_X_AMZN_TRACE_ID", "")
    request["headers"]["x-function-trace"] = [{"key": "X-Function-Trace", "value": seen}]
    return request


def origin_request(event, context):
    request = event["Records"][0]["cf"]["request"]
    shown = "yes" if "x-amzn-trace-id" in request["headers"] else "no"
    request["headers"]["x-event-shows-trace"] = [{"key": "X-Event-Shows-Trace", "value": shown}]
    return request


def alb(event, context):
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(
            {
                "event": event["headers"].get("x-amzn-trace-id", ""),
                "environment": os.environ.get("_X_AMZN_TRACE_ID", ""),
            }
        ),
    }


def invoked(event, context):
    return {"trace": os.environ.get("_X_AMZN_TRACE_ID")}
