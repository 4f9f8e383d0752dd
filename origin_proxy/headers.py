"""Header rules of a forwarding proxy (RFC 9110), on ASGI-style (bytes, bytes) pairs. Pure.

- Hop-by-hop fields are removed in both directions: the fixed list of RFC 9110 §7.6.1 plus
  every field named in `Connection`.
- Requests gain `X-Forwarded-For` (appended), `X-Forwarded-Proto` and `X-Forwarded-Host` (set),
  and `Via` (appended, RFC 9110 §7.6.3); `Host` becomes the origin's unless told to keep it.
- Responses gain `Via` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from origin_proxy.message import Headers

# RFC 9110 §7.6.1 and the fields that are hop-by-hop by definition or by practice.
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


def connection_listed(headers: Headers) -> frozenset[bytes]:
    """Field names listed in `Connection` (lower case)."""
    listed: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            listed.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(listed)


def strip_hop_by_hop(headers: Headers) -> Headers:
    """`headers` without hop-by-hop fields, keeping order (a new list)."""
    present = HOP_BY_HOP.intersection([name for name, _ in headers])
    if not present:  # the common case, kept cheap: nothing to drop
        return list(headers)
    listed = connection_listed(headers) if b"connection" in present else frozenset()
    drop = HOP_BY_HOP | listed
    return [(name, value) for name, value in headers if name not in drop]


def without_hop_by_hop(headers: Headers) -> Headers:
    """`headers` without hop-by-hop fields: `headers` itself when it has none (for a list the
    caller owns and will not share), else a new list."""
    for name, _ in headers:
        if name in HOP_BY_HOP:
            return strip_hop_by_hop(headers)
    return headers


def via_value(name: str) -> bytes:
    """This edge's `Via` entry (RFC 9110 §7.6.3: protocol version and a pseudonym)."""
    return f"1.1 {name}".encode("latin-1")


def append_value(headers: Headers, name: bytes, value: bytes) -> None:
    """Append `value` to the last `name` field (comma list), or add the field."""
    for index in range(len(headers) - 1, -1, -1):
        if headers[index][0] == name:
            headers[index] = (name, headers[index][1] + b", " + value)
            return
    headers.append((name, value))


def set_value(headers: Headers, name: bytes, value: bytes) -> None:
    """Replace every `name` field with one holding `value`."""
    headers[:] = [(k, v) for k, v in headers if k != name]
    headers.append((name, value))


def forward_request_headers(
    headers: Headers,
    *,
    client_ip: str,
    proto: str,
    via: bytes,
    host: bytes | None,
    extra: Iterable[tuple[bytes, bytes]] = (),
    forwarded_host: bool = True,
) -> Headers:
    """The headers to send to an origin for a viewer request carrying `headers`.

    `host` replaces the viewer's Host (None keeps it); `extra` are the origin's custom headers,
    which replace viewer fields of the same name. `forwarded_host`: whether the viewer's Host
    is passed on as X-Forwarded-Host (a viewer's own X-Forwarded-Host never is).
    """
    drop: frozenset[bytes] | None = None
    for name, _ in headers:
        if name in HOP_BY_HOP:
            drop = HOP_BY_HOP | connection_listed(headers)
            break
    viewer_host = b""
    xff: bytes | None = None
    via_at = -1  # where the last Via field went in `kept`
    kept: Headers = [] if host is None else [(b"host", host)]
    for name, value in headers:
        if drop is not None and name in drop:
            continue
        if name == b"host":
            viewer_host = value
            if host is None:
                kept.append((name, value))
        elif name == b"x-forwarded-for":
            xff = value if xff is None else xff + b", " + value
        elif name == b"x-forwarded-proto" or name == b"x-forwarded-host":
            continue
        else:
            if name == b"via":
                via_at = len(kept)
            kept.append((name, value))
    ip = client_ip.encode("latin-1")
    kept.append((b"x-forwarded-for", xff + b", " + ip if xff else ip))
    kept.append((b"x-forwarded-proto", proto.encode("latin-1")))
    if viewer_host and forwarded_host:
        kept.append((b"x-forwarded-host", viewer_host))
    if via_at < 0:
        kept.append((b"via", via))
    else:
        kept[via_at] = (b"via", kept[via_at][1] + b", " + via)
    if extra:
        extra_list = list(extra)
        if extra_list:
            names = {name for name, _ in extra_list}
            kept = [(k, v) for k, v in kept if k not in names]
            kept.extend(extra_list)
    return kept


def forward_response_headers(headers: Headers, *, via: bytes) -> Headers:
    """The headers to send to the viewer for an origin response carrying `headers`."""
    out = strip_hop_by_hop(headers)
    append_value(out, b"via", via)
    return out


def encode_custom_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Configured origin custom headers as lower-case byte pairs."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
