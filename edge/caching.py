"""Building the CDN cache and each behavior's cache policy from the configuration."""

from __future__ import annotations

from dataclasses import replace

from edge.config import BehaviorConfig, CacheConfig, CachePolicyConfig
from origin_proxy.cache import CachePolicy, CacheStore, Collapser, HttpCache, SharedTier


def build_cache(config: CacheConfig, shared: SharedTier | None = None) -> HttpCache:
    """The store (memory, optional disk tier) with request collapsing; `shared`: the second
    tier several nodes share (`edge.shared_cache`)."""
    store = CacheStore(
        memory_bytes=config.memory_bytes,
        disk_directory=config.disk_directory,
        disk_bytes=config.disk_bytes if config.disk_directory is not None else 0,
        memory_object_max_bytes=config.memory_object_max_bytes,
    )
    return HttpCache(store, collapser=Collapser(wait_seconds=config.collapse_wait), shared=shared)


def keyed_host(
    policy: CachePolicy, *, rfc9111: bool, forwards_headers: bool, sees_viewer_host: bool
) -> tuple[CachePolicy, bool]:
    """(the policy with the viewer's Host in its key where the Host can reach the origin,
    whether X-Forwarded-Host is sent).

    Whatever of the viewer's request reaches the origin must be in the key, or one viewer
    decides what the cache hands to every other. The Host reaches the origin as Host
    (`keep_host`, a function origin's event) or as X-Forwarded-Host. RFC 9111 §2 keys on the
    whole target URI, authority included: the plain policy keys on the Host and tells the
    origin. CloudFront's policies key on it only when listed in `headers`, and then tell the
    origin (CloudFront sends no X-Forwarded-Host otherwise). A policy that stores nothing
    cannot be poisoned: the origin is told.
    """
    if not policy.enabled:
        return policy, True
    forward = forwards_headers and (rfc9111 or "host" in policy.headers)
    if (forward or sees_viewer_host) and "host" not in policy.headers:
        policy = replace(policy, headers=(*policy.headers, "host"))
    return policy, forward


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
        # CloudFront: the cookies outside the key do not reach the origin.
        keyed_cookies_only=True,
        store_set_cookie=setting.cache_set_cookie,
    )
