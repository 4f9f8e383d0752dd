"""The configured origins, and how a request is addressed to one of them.

Each origin is also described the way a Lambda@Edge origin event shows it: an HTTP origin as
`origin.custom`, a directory origin as `origin.s3` (it plays an S3 bucket), unless the origin's
`origin_kind` says the other. When an
origin-request function switches origins, the new description is matched against the
configured origins by domain name; an unknown custom origin gets a client of its own (a few
are kept; one pushed out is closed once no request uses it).

An origin group is its primary with a way out: a GET, HEAD or OPTIONS that the primary fails
(a configured status, no connection, a timeout) goes to the secondary (`secondary_after`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from edge.config import (
    DirectoryOriginConfig,
    EdgeConfig,
    FunctionOriginConfig,
    HttpOriginConfig,
    OriginGroupConfig,
)
from edge.events import CustomOrigin, S3Origin
from edge.events.cloudfront import Origin as EventOrigin
from edge.exchange import ViewerRequest, headers_from_str
from edge.functions import FunctionRegistry
from origin_proxy import (
    Headers,
    HttpOrigin,
    OriginError,
    OriginRequest,
    OriginResponse,
    forward_request_headers,
    strip_hop_by_hop,
)

logger = logging.getLogger("edge.origins")

# Switched-to origins nobody configured: a few clients are kept for reuse.
_MAX_AD_HOC_ORIGINS = 32

# CloudFront fails over to a group's secondary only for these (lambda-edge-spec §5.7).
FAILOVER_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Origin(Protocol):
    name: str

    async def fetch(self, request: OriginRequest) -> OriginResponse: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Upstream:
    """An origin and how requests are addressed to it."""

    name: str
    origin: Origin
    event_origin: EventOrigin
    path_prefix: bytes = b""
    host: bytes | None = None  # None: the viewer's Host is kept
    custom_headers: tuple[tuple[bytes, bytes], ...] = ()
    forwards_headers: bool = True  # False for local origins: no X-Forwarded-* needed
    sees_viewer_host: bool = False  # the viewer's Host reaches it (keep_host, function origins)
    aliases: frozenset[str] = field(default_factory=frozenset)
    # An origin group: the secondary and the statuses that send a request to it.
    failover: tuple[Upstream, frozenset[int]] | None = None

    def target_for(self, path: bytes, query: bytes) -> bytes:
        target = self.path_prefix + path if self.path_prefix else path
        return target + b"?" + query if query else target

    def request_for(self, request: ViewerRequest, headers: Headers) -> OriginRequest:
        """What goes to this origin for `request`, carrying `headers`."""
        target = self.target_for(request.path, request.query)
        return OriginRequest(
            request.method, target, headers, request.body, request.content_length,
            request.client_ip, request.scheme, request.listener_port,
        )  # fmt: skip

    def outbound(self, request: ViewerRequest, headers: Headers, *, via: bytes) -> Outbound:
        """`request`, carrying `headers`, on its way here: with X-Forwarded-*, Via and this
        origin's Host where it forwards headers, without hop-by-hop fields. Custom headers are
        not among them yet: origin-request sees them in the event's origin, not as headers."""
        if not self.forwards_headers:
            return Outbound(self, strip_hop_by_hop(headers), self.event_origin)
        forwarded = forward_request_headers(
            headers,
            client_ip=request.client_ip,
            proto=request.scheme,
            via=via,
            host=self.host,
            forwarded_host=request.forward_host,
        )
        return Outbound(self, forwarded, self.event_origin)


@dataclass(slots=True)
class Outbound:
    """A request on its way to an origin: where it goes, the headers it goes with, and that
    origin as the origin triggers' events show it. origin-request may change all three."""

    upstream: Upstream
    headers: Headers
    event_origin: EventOrigin

    def add_custom_headers(self, trace: bytes) -> None:
        """Put the origin's custom headers (as the event's origin lists them, else as
        configured) in place of the headers of the same names, and `trace` as X-Amzn-Trace-Id
        (after origin-request, whose event shows only the viewer's own): the request is ready
        to go."""
        headers = [(k, v) for k, v in self.headers if k != b"x-amzn-trace-id"]
        headers.append((b"x-amzn-trace-id", trace))
        self.headers = headers
        described = self.event_origin
        custom: Headers | tuple[tuple[bytes, bytes], ...] = self.upstream.custom_headers
        if isinstance(described, CustomOrigin | S3Origin) and described.custom_headers:
            custom = headers_from_str(described.custom_headers)
        if custom:
            names = {name for name, _ in custom}
            self.headers = [(k, v) for k, v in self.headers if k not in names] + list(custom)


