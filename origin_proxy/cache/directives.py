"""Parsing the header fields a cache reads: Cache-Control (RFC 9111 §5.2), CDN-Cache-Control
(RFC 9213, a Structured Field dictionary), Surrogate-Control (W3C Edge Architecture 1.0), Age
(§5.1), Vary (RFC 9110 §12.5.5) and list values. Pure: bytes in, plain values out.

Directives come out as a dict from lower-case name to argument: None for a bare directive, the
(unquoted) argument otherwise, and `MALFORMED` ("") when the directive is present but its
argument cannot be read (`max-age =5`, `max-age=`). A malformed delta-seconds reads as "already
expired", which is what RFC 9111 §4.2.1 asks for invalid freshness information.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from origin_proxy.message import Headers

__all__ = [
    "DELTA_SECONDS_MAX",
    "MALFORMED",
    "Directives",
    "combined",
    "delta_seconds",
    "field_names",
    "parse_age",
    "parse_cache_control",
    "parse_cdn_cache_control",
    "parse_surrogate_control",
    "split_list",
]

Directives = dict[str, str | None]

MALFORMED: Final = ""

# RFC 9111 §1.2.2: a delta-seconds too big to represent is taken as 2^31.
DELTA_SECONDS_MAX: Final = 2_147_483_648

# RFC 9110 §5.6.2 tchar.
_TCHAR: Final = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_OWS: Final = b" \t"


def combined(headers: Headers, name: bytes) -> bytes | None:
    """All `name` field lines joined as one list value (RFC 9110 §5.3), or None if absent."""
    values = [value for key, value in headers if key == name]
    if not values:
        return None
    return values[0] if len(values) == 1 else b", ".join(values)


def split_list(value: bytes) -> list[bytes]:
    """RFC 9110 §5.6.1: the elements of a comma-separated list, OWS-trimmed, empty ones
    dropped; commas inside quoted strings do not split."""
    if b'"' not in value:
        return [element for part in value.split(b",") if (element := part.strip(_OWS))]
    elements: list[bytes] = []
    start = 0
    quoted = False
    escaped = False
    for at, byte in enumerate(value):
        if quoted:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash: quoted-pair
                escaped = True
            elif byte == 0x22:
                quoted = False
        elif byte == 0x22:
            quoted = True
        elif byte == 0x2C:
            element = value[start:at].strip(_OWS)
            if element:
                elements.append(element)
            start = at + 1
    element = value[start:].strip(_OWS)
    if element:
        elements.append(element)
    return elements


def _is_token(value: bytes) -> bool:
    return bool(value) and all(byte in _TCHAR for byte in value)


def _unquote(value: bytes) -> bytes | None:
    """The content of a quoted-string (RFC 9110 §5.6.4), or None if it is not one."""
    if len(value) < 2 or value[:1] != b'"' or value[-1:] != b'"':
        return None
    inner = value[1:-1]
    if b"\\" not in inner:
        return None if b'"' in inner else inner
    out = bytearray()
    escaped = False
    for byte in inner:
        if escaped:
            out.append(byte)
            escaped = False
        elif byte == 0x5C:
            escaped = True
        elif byte == 0x22:
            return None
        else:
            out.append(byte)
    return None if escaped else bytes(out)


def parse_cache_control(values: Iterable[bytes]) -> Directives:
    """RFC 9111 §5.2: the directives of every Cache-Control field line, names lower-cased.

    The first occurrence of a directive wins (§4.2.1 allows "first occurrence" for duplicates);
    a name hidden in a quoted argument (`ext="max-age=5"`) is not a directive.
    """
    directives: Directives = {}
    for value in values:
        for element in split_list(value):
            name, equals, argument = element.partition(b"=")
            if not _is_token(name):
                stripped = name.strip(_OWS)
                if not equals or not _is_token(stripped):
                    continue  # not a directive at all
                # `max-age =5`: the directive is there, its argument is not readable.
                directives.setdefault(stripped.decode("latin-1").lower(), MALFORMED)
                continue
            key = name.decode("latin-1").lower()
            if key in directives:
                continue
            if not equals:
                directives[key] = None
            elif _is_token(argument):
                directives[key] = argument.decode("latin-1")
            else:
                unquoted = _unquote(argument)
                directives[key] = MALFORMED if unquoted is None else unquoted.decode("latin-1")
    return directives


def delta_seconds(argument: str | None) -> int | None:
    """RFC 9111 §1.2.2: a delta-seconds argument as an int, None when absent or invalid."""
    if argument is None or not argument or not argument.isascii() or not argument.isdigit():
        return None
    if len(argument) > 10:
        return DELTA_SECONDS_MAX
    return min(int(argument), DELTA_SECONDS_MAX)


def parse_age(headers: Headers) -> int:
    """RFC 9111 §5.1: the Age value in seconds. Of a list (`7200, 0`, or several lines) the
    first member counts; an invalid one (`abc`, `-1`, `1.5`, `10;x`) is ignored, as is no
    Age at all: 0."""
    value = combined(headers, b"age")
    if value is None:
        return 0
    value = value.split(b",", 1)[0].strip(_OWS)
    if not value.isdigit():
        return 0
    return DELTA_SECONDS_MAX if len(value) > 10 else min(int(value), DELTA_SECONDS_MAX)


def field_names(headers: Headers, name: bytes) -> list[bytes]:
    """The lower-cased field names listed in every `name` line (for Vary, Connection)."""
    names: list[bytes] = []
    for key, value in headers:
        if key == name:
            names.extend(element.lower() for element in split_list(value))
    return names


# -- Surrogate-Control (W3C Edge Architecture Specification 1.0) ----------------------------------


def parse_surrogate_control(values: Iterable[bytes], device: str) -> Directives | None:
    """The Surrogate-Control directives meant for the surrogate named `device`, or None when
    none applies (then Cache-Control does).

    A directive may name its target after a semicolon (`max-age=60;edge`): one aimed at another
    device is skipped, and one aimed at `device` wins over an untargeted one. `max-age=N+M`
    gives the lifetime N and M more seconds in which the stale copy may stand in for a failed
    origin (stale-if-error). Names are case-insensitive; a directive that cannot be read
    (`max-age =5`, `max-age=abc`) is ignored rather than guessed at.
    """
    general: Directives = {}
    targeted: Directives = {}
    wanted = device.lower()
    for value in values:
        for element in split_list(value):
            directive, _, target = element.partition(b";")
            target = target.strip(_OWS).lower()
            if target and target.decode("latin-1") != wanted:
                continue
            name, equals, argument = directive.partition(b"=")
            if not _is_token(name):
                continue
            key = name.decode("latin-1").lower()
            into = targeted if target else general
            if key in into:
                continue
            if not equals:
                into[key] = None
                continue
            if key == "max-age":
                lifetime, plus, extra = argument.partition(b"+")
                if not lifetime.isdigit() or (plus and not extra.isdigit()):
                    continue
                into[key] = lifetime.decode("ascii")
                if plus:
                    into["stale-if-error"] = extra.decode("ascii")
            elif _is_token(argument):
                into[key] = argument.decode("latin-1")
            elif (unquoted := _unquote(argument)) is not None:
                into[key] = unquoted.decode("latin-1")
    if targeted:
        general.update(targeted)
    return general or None


# -- CDN-Cache-Control: an RFC 8941 dictionary --------------------------------------------------

_LCALPHA: Final = frozenset(b"abcdefghijklmnopqrstuvwxyz")
_KEY_CHARS: Final = _LCALPHA | frozenset(b"0123456789_-.*")
_DIGITS: Final = frozenset(b"0123456789")
_TOKEN_FIRST: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ*")
_TOKEN_CHARS: Final = _TCHAR | frozenset(b":/")
_BASE64: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
# RFC 9213 §2.1 points at RFC 9111's directives; these take an Integer.
_INTEGER_DIRECTIVES: Final = frozenset(
    {"max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"}
)


class _Invalid(Exception):
    """The field is not a valid Structured Field dictionary."""


def parse_cdn_cache_control(values: Iterable[bytes]) -> Directives | None:
    """RFC 9213: the directives of CDN-Cache-Control, or None when the field is absent or is
    not a valid dictionary (§2.1: then it is ignored as a whole and Cache-Control applies).

    An integer directive with another type of value (`max-age="10"`) makes the field invalid.
    """
    lines = list(values)
    if not lines:
        return None
    text = b",".join(lines)
    try:
        members = _parse_dictionary(text)
    except _Invalid:
        return None
    directives: Directives = {}
    for key, item in members.items():
        if key in _INTEGER_DIRECTIVES:
            if not isinstance(item, int) or isinstance(item, bool) or item < 0:
                return None
            directives[key] = str(min(item, DELTA_SECONDS_MAX))
        elif item is True:
            directives[key] = None
        elif isinstance(item, str):
            directives[key] = item
        else:
            directives[key] = str(item)
    return directives


_Item = int | float | str | bool | bytes


def _parse_dictionary(text: bytes) -> dict[str, _Item]:
    members: dict[str, _Item] = {}
    at = _skip(text, 0, b" ")
    end = len(text)
    if at == end:
        raise _Invalid  # an empty field is no dictionary here: ignore it
    while at < end:
        key, at = _parse_key(text, at)
        item: _Item
        if at < end and text[at] == 0x3D:  # "="
            if at + 1 < end and text[at + 1] == 0x28:  # "(": inner list, never a directive
                raise _Invalid
            item, at = _parse_bare_item(text, at + 1)
        else:
            item = True
        at = _skip_parameters(text, at)
        members[key] = item  # RFC 8941 §4.2.2: the last duplicate wins
        at = _skip(text, at, _OWS)
        if at == end:
            break
        if text[at] != 0x2C:
            raise _Invalid
        at = _skip(text, at + 1, _OWS)
        if at == end:
            raise _Invalid  # trailing comma
    return members


def _skip(text: bytes, at: int, chars: bytes) -> int:
    while at < len(text) and text[at] in chars:
        at += 1
    return at


def _parse_key(text: bytes, at: int) -> tuple[str, int]:
    if at >= len(text) or (text[at] not in _LCALPHA and text[at] != 0x2A):
        raise _Invalid
    start = at
    while at < len(text) and text[at] in _KEY_CHARS:
        at += 1
    return text[start:at].decode("ascii"), at


def _skip_parameters(text: bytes, at: int) -> int:
    while at < len(text) and text[at] == 0x3B:  # ";"
        at = _skip(text, at + 1, b" ")
        _, at = _parse_key(text, at)
        if at < len(text) and text[at] == 0x3D:
            _, at = _parse_bare_item(text, at + 1)
    return at


def _parse_bare_item(text: bytes, at: int) -> tuple[_Item, int]:
    end = len(text)
    if at >= end:
        raise _Invalid
    first = text[at]
    if first == 0x2D or first in _DIGITS:
        return _parse_number(text, at)
    if first == 0x22:  # string
        out = bytearray()
        at += 1
        while at < end:
            byte = text[at]
            if byte == 0x5C:
                if at + 1 >= end or text[at + 1] not in b'"\\':
                    raise _Invalid
                out.append(text[at + 1])
                at += 2
            elif byte == 0x22:
                return out.decode("ascii"), at + 1
            elif byte < 0x20 or byte > 0x7E:
                raise _Invalid
            else:
                out.append(byte)
                at += 1
        raise _Invalid
    if first in _TOKEN_FIRST:
        start = at
        while at < end and text[at] in _TOKEN_CHARS:
            at += 1
        return text[start:at].decode("ascii"), at
    if first == 0x3A:  # ":base64:"
        close = text.find(b":", at + 1)
        if close < 0 or not all(byte in _BASE64 for byte in text[at + 1 : close]):
            raise _Invalid
        return text[at + 1 : close], close + 1
    if first == 0x3F:  # boolean
        if at + 1 < end and text[at + 1] in b"01":
            return text[at + 1] == 0x31, at + 2
        raise _Invalid
    raise _Invalid


def _parse_number(text: bytes, at: int) -> tuple[_Item, int]:
    start = at
    if text[at] == 0x2D:
        at += 1
    digits_start = at
    while at < len(text) and text[at] in _DIGITS:
        at += 1
    if at == digits_start:
        raise _Invalid
    if at < len(text) and text[at] == 0x2E:  # decimal
        if at - digits_start > 12:
            raise _Invalid
        at += 1
        fraction_start = at
        while at < len(text) and text[at] in _DIGITS:
            at += 1
        if not 1 <= at - fraction_start <= 3:
            raise _Invalid
        return float(text[start:at]), at
    if at - digits_start > 15:
        raise _Invalid
    return int(text[start:at]), at
