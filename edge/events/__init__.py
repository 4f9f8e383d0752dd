"""Wire formats between the edge and its functions: pure translation and validation, no I/O."""

from edge.events.cloudfront import (
    CustomOrigin,
    EdgeEvent,
    EventConfig,
    Request,
    Response,
    S3Origin,
    build_event,
    sample_event,
)
from edge.events.cloudfront_errors import LambdaValidationError
from edge.events.cloudfront_result import (
    GeneratedResponse,
    UpdatedRequest,
    UpdatedResponse,
    ValidationPolicy,
    decode_result,
)
from edge.events.cloudfront_rules import EventType

__all__ = [
    "CustomOrigin",
    "EdgeEvent",
    "EventConfig",
    "EventType",
    "GeneratedResponse",
    "LambdaValidationError",
    "Request",
    "Response",
    "S3Origin",
    "UpdatedRequest",
    "UpdatedResponse",
    "ValidationPolicy",
    "build_event",
    "decode_result",
    "sample_event",
]
