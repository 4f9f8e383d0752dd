"""Forwarding header rules (RFC 9110 §7.6), pure."""

from __future__ import annotations

import pytest

from origin_proxy.headers import (
    forward_request_headers,
    forward_response_headers,
    strip_hop_by_hop,
)
from origin_proxy.message import Headers


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        pytest.param([(b"connection", b"close")], [], id="connection"),
        pytest.param([(b"keep-alive", b"timeout=5")], [], id="keep-alive"),
        pytest.param([(b"proxy-connection", b"keep-alive")], [], id="proxy-connection"),
        pytest.param([(b"te", b"trailers")], [], id="te"),
        pytest.param([(b"trailer", b"x-sum")], [], id="trailer"),
        pytest.param([(b"transfer-encoding", b"chunked")], [], id="transfer-encoding"),
        pytest.param([(b"upgrade", b"websocket")], [], id="upgrade"),
        pytest.param([(b"proxy-authorization", b"Basic x")], [], id="proxy-authorization"),
        pytest.param([(b"proxy-authenticate", b"Basic")], [], id="proxy-authenticate"),
        pytest.param(
            [(b"connection", b"X-A, x-b"), (b"x-a", b"1"), (b"x-b", b"2"), (b"x-c", b"3")],
            [(b"x-c", b"3")],
            id="names-listed-in-connection",
        ),
        pytest.param(
            [(b"connection", b"x-a"), (b"connection", b"x-b"), (b"x-a", b"1"), (b"x-b", b"2")],
            [],
            id="several-connection-fields",
        ),
        pytest.param(
            [(b"accept", b"*/*"), (b"cookie", b"a=1"), (b"content-length", b"3")],
            [(b"accept", b"*/*"), (b"cookie", b"a=1"), (b"content-length", b"3")],
            id="end-to-end-kept-in-order",
        ),
    ],
)
def test_strip_hop_by_hop(headers: Headers, kept: Headers) -> None:
    assert strip_hop_by_hop(headers) == kept


def _forward(headers: Headers, **kwargs: object) -> dict[bytes, list[bytes]]:
    args: dict[str, object] = {
        "client_ip": "198.51.100.7",
        "proto": "http",
        "via": b"1.1 edge",
        "host": b"origin.internal:8080",
    }
    args.update(kwargs)
    out: dict[bytes, list[bytes]] = {}
    for name, value in forward_request_headers(headers, **args):  # type: ignore[arg-type]
        out.setdefault(name, []).append(value)
    return out


def test_x_forwarded_for_is_appended_to_every_earlier_value() -> None:
    out = _forward([(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2, 3.3.3.3")])
    assert out[b"x-forwarded-for"] == [b"1.1.1.1, 2.2.2.2, 3.3.3.3, 198.51.100.7"]


def test_x_forwarded_proto_and_host_are_set_not_trusted() -> None:
    out = _forward(
        [
            (b"host", b"www.example"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"evil"),
        ],
        proto="http",
    )
    assert out[b"x-forwarded-proto"] == [b"http"]
    assert out[b"x-forwarded-host"] == [b"www.example"]
    assert out[b"host"] == [b"origin.internal:8080"]


def test_keep_host() -> None:
    assert _forward([(b"host", b"www.example")], host=None)[b"host"] == [b"www.example"]


def test_via_is_appended() -> None:
    assert _forward([(b"via", b"1.0 fred")])[b"via"] == [b"1.0 fred, 1.1 edge"]
    assert _forward([])[b"via"] == [b"1.1 edge"]


def test_custom_origin_headers_replace_the_viewers() -> None:
    out = _forward([(b"x-secret", b"viewer")], extra=[(b"x-secret", b"configured")])
    assert out[b"x-secret"] == [b"configured"]


def test_response_headers() -> None:
    out = forward_response_headers(
        [(b"connection", b"x-a"), (b"x-a", b"1"), (b"content-type", b"text/plain")],
        via=b"1.1 edge",
    )
    assert out == [(b"content-type", b"text/plain"), (b"via", b"1.1 edge")]
