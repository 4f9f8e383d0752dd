"""Header maps a function returned: shape, names, values, and the disallowed/read-only rules.

lambda-edge-spec §1.3 (the `{lower name: [{key, value}]}` shape and its casing rules), §3.1
(disallowed headers) and §3.2 (read-only headers). Used for request, response and origin
custom-header maps alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from edge.events.cloudfront import Headers
from edge.events.cloudfront_errors import BLACKLISTED_HEADER, READ_ONLY_HEADER, fail
from edge.events.cloudfront_rules import EventType, canonical_header_name, is_disallowed_header

__all__ = [
    "ShownHeaders",
    "check_read_only",
    "decode_header_map",
    "shown_pairs",
]

ShownHeaders = Mapping[str, list[dict[str, str]]]
"""A header map as it was put into the event (built by us, so well-formed)."""

# RFC 9110 §5.1 token; map keys must be lower case, so only lower-case letters there.
_LOWER_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.5: no control characters in a field value except HTAB (so no CR, LF or NUL).
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def decode_header_map(
    raw: object,
    where: str,
    trigger: EventType,
    warnings: list[str],
    *,
    shown: ShownHeaders | None = None,
) -> Headers:
    """Validate a returned header map -> (wire name, value) pairs, grouped by name.

    An empty list removes the header.

    Entries equal to the ones in `shown` (the map put into the event) are taken as they are:
    only what the function added or changed is checked, disallowed names (§3.1) included.
    """
    if not isinstance(raw, dict):
        fail(
            "header-map",
            f"{trigger} result: {where} must be an object of lower-case names to lists of "
            "{key, value} objects.",
        )
    out: list[tuple[str, str]] = []
    for name, entries in raw.items():
        if shown is not None and shown.get(name) == entries:
            out.extend([(entry["key"], entry["value"]) for entry in entries])
            continue
        if name != name.lower():
            fail(
                "header-key-case",
                f"{trigger} result: {where} key {name!r} must be lower case ({name.lower()!r}).",
            )
        if not _LOWER_TOKEN.fullmatch(name):
            fail(
                "header-name-invalid",
                f"{trigger} result: {where} key {name!r} is not a valid header name.",
            )
        if is_disallowed_header(name):
            # §3.1: functions never see these, so one in a result was added by the function.
            fail(
                "disallowed-header",
                f"{trigger} result: {where} adds {name!r}, which functions may not set; remove it.",
                BLACKLISTED_HEADER,
            )
        if not isinstance(entries, list):
            fail(
                "header-map",
                f"{trigger} result: {where}[{name!r}] must be a list of {{key, value}} objects.",
            )
        out.extend([_decode_entry(entry, name, where, trigger, warnings) for entry in entries])
    return tuple(out)


def _decode_entry(
    entry: object, name: str, where: str, trigger: EventType, warnings: list[str]
) -> tuple[str, str]:
    if not isinstance(entry, dict):
        fail(
            "header-map",
            f"{trigger} result: {where}[{name!r}] entries must be {{key, value}} objects.",
        )
    value = entry.get("value")
    if not isinstance(value, str):
        # §1.3, observed CloudWatch wording: "the value of each header value must be of string
        # or array of string type".
        fail(
            "header-value-type",
            f"{trigger} result: {where}[{name!r}] value {value!r} must be a string (the value "
            "of each header value must be of string type).",
        )
    if _BAD_VALUE.search(value):
        fail(
            "header-value-invalid",
            f"{trigger} result: {where}[{name!r}] value holds CR, LF, NUL or another control "
            "character.",
        )
    key = entry.get("key")
    if key is None:
        # §1.3: an omitted key gets CloudFront's generated casing.
        return (canonical_header_name(name), value)
    if not isinstance(key, str) or not _TOKEN.fullmatch(key):
        fail(
            "header-name-invalid",
            f"{trigger} result: {where}[{name!r}] key {key!r} is not a valid header name.",
        )
    if key.lower() == name:
        return (key, value)
    # §1.3 decision: the map key decides which header it is; the entry's casing is dropped.
    wire = canonical_header_name(name)
    warnings.append(
        f"{trigger} result: {where}[{name!r}] holds key {key!r}; sent as {wire!r} (the map key "
        "decides the header)."
    )
    return (wire, value)


def check_read_only(
    raw: dict[str, Any],
    shown: ShownHeaders,
    read_only: frozenset[str],
    trigger: EventType,
) -> None:
    """§3.2: a read-only header must come back with exactly the values it was shown with.

    `raw` is the function's map, already validated by `decode_header_map`.
    """
    for name in read_only:
        returned = raw.get(name)
        original = shown.get(name)
        if returned == original:
            continue
        before = [entry["value"] for entry in original or ()]
        after = [entry["value"] for entry in returned or ()]
        if before == after:
            continue
        what = "adds" if not before else "deletes" if not after else "changes"
        fail(
            "read-only-header",
            f"{trigger} result {what} {name!r}, which is read-only in {trigger}; return it "
            "exactly as received.",
            READ_ONLY_HEADER,
        )


def shown_pairs(shown: ShownHeaders) -> Headers:
    """A map we built ourselves -> (wire name, value) pairs, with no validation needed."""
    return tuple(
        [(entry["key"], entry["value"]) for entries in shown.values() for entry in entries]
    )
