"""Answering a viewer, whatever the server's interface: the head every answer goes out with,
CloudFront's error page for a failure, what a request body that breaks off is answered with,
and one metrics record and access-log line per request.

An adapter per server interface (`edge.viewer.asgi`, which both granian and hypercorn call)
reads the request into an `edge.exchange.ViewerRequest`, hands it to the journey and writes
out what these give it; hypercorn keeps its protocol code apart from its I/O the same way.
(granian's native RSGI interface is faster on a bare hello, but hands over the path
percent-decoded and drops header values that are not ASCII: the edge must see both as sent.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from edge.accesslog import AccessLog
from edge.config import ServerConfig
from edge.exchange import Answer, ViewerRequest, new_request_id
from edge.failures import Failure, error_page, failure_for, request_refused
from edge.metrics import ProxyMetrics
from edge.triggers import TriggerFailed
from edge.viewer.admission import ViewerLimits, body_too_large
from origin_proxy import Headers, OriginError, format_http_date, forward_response_headers, via_value

logger = logging.getLogger("edge.viewer")

Journey = Callable[[ViewerRequest], Awaitable[Answer]]

# The X-Cache kinds an answer can carry.
_RESULTS = (
    "Hit",
    "RefreshHit",
    "Miss",
    "Error",
    "LambdaGeneratedResponse",
    "FunctionGeneratedResponse",
    "Redirect",
)


class BodyTooLarge(Exception):
    """The viewer's request body passed the configured limit while streaming."""


class ViewerDisconnected(Exception):
    """The viewer went away before its request body was complete."""


class ViewerBodyStalled(Exception):
    """The viewer's request body stopped arriving for longer than the body timeout."""


class Served:
    """One request as the viewer side records it: who asked what, and what went back so far
    (for the access log, the metrics and the handling of a failure)."""

    __slots__ = (
        "body_bytes",
        "client_ip",
        "head_sent",
        "method",
        "path",
        "request_id",
        "result",
        "started",
        "status",
    )

    def __init__(self, method: str, path: str, client_ip: str) -> None:
        self.started = time.perf_counter()
        self.request_id = new_request_id()
        self.method = method
        self.path = (
            path if len(path) <= _LOGGED_PATH_CHARS and path.isprintable() else (_loggable(path))
        )
        self.client_ip = client_ip
        self.head_sent = False
        self.status = 0
        self.body_bytes = 0
        self.result = "-"


# What a parser-level refusal says, by status, when the server's parser made it.
_PARSER_REFUSALS: dict[int, tuple[str, str]] = {
    400: ("MalformedRequest", "The request is not valid HTTP/1.1 (RFC 9112)."),
    414: ("UrlTooLong", "The request line is longer than the server accepts."),
    431: ("HeadersTooLarge", "The request's header section is larger than the server accepts."),
}

# Refusals the edge makes at the parser (`detail` -> message).
_EDGE_REFUSALS: dict[str, str] = {
    "ObsoleteLineFolding": (
        "A header field continues on a following line (obsolete line folding): RFC 9112 "
        "§5.2 lets a server refuse it, and the edge does."
    ),
    "InvalidMethod": (
        "Methods are case-sensitive (RFC 9110 §9.1) and this one is not upper-case: "
        "send GET, HEAD, POST, ... as written."
    ),
}


# How much of a path the access log and error lines show.
_LOGGED_PATH_CHARS = 1024


def _loggable(path: str) -> str:
    """`path` for one log line: control characters escaped, the length bounded (a 64 KB URL
    is logged as its first kilobyte and its length)."""
    if not path.isprintable():
        path = path.encode("unicode_escape").decode("ascii")
    if len(path) > _LOGGED_PATH_CHARS:
        path = f"{path[:_LOGGED_PATH_CHARS]}...({len(path)} chars)"
    return path


_date_cache: list[Any] = [0, b""]


def http_date_now() -> bytes:
    """The current time as an IMF-fixdate (RFC 9110 §5.6.7), formatted once a second."""
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0] = now
        _date_cache[1] = format_http_date(now)
    value: bytes = _date_cache[1]
    return value


