"""Two corrections to hypercorn's HTTP/1.1 protocol, made by replacing its private methods.

hypercorn has no hook for either, so `apply` replaces methods of
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
"""

from __future__ import annotations

import importlib.metadata
import logging
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
    """`__init__` whose h11 connection reads nothing once the peer may send no more."""

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        connection = self.connection
        next_event = connection.next_event

        def guarded_next_event() -> Any:
            if connection.their_state is h11.MUST_CLOSE:
                return h11.NEED_DATA  # RFC 9112 §9.6: what follows is not read
            return next_event()

        connection.next_event = guarded_next_event

    return init


def _uri_too_long_send(
    original: Callable[[Any, int], Awaitable[None]],
) -> Callable[[Any, int], Awaitable[None]]:
    """`_send_error_response` that answers 414 when the buffer h11 gave up on holds no line
    end: the request line itself was too long."""

    async def send_error_response(self: Any, status_code: int) -> None:
        if status_code == 431 and b"\n" not in self.connection.trailing_data[0]:
            status_code = 414
        await original(self, status_code)

    return send_error_response
