"""Running one Lambda@Edge trigger: build the event, invoke the function, decode the result.

Every failure comes out as `TriggerFailed`, carrying the trigger, the function and the cause
(a sandbox error or a `LambdaValidationError`), so `edge.failures` can map it to CloudFront's
status and tell the author what to fix.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from edge.config import EdgeConfig, FunctionAssociation
from edge.events import (
    EventConfig,
    EventType,
    LambdaValidationError,
    Request,
    Response,
    ValidationPolicy,
    build_event,
    decode_result,
)
from edge.events.cloudfront_functions import (
    FunctionEventType,
    FunctionValidationError,
    build_function_event,
    decode_function_result,
)
from edge.events.cloudfront_result import Outcome
from edge.functions import LATEST, FunctionRegistry
from edge.invoke.names import function_arn
from edge.lambda_service import NotFound
from sandbox import FunctionCodeInvalid, FunctionThrottled, InvocationResult, SandboxError

logger = logging.getLogger("edge.functions")


class FunctionMetricsSink(Protocol):
    def record_function(
        self,
        function: str,
        trigger: str,
        seconds: float,
        error_kind: str | None,
        version: str = "$LATEST",
        *,
        billed_ms: int = 0,
        cold_start: bool = False,
        memory_mb: int = 0,
    ) -> None: ...

    def record_throttle(self, function: str, reason: str) -> None: ...


class TriggerFailed(Exception):
    """A function at a trigger failed; `cause` says how."""

    def __init__(
        self, trigger: str, function: str, cause: BaseException, lambda_request_id: str = ""
    ) -> None:
        super().__init__(f"{function} at {trigger}: {cause}")
        self.trigger = trigger
        self.function = function
        self.cause = cause
        self.lambda_request_id = lambda_request_id


class CloudFrontFunctionFailed(TriggerFailed):
    """A CloudFront Function failed (its own X-Cache kinds: FunctionExecutionError, ...)."""


@dataclass(frozen=True, slots=True)
class TriggerRunner:
    """Runs functions at triggers with the distribution's settings."""

    registry: FunctionRegistry
    distribution_domain_name: str
    distribution_id: str
    viewer_timeout_seconds: float
    origin_timeout_seconds: float
    policy: ValidationPolicy
    metrics: FunctionMetricsSink | None = None
    spans: Any = None  # edge.otel.Spans when [tracing] is on: a span per trigger

    @classmethod
    def from_config(
        cls,
        config: EdgeConfig,
        registry: FunctionRegistry,
        metrics: FunctionMetricsSink | None = None,
    ) -> TriggerRunner:
        edge = config.lambda_edge
        return cls(
            registry=registry,
            distribution_domain_name=edge.distribution_domain_name,
            distribution_id=edge.distribution_id,
            viewer_timeout_seconds=edge.viewer_timeout,
            origin_timeout_seconds=edge.origin_timeout,
            policy=ValidationPolicy(strict_viewer_response_status=edge.strict),
            metrics=metrics,
        )

    async def run(
        self,
        trigger: EventType,
        association: FunctionAssociation,
        request: Request,
        response: Response | None,
        request_id: str,
        trace_id: str | None = None,
    ) -> Outcome | None:
        """Invoke `association`'s function at `trigger`; the decoded outcome, or TriggerFailed.
        `trace_id`: the viewer request's `X-Amzn-Trace-Id`, for the function's process.

        None means "continue unchanged": a WASM function without an entry point for this
        trigger (no event is even built) or one that returned nothing.
        """
        if self.spans is None:
            return await self._run(trigger, association, request, response, request_id, trace_id)
        with self.spans.span(
            f"{trigger.value} {association.name}",
            **{"faas.name": association.name, "faas.trigger": "other", "edge.trigger": trigger},
        ):
            return await self._run(trigger, association, request, response, request_id, trace_id)

    async def _run(
        self,
        trigger: EventType,
        association: FunctionAssociation,
        request: Request,
        response: Response | None,
        request_id: str,
        trace_id: str | None,
    ) -> Outcome | None:
        if self.is_cloudfront_function(association.name):
            return await self._run_cloudfront_function(
                trigger, association.name, request, response, request_id
            )
        entry = trigger.value.replace("-", "_")
        name = association.name
        qualifier = association.qualifier
        version, invoked_arn = LATEST, None
        if qualifier is not None:
            try:
                version = self.registry.resolve(name, qualifier)
            except NotFound:
                # Checked at start; an alias deleted since (edge alias delete) lands here.
                missing = FunctionCodeInvalid(name, f"no version or alias {qualifier!r}")
                raise TriggerFailed(trigger, name, missing) from None
            invoked_arn = function_arn(name, qualifier)
        elif not self.registry.has_entry(name, entry):
            return None
        config = EventConfig(self.distribution_domain_name, self.distribution_id, request_id)
        event = build_event(
            trigger, config, request, response, include_body=association.include_body
        )
        limit = (
            self.viewer_timeout_seconds
            if trigger.startswith("viewer")
            else self.origin_timeout_seconds
        )
        lambda_id = ""
        started = time.perf_counter()
        try:
            result = await self.registry.invoke(
                name,
                event.payload,
                request_id="",
                deadline=time.monotonic() + limit,
                timeout_seconds=limit,
                entry=entry,
                trigger=trigger.value,
                version=version,
                invoked_arn=invoked_arn,
                trace_id=trace_id,
            )
            lambda_id = result.request_id
            if not result.payload:
                self._record(name, trigger, started, None, result, version)
                return None
            try:
                outcome = decode_result(event, result.payload, policy=self.policy)
            except LambdaValidationError:
                self.registry.logs.rejected(name, trigger.value, result.log)
                raise
        except (SandboxError, LambdaValidationError) as exc:
            lambda_id = lambda_id or getattr(exc, "request_id", "")
            if self.metrics is not None:
                kind = getattr(exc, "rule", None) or getattr(exc, "error_type", None)
                self._record(name, trigger, started, kind or type(exc).__name__, None, version)
                if isinstance(exc, FunctionThrottled):
                    self.metrics.record_throttle(name, exc.reason)
            raise TriggerFailed(trigger, name, exc, lambda_id) from exc
        self._record(name, trigger, started, None, result, version)
        for warning in outcome.warnings:
            logger.warning("request %s: function %s at %s: %s", request_id, name, trigger, warning)
        return outcome

    def _record(
        self,
        name: str,
        trigger: str,
        started: float,
        error_kind: str | None,
        result: InvocationResult | None,
        version: str = LATEST,
    ) -> None:
        if self.metrics is None:
            return
        self.metrics.record_function(
            name,
            trigger,
            time.perf_counter() - started,
            error_kind,
            version,
            billed_ms=result.billed_duration_ms if result is not None else 0,
            cold_start=result is not None and result.init_duration_ms is not None,
            memory_mb=result.max_memory_used_mb if result is not None else 0,
        )

    def is_cloudfront_function(self, name: str) -> bool:
        info = self.registry.info.get(name)
        return info is not None and info.runtime.startswith("cloudfront-js")

    async def _run_cloudfront_function(
        self,
        trigger: EventType,
        name: str,
        request: Request,
        response: Response | None,
        request_id: str,
    ) -> Outcome:
        """Run CloudFront Function `name` at a viewer trigger: its own event and result rules."""
        assert trigger in (EventType.VIEWER_REQUEST, EventType.VIEWER_RESPONSE)
        event_type: FunctionEventType = (
            "viewer-request" if trigger == EventType.VIEWER_REQUEST else "viewer-response"
        )
        config = EventConfig(self.distribution_domain_name, self.distribution_id, request_id)
        event = build_function_event(event_type, config, request, response)
        started = time.perf_counter()
        try:
            result = await self.registry.invoke(
                name,
                event.payload,
                request_id=request_id,
                deadline=time.monotonic() + self.viewer_timeout_seconds,
                timeout_seconds=self.viewer_timeout_seconds,
            )
            outcome = decode_function_result(event, result.payload)
        except (SandboxError, FunctionValidationError) as exc:
            if self.metrics is not None:
                kind = getattr(exc, "error_type", None) or type(exc).__name__
                self.metrics.record_function(name, trigger, time.perf_counter() - started, kind)
            raise CloudFrontFunctionFailed(trigger, name, exc, request_id) from exc
        if self.metrics is not None:
            self.metrics.record_function(name, trigger, time.perf_counter() - started, None)
        return outcome
