"""The four Lambda@Edge triggers as a request in flight meets them: each shows the request (and
the answer) the way its event does, runs the function and applies what it returns.

- `viewer_request`: shows the viewer's request (include-body: up to 40 KB of its body); the
  function may change uri, querystring, headers and body, or answer itself.
- `origin_request`: shows the request with its headers as they go to the origin, and that
  origin (include-body: up to 1 MB); the function may change the same and the origin, or
  answer itself.
- `origin_response`: shows the origin's status and headers; the function may change them or
  replace the body.
- `viewer_response`: shows the answer about to go to the viewer; the function may change its
  headers or replace the body, for this viewer only.

When each runs, and what a generated answer skips, is the journey's business (`edge.pipeline`).
A function that fails raises `TriggerFailed` (`edge.triggers`); `edge.failures` maps it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, MutableMapping
from typing import Any, Literal

from edge.config import FunctionAssociation
from edge.events import (
    EventType,
    GeneratedResponse,
    Request,
    Response,
    UpdatedRequest,
    UpdatedResponse,
)
from edge.events.cloudfront import Origin as EventOrigin
from edge.exchange import Answer, ViewerRequest, drain, headers_from_str, headers_to_str
from edge.origins import (
    OriginChangeRefused,
    Outbound,
    Upstream,
    apply_origin_ops,
    resolve_switched_origin,
)
from edge.triggers import CloudFrontFunctionFailed, TriggerRunner
from origin_proxy import single_chunk
from sandbox import FunctionError

logger = logging.getLogger("edge.hooks")

# lambda-edge-spec §1.4: how much of the body include-body exposes.
_INCLUDE_BODY_BYTES = {"viewer-request": 40 * 1024, "origin-request": 1024 * 1024}


class Hooks:
    """Runs the functions of a behavior's triggers on the request in flight."""

    def __init__(
        self, runner: TriggerRunner, upstreams: MutableMapping[str, Upstream], *, via: bytes
    ) -> None:
        self.runner = runner
        self.upstreams = upstreams  # where a switched-to origin is found, or kept
        self.via = via  # this edge's Via entry, for a request switched to an HTTP origin

    async def viewer_request(
        self, association: FunctionAssociation, request: ViewerRequest
    ) -> Answer | None:
        """The function's generated answer, or None to go on with `request` (changed in place:
        uri, querystring, headers, body)."""
        headers = headers_to_str(request.headers)
        body, truncated = await _expose_body(request, association, "viewer-request")
        shown = _event_request(request, headers, body=body, body_truncated=truncated)
        outcome = await self.runner.run(
            EventType.VIEWER_REQUEST, association, shown, None, request.id, request.trace()
        )
        if isinstance(outcome, GeneratedResponse):
            cloudfront = self.runner.is_cloudfront_function(association.name)
            kind = "FunctionGeneratedResponse" if cloudfront else "LambdaGeneratedResponse"
            return _generated(outcome, kind)
        if isinstance(outcome, UpdatedRequest):
            request.event_headers = list(outcome.headers)
            _apply_request(request, outcome)
            request.headers = headers_from_str(request.event_headers)
            if outcome.origin_ops:
                self._choose_origin(association, request, outcome.origin_ops)
        return None

    def _choose_origin(
        self,
        association: FunctionAssociation,
        request: ViewerRequest,
        ops: tuple[dict[str, Any], ...],
    ) -> None:
        """Apply a CloudFront Function's origin helper calls to this request's origin; a call
        that cannot be applied (an unknown origin id) fails the function (503)."""
        current = request.chosen_upstream or self.upstreams[request.origin]
        try:
            chosen = apply_origin_ops(self.upstreams, current, ops)
        except OriginChangeRefused as exc:
            logger.warning(
                "request %s: CloudFront Function %r at viewer-request: %s",
                request.id,
                association.name,
                exc,
            )
            error = FunctionError(
                {"errorType": "Error", "errorMessage": str(exc)}, request_id=request.id
            )
            raise CloudFrontFunctionFailed(
                EventType.VIEWER_REQUEST, association.name, error, request.id
            ) from exc
        request.chosen_upstream = chosen
        request.origin = chosen.name

    async def origin_request(
        self, association: FunctionAssociation, request: ViewerRequest, outbound: Outbound
    ) -> Answer | None:
        """The function's generated answer, or None to go on with `request` and `outbound`
        (changed in place: uri, querystring, body; the headers to the origin; the origin)."""
        body, truncated = await _expose_body(request, association, "origin-request")
        shown = _event_request(
            request,
            headers_to_str(outbound.headers),
            body=body,
            body_truncated=truncated,
            origin=outbound.event_origin,
        )
        outcome = await self.runner.run(
            EventType.ORIGIN_REQUEST, association, shown, None, request.id, request.trace()
        )
        if isinstance(outcome, GeneratedResponse):
            return _generated(outcome, "Miss")
        if isinstance(outcome, UpdatedRequest):
            _apply_request(request, outcome)
            outbound.headers = headers_from_str(outcome.headers)
            # X-Forwarded-Proto is hidden from functions (§3.1) but still goes to the origin.
            outbound.headers.append((b"x-forwarded-proto", request.scheme.encode()))
            if outcome.origin is not None:
                before = outbound.upstream
                outbound.upstream = resolve_switched_origin(self.upstreams, outcome.origin)
                outbound.event_origin = outcome.origin
                if outbound.upstream.forwards_headers and not before.forwards_headers:
                    # Headers made for an origin that takes none (a directory): now they go
                    # out as to any HTTP origin (Via, X-Forwarded-*, hop-by-hop fields dropped).
                    outbound.headers = outbound.upstream.outbound(
                        request, outbound.headers, via=self.via
                    ).headers
        return None

    async def origin_response(
        self,
        association: FunctionAssociation,
        request: ViewerRequest,
        outbound: Outbound,
        answer: Answer,
    ) -> Answer:
        """The origin's answer as the function leaves it."""
        shown = _event_request(
            request, headers_to_str(outbound.headers), origin=outbound.event_origin
        )
        return await self._on_answer(
            EventType.ORIGIN_RESPONSE, association, shown, answer, request.id, request.trace()
        )

    async def viewer_response(
        self, association: FunctionAssociation, request: ViewerRequest, answer: Answer
    ) -> Answer:
        """The answer as the function leaves it for this viewer (never what is stored)."""
        headers = request.event_headers
        if headers is None:
            headers = headers_to_str(request.headers)
        shown = _event_request(request, headers)
        return await self._on_answer(
            EventType.VIEWER_RESPONSE, association, shown, answer, request.id, request.trace()
        )

    async def _on_answer(
        self,
        trigger: EventType,
        association: FunctionAssociation,
        shown_request: Request,
        answer: Answer,
        request_id: str,
        trace_id: str,
    ) -> Answer:
        shown = Response(
            status=answer.status,
            status_description=answer.reason.decode("latin-1"),
            headers=headers_to_str(answer.headers),
        )
        try:
            outcome = await self.runner.run(
                trigger, association, shown_request, shown, request_id, trace_id
            )
        except BaseException:
            await answer.close()
            raise
        if outcome is None:  # continue unchanged
            return answer
        assert isinstance(outcome, UpdatedResponse)
        headers = headers_from_str(outcome.headers)
        reason = outcome.status_description.encode("latin-1", "replace")
        if outcome.body is None:
            answer.headers = headers
            answer.status = outcome.status
            answer.reason = reason
            return answer
        # The body is replaced: the origin's framing no longer applies (content-length is
        # recomputed; an encoding the function did not set itself is dropped). A body on its
        # way into the cache is still read to the end: viewer-response changes what this
        # viewer gets, not what is stored (as in CloudFront).
        try:
            if answer.storing:
                await drain(answer.body)
        finally:
            await answer.close()
        origin_encoding = [v for k, v in answer.headers if k == b"content-encoding"]
        headers = [
            (k, v)
            for k, v in headers
            if k not in (b"content-length", b"transfer-encoding")
            and not (k == b"content-encoding" and [v] == origin_encoding)
        ]
        headers.append((b"content-length", str(len(outcome.body)).encode()))
        return Answer(outcome.status, headers, single_chunk(outcome.body), answer.result, reason)


