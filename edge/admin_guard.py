"""Who may use the admin listener: the checks every request passes before any route runs.

1. **Host** must name this listener, so a page whose name an attacker points at 127.0.0.1
   (DNS rebinding) gets nothing: accepted are IP literals, `localhost`, and the names in
   `[admin] allowed_hosts`; anything else is 421. The port is not compared: rebinding needs
   a name the attacker controls, not a port, and a published container port changes it.
2. **Not from another site's page**: a CORS preflight is refused (and no response ever grants
   cross-origin access); a request whose `Origin` is neither this listener (`http://` + its
   Host) nor in `[admin] allowed_origins` is refused, as is one marked `Sec-Fetch-Site:
   cross-site` or `same-site` without such an Origin (403). boto3, the AWS CLI and curl send
   neither header, and pass.
3. **Not through this edge**: a request whose `Via` carries this edge's own entry (`1.1
   <name>`, what the proxy adds to every request it forwards) came through the proxy, sent
   there by a viewer or a function that switched its origin to this listener: 403.
4. **Signed**, when credentials are configured: AWS Signature Version 4 on every path but
   `/healthz` (and `/metrics` with `[admin] unsigned_metrics`). The header, key, time and
   scope are checked first; then the body is read, bounded by the largest any route accepts
   (413 past it), hashed and the signature compared; the route then gets the same body.

Refusals use the Lambda API's error shape (`X-Amzn-ErrorType`, a JSON `message`), so boto3 and
the AWS CLI show what went wrong.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge import sigv4
from edge.invoke import errors
from edge.invoke.errors import InvokeApiError
from sandbox import new_request_id

logger = logging.getLogger("edge.admin")

# The service name clients sign for: boto3's and the AWS CLI's `lambda` client.
SIGNING_SERVICE: Final = "lambda"
_REFUSING_SITES: Final = ("cross-site", "same-site")


@dataclass(frozen=True, slots=True)
class AdminAccess:
    """What the admin listener accepts: extra host names (exact, `.example.com` for a domain
    and its subdomains, `*` for any), extra origins (`https://admin.example.com`), and the
    credentials that requests must be signed with (None: no signature asked)."""

    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    credentials: sigv4.Credentials | None = None
    unsigned_paths: frozenset[str] = frozenset({"/healthz"})
    # This edge's Via entry (`1.1 <name>`): a request carrying it came through the proxy.
    proxy_via: str = ""


def host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Whether a Host header value (`name[:port]`, `[v6][:port]`) names this listener."""
    name = _host_name(host)
    if name is None:
        return False
    if name == "localhost" or _is_ip_literal(name):
        return True
    for pattern in allowed_hosts:
        if pattern == "*" or name == pattern:
            return True
        if pattern.startswith(".") and (name == pattern[1:] or name.endswith(pattern)):
            return True
    return False


def _host_name(host: str) -> str | None:
    value = host.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :] if end > 0 else ""
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return value[: end + 1]
    name, sep, port = value.partition(":")
    if sep and not port.isdigit():
        return None
    return name or None


def _is_ip_literal(name: str) -> bool:
    # A browser sends an IP literal only when the page's own URL named it, so no DNS answer
    # an attacker controls is involved.
    try:
        if name.startswith("["):
            ipaddress.IPv6Address(name[1:-1])
        else:
            ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


class _Disconnected(Exception):
    """The client went away before its body was complete."""


class AdminGuard:
    """ASGI middleware applying `access` to every HTTP request (see the module docstring).
    `max_body_bytes`: the largest body any route accepts. `now`: the clock for signatures."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        access: AdminAccess,
        max_body_bytes: int,
        now: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.app = app
        self.access = access
        self.max_body_bytes = max_body_bytes
        self.now = now or (lambda: datetime.datetime.now(datetime.UTC))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        try:
            self._check_browser_reach(scope, headers)
            credentials = self.access.credentials
            if credentials is not None and scope["path"] not in self.access.unsigned_paths:
                receive = await self._check_signature(scope, headers, receive, credentials)
        except _Disconnected:
            return
        except InvokeApiError as error:
            logger.warning(
                "admin listener: %s %s refused: %s: %s",
                scope["method"],
                scope["path"],
                error.error_type,
                error.message.partition("\n")[0],
            )
            response = errors.error_response(error, new_request_id())
            # The body may be unread: the connection cannot carry another request.
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check_browser_reach(self, scope: Scope, headers: list[tuple[str, str]]) -> None:
        found = dict(headers)
        host = found.get("host")
        if host is None or not host_allowed(host, self.access.allowed_hosts):
            raise errors.host_refused(
                f"The Host {host!r} does not name this admin listener: it answers to its IP "
                f"addresses, localhost, and the names in [admin] allowed_hosts."
            )
        if scope["method"] == "OPTIONS" and "access-control-request-method" in found:
            raise errors.cross_site_refused(
                "CORS preflight refused: the admin listener grants no cross-origin access."
            )
        via = self.access.proxy_via
        if via and any(
            entry.strip() == via
            for name, value in headers
            if name == "via"
            for entry in value.split(",")
        ):
            raise errors.cross_site_refused(
                f"Request refused: it came through this edge's proxy (Via: {via}); the admin "
                "listener cannot be reached through the edge, by a viewer or a function."
            )
        origin = found.get("origin")
        allowed = origin is not None and (
            origin.lower() == f"http://{host.lower()}"
            or origin.lower() in self.access.allowed_origins
        )
        if origin is not None and not allowed:
            raise errors.cross_site_refused(
                f"Cross-site request refused: the Origin {origin!r} is neither this admin "
                f"listener nor in [admin] allowed_origins."
            )
        site = found.get("sec-fetch-site", "").lower()
        if site in _REFUSING_SITES and not allowed:
            raise errors.cross_site_refused(
                f"Cross-site request refused: Sec-Fetch-Site: {site} from an origin not in "
                f"[admin] allowed_origins."
            )

    async def _check_signature(
        self,
        scope: Scope,
        headers: list[tuple[str, str]],
        receive: Receive,
        credentials: sigv4.Credentials,
    ) -> Receive:
        """Verify the request's signature; the `receive` that replays the body read for it."""
        try:
            auth = sigv4.check_authorization(
                headers, credentials, service=SIGNING_SERVICE, now=self.now()
            )
        except sigv4.SignatureRejected as rejected:
            raise errors.signature_rejected(rejected.error_type, rejected.message) from None
        body = await self._read_body(headers, receive)
        try:
            sigv4.check_signature(
                auth,
                credentials,
                method=scope["method"],
                raw_path=(scope.get("raw_path") or scope["path"].encode()).decode("latin-1"),
                raw_query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                body_sha256=hashlib.sha256(body).hexdigest(),
            )
        except sigv4.SignatureRejected as rejected:
            raise errors.signature_rejected(rejected.error_type, rejected.message) from None
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

    async def _read_body(self, headers: list[tuple[str, str]], receive: Receive) -> bytes:
        limit = self.max_body_bytes
        declared = dict(headers).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise errors.request_too_large(int(declared), limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise errors.request_too_large(size, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)
