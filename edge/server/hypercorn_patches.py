"""Corrections to hypercorn's HTTP/1.1 protocol, made by replacing its private methods.

hypercorn has no hook for any of them, so `apply` replaces methods of
`hypercorn.protocol.h11.H11Protocol` (and, per connection, wraps `h11.Connection.next_event`).
Private methods change without notice, so `apply` patches only the hypercorn versions the
patches were tested on (`TESTED_VERSIONS`, what pyproject.toml pins); on any other it logs a
warning and hypercorn keeps its own behaviour. tests/test_hypercorn_patches.py shows, on a real
socket, what each patch guarantees and what hypercorn does without it.

- Coalesced heads: a response's head is written together with its first body bytes (or its
  end), in one send. hypercorn writes each h11 event as it comes, so a small response costs
  two sends; the proxy benchmark showed socket sends as the largest single cost. A streamed
  body whose first chunk is slow delays the head until then, as a buffering proxy does.
- Framing guard: bytes after a request that ends the connection (`Connection: close`, or
  HTTP/1.0 without keep-alive) are ignored, as RFC 9112 §9.6 has it; unpatched, h11 calls
  them a protocol error and hypercorn answers 400 in place of the response the request is owed
  (which the origin may already have run). And a request line longer than h11's buffer gets
  414 (URI Too Long), not the 431 meant for an oversized header section.
- Strict heads: a request with obsolete line folding, or with a method that is not upper-case
  (hypercorn upper-cases it, so `get` would be served as GET), is refused with 400.
- Parser refusals answered like the edge's own: the 400/414/431 that h11 or the edge makes
  before the app sees a request carries CloudFront's error page, X-Edge-Error and a request
  id, and gets an access-log line (hypercorn's own has an empty body and no log line).
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

import h11
from hypercorn.events import RawData
from hypercorn.protocol.h11 import H11Protocol

__all__ = ["TESTED_VERSIONS", "apply", "is_applied", "remove"]

# The hypercorn versions whose H11Protocol these patches were tested with (tests/
# test_hypercorn_patches.py on each); pyproject.toml pins the same range.
TESTED_VERSIONS: Final = frozenset({"0.17.3", "0.18.0"})

# The methods replaced, and where the originals are kept while they are.
_PATCHED: Final = ("__init__", "_send_h11_event", "_send_error_response")
_ORIGINALS: Final = "_edge_originals"

logger = logging.getLogger("edge.server")


def apply(version: str | None = None) -> bool:
    """Patch hypercorn's HTTP/1.1 protocol (once per process); False when its version (or
    `version`) is not one the patches were tested on: then nothing is patched, and a
    warning says what the edge serves without them."""
    if is_applied():
        return True
    found = importlib.metadata.version("hypercorn") if version is None else version
    if found not in TESTED_VERSIONS:
        logger.warning(
            "hypercorn %s is not a version the edge's HTTP/1.1 corrections were tested with "
            "(%s): serving without them (a response's head and body in two writes, 400 for "
            "bytes after a Connection: close request, 431 for an over-long request line)",
            found,
            ", ".join(sorted(TESTED_VERSIONS)),
        )
        return False
    originals = {name: H11Protocol.__dict__[name] for name in _PATCHED}
    replacements = {
        "__init__": _guarded_init(originals["__init__"]),
        "_send_h11_event": _coalescing_send(originals["_send_h11_event"]),
        "_send_error_response": _uri_too_long_send(originals["_send_error_response"]),
    }
    for name, method in replacements.items():
        setattr(H11Protocol, name, method)
    setattr(H11Protocol, _ORIGINALS, originals)
    return True


def is_applied() -> bool:
    return _ORIGINALS in H11Protocol.__dict__


def remove() -> None:
    """Put hypercorn's own methods back (connections made before keep their guard)."""
    originals = H11Protocol.__dict__.get(_ORIGINALS)
    if originals is None:
        return
    for name, method in originals.items():
        setattr(H11Protocol, name, method)
    delattr(H11Protocol, _ORIGINALS)


