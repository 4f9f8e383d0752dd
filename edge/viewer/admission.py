"""What the edge refuses before any behavior sees a request, and the request it admits. Pure.

Checked in this order, each refusal answered with CloudFront's error page and the connection
closed where the framing cannot be trusted:

| what | status | X-Edge-Error |
| --- | --- | --- |
| URL over `max_url_bytes` | 414 | UrlTooLong |
| request line and headers over `max_header_bytes` | 431 | HeadersTooLarge |
| Content-Length together with Transfer-Encoding (RFC 9112 §6.1) | 400, close | AmbiguousFraming |
| a method not in upper case (RFC 9110 §9.1: `get` is not GET) | 400 | InvalidMethod |
| CONNECT or TRACE (no method set allows them, "any" neither) | 403 | MethodNotAllowed |
| a target that is not one path (`edge.uri`) | 400 | InvalidTarget / InvalidPath |
| no Host, several, or one that is not a host (RFC 9112 §3.2) | 400 | InvalidHost |

Then, once the journey has matched a behavior (`refuse_for_behavior`): a method outside its
set -> 403; a GET or HEAD with a body -> 403 (as CloudFront answers); a declared body over
`max_body_bytes` -> 413. An HTTP request to a behavior whose viewer protocol policy wants
HTTPS (`https_answer`): redirect-to-https -> 301 (307 for other methods than GET and HEAD)
to the https URL; https-only -> 403. Neither runs a function.

The admitted request carries the path as sent (what functions, the cache and the origin see),
its normal form (what behaviors match) and the headers with one normalised Host (from an
absolute-form target's authority when there is one).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.exchange import Answer, ViewerRequest
from edge.failures import Failure, request_refused
from edge.uri import EscapedSlashes, TargetRefused, normalize_host, parse_target
from origin_proxy import Headers, single_chunk

# Methods no behavior forwards: CONNECT would make the edge a tunnel, TRACE reflects the
# request (credentials included) back to a script (cross-site tracing).
NEVER_FORWARDED = frozenset({"CONNECT", "TRACE"})


@dataclass(frozen=True, slots=True)
class ViewerLimits:
    """The server's limits on what a viewer may send."""

    max_url_bytes: int
    max_header_bytes: int
    escaped_slashes: EscapedSlashes = "reject"


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request the edge accepted, ready for behavior matching."""

    path: bytes  # as sent, origin-form
    normal_path: bytes  # to match behaviors on
    query: bytes
    headers: Headers
    content_length: int | None  # None: no Content-Length (chunked, or no body)
    chunked: bool

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


class Refused(Exception):
    """The request is refused; `failure` is what the viewer gets."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.cause)
        self.failure = failure


def admit(
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: Headers,
    *,
    scheme: str,
    limits: ViewerLimits,
    http_version: str = "1.1",
) -> Admitted:
    """The request as the edge takes it, or `Refused` with what to answer."""
    url_bytes = len(raw_path) + len(query) + 1
    if url_bytes > limits.max_url_bytes:
        raise Refused(
            request_refused(
                414, "UrlTooLong", f"The URL is longer than {limits.max_url_bytes} bytes."
            )
        )
    header_bytes = 0
    content_length: int | None = None
    chunked = False
    hosts: list[bytes] = []
    for name, value in headers:
        header_bytes += len(name) + len(value) + 4
        if name == b"content-length":
            content_length = int(value)  # the server has validated it (RFC 9110 §8.6)
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"host":
            hosts.append(value)
    if header_bytes + url_bytes > limits.max_header_bytes:
        raise Refused(
            request_refused(
                431,
                "HeadersTooLarge",
                f"The request line and headers are larger than {limits.max_header_bytes} bytes.",
            )
        )
    if chunked and content_length is not None:
        raise Refused(
            request_refused(
                400,
                "AmbiguousFraming",
                "The request has both Content-Length and Transfer-Encoding.",
            )
        )
    if method != method.upper():
        # RFC 9110 §9.1: methods are case-sensitive, `get` is not GET (hypercorn upper-cases
        # the method before the edge sees it: its patch refuses these; granian passes it on).
        raise Refused(
            request_refused(
                400,
                "InvalidMethod",
                "Methods are case-sensitive (RFC 9110 §9.1) and this one is not upper-case: "
                "send GET, HEAD, POST, ... as written.",
            )
        )
    if method in NEVER_FORWARDED:
        raise Refused(
            request_refused(
                403, "MethodNotAllowed", f"The method {method} is not allowed for this path."
            )
        )
    try:
        target = parse_target(raw_path, query, escaped_slashes=limits.escaped_slashes)
        if target.authority is not None:
            host = normalize_host(target.authority, scheme=scheme)  # RFC 9112 §3.2.2
        elif http_version == "1.0" and hosts in ([], [b""]):
            # HTTP/1.0 needs no Host (granian passes an empty one on where none was sent).
            if hosts:
                headers = [(name, value) for name, value in headers if name != b"host"]
            return Admitted(
                target.path, target.normal_path, target.query, headers, content_length, chunked
            )
        elif len(hosts) == 1:
            host = normalize_host(hosts[0], scheme=scheme)
        else:
            raise TargetRefused(
                "InvalidHost", "A request needs exactly one Host header (RFC 9112 §3.2)."
            )
    except TargetRefused as exc:
        raise Refused(request_refused(400, exc.detail, exc.message)) from None
    if hosts != [host]:
        headers = [(name, value) for name, value in headers if name != b"host"]
        headers.insert(0, (b"host", host))
    return Admitted(target.path, target.normal_path, target.query, headers, content_length, chunked)


