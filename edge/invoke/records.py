"""What destinations receive: Lambda's invocation record, and the dead-letter message.

Pure builders (spec §9.1, §9.2; `events/async-destination-record.json`); the time is passed
in. The dead-letter message is the original event with SQS-style message attributes
`RequestID`, `ErrorCode` (the HTTP status) and `ErrorMessage` (first 1 KB), as one JSON record.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import orjson

SUCCESS = "Success"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"

_ERROR_MESSAGE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an asynchronous event ended (or last failed): what the record's response shows.

    `status` is the Invoke status Lambda saw (200 even for a function error; 429 when it was
    throttled); `function_error` is `Unhandled` for a function error; `payload` the function's
    result or error document as JSON bytes (empty: none).
    """

    status: int
    payload: bytes
    function_error: str | None = None
    executed_version: str = "$LATEST"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "payload": self.payload.decode("utf-8", "replace"),
            "function_error": self.function_error,
            "executed_version": self.executed_version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            int(data["status"]),
            str(data["payload"]).encode(),
            data.get("function_error"),
            str(data.get("executed_version", "$LATEST")),
        )

    @property
    def error_message(self) -> str:
        try:
            document = orjson.loads(self.payload) if self.payload else None
        except orjson.JSONDecodeError:
            return self.payload.decode("utf-8", "replace")
        if isinstance(document, dict):
            return str(document.get("errorMessage") or document.get("message") or "")
        return ""


def iso_timestamp(epoch_seconds: float) -> str:
    """`2019-11-14T18:16:05.568Z`: ISO 8601, UTC, milliseconds."""
    moment = datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _json_or_text(data: bytes) -> Any:
    if not data:
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.decode("utf-8", "replace")


def invocation_record(
    *,
    request_id: str,
    function_arn: str,
    condition: str,
    invoke_count: int,
    request_payload: bytes,
    outcome: Outcome | None,
    now: float,
) -> bytes:
    """The invocation record sent to an on-success / on-failure destination (spec §9.1)."""
    response_context: dict[str, Any] = {
        "statusCode": outcome.status if outcome else 200,
        "executedVersion": outcome.executed_version if outcome else "$LATEST",
    }
    if outcome is not None and outcome.function_error:
        response_context["functionError"] = outcome.function_error
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": iso_timestamp(now),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": _json_or_text(request_payload),
        "responseContext": response_context,
    }
    if outcome is not None and outcome.payload:
        record["responsePayload"] = _json_or_text(outcome.payload)
    return orjson.dumps(record)


# Values of AWS's documented invocation record (reference events/async-destination-record.json).
SAMPLE_REQUEST_ID = "e4b46cbf-b738-xmpl-8880-a18cdf61200e"
SAMPLE_REQUEST_PAYLOAD = b'{"ORDER_IDS": ["9e07af03-ce31-4ff3-xmpl-36dce652cb4f"]}'


def _sample_outcome(condition: str) -> tuple[Outcome, int]:
    # A success after one attempt; a function error after the first try and its 2 retries; an
    # event that grew too old while every attempt was throttled (never invoked).
    if condition == SUCCESS:
        return Outcome(200, b'{"statusCode": 200}'), 1
    if condition == RETRIES_EXHAUSTED:
        message = f"RequestId: {SAMPLE_REQUEST_ID} Process exited before completing request"
        return Outcome(200, orjson.dumps({"errorMessage": message}), "Unhandled"), 3
    if condition == EVENT_AGE_EXCEEDED:
        body = {
            "errorType": "TooManyRequestsException",
            "errorMessage": "Rate Exceeded.",
            "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        }
        return Outcome(429, orjson.dumps(body)), 0
    raise ValueError(
        f"expected {SUCCESS}, {RETRIES_EXHAUSTED} or {EVENT_AGE_EXCEEDED}, found {condition!r}"
    )


def sample_invocation_record(
    *, condition: str, function_arn: str, request_payload: bytes, now: float
) -> bytes:
    """A valid invocation record for `condition` (`edge events destination-record`), built by
    `invocation_record` with the outcome such a record typically carries."""
    outcome, invoke_count = _sample_outcome(condition)
    return invocation_record(
        request_id=SAMPLE_REQUEST_ID,
        function_arn=function_arn,
        condition=condition,
        invoke_count=invoke_count,
        request_payload=request_payload,
        outcome=outcome,
        now=now,
    )


def dead_letter_message(
    *, request_id: str, request_payload: bytes, outcome: Outcome | None
) -> bytes:
    """The dead-letter message: the event unchanged, with Lambda's attributes (spec §9.2)."""
    message = (outcome.error_message if outcome else "").encode()[:_ERROR_MESSAGE_BYTES]
    attributes = {
        "RequestID": {"DataType": "String", "StringValue": request_id},
        "ErrorCode": {"DataType": "Number", "StringValue": str(outcome.status if outcome else 200)},
        "ErrorMessage": {
            "DataType": "String",
            "StringValue": message.decode("utf-8", "ignore"),
        },
    }
    return orjson.dumps(
        {"body": request_payload.decode("utf-8", "replace"), "messageAttributes": attributes}
    )