def secondary_after(upstream: Upstream, method: str, failure: int | OriginError) -> Upstream | None:
    """The origin to try next when `upstream` failed a request, or None.

    `failure` is the status it answered or the error it raised. Only an origin group's primary
    has a next one, only for GET, HEAD and OPTIONS, and only after a configured failover
    status, a connection failure or a timeout (CloudFront, lambda-edge-spec §5.7).
    """
    if upstream.failover is None or method not in FAILOVER_METHODS:
        return None
    secondary, statuses = upstream.failover
    if isinstance(failure, int):
        if failure not in statuses:
            return None
        logger.warning("origin group %s: primary answered %d; trying %s",
                       upstream.name, failure, secondary.name)  # fmt: skip
    else:
        logger.warning("origin group %s: primary failed (%s); trying %s",
                       upstream.name, failure, secondary.name)  # fmt: skip
    return secondary


def _http_upstream(name: str, settings: HttpOriginConfig) -> Upstream:
    http = HttpOrigin(
        name,
        settings.url,
        keep_host=settings.keep_host,
        headers=settings.headers,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_connections=settings.max_connections,
        max_upload_connections=settings.max_upload_connections,
        max_response_header_bytes=settings.max_response_header_bytes,
        max_response_header_fields=settings.max_response_header_fields,
    )
    described: EventOrigin = CustomOrigin(
        domain_name=settings.domain_name or http.hostname,
        port=http.port,
        protocol="https" if http.scheme == "https" else "http",
        path=http.path_prefix.decode("latin-1"),
        read_timeout_seconds=max(1, min(60, round(settings.read_timeout))),
        keepalive_timeout_seconds=5,
        custom_headers=tuple(settings.headers.items()),
    )
    aliases = {f"{http.hostname.lower()}:{http.port}"}
    if settings.origin_kind == "s3":
        # An S3-compatible server: an `s3` origin has no port, so its bare host names it too.
        described = S3Origin(
            domain_name=described.domain_name,
            region="us-east-1",
            auth_method="none",
            path=described.path,
            custom_headers=described.custom_headers,
        )
        aliases.add(described.domain_name.lower())
    if settings.domain_name:
        aliases.add(settings.domain_name.lower())
    return Upstream(
        name=name,
        origin=http,
        event_origin=described,
        path_prefix=http.path_prefix,
        host=None if settings.keep_host else http.host_header,
        custom_headers=tuple(http.custom_headers),
        aliases=frozenset(aliases),
        sees_viewer_host=settings.keep_host,
    )


def _directory_upstream(name: str, settings: DirectoryOriginConfig) -> Upstream:
    from origin_proxy import DirectoryOrigin

    described: EventOrigin
    if settings.origin_kind == "custom":
        # S3 website hosting: CloudFront reaches a bucket's website endpoint as a custom origin.
        domain = settings.domain_name or f"{name.lower()}.s3-website-us-east-1.amazonaws.com"
        described = CustomOrigin(domain_name=domain, port=80, protocol="http")
    else:
        domain = settings.domain_name or f"{name.lower()}.s3.us-east-1.amazonaws.com"
        described = S3Origin(domain_name=domain, region="us-east-1", auth_method="none")
    return Upstream(
        name=name,
        origin=DirectoryOrigin(
            name,
            settings.directory,
            index_document=settings.index_document,
            error_document=settings.error_document,
        ),
        event_origin=described,
        forwards_headers=False,
        aliases=frozenset({domain.lower()}),
    )