def _generated(outcome: GeneratedResponse, result: str) -> Answer:
    headers = [
        (k, v)
        for k, v in headers_from_str(outcome.headers)
        if k not in (b"content-length", b"transfer-encoding")
    ]
    headers.append((b"content-length", str(len(outcome.body)).encode()))
    reason = outcome.status_description.encode("latin-1", "replace")
    return Answer(outcome.status, headers, single_chunk(outcome.body), result, reason)


def _apply_request(request: ViewerRequest, outcome: UpdatedRequest) -> None:
    request.path = outcome.uri.encode("utf-8")
    request.query = outcome.querystring.encode("utf-8")
    if outcome.body is not None:  # include-body with action "replace"
        request.body = single_chunk(outcome.body) if outcome.body else None
        request.content_length = len(outcome.body) if outcome.body else None
        if request.body is None and request.method not in ("GET", "HEAD"):
            request.body = single_chunk(b"")
            request.content_length = 0


def _event_request(
    request: ViewerRequest,
    headers: list[tuple[str, str]],
    *,
    body: bytes = b"",
    body_truncated: bool = False,
    origin: EventOrigin | None = None,
) -> Request:
    """The request as a Lambda@Edge event shows it, with `headers` as the trigger sees them."""
    return Request(
        client_ip=request.client_ip,
        method=request.method,
        uri=_uri_str(request.path),
        querystring=_uri_str(request.query),
        headers=headers,
        body=body,
        body_truncated=body_truncated,
        origin=origin,
    )


def _uri_str(path: bytes) -> str:
    # lambda-edge-spec §1.2: uri and querystring reach functions as UTF-8; other bytes are
    # taken as ISO-8859-1.
    try:
        return path.decode("utf-8")
    except UnicodeDecodeError:
        return path.decode("latin-1")


async def _expose_body(
    request: ViewerRequest,
    association: FunctionAssociation,
    trigger: Literal["viewer-request", "origin-request"],
) -> tuple[bytes, bool]:
    """Read the part of the body include-body shows; the whole body still goes on."""
    if not association.include_body or request.body is None:
        return b"", False
    data, truncated, extra = await _read_up_to(request.body, _INCLUDE_BODY_BYTES[trigger])
    request.body = _chain(data + extra, request.body)
    return data, truncated


async def _read_up_to(body: AsyncIterator[bytes], limit: int) -> tuple[bytes, bool, bytes]:
    """(first `limit` bytes, whether more followed, the bytes read past the limit)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in body:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            data = b"".join(parts)
            return data[:limit], True, data[limit:]
    return b"".join(parts), False, b""


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk
