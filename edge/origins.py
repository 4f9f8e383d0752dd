"""Building the configured origins, and what the pipeline needs to know to address each one.

Each origin is also described the way a Lambda@Edge origin event shows it: an HTTP origin as
`origin.custom`, a directory origin as `origin.s3` (it plays an S3 bucket), unless the origin's
`origin_kind` says the other. When an
origin-request function switches origins, the new description is matched against the
configured origins by domain name; an unknown custom origin gets a client of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
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
from edge.functions import FunctionRegistry
from origin_proxy.client import HttpOrigin
from origin_proxy.message import OriginRequest, OriginResponse

# Switched-to origins nobody configured: a few clients are kept for reuse.
_MAX_AD_HOC_ORIGINS = 32


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
    from origin_proxy.directory import DirectoryOrigin

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
    if len(ad_hoc) >= _MAX_AD_HOC_ORIGINS:
        upstreams.pop(ad_hoc[0])  # the client is closed with the app; its pool idles out
    settings = HttpOriginConfig(url=url)
    if isinstance(described, CustomOrigin):
        settings = HttpOriginConfig(url=url, read_timeout=float(described.read_timeout_seconds))
    upstream = _http_upstream(key, settings)
    upstreams[key] = upstream
    return upstream


async def close_upstreams(upstreams: Mapping[str, Upstream]) -> None:
    for upstream in upstreams.values():
        await upstream.origin.aclose()