class Viewer:
    """The edge's side facing viewers: its limits, its name in Via and X-Cache, its records."""

    # Where failures go for the admin's status page (`edge.status_page.RecentErrors`).
    recent_errors: Any = None

    def __init__(
        self,
        journey: Journey,
        server: ServerConfig,
        *,
        metrics: ProxyMetrics,
        access_log: AccessLog,
    ) -> None:
        self.journey = journey
        self.metrics = metrics
        self.access_log = access_log
        self.edge_name = server.name
        self.via = via_value(server.name)
        self.max_body_bytes = server.max_body_bytes
        self.body_timeout = server.client_body_timeout
        self.send_timeout = server.send_timeout
        self.limits = ViewerLimits(
            max_url_bytes=server.max_url_bytes,
            max_header_bytes=server.max_header_bytes,
            escaped_slashes=server.escaped_slashes,
        )
        self._x_cache = {kind: f"{kind} from {server.name}".encode() for kind in _RESULTS}

    def answer_head(self, answer: Answer, served: Served) -> Headers:
        """The headers `answer` goes out with: the origin's (hop-by-hop fields dropped), Via,
        X-Cache, the request id and a Date when none came."""
        headers = forward_response_headers(answer.headers, via=self.via)
        result = answer.result
        if result == "Miss" and answer.status >= 400:
            result = "Error"
        headers.append((b"x-cache", self._x_cache[result]))
        headers.append((b"x-amz-cf-id", served.request_id.encode()))
        for name, _ in headers:
            if name == b"date":
                break
        else:
            headers.append((b"date", http_date_now()))
        served.result = result
        served.status = answer.status
        return headers

    def failure_page(self, failure: Failure, served: Served) -> tuple[Headers, bytes]:
        """The head and body of CloudFront's error page for `failure`."""
        body = error_page(failure, request_id=served.request_id, edge_name=self.edge_name)
        headers: Headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"via", self.via),
            (b"x-cache", f"{failure.kind} from {self.edge_name}".encode()),
            (b"x-edge-error", failure.detail.encode()),
            (b"x-amz-cf-id", served.request_id.encode()),
            (b"date", http_date_now()),
        ]
        if failure.status in (400, 408, 413, 431):
            # The rest of what the viewer sent cannot be trusted to frame a next request.
            headers.append((b"connection", b"close"))
        served.status = failure.status
        served.result = failure.kind
        return headers, body

    def refuse_unparsed(
        self, status: int, detail: str | None, client_ip: str, request_line: bytes
    ) -> tuple[Headers, bytes]:
        """The error page for a request the server's parser refused before any adapter saw
        it (`status` 400, 414 or 431; `detail` names the rule when the edge made the
        refusal), counted and logged like every other request. `request_line` is what was
        read of the first line, for the access log."""
        method, _, rest = request_line.partition(b" ")
        target = rest.rpartition(b" ")[0] if rest.endswith((b"HTTP/1.1", b"HTTP/1.0")) else rest
        served = Served(
            method.decode("latin-1")[:16] or "-", target.decode("latin-1") or "-", client_ip
        )
        if detail is None:
            detail, message = _PARSER_REFUSALS.get(status, _PARSER_REFUSALS[400])
        else:
            message = _EDGE_REFUSALS.get(detail, detail)
        headers, body = self.failure_page(request_refused(status, detail, message), served)
        if (b"connection", b"close") not in headers:
            headers.append((b"connection", b"close"))
        served.body_bytes = len(body)
        self.finish(served, None)
        return headers, body

    def failure_of(self, exc: Exception, served: Served) -> Failure | None:
        """What to answer for `exc`, raised while serving (logged and counted when it is not
        the viewer's doing); None when the viewer went away and nobody is left to answer."""
        if isinstance(exc, BodyTooLarge):
            return body_too_large(self.max_body_bytes)
        if isinstance(exc, ViewerBodyStalled):
            return request_refused(
                408,
                "RequestTimeout",
                f"The request body stopped arriving for {self.body_timeout:g} s.",
            )
        if isinstance(exc, ViewerDisconnected):
            return None
        failure = failure_for(exc)
        if isinstance(exc, OriginError):
            self.metrics.record_origin_error(exc.origin, exc.detail)
        extra = ""
        if isinstance(exc, TriggerFailed) and exc.lambda_request_id:
            extra = f" (Lambda RequestId: {exc.lambda_request_id})"
        logger.error(
            "request %s %s %s: %s -> %d %s: %s%s",
            served.request_id,
            served.method,
            served.path,
            failure.kind,
            failure.status,
            failure.detail,
            failure.cause,
            extra,
        )
        if self.recent_errors is not None:
            entry = {
                "request_id": served.request_id,
                "method": served.method,
                "path": served.path,
                "status": failure.status,
                "kind": failure.kind,
                "detail": failure.detail,
                "cause": failure.cause,
            }
            if isinstance(exc, TriggerFailed):
                entry |= {
                    "function": exc.function,
                    "trigger": str(exc.trigger),
                    "lambda_request_id": exc.lambda_request_id,
                }
            self.recent_errors.record(entry)
        return failure

    def finish(self, served: Served, request: ViewerRequest | None) -> None:
        """Count the request and write its access-log line."""
        elapsed = time.perf_counter() - served.started
        behavior = "-" if request is None else request.behavior
        self.metrics.record_request(
            behavior, served.status, served.body_bytes, elapsed, served.result
        )
        self.access_log.write(
            client=served.client_ip,
            method=served.method,
            path=served.path,
            status=served.status,
            body_bytes=served.body_bytes,
            seconds=elapsed,
            behavior=behavior,
            origin="-" if request is None else request.origin,
            result=served.result,
            request_id=served.request_id,
        )
