"""Building the CDN cache and each behavior's cache policy from the configuration."""

from __future__ import annotations

from dataclasses import replace

from edge.config import BehaviorConfig, CacheConfig, CachePolicyConfig
from origin_proxy.cache.collapse import Collapser
from origin_proxy.cache.layer import HttpCache
from origin_proxy.cache.policy import CachePolicy
from origin_proxy.cache.store import CacheStore


def build_cache(config: CacheConfig) -> HttpCache:
    """The store (memory, optional disk tier) with request collapsing."""
    store = CacheStore(
        memory_bytes=config.memory_bytes,
        disk_directory=config.disk_directory,
        disk_bytes=config.disk_bytes if config.disk_directory is not None else 0,
        memory_object_max_bytes=config.memory_object_max_bytes,
    )
    return HttpCache(store, collapser=Collapser(wait_seconds=config.collapse_wait))


def policy_for(behavior: BehaviorConfig, *, device: str = "edge") -> CachePolicy:
    """The behavior's cache policy (CloudFront's managed policies by name, or its own).
    `device` is the name Surrogate-Control directives target this cache by (the server's)."""
    return replace(_policy(behavior), surrogate_device=device)


def _policy(behavior: BehaviorConfig) -> CachePolicy:
    setting = behavior.cache
    if setting == "rfc9111":
        # A plain shared cache: the whole URI, query included, is the key (RFC 9111 §2).
        return replace(CachePolicy.rfc9111(), query_strings="all")
    if setting == "caching-optimized":
        return CachePolicy.caching_optimized()
    if setting == "disabled":
        return CachePolicy.caching_disabled()
    assert isinstance(setting, CachePolicyConfig)
    queries = setting.query_strings
    cookies = setting.cookies
    return CachePolicy(
        name=f"behavior {behavior.path}",
        min_ttl=setting.min_ttl,
        default_ttl=setting.default_ttl,
        max_ttl=setting.max_ttl,
        query_strings="list" if isinstance(queries, list) else queries,
        query_string_names=tuple(queries) if isinstance(queries, list) else (),
        headers=tuple(name.lower() for name in setting.headers),
        cookies="list" if isinstance(cookies, list) else cookies,
        cookie_names=tuple(cookies) if isinstance(cookies, list) else (),
        compress=setting.compress,
        serve_stale_on_error=setting.serve_stale_on_error,
    )