def _function_upstream(
    name: str, settings: FunctionOriginConfig, config: EdgeConfig, registry: FunctionRegistry
) -> Upstream:
    from edge.function_origin import FunctionOrigin

    function = config.functions[settings.function]
    domain = settings.domain_name or f"{name.lower()}.elb.localhost"
    return Upstream(
        name=name,
        origin=FunctionOrigin(
            name,
            settings.function,
            registry,
            multi_value=settings.multi_value_headers,
            target_group_arn=settings.target_group_arn,
            timeout_seconds=function.timeout,
        ),
        # Lambda@Edge events describe it as the custom origin an ALB would be.
        event_origin=CustomOrigin(domain_name=domain, port=80, protocol="http"),
        forwards_headers=False,
        aliases=frozenset({domain.lower()}),
        sees_viewer_host=True,  # the ALB event carries the Host header
    )


def build_upstreams(
    config: EdgeConfig, registry: FunctionRegistry | None = None
) -> dict[str, Upstream]:
    """One live origin per configured origin (HTTP clients are created, not yet connected).
    Function origins need the function registry."""
    upstreams: dict[str, Upstream] = {}
    for name, settings in config.origins.items():
        if isinstance(settings, HttpOriginConfig):
            upstreams[name] = _http_upstream(name, settings)
        elif isinstance(settings, DirectoryOriginConfig):
            upstreams[name] = _directory_upstream(name, settings)
        elif isinstance(settings, FunctionOriginConfig):
            if registry is None:
                raise ValueError(f"origin {name!r} is a function: a function registry is needed")
            upstreams[name] = _function_upstream(name, settings, config, registry)
    for name, settings in config.origins.items():
        if isinstance(settings, OriginGroupConfig):
            primary = upstreams[settings.primary]
            upstreams[name] = replace(
                primary,
                name=name,
                failover=(upstreams[settings.secondary], frozenset(settings.failover_statuses)),
            )
    return upstreams


def resolve_switched_origin(
    upstreams: MutableMapping[str, Upstream], described: EventOrigin
) -> Upstream:
    """The upstream an origin-request function switched to (lambda-edge-spec §1.5)."""
    domain = described.domain_name.lower().rstrip(".")
    port = described.port if isinstance(described, CustomOrigin) else None
    for upstream in upstreams.values():
        if domain in upstream.aliases or (port and f"{domain}:{port}" in upstream.aliases):
            return upstream
    if isinstance(described, S3Origin):
        url = f"https://{domain}{described.path}"
    else:
        url = f"{described.protocol}://{domain}:{described.port}{described.path}"
    key = f"ad-hoc:{url}"
    existing = upstreams.get(key)
    if existing is not None:
        return existing
    ad_hoc = [k for k in upstreams if k.startswith("ad-hoc:")]
    pushed_out: _AdHocOrigin | None = None
    if len(ad_hoc) >= _MAX_AD_HOC_ORIGINS:
        evicted = upstreams.pop(ad_hoc[0]).origin
        assert isinstance(evicted, _AdHocOrigin)
        pushed_out = evicted
    settings = HttpOriginConfig(url=url)
    if isinstance(described, CustomOrigin):
        settings = HttpOriginConfig(url=url, read_timeout=float(described.read_timeout_seconds))
    upstream = _http_upstream(key, settings)
    origin = _AdHocOrigin(
        upstream.origin, lambda: _http_upstream(key, settings).origin, pushed_out=pushed_out
    )
    upstreams[key] = upstream = replace(upstream, origin=origin)
    return upstream


class _AdHocOrigin:
    """The client of an origin a function switched to and nobody configured.

    Pushed out of the few kept, it is retired by the one that took its place, from the first
    request to that one (the request that switched to it, on its way out) or when that one
    closes. Retired, it is closed once no request uses it: a request still reading its answer
    keeps it open until that answer is closed. A request that held it across the closing
    (asking again for a whole response after a 304) gets a new client, closed the same way."""

    def __init__(
        self,
        client: Origin,
        connect: Callable[[], Origin],
        *,
        pushed_out: _AdHocOrigin | None = None,
    ) -> None:
        self.name = client.name
        self._connect = connect
        self._client: Origin | None = client
        self._in_use = 0
        self._retired = False
        self._pushed_out = pushed_out

    async def fetch(self, request: OriginRequest) -> OriginResponse:
        if self._pushed_out is not None:
            pushed_out, self._pushed_out = self._pushed_out, None
            await pushed_out.retire()
        client = self._client
        if client is None:
            client = self._client = self._connect()
        self._in_use += 1
        try:
            response = await client.fetch(request)
        except BaseException:
            await self._release()
            raise
        close = response.close
        released = False

        async def close_and_release() -> None:
            nonlocal released
            try:
                await close()
            finally:
                if not released:
                    released = True
                    await self._release()

        response.close = close_and_release
        return response

    async def _release(self) -> None:
        self._in_use -= 1
        if self._retired and self._in_use == 0:
            await self.aclose()

    async def retire(self) -> None:
        """No new request will come: close now, or when the last one using it is done."""
        self._retired = True
        if self._in_use == 0:
            await self.aclose()

    async def aclose(self) -> None:
        if self._pushed_out is not None:
            pushed_out, self._pushed_out = self._pushed_out, None
            await pushed_out.retire()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


