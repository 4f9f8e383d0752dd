"""Building the configured origins, and what the pipeline needs to know to address each one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from edge.config import DirectoryOriginConfig, EdgeConfig, HttpOriginConfig
from origin_proxy.client import HttpOrigin
from origin_proxy.message import OriginRequest, OriginResponse


class Origin(Protocol):
    name: str

    async def fetch(self, request: OriginRequest) -> OriginResponse: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Upstream:
    """An origin and how requests are addressed to it."""

    name: str
    origin: Origin
    path_prefix: bytes = b""
    host: bytes | None = None  # None: the viewer's Host is kept
    custom_headers: tuple[tuple[bytes, bytes], ...] = ()
    forwards_headers: bool = True  # False for local origins: no X-Forwarded-* needed

    def target_for(self, path: bytes, query: bytes) -> bytes:
        target = self.path_prefix + path if self.path_prefix else path
        return target + b"?" + query if query else target


def build_upstreams(config: EdgeConfig) -> dict[str, Upstream]:
    """One live origin per configured origin (HTTP clients are created, not yet connected)."""
    upstreams: dict[str, Upstream] = {}
    for name, settings in config.origins.items():
        if isinstance(settings, HttpOriginConfig):
            http = HttpOrigin(
                name,
                settings.url,
                keep_host=settings.keep_host,
                headers=settings.headers,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                max_connections=settings.max_connections,
            )
            upstreams[name] = Upstream(
                name=name,
                origin=http,
                path_prefix=http.path_prefix,
                host=None if settings.keep_host else http.host_header,
                custom_headers=tuple(http.custom_headers),
            )
        elif isinstance(settings, DirectoryOriginConfig):
            from origin_proxy.directory import DirectoryOrigin

            upstreams[name] = Upstream(
                name=name,
                origin=DirectoryOrigin(
                    name,
                    settings.directory,
                    index_document=settings.index_document,
                    error_document=settings.error_document,
                ),
                forwards_headers=False,
            )
    return upstreams


async def close_upstreams(upstreams: Mapping[str, Upstream]) -> None:
    for upstream in upstreams.values():
        await upstream.origin.aclose()
