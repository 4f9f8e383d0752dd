"""Everything between the pipeline and the origins: HTTP and directory origins, header rules.

Never imports `edge` or `sandbox`: it knows origins, not functions.
"""

from origin_proxy.client import HttpOrigin
from origin_proxy.directory import DirectoryOrigin
from origin_proxy.errors import (
    OriginDisconnected,
    OriginDnsError,
    OriginError,
    OriginHeadersTooLarge,
    OriginInvalidResponse,
    OriginTimeout,
    OriginUnreachable,
)
from origin_proxy.fields import format_http_date
from origin_proxy.headers import (
    forward_request_headers,
    forward_response_headers,
    strip_hop_by_hop,
    via_value,
    without_hop_by_hop,
)
from origin_proxy.limits import (
    DEFAULT_MAX_RESPONSE_HEADER_BYTES,
    DEFAULT_MAX_RESPONSE_HEADER_FIELDS,
)
from origin_proxy.message import Headers, OriginRequest, OriginResponse, single_chunk

__all__ = [
    "DEFAULT_MAX_RESPONSE_HEADER_BYTES",
    "DEFAULT_MAX_RESPONSE_HEADER_FIELDS",
    "DirectoryOrigin",
    "Headers",
    "HttpOrigin",
    "OriginDisconnected",
    "OriginDnsError",
    "OriginError",
    "OriginHeadersTooLarge",
    "OriginInvalidResponse",
    "OriginRequest",
    "OriginResponse",
    "OriginTimeout",
    "OriginUnreachable",
    "format_http_date",
    "forward_request_headers",
    "forward_response_headers",
    "single_chunk",
    "strip_hop_by_hop",
    "via_value",
    "without_hop_by_hop",
]