async def close_upstreams(upstreams: Mapping[str, Upstream]) -> None:
    for upstream in upstreams.values():
        await upstream.origin.aclose()


# -- CloudFront Functions' origin helpers (2.0, viewer-request) -------------------------------

# The statuses an origin group may fail over on (as `[origins.X] failover_statuses`).
_GROUP_FAILOVER_STATUSES = frozenset({400, 403, 404, 416, 500, 502, 503, 504})
# updateRequestOrigin's settings this edge applies; the others are logged and ignored.
_UPDATE_KEYS = frozenset(
    {"domainName", "originPath", "customHeaders", "customOriginConfig", "timeouts"}
)


class OriginChangeRefused(Exception):
    """A CloudFront Function's origin helper call cannot be applied (an unknown origin id, a
    setting of the wrong kind): the function fails, as CloudFront fails it."""


def apply_origin_ops(
    upstreams: MutableMapping[str, Upstream],
    current: Upstream,
    ops: tuple[Mapping[str, object], ...],
) -> Upstream:
    """The upstream for this request after a CloudFront Function's calls of
    `cf.selectRequestOriginById`, `cf.updateRequestOrigin` and `cf.createRequestOriginGroup`,
    applied in order to `current` (the behavior's origin). Origin ids are `[origins.NAME]`
    names. The result is this request's own: nothing configured changes."""
    for op in ops:
        kind = op.get("op")
        if kind == "select":
            current = _configured_origin(upstreams, op.get("id"))
        elif kind == "group":
            current = _request_group(upstreams, op)
        elif kind == "update":
            params = op.get("params")
            if not isinstance(params, Mapping):
                raise OriginChangeRefused("updateRequestOrigin(params): params must be an object")
            if current.failover is not None:  # a group: only its primary is updated
                primary = _updated_origin(upstreams, replace(current, failover=None), params)
                current = replace(primary, failover=current.failover)
            else:
                current = _updated_origin(upstreams, current, params)
        else:
            raise OriginChangeRefused(f"unknown origin operation {kind!r}")
    return current


def origin_cache_variant(upstream: Upstream) -> bytes:
    """What sets apart, in the cache key, answers from an origin a function chose: its name
    and settings (so two origins never share what they answered for the same URL)."""
    return f"{upstream.name}\n{upstream.event_origin!r}\n{upstream.path_prefix!r}".encode()


def _configured_origin(upstreams: Mapping[str, Upstream], origin_id: object) -> Upstream:
    if not isinstance(origin_id, str) or origin_id.startswith("ad-hoc:"):
        raise OriginChangeRefused(
            f"origin id must be a configured origin's name, not {origin_id!r}"
        )
    found = upstreams.get(origin_id)
    if found is None:
        configured = ", ".join(sorted(k for k in upstreams if not k.startswith("ad-hoc:")))
        raise OriginChangeRefused(
            f"no origin with id {origin_id!r} (the configured origins: {configured})"
        )
    return found


