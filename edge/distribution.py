"""The distribution as the journey serves it: behaviors ready to match, each with its allowed
methods, origin, functions and cache policy (CloudFront's cache behaviors)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.behaviors import METHOD_SETS, PathMatcher
from edge.caching import keyed_host, policy_for
from edge.config import BehaviorConfig, CachePolicyConfig, EdgeConfig, FunctionAssociation
from edge.origins import Upstream
from origin_proxy.cache import CachePolicy


@dataclass(frozen=True, slots=True)
class Behavior:
    """A behavior ready to serve: its pattern, methods, upstream, functions and cache policy."""

    path: str
    methods: frozenset[str] | None  # None: any method
    upstream: Upstream
    viewer_request: FunctionAssociation | None = None
    origin_request: FunctionAssociation | None = None
    origin_response: FunctionAssociation | None = None
    viewer_response: FunctionAssociation | None = None
    policy: CachePolicy = field(default_factory=CachePolicy.rfc9111)
    forward_host: bool = True  # X-Forwarded-Host to the origin (see edge.caching.keyed_host)
    # CloudFront's ViewerProtocolPolicy: "allow-all", "redirect-to-https" or "https-only".
    protocol_policy: str = "allow-all"
    # CloudFront-Forwarded-Proto is added after viewer-request (the cache policy lists it).
    forwarded_proto: bool = False

    @property
    def has_functions(self) -> bool:
        return bool(
            self.viewer_request
            or self.origin_request
            or self.origin_response
            or self.viewer_response
        )


def build_behaviors(
    config: EdgeConfig, upstreams: Mapping[str, Upstream], *, functions: bool
) -> PathMatcher[Behavior]:
    """The configured behaviors in their order, matched by path pattern. `functions`: whether
    a function runtime runs the triggers (a behavior with functions needs one)."""
    built = [_behavior(b, upstreams, config.server.name) for b in config.behaviors]
    for behavior in built:
        if behavior.has_functions and not functions:
            raise ValueError(f"behavior {behavior.path!r} has functions but no function runtime")
    return PathMatcher([(behavior.path, behavior) for behavior in built])


def _behavior(behavior: BehaviorConfig, upstreams: Mapping[str, Upstream], name: str) -> Behavior:
    upstream = upstreams[behavior.origin]
    policy, forward_host = keyed_host(
        policy_for(behavior, device=name),
        rfc9111=behavior.cache == "rfc9111",
        forwards_headers=upstream.forwards_headers,
        sees_viewer_host=upstream.sees_viewer_host,
    )
    return Behavior(
        behavior.path,
        METHOD_SETS[behavior.methods],
        upstream,
        viewer_request=behavior.association("viewer-request"),
        origin_request=behavior.association("origin-request"),
        origin_response=behavior.association("origin-response"),
        viewer_response=behavior.association("viewer-response"),
        policy=policy,
        forward_host=forward_host,
        protocol_policy=behavior.viewer_protocol_policy,
        forwarded_proto=isinstance(behavior.cache, CachePolicyConfig)
        and any(name.lower() == "cloudfront-forwarded-proto" for name in behavior.cache.headers),
    )
