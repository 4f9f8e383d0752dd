"""OpenTelemetry spans of the edge's requests (`[tracing]`), exported over OTLP/HTTP.

Imported only when `[tracing] otlp_endpoint` is set: without it the edge makes no span and
pays nothing for tracing but its X-Amzn-Trace-Id. With it, each viewer request is a SERVER
span whose trace id is its X-Amzn-Trace-Id's Root (X-Ray's `1-<8 hex>-<24 hex>` is 128 bits,
as OpenTelemetry's trace id), a child of the viewer's `Parent` when it sent one; under it, one
span per function trigger, the cache lookup and the origin fetch (CLIENT). Spans leave in
batches from a background thread (the SDK's BatchSpanProcessor).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace import Span as OtelSpan

from edge.config import TracingConfig
from edge.traces import preset_trace, root_of, viewer_trace

# The trace id the next root span takes (the request's X-Amzn-Trace-Id Root).
_next_trace_id: ContextVar[int | None] = ContextVar("edge_next_trace_id", default=None)


class _TraceIds(RandomIdGenerator):
    """Span ids at random; a request span's trace id from its X-Amzn-Trace-Id."""

    def generate_trace_id(self) -> int:
        wanted = _next_trace_id.get()
        return wanted if wanted is not None else super().generate_trace_id()


def trace_id_of(header: str) -> int | None:
    """The 128-bit trace id of an X-Amzn-Trace-Id value's Root, or None."""
    root = root_of(header)
    if root is None:
        return None
    parts = root.split("-")
    if len(parts) != 3 or len(parts[1]) != 8 or len(parts[2]) != 24:
        return None
    try:
        return int(parts[1] + parts[2], 16) or None
    except ValueError:
        return None


def _remote_parent(header: str, trace_id: int) -> Any:
    """A context whose parent is the viewer's `Parent` span (X-Ray's 16 hex digits), or None."""
    fields = dict(part.strip().partition("=")[::2] for part in header.split(";"))
    parent = fields.get("Parent", "")
    if len(parent) != 16:
        return None
    try:
        span_id = int(parent, 16)
    except ValueError:
        return None
    if not span_id:
        return None
    sampled = trace.TraceFlags(0 if fields.get("Sampled") == "0" else 1)
    remote = SpanContext(trace_id, span_id, is_remote=True, trace_flags=sampled)
    return trace.set_span_in_context(NonRecordingSpan(remote))


class Spans:
    """The edge's tracer: `request(...)` opens a request's span, `span(...)` a child of the
    current one. `shutdown()` sends what is left."""

    def __init__(self, config: TracingConfig, *, exporter: Any = None) -> None:
        assert config.otlp_endpoint is not None
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            id_generator=_TraceIds(),
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=config.otlp_endpoint))
        )
        self.tracer = self.provider.get_tracer("edge")

    @contextlib.contextmanager
    def request(self, method: str, trace_header: str) -> Iterator[OtelSpan]:
        """A viewer request's span (current until the block ends), in `trace_header`'s trace."""
        trace_id = trace_id_of(trace_header)
        parent = _remote_parent(trace_header, trace_id) if trace_id is not None else None
        token = _next_trace_id.set(trace_id)
        try:
            span = self.tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
        finally:
            _next_trace_id.reset(token)
        attached = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield span
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            otel_context.detach(attached)
            span.end()

    @contextlib.contextmanager
    def span(
        self, name: str, *, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any
    ) -> Iterator[OtelSpan]:
        """A child span of the current one for the block; an exception marks it failed."""
        with self.tracer.start_as_current_span(
            name, kind=kind, attributes=attributes, record_exception=True
        ) as span:
            yield span

    def shutdown(self) -> None:
        self.provider.shutdown()


def make_spans(config: TracingConfig) -> Spans | None:
    """The tracer `config` asks for, or None (tracing off)."""
    return Spans(config) if config.otlp_endpoint is not None else None


# -- the traced journey ----------------------------------------------------------------------
# Subclasses the edge uses instead of its plain viewer and pipeline when tracing is on: the
# plain ones carry no tracing code at all.


def traced_viewer(base: type) -> type:
    """`base` (the viewer adapter's class) opening a request span around every request."""

    class TracedViewer(base):  # type: ignore[misc]
        spans: Spans

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            header = viewer_trace(list(scope.get("headers") or ()))
            token = preset_trace.set(header)  # the request takes this trace (`trace()`)
            try:
                with self.spans.request(scope.get("method", "GET"), header):
                    await super().__call__(scope, receive, send)
            finally:
                preset_trace.reset(token)

        def finish(self, served: Any, request: Any) -> None:
            span = trace.get_current_span()
            behavior = "-" if request is None else request.behavior
            span.update_name(f"{served.method} {behavior}")
            span.set_attributes(
                {
                    "http.request.method": served.method,
                    "url.path": served.path,
                    "http.response.status_code": served.status,
                    "client.address": served.client_ip,
                    "edge.behavior": behavior,
                    "edge.origin": "-" if request is None else request.origin,
                    "edge.x_cache": served.result,
                    "edge.request_id": served.request_id,
                }
            )
            if served.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            super().finish(served, request)

    return TracedViewer


def traced_pipeline(base: type) -> type:
    """`base` (the journey's class) with spans for the cache lookup and the origin fetch."""

    class TracedPipeline(base):  # type: ignore[misc]
        spans: Spans

        async def _lookup(self, cache: Any, behavior: Any, request: Any) -> Any:
            with self.spans.span("cache lookup", **{"edge.behavior": behavior.path}):
                return await super()._lookup(cache, behavior, request)

        async def _fetch(self, upstream: Any, request: Any, headers: Any) -> Any:
            with self.spans.span(
                f"origin {upstream.name}", kind=SpanKind.CLIENT, **{"edge.origin": upstream.name}
            ) as span:
                answer = await super()._fetch(upstream, request, headers)
                span.set_attribute("http.response.status_code", answer.status)
                return answer

    return TracedPipeline
