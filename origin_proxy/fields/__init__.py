"""RFC 9110 field grammar: HTTP-dates, entity tags, byte ranges and preconditions.

Pure: bytes in, plain values out; no I/O and no clock (a caller that needs "now" passes it).
Shared by the directory origin, which answers conditional and range requests as an origin
server, and the cache, which answers them from stored responses. Hostile input never raises:
anything that does not parse reads as absent, as RFC 9110 asks of invalid fields.
"""

from origin_proxy.fields.dates import format_http_date, parse_http_date
from origin_proxy.fields.etags import parse_entity_tags, strong_match, weak_match
from origin_proxy.fields.preconditions import (
    CONDITION_FIELDS,
    PRECONDITION_FIELDS,
    condition_fields,
    evaluate_preconditions,
    if_range_holds,
    select_range,
)
from origin_proxy.fields.ranges import parse_byte_range, parse_content_range

__all__ = [
    "CONDITION_FIELDS",
    "PRECONDITION_FIELDS",
    "condition_fields",
    "evaluate_preconditions",
    "format_http_date",
    "if_range_holds",
    "parse_byte_range",
    "parse_content_range",
    "parse_entity_tags",
    "parse_http_date",
    "select_range",
    "strong_match",
    "weak_match",
]
