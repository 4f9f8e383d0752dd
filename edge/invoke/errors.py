"""The admin listener's error responses (the Invoke API's, and its refusals of requests that
are not signed or not allowed), and the one table from sandbox errors to them.

AWS's REST-JSON shape (spec §8.3): the status, `X-Amzn-ErrorType: <Exception>` and a JSON body
`{"Type": "User" | "Service", "Message": ...}`. Some shapes name the member `message` in lower
case (BOTO model); each exception here uses the spelling its shape declares, so botocore fills
the modeled field. Function errors are not here: they are a 200 with `X-Amz-Function-Error`.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from edge.invoke.names import function_arn
from sandbox import FunctionThrottled, PayloadTooLarge, PoolClosed, SandboxError

# Seconds a throttled caller is told to wait (the `Retry-After` header of a 429).
RETRY_AFTER_SECONDS = 1


class InvokeApiError(Exception):
    """An error response of the Lambda API: status, exception name, message and extra members."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        fault: str = "User",
        message_key: str = "message",
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error_type}: {message}")
        self.status = status
        self.error_type = error_type
        self.message = message
        self.fault = fault
        self.message_key = message_key
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON document of the response."""
        return {"Type": self.fault, self.message_key: self.message, **self.extra}


def error_response(error: InvokeApiError, request_id: str) -> Response:
    """The HTTP response for `error`: status, `X-Amzn-ErrorType`, the JSON body."""
    headers = {"x-amzn-RequestId": request_id, "X-Amzn-ErrorType": error.error_type}
    headers.update(error.headers)
    return Response(
        orjson.dumps(error.body()), error.status, headers, media_type="application/json"
    )


def function_not_found(name: str, qualifier: str | None = None) -> InvokeApiError:
    return InvokeApiError(
        404,
        "ResourceNotFoundException",
        f"Function not found: {function_arn(name, qualifier)}",
        message_key="Message",
    )


def invalid_parameter(message: str) -> InvokeApiError:
    return InvokeApiError(400, "InvalidParameterValueException", message)


def invalid_content(message: str) -> InvokeApiError:
    return InvokeApiError(400, "InvalidRequestContentException", message)


def request_too_large(size_bytes: int, limit_bytes: int) -> InvokeApiError:
    return InvokeApiError(
        413,
        "RequestTooLargeException",
        f"Request payload size ({size_bytes} bytes) exceeded maximum allowed payload size "
        f"({limit_bytes} bytes).",
    )


def too_many_requests(reason: str) -> InvokeApiError:
    # Spec §8.3: the body carries `Reason`, the `Retry-After` header the wait in seconds.
    return InvokeApiError(
        429,
        "TooManyRequestsException",
        "Rate Exceeded.",
        extra={"Reason": reason},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def service_error(message: str) -> InvokeApiError:
    return InvokeApiError(500, "ServiceException", message, fault="Service", message_key="Message")


def signature_rejected(error_type: str, message: str) -> InvokeApiError:
    """An authentication failure (`edge.sigv4`'s names): 403, as Lambda answers them all."""
    return InvokeApiError(403, error_type, message)


def host_refused(message: str) -> InvokeApiError:
    # RFC 9110 §15.5.20: this server will not answer for the authority the request names.
    return InvokeApiError(421, "MisdirectedRequestException", message)


def cross_site_refused(message: str) -> InvokeApiError:
    return InvokeApiError(403, "AccessDeniedException", message)


def from_sandbox(error: SandboxError) -> InvokeApiError:
    """The API error for a platform failure (a `FunctionError` is not one: see the API)."""
    if isinstance(error, FunctionThrottled):
        return too_many_requests(error.reason)
    if isinstance(error, PayloadTooLarge):
        return request_too_large(error.size_bytes, error.limit_bytes)
    if isinstance(error, PoolClosed):
        return service_error("The function's execution environments are shutting down.")
    return service_error(f"The function could not be started: {error}")
