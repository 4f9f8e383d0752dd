"""Preconditions (RFC 9110 §13): If-Match, If-None-Match, If-Modified-Since,
If-Unmodified-Since and If-Range, evaluated for a GET or HEAD against a representation's
validators.

The representation is described by its entity tag (as sent, None when it has none) and its
Last-Modified (epoch seconds for the four date conditions, the field's bytes for If-Range).
An origin server has both at hand; a cache has what the stored response carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, Literal

from origin_proxy.fields.dates import parse_http_date
from origin_proxy.fields.etags import parse_entity_tags, strong_match, weak_match
from origin_proxy.fields.ranges import parse_byte_range

__all__ = [
    "CONDITION_FIELDS",
    "PRECONDITION_FIELDS",
    "condition_fields",
    "evaluate_preconditions",
    "if_range_holds",
    "select_range",
]

# RFC 9110 §13.1: the preconditions a client may send.
PRECONDITION_FIELDS: Final = frozenset(
    {b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since"}
)

# The request fields that make a GET conditional or partial (RFC 9110 §13.1, §14.2).
CONDITION_FIELDS: Final = PRECONDITION_FIELDS | {b"if-range", b"range"}


def condition_fields(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes] | None:
    """The request's `CONDITION_FIELDS` by (lower-case) name, repeated field lines joined as
    one list (RFC 9110 §5.3); None when it has none, the common case."""
    fields: dict[bytes, bytes] | None = None
    for name, value in headers:
        if name in CONDITION_FIELDS:
            if fields is None:
                fields = {}
            earlier = fields.get(name)
            fields[name] = value if earlier is None else earlier + b", " + value
    return fields


def evaluate_preconditions(
    conditions: Mapping[bytes, bytes],
    etag: bytes | None,
    last_modified: int | None,
    *,
    date: int | None = None,
) -> Literal[304, 412] | None:
    """RFC 9110 §13.2.2 for a GET or HEAD: 412 or 304 when a precondition decides the answer,
    None when the representation is to be sent (in full, or the part a Range asks for).

    `conditions` as `condition_fields` gives them. `date`, for a cache: the stored response's
    Date, which stands in for a missing Last-Modified in If-Modified-Since (RFC 9111 §4.3.2).
    """
    if_match = conditions.get(b"if-match")
    if if_match is not None:
        # §13.1.1: strong comparison; "*" matches any current representation.
        if if_match.strip() != b"*" and (etag is None or not strong_match(if_match, etag)):
            return 412
    else:
        if_unmodified_since = conditions.get(b"if-unmodified-since")
        if if_unmodified_since is not None and last_modified is not None:
            # §13.1.4: an invalid date is ignored.
            limit = parse_http_date(if_unmodified_since)
            if limit is not None and last_modified > limit:
                return 412
    if_none_match = conditions.get(b"if-none-match")
    if if_none_match is not None:
        # §13.1.2: weak comparison; a match means the client's copy is current. When present,
        # If-Modified-Since is not evaluated (§13.1.3).
        if if_none_match.strip() == b"*" or (etag is not None and weak_match(if_none_match, etag)):
            return 304
        return None
    if_modified_since = conditions.get(b"if-modified-since")
    if if_modified_since is not None:
        # §13.1.3: an invalid date is ignored.
        modified = last_modified if last_modified is not None else date
        since = parse_http_date(if_modified_since)
        if since is not None and modified is not None and modified <= since:
            return 304
    return None


def if_range_holds(if_range: bytes, etag: bytes | None, last_modified: bytes | None) -> bool:
    """RFC 9110 §13.1.5: whether the If-Range validator is the representation's current one
    (then a Range applies; otherwise the whole representation is sent). An entity tag holds by
    strong comparison, so a weak one never does; a date holds only when it is exactly the
    Last-Modified."""
    value = if_range.strip()
    if value[:1] == b'"' or value[:2] == b"W/":
        tags = parse_entity_tags(value)
        if etag is None or len(tags) != 1:
            return False
        weak, tag = tags[0]
        return not weak and tag == etag.strip()  # a weak stored tag (W/"x") never equals one
    if last_modified is None:
        return False
    since = parse_http_date(value)
    return since is not None and since == parse_http_date(last_modified)


def select_range(
    conditions: Mapping[bytes, bytes], etag: bytes | None, last_modified: bytes | None, size: int
) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """The byte range a GET asks for as (start, stop), "unsatisfiable", or None for the whole
    representation (no Range, an If-Range that does not hold, an invalid or a multi-range
    Range). `conditions` as `condition_fields` gives them."""
    value = conditions.get(b"range")
    if value is None:
        return None
    if_range = conditions.get(b"if-range")
    if if_range is not None and not if_range_holds(if_range, etag, last_modified):
        return None
    return parse_byte_range(value, size)
