"""The one table that turns a failure into what the viewer gets: status, X-Cache kind, message.

CloudFront's mapping (lambda-edge-spec §4): origin unreachable -> 502, origin timeout -> 504,
each `X-Cache: Error from <edge>`; function failures are added to this table by the function
runtime. No other module picks a status code for a failure.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from edge.events import LambdaValidationError
from edge.events.cloudfront_functions import FunctionValidationError
from edge.triggers import CloudFrontFunctionFailed, TriggerFailed
from origin_proxy import (
    OriginDisconnected,
    OriginError,
    OriginHeadersTooLarge,
    OriginInvalidResponse,
    OriginTimeout,
)
from sandbox import (
    FunctionCodeInvalid,
    FunctionCrashed,
    FunctionError,
    FunctionMemoryExceeded,
    FunctionThrottled,
    FunctionTimeout,
    SandboxError,
)

# CloudFront's error-page sentences (lambda-edge-spec §4.1).
_INVALID_FUNCTION = (
    "The Lambda function associated with the CloudFront distribution is invalid or doesn't "
    "have the required permissions."
)
_THROTTLED = "The Lambda function associated with the CloudFront distribution was throttled."


@dataclass(frozen=True, slots=True)
class Failure:
    """How one failure is shown to the viewer and in the log."""

    status: int
    kind: str  # the X-Cache kind: "Error", "LambdaExecutionError", ...
    detail: str  # CloudFront's log vocabulary: "OriginConnectError", ...
    message: str  # one sentence for the error page
    cause: str  # what went wrong, for the log line


REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _function_failure(exc: TriggerFailed) -> Failure:
    """Lambda@Edge failures (spec §4.1, §15.1): validation -> 502; the rest -> 503."""
    where = f"function {exc.function!r} at {exc.trigger}"
    cause = exc.cause
    if isinstance(cause, LambdaValidationError):
        return Failure(
            502,
            "LambdaValidationError",
            cause.rule,
            cause.cloudfront_message,
            f"{where}: invalid result: {cause}. Fix the function's return value.",
        )
    if isinstance(cause, FunctionThrottled):
        return Failure(
            503,
            "LambdaLimitExceeded",
            "Throttled",
            _THROTTLED,
            f"{where}: throttled ({cause.reason}): every execution environment was busy; "
            "raise the function's max_concurrency or lower the load",
        )
    if isinstance(cause, FunctionTimeout):
        hint = "make the handler faster or raise the function's timeout (trigger limits: "
        hint += "5 s viewer, 30 s origin)"
        return Failure(
            503,
            "LambdaExecutionError",
            cause.error_type or "Sandbox.Timedout",
            _INVALID_FUNCTION,
            f"{where}: {cause.error_message}; {hint}",
        )
    if isinstance(cause, FunctionMemoryExceeded):
        return Failure(
            503,
            "LambdaExecutionError",
            cause.error_type or "Runtime.OutOfMemory",
            _INVALID_FUNCTION,
            f"{where}: {cause.error_message}; raise the function's memory or use less",
        )
    if isinstance(cause, FunctionCrashed):
        return Failure(
            503,
            "LambdaExecutionError",
            cause.error_type or "Runtime.ExitError",
            _INVALID_FUNCTION,
            f"{where}: the execution environment died: {cause.error_message}; "
            "a fresh one serves the next request",
        )
    if isinstance(cause, FunctionError) and cause.error_type == "Function.ResponseSizeTooLarge":
        # Lambda refuses the result before CloudFront sees it: an execution error, not a
        # validation error (that one is for results CloudFront reads and rejects, §2.6).
        return Failure(
            503,
            "LambdaExecutionError",
            cause.error_type,
            _INVALID_FUNCTION,
            f"{where}: {cause.error_message} Return less: a Lambda@Edge result is at most "
            "40 KB (viewer triggers) or 1 MB (origin triggers) of generated response",
        )
    if isinstance(cause, FunctionError):
        return Failure(
            503,
            "LambdaExecutionError",
            cause.error_type or "Unhandled",
            _INVALID_FUNCTION,
            f"{where}: {cause.error_type}: {cause.error_message}; see the function's log "
            "(REPORT and traceback) for this request",
        )
    if isinstance(cause, FunctionCodeInvalid):
        return Failure(
            503,
            "LambdaExecutionError",
            "FunctionCodeInvalid",
            _INVALID_FUNCTION,
            f"{where}: the function cannot start: {cause.reason}; fix it and restart the edge "
            "(`edge check` names such problems before serving)",
        )
    if isinstance(cause, SandboxError):
        return Failure(
            503,
            "LambdaExecutionError",
            type(cause).__name__,
            _INVALID_FUNCTION,
            f"{where}: {cause}",
        )
    return Failure(
        503, "LambdaExecutionError", type(cause).__name__, _INVALID_FUNCTION, f"{where}: {cause!r}"
    )


_CLOUDFRONT_FUNCTION = (
    "The CloudFront function associated with the CloudFront distribution is invalid or could "
    "not run."
)


def _cloudfront_function_failure(exc: CloudFrontFunctionFailed) -> Failure:
    """CloudFront Functions: an invalid result -> 502 FunctionValidationError; an execution
    error (a throw, the compute budget or memory exceeded, code that cannot run) -> 503
    FunctionExecutionError."""
    where = f"CloudFront Function {exc.function!r} at {exc.trigger}"
    cause = exc.cause
    if isinstance(cause, FunctionValidationError):
        return Failure(
            502,
            "FunctionValidationError",
            "FunctionValidationError",
            _CLOUDFRONT_FUNCTION,
            f"{where}: invalid result: {cause}. Fix the function's return value.",
        )
    if isinstance(cause, FunctionTimeout):
        hint = "make it do less per request (CloudFront stops a function past its budget)"
        detail, text = cause.error_type, f"{cause.error_message}; {hint}"
    elif isinstance(cause, FunctionMemoryExceeded):
        detail, text = cause.error_type, f"{cause.error_message}; use less memory"
    elif isinstance(cause, FunctionError):
        detail = cause.error_type or "Error"
        text = f"{cause.error_type}: {cause.error_message}; see the function's log for this request"
    elif isinstance(cause, FunctionCodeInvalid):
        detail = "FunctionCodeInvalid"
        text = (
            f"the function cannot start: {cause.reason}; fix it and restart the edge "
            "(`edge check` names such problems before serving)"
        )
    else:
        detail, text = type(cause).__name__, str(cause)
    return Failure(503, "FunctionExecutionError", detail, _CLOUDFRONT_FUNCTION, f"{where}: {text}")


def failure_for(exc: BaseException) -> Failure:
    """Map an exception raised while serving a request to what the viewer gets."""
    if isinstance(exc, CloudFrontFunctionFailed):
        return _cloudfront_function_failure(exc)
    if isinstance(exc, TriggerFailed):
        return _function_failure(exc)
    if isinstance(exc, OriginTimeout):
        return Failure(504, "Error", exc.detail, "The origin did not answer in time.", str(exc))
    if isinstance(exc, OriginHeadersTooLarge):
        return Failure(
            502,
            "Error",
            exc.detail,
            "The origin sent response headers larger than the edge accepts.",
            f"{exc}; raise the origin's max_response_header_bytes or "
            "max_response_header_fields if it is trusted",
        )
    if isinstance(exc, OriginDisconnected):
        return Failure(
            502, "Error", exc.detail, "The origin's answer broke off before its end.", str(exc)
        )
    if isinstance(exc, OriginInvalidResponse):
        return Failure(
            502, "Error", exc.detail, "The origin sent a response that could not be read.", str(exc)
        )
    if isinstance(exc, OriginError):
        return Failure(
            502, "Error", exc.detail, "The edge could not connect to the origin.", str(exc)
        )
    return Failure(
        500, "Error", "InternalError", "The edge failed to process the request.", repr(exc)
    )


def request_refused(status: int, detail: str, message: str) -> Failure:
    """A request the edge refuses before any origin or function sees it."""
    return Failure(status, "Error", detail, message, message)


def error_page(failure: Failure, *, request_id: str, edge_name: str) -> bytes:
    """The HTML body of an error response, in the structure CloudFront uses (spec §4.2)."""
    reason = REASONS.get(failure.status, "Error")
    return (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n'
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n'
        "<title>ERROR: The request could not be satisfied</title></head><body>\n"
        f"<h1>{failure.status} ERROR</h1>\n"
        f'<h2>The request could not be satisfied.</h2>\n<hr noshade size="1px">\n'
        f"{html.escape(failure.message)}\n"
        f'<br clear="all">{html.escape(reason)}.\n<hr noshade size="1px">\n'
        f"<pre>\nGenerated by {html.escape(edge_name)} (edge)\n"
        f"Request ID: {html.escape(request_id)}\n</pre>\n</body></html>\n"
    ).encode()