def _request_group(upstreams: Mapping[str, Upstream], op: Mapping[str, object]) -> Upstream:
    ids = op.get("originIds")
    codes = op.get("statusCodes")
    if not isinstance(ids, list) or len(ids) != 2:
        raise OriginChangeRefused("createRequestOriginGroup: originIds must list two origin ids")
    if not isinstance(codes, list) or not codes:
        raise OriginChangeRefused("createRequestOriginGroup: failoverCriteria.statusCodes is empty")
    wrong = [c for c in codes if c not in _GROUP_FAILOVER_STATUSES]
    if wrong:
        allowed = ", ".join(map(str, sorted(_GROUP_FAILOVER_STATUSES)))
        raise OriginChangeRefused(
            f"createRequestOriginGroup: cannot fail over on {wrong} (allowed: {allowed})"
        )
    selection = op.get("selectionCriteria")
    if selection not in (None, "default"):
        logger.warning(
            "createRequestOriginGroup: selectionCriteria %r is not supported here; ignored "
            "(the first origin is the primary)",
            selection,
        )
    primary = _configured_origin(upstreams, ids[0])
    secondary = _configured_origin(upstreams, ids[1])
    return replace(
        primary,
        name=f"{primary.name}+{secondary.name}",
        failover=(secondary, frozenset(int(c) for c in codes)),
    )


def _updated_origin(
    upstreams: MutableMapping[str, Upstream], current: Upstream, params: Mapping[str, object]
) -> Upstream:
    for key in params:
        if key not in _UPDATE_KEYS:
            logger.warning("updateRequestOrigin: %r is not supported here; ignored", key)
    described = current.event_origin
    domain = params.get("domainName")
    if domain is not None and (not isinstance(domain, str) or not domain or "/" in domain):
        raise OriginChangeRefused(
            f"updateRequestOrigin: domainName must be a host name, not {domain!r}"
        )
    path = params.get("originPath", described.path)
    if not isinstance(path, str) or (path and (not path.startswith("/") or path.endswith("/"))):
        raise OriginChangeRefused(
            "updateRequestOrigin: originPath must start with '/' and not end with one, "
            f"not {path!r}"
        )
    headers = params.get("customHeaders")
    custom = described.custom_headers
    if headers is not None:
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise OriginChangeRefused(
                "updateRequestOrigin: customHeaders must map names to strings"
            )
        custom = tuple(headers.items())
    origin_config = params.get("customOriginConfig") or {}
    timeouts = params.get("timeouts") or {}
    if not isinstance(origin_config, Mapping) or not isinstance(timeouts, Mapping):
        raise OriginChangeRefused(
            "updateRequestOrigin: customOriginConfig and timeouts are objects"
        )
    for key in origin_config:
        if key not in ("port", "protocol"):
            logger.warning(
                "updateRequestOrigin: customOriginConfig.%s is not supported here; ignored", key
            )
    for key in timeouts:
        if key != "readTimeout":
            logger.warning("updateRequestOrigin: timeouts.%s is not supported here; ignored", key)
    port = origin_config.get("port")
    protocol = origin_config.get("protocol")
    read_timeout = timeouts.get("readTimeout")
    if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
        raise OriginChangeRefused(f"updateRequestOrigin: port must be 1 to 65535, not {port!r}")
    if protocol not in (None, "http", "https"):
        raise OriginChangeRefused(
            f"updateRequestOrigin: protocol must be http or https, not {protocol!r}"
        )
    if read_timeout is not None and (
        not isinstance(read_timeout, int) or not 1 <= read_timeout <= 120
    ):
        raise OriginChangeRefused(
            "updateRequestOrigin: timeouts.readTimeout must be 1 to 120 seconds"
        )
    if domain is None and port is None and protocol is None:
        if read_timeout is not None:
            logger.warning(
                "updateRequestOrigin: timeouts.readTimeout applies to a new domainName only; "
                "ignored"
            )
        target = current
        new_described: EventOrigin = replace(described, path=path, custom_headers=custom)
    else:
        base = (
            described
            if isinstance(described, CustomOrigin)
            else CustomOrigin(described.domain_name)
        )
        new_described = replace(
            base,
            domain_name=domain if isinstance(domain, str) else base.domain_name,
            port=port if isinstance(port, int) else base.port,
            protocol="http"
            if protocol == "http"
            else "https"
            if protocol == "https"
            else base.protocol,
            path=path,
            read_timeout_seconds=read_timeout
            if isinstance(read_timeout, int)
            else base.read_timeout_seconds,
            custom_headers=custom,
        )
        target = resolve_switched_origin(upstreams, new_described)
    return replace(
        target,
        event_origin=new_described,
        path_prefix=path.encode("utf-8"),
        custom_headers=tuple(headers_from_str(custom)),
    )
