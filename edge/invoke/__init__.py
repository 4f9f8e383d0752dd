"""Invocation semantics: the Lambda Invoke HTTP API, asynchronous invocation with a durable
queue, retries and destinations, and concurrency limits with throttling."""

from edge.invoke.api import invoke_routes
from edge.invoke.concurrency import ConcurrencyLimiter
from edge.invoke.metrics import InvokeMetrics
from edge.invoke.service import InvokeService

__all__ = ["ConcurrencyLimiter", "InvokeMetrics", "InvokeService", "invoke_routes"]
