"""Byte ranges (RFC 9110 §14): the Range a request asks for, the Content-Range a part carries.

One range per request: a Range of several is reported as "ignore the header", and its sender
gets the whole representation, which RFC 9110 §14.2 allows (no multipart/byteranges).
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["parse_byte_range", "parse_content_range"]

# Beyond any representation's size; also keeps int() off huge digit strings.
_POSITION_MAX: Final = 10**18


def parse_byte_range(value: bytes, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """RFC 9110 §14.1.2: the one range of a `bytes=` Range value over a representation of
    `size` bytes, as (start, stop).

    None means "ignore the header": another unit, a syntax error, several ranges, or a suffix
    range of an empty representation (the empty whole is the answer).
    """
    unit, equals, spec = value.partition(b"=")
    if not equals or unit.strip().lower() != b"bytes":
        return None
    # RFC 9110 §5.6.1: empty list elements are allowed and skipped.
    elements = [element for element in spec.split(b",") if element.strip(b" \t")]
    if len(elements) != 1:
        return None
    first, dash, last = elements[0].strip(b" \t").partition(b"-")
    if not dash:
        return None
    if not first:
        if not last.isdigit():
            return None
        suffix = _position(last)
        if suffix == 0:
            return "unsatisfiable"  # RFC 9110 §14.1.1: only a non-zero suffix is satisfiable
        if size == 0:
            return None
        return max(0, size - suffix), size
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = _position(first)
    if last:
        end = _position(last)
        if end < start:
            return None  # RFC 9110 §14.1.1: invalid, so the field is ignored
        stop = min(end + 1, size)
    else:
        stop = size
    if start >= size:
        return "unsatisfiable"
    return start, stop


def parse_content_range(value: bytes) -> tuple[int, int, int] | None:
    """RFC 9110 §14.4: a `bytes first-last/complete` Content-Range as (first, last + 1,
    complete); None for an unsatisfied range (`*/complete`), an unknown total, another unit
    or a syntax error."""
    unit, _, spec = value.strip().partition(b" ")
    span, _, total = spec.strip().partition(b"/")
    first, dash, last = span.partition(b"-")
    if unit.lower() != b"bytes" or not dash:
        return None
    if not (first.isdigit() and last.isdigit() and total.isdigit()):
        return None
    start, stop, complete = _position(first), _position(last) + 1, _position(total)
    if not start < stop <= complete:
        return None
    return start, stop, complete


def _position(digits: bytes) -> int:
    digits = digits.lstrip(b"0") or b"0"
    return int(digits) if len(digits) <= 18 else _POSITION_MAX
