"""One viewer request's journey, in CloudFront's order (lambda-edge-spec §5), top to bottom.

1. The behavior: the first whose path pattern matches the path's normal form. It refuses a
   method outside its set, a GET or HEAD with a body (403) and a declared body over the
   limit (413).
2. viewer-request: may change the request, or answer itself; a generated answer goes
   straight to the viewer, uncached, and nothing else runs.
3. The cache, when the behavior's policy stores anything: a hit (fresh, or stale where
   allowed) skips the origin side (4 to 6); only-if-cached with nothing stored is a 504.
4. origin-request: sees the request as it is about to go to the origin; may change it,
   switch the origin, or answer itself (then the origin and origin-response are skipped, and
   the answer is cached as the origin's would be).
5. The origin. An origin group's primary that fails a GET, HEAD or OPTIONS (a configured
   status, no connection, a timeout) hands it to the secondary: origin-request runs again
   with the secondary as the event's origin. The cache then judges the answer: a 304 or a
   HEAD's 200 freshens the stored response (RefreshHit), a stale copy may stand in for an
   error (also when the origin cannot be reached).
6. origin-response: runs for every origin answer, errors included; then the cache keeps what
   it left, streaming the body into the store as the viewer reads it.
7. viewer-response, for hits and misses, not when the status is >= 400 (judged on the final
   status) nor for viewer-request's own answer (which returned at 2).

The wire (reading the request, writing the answer, error pages, the access log) is the viewer
adapter's (`edge.viewer`); what a trigger's event shows and how its result applies is
`edge.hooks`'; the cache's rules are `origin_proxy.cache`'s; an origin group's failover rule
is beside the origins (`edge.origins`). Failures raise, and `edge.failures` maps them once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import replace

from edge.config import EdgeConfig
from edge.distribution import Behavior, build_behaviors
from edge.exchange import Answer, ViewerRequest, drain
from edge.hooks import Hooks
from edge.metrics import ProxyMetrics
from edge.origins import Upstream, origin_cache_variant, secondary_after
from edge.triggers import TriggerRunner
from edge.viewer.admission import https_answer, refuse_for_behavior, with_forwarded_proto
from origin_proxy import Headers, OriginError, via_value, without_hop_by_hop
from origin_proxy.cache import (
    HttpCache,
    Lookup,
    Next,
    Outcome,
    announce_surrogate,
    without_validators,
)

logger = logging.getLogger("edge.pipeline")


class Pipeline:
    """The journey of every viewer request: `await pipeline(request)` gives its answer."""

    def __init__(
        self,
        config: EdgeConfig,
        upstreams: dict[str, Upstream],
        *,
        metrics: ProxyMetrics,
        triggers: TriggerRunner | None = None,
        cache: HttpCache | None = None,
    ) -> None:
        self.cache = cache
        self.metrics = metrics
        self.hooks = (
            Hooks(triggers, upstreams, via=via_value(config.server.name))
            if triggers is not None
            else None
        )
        self.behaviors = build_behaviors(config, upstreams, functions=triggers is not None)
        self.via = via_value(config.server.name)
        self.max_body_bytes = config.server.max_body_bytes
        # The port a redirect-to-https behavior sends viewers to.
        self.https_port = 443
        # Background work (stale-while-revalidate refreshes): the app's lifespan sets it.
        self.background: asyncio.TaskGroup | None = None

    async def __call__(self, request: ViewerRequest) -> Answer:
        # 1. The behavior, and what it refuses.
        behavior = self.behaviors.match(request.normal_path)
        assert behavior is not None  # the default behavior matches everything
        request.behavior = behavior.path
        request.origin = behavior.upstream.name
        request.forward_host = behavior.forward_host
        methods = behavior.methods
        if (
            (methods is not None and request.method not in methods)
            or request.body is not None
            or request.content_length is not None
        ):
            refuse_for_behavior(
                request.method,
                methods,
                has_body=request.body is not None,
                content_length=request.content_length,
                max_body_bytes=self.max_body_bytes,
            )
        if behavior.protocol_policy != "allow-all" and request.scheme != "https":
            return https_answer(behavior.protocol_policy, request, self.https_port)
        hooks = self.hooks

        # 2. viewer-request. Its own answer goes straight to the viewer: nothing else runs.
        if behavior.viewer_request is not None:
            assert hooks is not None
            generated = await hooks.viewer_request(behavior.viewer_request, request)
            if generated is not None:
                return generated
        if behavior.forwarded_proto:
            request.headers = with_forwarded_proto(request.headers, request.scheme)

        # 3. The cache. A hit skips origin-request, the origin and origin-response.
        cache = self.cache
        look: Lookup | None = None
        answer: Answer | None = None
        if cache is not None and behavior.policy.enabled:
            look = await self._lookup(cache, behavior, request)
        try:
            if cache is not None and look is not None:
                stored = cache.serve(look)
                if stored is not None:
                    answer = Answer.of(stored, "Hit")
                    if look.refresh:
                        self._refresh_later(behavior, request, look)
                elif look.outcome is Outcome.GATEWAY_TIMEOUT:
                    # RFC 9111 §5.2.1.7: only-if-cached, and nothing usable is stored.
                    answer = Answer.text(
                        504, b"Gateway Timeout", b"504 only-if-cached: not cached\n"
                    )
            if answer is None:
                upstream = request.chosen_upstream or behavior.upstream
                answer = await self._origin_side(behavior, request, look, upstream)
        finally:
            if look is not None:
                look.release()

        # 7. viewer-response: not for errors (judged on the final status, §5 [inferred]).
        if behavior.viewer_response is not None and answer.status < 400:
            assert hooks is not None
            answer = await hooks.viewer_response(behavior.viewer_response, request, answer)
        return answer

    async def _origin_side(
        self, behavior: Behavior, request: ViewerRequest, look: Lookup | None, upstream: Upstream
    ) -> Answer:
        """Steps 4 to 6 with `upstream`: origin-request, the origin, origin-response, the
        cache's part in each."""
        cache = self.cache
        forward = request.headers if look is None else look.forward_headers
        outbound = upstream.outbound(request, forward, via=self.via)
        # An origin group's secondary gets the request as it was before origin-request.
        untouched = replace(request) if upstream.failover is not None else None

        # 4. origin-request. Its own answer skips the origin and origin-response.
        if behavior.origin_request is not None:
            assert self.hooks is not None
            generated = await self.hooks.origin_request(behavior.origin_request, request, outbound)
            if generated is not None:
                return self._keep(look, request, generated)

        # 5. The origin; a failing group primary hands over to the secondary (4 runs again).
        outbound.add_custom_headers(request.trace().encode("latin-1"))
        if look is not None:
            outbound.headers = announce_surrogate(look.policy, outbound.headers)
        try:
            answer = await self._fetch(outbound.upstream, request, outbound.headers)
        except OriginError as exc:
            if untouched is not None:
                secondary = secondary_after(outbound.upstream, request.method, exc)
                if secondary is not None:
                    return await self._origin_side(behavior, untouched, look, secondary)
            stale = None if cache is None or look is None else cache.stale_on_error(look)
            if stale is None:
                raise
            return Answer.of(stale, "Hit")  # RFC 5861 §4: stale-if-error
        if untouched is not None:
            secondary = secondary_after(outbound.upstream, request.method, answer.status)
            if secondary is not None:
                await answer.close()
                return await self._origin_side(behavior, untouched, look, secondary)
        if cache is not None and look is not None:
            verdict = cache.on_origin_answer(look, answer.status, answer.headers)
            if verdict.response is not None:  # the stored response answers instead
                await answer.close()
                refreshed = verdict.next is Next.REFRESHED
                return Answer.of(verdict.response, "RefreshHit" if refreshed else "Hit")
            if verdict.next is Next.REFETCH:
                await answer.close()
                answer = await self._fetch(
                    outbound.upstream, request, without_validators(outbound.headers)
                )

        # 6. origin-response, then the cache keeps what it left.
        if behavior.origin_response is not None:
            assert self.hooks is not None
            answer = await self.hooks.origin_response(
                behavior.origin_response, request, outbound, answer
            )
        return self._keep(look, request, answer)

    def _lookup(
        self, cache: HttpCache, behavior: Behavior, request: ViewerRequest
    ) -> Awaitable[Lookup]:
        """The cache's lookup for `request` (its awaitable: no coroutine of this method's own
        on the hit path; `edge.otel` wraps it in a span)."""
        chosen = request.chosen_upstream
        return cache.lookup(
            behavior.policy,
            request.method,
            request.path,
            request.query,
            request.headers,
            origin_cache_variant(chosen) if chosen is not None else b"",
        )

    async def _fetch(self, upstream: Upstream, request: ViewerRequest, headers: Headers) -> Answer:
        asked = time.perf_counter()
        response = await upstream.origin.fetch(upstream.request_for(request, headers))
        self.metrics.record_origin(upstream.name, time.perf_counter() - asked)
        return Answer(
            response.status,
            without_hop_by_hop(response.headers),  # a list of the origin's own
            response.body,
            "Error" if response.status >= 400 else "Miss",
            response.reason,
            response.close,
        )

    def _keep(self, look: Lookup | None, request: ViewerRequest, answer: Answer) -> Answer:
        """What the cache makes of the answer: its headers as they go on, its body streamed
        into the store when stored."""
        if self.cache is not None and look is not None:
            answer.headers, writer = self.cache.keep(
                look, request.path, answer.status, answer.reason, answer.headers
            )
            if writer is not None:
                answer.body = writer.tee(answer.body)
                answer.storing = True
        return answer

    # -- stale-while-revalidate ------------------------------------------------------------

    def _refresh_later(self, behavior: Behavior, request: ViewerRequest, look: Lookup) -> None:
        """Refresh the stored response in the background, as a miss would fetch it (this request
        was handed the flight; the others keep being served stale meanwhile)."""
        tasks = self.background
        if tasks is None or self.cache is None:
            return
        refresh = self.cache.refresh_of(look)
        tasks.create_task(self._refresh(behavior, request.for_refresh(), refresh))

    async def _refresh(self, behavior: Behavior, request: ViewerRequest, look: Lookup) -> None:
        # The origin side as a miss would run it (origin-request, the origin, origin-response,
        # the store); the answer is only drained: that is what stores it.
        try:
            upstream = request.chosen_upstream or behavior.upstream
            answer = await self._origin_side(behavior, request, look, upstream)
            try:
                await drain(answer.body)
            finally:
                await answer.close()
        except Exception as exc:  # noqa: BLE001 - a failed refresh keeps serving the stale copy
            logger.warning(
                "request %s: background refresh of %s failed: %r", request.id, request.path, exc
            )
        finally:
            look.release()
