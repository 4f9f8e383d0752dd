"""A Lambda function as the origin, called the way an Application Load Balancer calls a
Lambda target (lambda-edge-spec §7): the request becomes an ALB event, the function's answer
becomes the HTTP response.

Failures are answered the way an ALB answers them (§7.4: 502 for an invalid, oversized,
failed, timed-out or throttled function; 413 for a request body over 1 MB), as an origin
response, so origin-response functions and the access log see them like any origin 5xx; the
ALB's `error_reason` goes to the log line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator

from edge.events.alb import (
    AlbError,
    AlbRequest,
    build_alb_event,
    decode_alb_response,
    new_trace_root,
    trace_header,
)
from edge.events.alb_rules import ALB_FAILURES, ALB_REQUEST_BODY_LIMIT_BYTES, AlbCondition
from edge.functions import FunctionRegistry
from origin_proxy import Headers, OriginRequest, OriginResponse, single_chunk
from sandbox import (
    FunctionError,
    FunctionThrottled,
    FunctionTimeout,
    PayloadTooLarge,
    SandboxError,
)

logger = logging.getLogger("edge.function_origin")

# Lambda's errorType for a result over its payload limit: the load balancer never gets an answer
# to read, which it logs as LambdaResponseTooLarge, as for an answer over its own 1 MB limit.
_RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
_DEFAULT_TIMEOUT_SECONDS = 3.0  # Lambda's default when the function sets none


def alb_condition_of(error: SandboxError) -> AlbCondition:
    """Which §7.4 condition a failed invocation is to the load balancer; `ALB_FAILURES` alone
    says what the client gets and what the access log's `error_reason` is."""
    if isinstance(error, FunctionError):
        if error.error_type == _RESPONSE_TOO_LARGE:
            return AlbCondition.RESPONSE_TOO_LARGE
        # Lambda reports a timeout as an Unhandled function error (`Sandbox.Timedout`); the ELB
        # reason codes have no timeout of their own.
        if isinstance(error, FunctionTimeout):
            return AlbCondition.FUNCTION_TIMEOUT
        return AlbCondition.FUNCTION_ERROR  # raised, crashed, out of memory
    if isinstance(error, FunctionThrottled):
        return AlbCondition.THROTTLED
    if isinstance(error, PayloadTooLarge):
        # Lambda refused the event itself (RequestTooLargeException): the request's side.
        return AlbCondition.REQUEST_TOO_LARGE
    return AlbCondition.SERVICE_ERROR


async def _read_limited(body: AsyncIterator[bytes] | None, limit: int) -> tuple[bytes, bool]:
    """(the body, whether it was over `limit`); reading stops early past the limit."""
    if body is None:
        return b"", False
    parts: list[bytes] = []
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            return b"", True
        parts.append(chunk)
    return b"".join(parts), False


def _body_headers(headers: Headers, body: bytes) -> list[tuple[str, str]]:
    """The request's headers as the load balancer passes them: it reads the whole body, so
    the event's `content-length` is the body's length (a chunked request, or one whose body
    an origin-request function replaced, would otherwise show none or a stale one, and an
    adapter that reads `content-length` bytes would read the wrong body)."""
    lines = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in headers
        if k != b"content-length" and k != b"transfer-encoding"
    ]
    if body or len(lines) != len(headers):
        lines.append(("content-length", str(len(body))))
    return lines


def _encode(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


class FunctionOrigin:
    """Function `function` behind an ALB-style target group."""

    def __init__(
        self,
        name: str,
        function: str,
        registry: FunctionRegistry,
        *,
        multi_value: bool,
        target_group_arn: str,
        timeout_seconds: float | None,
    ) -> None:
        self.name = name
        self.function = function
        self.registry = registry
        self.multi_value = multi_value
        self.target_group_arn = target_group_arn
        self.timeout_seconds = timeout_seconds or _DEFAULT_TIMEOUT_SECONDS

    def _answer(self, condition: AlbCondition, detail: str) -> OriginResponse:
        failure = ALB_FAILURES[condition]
        status, reason_code = failure.status, failure.reason_code or ""
        logger.error(
            "function origin %r (function %r): %s %s -> %d",
            self.name,
            self.function,
            reason_code,
            detail,
            status,
        )
        body = f"{status} {reason_code}\n".encode()
        return OriginResponse(
            status=status,
            headers=[
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"x-edge-error", reason_code.encode()),
            ],
            body=single_chunk(body),
        )

    async def fetch(self, request: OriginRequest) -> OriginResponse:
        body, too_large = await _read_limited(request.body, ALB_REQUEST_BODY_LIMIT_BYTES)
        if too_large:
            return self._answer(AlbCondition.REQUEST_TOO_LARGE, "request body over 1 MB")
        path, _, query = request.target.partition(b"?")
        alb_request = AlbRequest(
            method=request.method,
            path=path.decode("latin-1"),
            client_ip=request.client_ip,
            query_string=query.decode("latin-1"),
            headers=_body_headers(request.headers, body),
            body=body,
            listener_port=request.listener_port,
            protocol="https" if request.scheme == "https" else "http",
        )
        hop = new_trace_root(int(time.time()), os.urandom(12).hex())
        sent = None
        for name, value in request.headers:
            if name == b"x-amzn-trace-id":
                sent = value.decode("latin-1")
        try:
            event = build_alb_event(
                alb_request,
                multi_value=self.multi_value,
                target_group_arn=self.target_group_arn,
                trace_id=hop,
            )
            result = await self.registry.invoke(
                self.function,
                event,
                request_id="",
                deadline=time.monotonic() + self.timeout_seconds,
                timeout_seconds=self.timeout_seconds,
                trigger="origin",
                # As the event's x-amzn-trace-id shows it (the load balancer's hop added).
                trace_id=trace_header(sent, hop),
            )
            try:
                response = decode_alb_response(result.payload, multi_value=self.multi_value)
            except AlbError:
                self.registry.logs.rejected(self.function, "origin", result.log)
                raise
        except AlbError as exc:
            return self._answer(exc.condition, exc.detail)
        except SandboxError as exc:
            return self._answer(alb_condition_of(exc), str(exc))
        return OriginResponse(
            status=response.status,
            headers=[(k.lower().encode("latin-1"), _encode(v)) for k, v in response.headers],
            body=single_chunk(response.body),
            reason=response.reason.encode("latin-1", "replace"),
        )

    async def aclose(self) -> None:
        return None
