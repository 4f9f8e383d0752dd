"""Everything between the pipeline and the origins: HTTP and directory origins, header rules.

Never imports `edge` or `sandbox`: it knows origins, not functions.
"""

from origin_proxy.client import HttpOrigin
from origin_proxy.directory import DirectoryOrigin
from origin_proxy.errors import (
    OriginDnsError,
    OriginError,
    OriginInvalidResponse,
    OriginTimeout,
    OriginUnreachable,
)
from origin_proxy.message import OriginRequest, OriginResponse

__all__ = [
    "DirectoryOrigin",
    "HttpOrigin",
    "OriginDnsError",
    "OriginError",
    "OriginInvalidResponse",
    "OriginRequest",
    "OriginResponse",
    "OriginTimeout",
    "OriginUnreachable",
]
