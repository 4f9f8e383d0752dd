"""Wire formats between the edge and its functions: pure translation and validation, no I/O."""

from edge.events.alb import (
    AlbBadRequest,
    AlbError,
    AlbInvalidResponse,
    AlbRequest,
    AlbRequestTooLarge,
    AlbResponse,
    build_alb_event,
    decode_alb_response,
    new_trace_root,
    sample_alb_event,
    sample_health_check_event,
)
from edge.events.cloudfront import (
    CustomOrigin,
    EdgeEvent,
    EventConfig,
    Request,
    Response,
    S3Origin,
    build_event,
    event_from_document,
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
    "AlbBadRequest",
    "AlbError",
    "AlbInvalidResponse",
    "AlbRequest",
    "AlbRequestTooLarge",
    "AlbResponse",
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
    "build_alb_event",
    "build_event",
    "decode_alb_response",
    "decode_result",
    "event_from_document",
    "new_trace_root",
    "sample_alb_event",
    "sample_event",
    "sample_health_check_event",
]
