"""The request target and Host as this edge decides on them, before any behavior sees them. Pure.

As CloudFront does, the viewer's path is normalised (RFC 3986 §6.2.2) to choose the behavior,
and the path as sent goes on: the functions see it as their event's `uri`, the cache keys on it
and the origin receives it. Every spelling of a path therefore runs the functions of the
behavior that path means (`/%70rivate`, `/x/../private` and `//private` all match
`/private*`), while an origin that reads two spellings differently can never have one's answer
served for the other. A path that cannot be given one meaning is refused (400). The query
string is kept as sent.

Normalised for matching:
- `%XX` of an unreserved character (`A-Z a-z 0-9 - . _ ~`) is decoded: `/%70rivate` -> `/private`;
  every other `%xx` is written with upper-case hex digits (§6.2.2.1).
- Repeated slashes are merged: `//a///b` -> `/a/b`.
- Dot segments are removed (§5.2.4), after the two steps above, so `%2e%2e` counts:
  `/public/%2e%2e/private` -> `/private`; `..` above the root stays at the root.
- An absolute-form target (`GET http://host/path HTTP/1.1`, RFC 9112 §3.2.2) becomes its path,
  and its authority replaces the Host header (the server must ignore a received Host then):
  the origin is never sent an absolute URL.

Refused (400):
- A target that is not origin-form or absolute-form with an http(s) scheme (`*`, `host:port`).
- Invalid percent-encoding (`%` not followed by two hex digits), and `%00`-`%1F` / `%7F`
  (control characters, NUL included), and a raw backslash (some servers read it as `/`).
- An encoded slash or backslash (`%2F`, `%5C`), unless `escaped_slashes = "keep"`: one origin
  reads `/a%2Fb` as the segment `a/b`, another as `/a/b`, so no behavior can know which path
  it means.

Host (RFC 9110 §7.2, RFC 3986 §3.2.2): lower case, a trailing dot dropped, the scheme's
default port dropped; anything that is not a host name, an IPv4 address or a bracketed IPv6
address with an optional port is refused (400), as are several Host fields (RFC 9112 §3.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

EscapedSlashes = Literal["reject", "keep"]

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_SLASHES = frozenset((0x2F, 0x5C))

# RFC 3986 §3.2.2 reg-name (unreserved / pct-encoded / sub-delims), an IPv4 address, or an
# IP-literal in brackets; then an optional port. Upper case is allowed here and lowered after.
_HOST = re.compile(
    rb"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=]*)(?::(?P<port>[0-9]{0,5}))?"
)


class TargetRefused(ValueError):
    """The request target or Host cannot be given one meaning. `detail` names the rule."""

    def __init__(self, detail: str, message: str) -> None:
        super().__init__(message)
        self.detail = detail
        self.message = message


@dataclass(frozen=True, slots=True)
class Target:
    """A request target: its path as sent (origin-form), the path's normal form (to match
    behaviors on), the query as sent, and the authority of an absolute-form target (None for
    origin-form)."""

    path: bytes
    normal_path: bytes
    query: bytes
    authority: bytes | None = None


def parse_target(
    raw_path: bytes, query: bytes, *, escaped_slashes: EscapedSlashes = "reject"
) -> Target:
    """Split a request target and normalise its path (`raw_path` is the part before `?`)."""
    authority: bytes | None = None
    if raw_path[:1] != b"/":
        scheme, sep, rest = raw_path.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            raise TargetRefused(
                "InvalidTarget",
                "The request target must be a path (origin-form) or an http(s) URL.",
            )
        slash = rest.find(b"/")
        authority, path = (rest, b"/") if slash < 0 else (rest[:slash], rest[slash:])
        if not authority or b"@" in authority:
            # RFC 9110 §4.2.4: userinfo is not allowed in http(s) URIs.
            raise TargetRefused("InvalidTarget", "The URL's authority is missing or malformed.")
        raw_path = path
    normal = normalize_path(raw_path, escaped_slashes=escaped_slashes)
    return Target(raw_path, normal, query, authority)


def normalize_path(path: bytes, *, escaped_slashes: EscapedSlashes = "reject") -> bytes:
    """The normal form of an origin-form path (starting with `/`); raises TargetRefused."""
    if b"%" not in path and b"//" not in path and b"/." not in path and b"\\" not in path:
        return path  # the common case: already normal
    if b"\\" in path:
        raise TargetRefused("InvalidPath", "The path contains a backslash.")
    if b"%" in path:
        path = _decode_unreserved(path, keep_slashes=escaped_slashes == "keep")
    while b"//" in path:
        path = path.replace(b"//", b"/")
    if b"/." in path:
        path = _remove_dot_segments(path)
    return path


def _decode_unreserved(path: bytes, *, keep_slashes: bool) -> bytes:
    pieces = path.split(b"%")
    out = bytearray(pieces[0])
    for piece in pieces[1:]:
        if len(piece) < 2 or piece[0] not in _HEX or piece[1] not in _HEX:
            raise TargetRefused("InvalidPath", "The path has an invalid percent-encoding.")
        value = int(piece[:2], 16)
        if value in _UNRESERVED:
            out.append(value)
        elif value < 0x20 or value == 0x7F:
            raise TargetRefused("InvalidPath", "The path encodes a control character.")
        elif value in _SLASHES and not keep_slashes:
            raise TargetRefused("InvalidPath", "The path encodes a slash or backslash (%2F, %5C).")
        else:
            out += b"%%%02X" % value
        out += piece[2:]
    return bytes(out)


def _remove_dot_segments(path: bytes) -> bytes:
    """RFC 3986 §5.2.4 for an absolute path with no empty segments left."""
    segments = path.split(b"/")[1:]
    kept: list[bytes] = []
    for segment in segments:
        if segment == b"..":
            if kept:
                kept.pop()
        elif segment != b".":
            kept.append(segment)
    # A final "." or ".." leaves the path ending in "/" (as in the RFC's examples).
    trailing = segments[-1] in (b".", b"..")
    normal = b"/" + b"/".join(kept)
    if trailing and not normal.endswith(b"/"):
        normal += b"/"
    return normal


# Hosts repeat from request to request: their normal forms are remembered, within a bound (a
# viewer sending endless distinct hosts only empties it).
_NORMAL_HOSTS: dict[tuple[bytes, str], bytes] = {}
_NORMAL_HOSTS_MAX = 1024


def normalize_host(value: bytes, *, scheme: str) -> bytes:
    """The normal form of a Host value; raises TargetRefused for one that is not a host."""
    known = _NORMAL_HOSTS.get((value, scheme))
    if known is not None:
        return known
    normal = _normalize_host(value, scheme)
    if len(_NORMAL_HOSTS) >= _NORMAL_HOSTS_MAX:
        _NORMAL_HOSTS.clear()
    _NORMAL_HOSTS[(value, scheme)] = normal
    return normal


def _normalize_host(value: bytes, scheme: str) -> bytes:
    match = _HOST.fullmatch(value.strip(b" \t"))
    if match is None or not match.group("name"):
        raise TargetRefused("InvalidHost", "The Host header is not a valid host.")
    name = match.group("name").lower()
    if name.endswith(b".") and not name.startswith(b"["):
        name = name[:-1]
    port = match.group("port")
    if port is None or port == b"":
        return name
    if int(port) > 65535:
        raise TargetRefused("InvalidHost", "The Host header has an invalid port.")
    if int(port) == (443 if scheme == "https" else 80):
        return name
    return name + b":" + str(int(port)).encode()