def refuse_for_behavior(
    method: str,
    methods: frozenset[str] | None,
    *,
    has_body: bool,
    content_length: int | None,
    max_body_bytes: int,
) -> None:
    """`Refused` when the matched behavior, with its allowed `methods` (None: any), does not
    take the request."""
    if methods is not None and method not in methods:
        raise Refused(
            request_refused(
                403, "MethodNotAllowed", f"The method {method} is not allowed for this path."
            )
        )
    if has_body and method in ("GET", "HEAD"):
        # CloudFront answers 403 to a GET or HEAD that carries a body.
        raise Refused(
            request_refused(403, "BodyNotAllowed", f"A {method} request must not carry a body.")
        )
    if content_length is not None and content_length > max_body_bytes:
        raise Refused(body_too_large(max_body_bytes))


def body_too_large(max_body_bytes: int) -> Failure:
    """The refusal of a body over the limit, declared or found while it streams."""
    return request_refused(
        413, "RequestTooLarge", f"The request body is larger than {max_body_bytes} bytes."
    )


def https_answer(policy: str, request: ViewerRequest, https_port: int) -> Answer:
    """CloudFront's answer to an HTTP request for a behavior whose viewer protocol policy is
    `redirect-to-https` (301 to the https URL for GET and HEAD, 307 for other methods so their
    body is sent again) or `https-only` (`Refused`, 403)."""
    if policy != "redirect-to-https":
        raise Refused(
            request_refused(
                403, "HttpsRequired", "This path is served over HTTPS only: use an https URL."
            )
        )
    host = b""
    for name, value in request.headers:
        if name == b"host":
            host = value
            break
    if not host.endswith(b"]"):
        host = host.rpartition(b":")[0] or host
    if https_port != 443:
        host += b":%d" % https_port
    location = b"https://" + host + request.path + (b"?" + request.query if request.query else b"")
    status = 301 if request.method in ("GET", "HEAD") else 307
    reason = b"Moved Permanently" if status == 301 else b"Temporary Redirect"
    body = b"<html><head><title>%d %s</title></head><body><h1>%d %s</h1></body></html>\n" % (
        status,
        reason,
        status,
        reason,
    )
    headers: Headers = [
        (b"location", location),
        (b"content-type", b"text/html"),
        (b"content-length", b"%d" % len(body)),
    ]
    return Answer(status, headers, single_chunk(body), "Redirect", reason)


def with_forwarded_proto(headers: Headers, scheme: str) -> Headers:
    """`headers` with CloudFront-Forwarded-Proto saying the viewer's protocol (one the viewer
    sent is replaced: it must not be able to claim HTTPS)."""
    kept = [(name, value) for name, value in headers if name != b"cloudfront-forwarded-proto"]
    kept.append((b"cloudfront-forwarded-proto", scheme.encode()))
    return kept
