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
from origin_proxy.limits import (
    DEFAULT_MAX_RESPONSE_HEADER_BYTES,
    DEFAULT_MAX_RESPONSE_HEADER_FIELDS,
)
from origin_proxy.message import OriginRequest, OriginResponse

__all__ = [
    "DEFAULT_MAX_RESPONSE_HEADER_BYTES",
    "DEFAULT_MAX_RESPONSE_HEADER_FIELDS",
    "DirectoryOrigin",
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
]
