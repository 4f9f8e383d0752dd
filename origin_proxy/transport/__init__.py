"""A lean HTTP/1.1 transport for httpx: keep-alive connection pools on asyncio protocols.

`PooledTransport` speaks HTTP/1.1 to origins over plain asyncio transports (so it runs the same
under uvloop and the default loop) and parses responses with httptools' C parser. It exists
because httpx's default transport (httpcore) costs several times more CPU per request than the
network does (`tests/benchmarks/transport_bench.py` measures both). The edge calls
`handle_async_request` directly with a prebuilt `httpx.Request` and gets back an
`httpx.Response` whose stream yields the raw (de-chunked, still content-encoded) body with flow
control in both directions.

Modules: `pool` (the transport: requests, connection slots, keep-alive), `connection` (one
connection's protocol: parsing a response, timeouts, sending a request body), `bodies` (the
request and response body streams), `framing` (HTTP/1.1 message rules, pure) and `errors`.
"""

from origin_proxy.transport.bodies import BufferedBody, RawResponse
from origin_proxy.transport.errors import ResponseBodyIncomplete, ResponseHeadTooLarge
from origin_proxy.transport.pool import PooledTransport

__all__ = [
    "BufferedBody",
    "PooledTransport",
    "RawResponse",
    "ResponseBodyIncomplete",
    "ResponseHeadTooLarge",
]