def _coalescing_send(
    original: Callable[[Any, Any], Awaitable[None]],
) -> Callable[[Any, Any], Awaitable[None]]:
    """`_send_h11_event` that holds a response head until the next event of the response."""

    async def send_h11_event(self: Any, event: Any) -> None:
        if type(event) is h11.Response:
            try:
                self._edge_head = self.connection.send(event)
            except h11.LocalProtocolError:
                if self.connection.their_state != h11.ERROR:
                    raise
            return
        head = getattr(self, "_edge_head", None)
        if head is None:
            await original(self, event)
            return
        self._edge_head = None
        try:
            data = self.connection.send(event)
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            data = b""
        await self.send(RawData(data=head + (data or b"")))

    return send_h11_event


def _guarded_init(original: Callable[..., None]) -> Callable[..., None]:
    """`__init__` whose h11 connection reads nothing once the peer may send no more, and
    refuses a request head h11 would take but the edge does not (`_refusal`)."""

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        connection = self.connection
        next_event = connection.next_event

        def guarded_next_event() -> Any:
            state = connection.their_state
            if state is h11.MUST_CLOSE:
                return h11.NEED_DATA  # RFC 9112 §9.6: what follows is not read
            if state is not h11.IDLE:
                return next_event()
            received = connection.trailing_data[0]
            try:
                event = next_event()
            except h11.RemoteProtocolError:
                self._edge_request_line = received.partition(b"\n")[0].rstrip(b"\r")
                raise
            if type(event) is h11.Request:
                self._edge_request_line = received.partition(b"\n")[0].rstrip(b"\r")
                refusal = _refusal(event.method, received)
                if refusal is not None:
                    self._edge_refusal = refusal
                    raise h11.RemoteProtocolError(refusal, error_status_hint=400)
            return event

        connection.next_event = guarded_next_event

    return init


# A line of the header section that starts with a space or tab continues the one before.
_FOLDED_LINE: Final = re.compile(rb"\n[ \t]")


def _refusal(method: bytes, received: bytes) -> str | None:
    """Why the edge refuses a request h11 parsed (the `X-Edge-Error` detail), or None.

    h11 joins obsolete line folding into one value (RFC 9112 §5.2 allows refusing it instead:
    a folded line is read differently by different parsers) and hypercorn upper-cases the
    method (methods are case-sensitive, RFC 9110 §9.1: `get` is not GET)."""
    if method != method.upper():
        return "InvalidMethod"
    end = received.find(b"\n\r\n")
    if end < 0:
        end = received.find(b"\n\n")
    if _FOLDED_LINE.search(received, 0, end if end >= 0 else len(received)):
        return "ObsoleteLineFolding"
    return None


def _uri_too_long_send(
    original: Callable[[Any, int], Awaitable[None]],
) -> Callable[[Any, int], Awaitable[None]]:
    """`_send_error_response` that answers 414 when the buffer h11 gave up on holds no line
    end: the request line itself was too long."""

    async def send_error_response(self: Any, status_code: int) -> None:
        received = self.connection.trailing_data[0]
        if status_code == 431 and b"\n" not in received:
            status_code = 414
        refuse = getattr(getattr(self.app, "app", None), "refuse_unparsed", None)
        if refuse is None:
            await original(self, status_code)
            return
        request_line = getattr(self, "_edge_request_line", None)
        if request_line is None:
            request_line = received.partition(b"\n")[0].rstrip(b"\r")
        client = self.client[0] if self.client else "0.0.0.0"
        headers, body = refuse(
            status_code, getattr(self, "_edge_refusal", None), client, request_line[:2048]
        )
        await self._send_h11_event(h11.Response(status_code=status_code, headers=headers))
        await self._send_h11_event(h11.Data(data=body))
        await self._send_h11_event(h11.EndOfMessage())

    return send_error_response
