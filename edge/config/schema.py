"""The schema of edge.toml: one frozen, strict pydantic model per table, defaults written once.

Field validators say what one key may hold; what spans several keys (references between
tables, AWS's rules across functions) is `edge.config.checks`'; turning pydantic's errors into
the lines a user reads is `edge.config.messages`'.
"""

from __future__ import annotations

import functools
import re
import socket
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge.behaviors import MethodSet
from edge.config.handlers import parse_handler
from origin_proxy import DEFAULT_MAX_RESPONSE_HEADER_BYTES, DEFAULT_MAX_RESPONSE_HEADER_FIELDS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Seconds = Annotated[float, Field(gt=0, le=3600)]
PATH_PATTERN_CHARACTER = re.compile(r"[A-Za-z0-9_\-.*?$/~\"'@:+&]")
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HeaderName = Annotated[str, Field(pattern=HEADER_NAME_PATTERN)]


class ServerConfig(_Strict):
    """`[server]`: where to listen and the protocol limits."""

    listen: str = Field(
        default="127.0.0.1:8080",
        description="HOST:PORT the proxy listens on for viewers (`edge serve --listen` overrides "
        "it).",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes, each with its own `SO_REUSEPORT` socket on `listen`.",
    )
    admin: str | None = Field(
        default=None,
        description="HOST:PORT of the admin listener (/healthz, /metrics, invalidations, the "
        "Invoke API); not set: no admin listener.",
    )
    engine: Literal["granian", "hypercorn"] = Field(
        default="granian",
        description="The server behind the viewer listeners (`edge serve --engine` overrides "
        "it): granian (the default, about three times hypercorn's rate on cache hits) or "
        "hypercorn. The admin listener is always hypercorn's.",
    )
    https_listen: str | None = Field(
        default=None,
        description="HOST:PORT of a second viewer listener, over TLS (HTTP/2 by ALPN, else "
        "HTTP/1.1), serving the same app as `listen`; needs `certificate` and `private_key`.",
    )
    certificate: Path | None = Field(
        default=None,
        description="The PEM certificate chain (leaf first) for `https_listen`, relative to "
        "edge.toml.",
    )
    private_key: Path | None = Field(
        default=None,
        description="The PEM private key of `certificate`, relative to edge.toml.",
    )
    name: str = Field(
        default="edge",
        pattern=r"^[A-Za-z0-9._-]+$",
        description='This edge\'s name in `Via` and `X-Cache` ("Miss from edge"): letters, '
        "digits, `.`, `_` and `-`.",
    )
    max_body_bytes: int = Field(
        default=1024**3 * 8,
        ge=0,
        description="The largest request body accepted; a larger one gets 413.",
    )
    max_header_bytes: int = Field(
        default=20 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="The largest request line and header section; a larger one gets 431.",
    )
    max_url_bytes: int = Field(
        default=8 * 1024,
        ge=256,
        le=1024 * 1024,
        description="The longest request target (path and query); a longer one gets 414.",
    )
    graceful_timeout: Seconds = Field(
        default=30.0,
        description="Seconds in-flight requests get to finish on shutdown (SIGINT, SIGTERM).",
    )
    keep_alive_timeout: Seconds = Field(
        default=60.0,
        description="Seconds an idle connection from a viewer is kept open.",
    )
    client_body_timeout: Seconds = Field(
        default=30.0,
        description="Seconds a request body may pause between two chunks; then the viewer gets "
        "408.",
    )
    send_timeout: Seconds = Field(
        default=60.0,
        description="Seconds a response may wait for a viewer that reads nothing; then it is "
        "abandoned and the origin's connection freed.",
    )
    escaped_slashes: Literal["reject", "keep"] = Field(
        default="reject",
        description='"reject": a path with %2F or %5C gets 400 (origins disagree on what it '
        'means); "keep": matched and forwarded as written.',
    )
    access_log: bool = Field(default=True, description="One line per request on stdout.")
    state_dir: Path = Field(
        default=Path(".edge"),
        description="Where the edge keeps what it must remember across restarts (published "
        "function versions and their code, aliases, deployments, what the management API "
        "changed: uploaded code, settings, concurrency), relative to edge.toml.",
    )
    function_logs: Literal["full", "errors-only", "none"] = Field(
        default="full",
        description="The functions' own log on stderr (what they print, START/END/REPORT), "
        'each line naming the function and trigger: "full", "errors-only" (invocations that '
        'failed or whose result was refused) or "none" (`edge serve --function-logs`).',
    )

    @field_validator("listen", "admin", "https_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _, sep, port = value.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"expected HOST:PORT such as 127.0.0.1:8080, found {value!r}")
        if int(port) > 65535:
            raise ValueError(f"expected a port from 0 to 65535 in HOST:PORT, found {value!r}")
        return value


OriginKind = Literal["custom", "s3"]


class HttpOriginConfig(_Strict):
    """`[origins.NAME]` with `url`: an HTTP server."""

    url: str = Field(
        description="The origin's http:// or https:// URL; a path in it is put before every "
        "request's path."
    )
    domain_name: str | None = Field(
        default=None,
        description="Another name this origin answers to when an origin-request function "
        "switches the request to it.",
    )
    keep_host: bool = Field(
        default=False,
        description="true: send the viewer's Host to the origin; false: the origin's own.",
    )
    headers: dict[HeaderName, str] = Field(
        default_factory=dict,
        description="Headers added to every request to this origin (CloudFront's origin custom "
        "headers).",
    )
    connect_timeout: Seconds = Field(
        default=10.0,
        description="Seconds to connect: an origin that cannot be reached gets 502, one that "
        "does not connect in time 504.",
    )
    read_timeout: Seconds = Field(
        default=30.0,
        description="Seconds until the response starts, and that an upload may wait for the "
        "origin to read; then 504.",
    )
    max_connections: int = Field(
        default=512, ge=1, le=100_000, description="Connections to this origin at once."
    )
    # Three quarters by default, so stalled uploads leave the rest to other requests.
    max_upload_connections: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Of those, how many requests whose body streams from the viewer may hold at "
        "once; not set: three quarters of max_connections.",
    )
    max_response_header_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_HEADER_BYTES,
        ge=1024,
        le=16 * 1024 * 1024,
        description="The largest response head (status line, header fields, interim 1xx "
        "heads); a larger one gets 502.",
    )
    max_response_header_fields: int = Field(
        default=DEFAULT_MAX_RESPONSE_HEADER_FIELDS,
        ge=1,
        le=100_000,
        description="The most header fields in a response head; more get 502.",
    )
    origin_kind: OriginKind = Field(
        default="custom",
        description='How Lambda@Edge events describe it: "custom" (`origin.custom`), or "s3" '
        "(`origin.s3`) for an S3-compatible server (a bucket's REST endpoint, MinIO).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, found {value!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"an origin URL takes no query or fragment, found {value!r}")
        return value.rstrip("/")

    @property
    def kind(self) -> Literal["http"]:
        return "http"


class DirectoryOriginConfig(_Strict):
    """`[origins.NAME]` with `directory`: files served the way S3 website hosting does."""

    directory: Path = Field(description="The folder served, relative to edge.toml.")
    index_document: str | None = Field(
        default="index.html",
        description="The file served for a folder's path (S3's index document); not set: no index "
        "document.",
    )
    error_document: str | None = Field(
        default=None,
        description="The file served for a missing one (S3's error document); not set: a "
        "plain 404.",
    )
    domain_name: str | None = Field(
        default=None,
        description="The S3 bucket domain this origin stands for in Lambda@Edge events (and "
        "answers to when an origin-request function switches to it); not set: "
        "`NAME.s3.us-east-1.amazonaws.com` (`NAME.s3-website-us-east-1.amazonaws.com` with "
        'origin_kind = "custom").',
    )
    origin_kind: OriginKind = Field(
        default="s3",
        description='How Lambda@Edge events describe it: "s3" (`origin.s3`, a bucket), or '
        '"custom" (`origin.custom`: the bucket\'s website endpoint, which CloudFront reaches as '
        "a custom origin).",
    )

    @property
    def kind(self) -> Literal["directory"]:
        return "directory"


class FunctionOriginConfig(_Strict):
    """`[origins.NAME]` with `function`: a Lambda function is the origin, called the way an
    Application Load Balancer calls a Lambda target (ALB event in, ALB response out)."""

    function: str = Field(description="The function (a `[functions.NAME]`) that answers.")
    multi_value_headers: bool = Field(
        default=False,
        description="The target group's `lambda.multi_value_headers.enabled`: the event and the "
        "answer use `multiValueHeaders` and `multiValueQueryStringParameters`.",
    )
    target_group_arn: str = Field(
        default="arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/edge/"
        "0123456789abcdef",
        description="The target group's ARN, shown in the event's `requestContext.elb`.",
    )
    domain_name: str | None = Field(
        default=None,
        description="Another name this origin answers to when an origin-request function "
        "switches the request to it.",
    )

    @property
    def kind(self) -> Literal["function"]:
        return "function"


FailoverStatus = Literal[400, 403, 404, 416, 500, 502, 503, 504]
_DEFAULT_FAILOVER: tuple[FailoverStatus, ...] = (500, 502, 503, 504)


class OriginGroupConfig(_Strict):
    """`[origins.NAME]` with `primary` and `secondary`: CloudFront's origin group. GET, HEAD
    and OPTIONS requests go to the secondary when the primary answers one of
    `failover_statuses`, cannot be reached or times out."""

    primary: str = Field(description="The origin tried first (a name of `[origins]`).")
    secondary: str = Field(description="The origin tried when the primary fails.")
    failover_statuses: list[FailoverStatus] = Field(
        default_factory=lambda: list(_DEFAULT_FAILOVER),
        min_length=1,
        description="The primary's statuses that send the request to the secondary.",
    )

    @property
    def kind(self) -> Literal["group"]:
        return "group"


OriginConfig = HttpOriginConfig | DirectoryOriginConfig | FunctionOriginConfig | OriginGroupConfig


class CachePolicyConfig(_Strict):
    """A behavior's cache policy, CloudFront-style (`cache = { ... }`)."""

    min_ttl: Annotated[float, Field(ge=0)] = Field(
        default=0.0,
        description="Seconds a response is kept at least, even when its headers say "
        "`no-store`, `no-cache` or `private` (CloudFront's Minimum TTL).",
    )
    default_ttl: Annotated[float, Field(ge=0)] | None = Field(
        default=None,
        description="Seconds a response whose headers give no lifetime is kept (CloudFront's "
        "Default TTL); not set: RFC 9111's heuristic decides.",
    )
    max_ttl: Annotated[float, Field(ge=0)] | None = Field(
        default=None,
        description="Seconds a response is kept at most, whatever its headers say (CloudFront's "
        "Maximum TTL; 0 disables caching); not set: no cap.",
    )
    query_strings: Literal["none", "all"] | list[str] = Field(
        default="all",
        description='Query parameters in the cache key: "none", "all", or a list of names.',
    )
    headers: list[str] = Field(
        default_factory=list,
        description="Request headers whose values are in the cache key.",
    )
    cookies: Literal["none", "all"] | list[str] = Field(
        default="none",
        description='Cookies in the cache key: "none", "all", or a list of names; only these '
        "reach the origin.",
    )
    compress: bool = Field(
        default=False,
        description="The viewer's Accept-Encoding (br, gzip or neither) is in the cache key, so "
        "compressed and plain copies are kept apart.",
    )
    serve_stale_on_error: bool = Field(
        default=True,
        description="An expired stored copy stands in for a failing origin (CloudFront's way); "
        "false: only within a `stale-if-error` window (RFC 5861).",
    )
    cache_set_cookie: bool = Field(
        default=False,
        description="Store responses with Set-Cookie and replay the cookie on every hit to "
        "viewers with the same keyed cookies (CloudFront's way when it forwards cookies); "
        "false: not stored, so one viewer's cookie never reaches another.",
    )


CachePolicyName = Literal["rfc9111", "caching-optimized", "disabled"]


class CacheConfig(_Strict):
    """`[cache]`: the store every behavior's policy uses."""

    memory_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="The memory stored responses may use; the least recently used go first.",
    )
    memory_object_max_bytes: int = Field(
        default=1024 * 1024,
        ge=0,
        description="Bodies larger than this go to the disk tier (without one, they are not "
        "stored).",
    )
    disk_directory: Path | None = Field(
        default=None,
        description="The folder of the disk tier, relative to edge.toml; not set: no disk tier.",
    )
    disk_bytes: int = Field(default=0, ge=0, description="The disk tier's budget; 0: no disk tier.")
    worker_tier: Literal["redis-server", "none"] = Field(
        default="redis-server",
        description='With `[server] workers` above 1 and no `[cluster]`: "redis-server" starts '
        "a redis-server of the node's own (a private Unix socket, nothing on disk) as a second "
        "cache tier every worker shares, so the hit ratio does not split between workers and "
        "concurrent misses in several workers make one origin request (needs Debian's "
        "redis-server and `pip install 'edge[cluster]'`; without them each worker keeps its "
        'own cache, said at start); "none": each worker keeps its own.',
    )
    worker_tier_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024 * 1024,
        description="The memory budget of that shared tier (redis-server's maxmemory, least "
        "recently used out first).",
    )
    collapse_wait: Annotated[float, Field(ge=0, le=300)] = Field(
        default=30.0,
        description="Seconds concurrent misses for one key wait for the request that fetches it.",
    )


class FunctionAssociation(_Strict):
    """A function attached to one trigger of a behavior (`name` or `name:qualifier`)."""

    function: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?$",
        description="The function's name (a `[functions.NAME]`), or `NAME:QUALIFIER` to run "
        "a published version (`fn:3`), an alias (`fn:live`) or `fn:$LATEST`.",
    )
    include_body: bool = Field(
        default=False,
        description="The function sees the request body (viewer-request and origin-request).",
    )

    @functools.cached_property
    def name(self) -> str:
        return self.function.partition(":")[0]

    @functools.cached_property
    def qualifier(self) -> str | None:
        """The version or alias after the colon (`fn:3`, `fn:live`); None when unqualified."""
        _, sep, qualifier = self.function.partition(":")
        return qualifier if sep else None


TRIGGERS = ("viewer-request", "origin-request", "origin-response", "viewer-response")
Trigger = Literal["viewer-request", "origin-request", "origin-response", "viewer-response"]


def _handler_files(runtime: str) -> tuple[str, ...]:
    """What the FILE of a `FILE::FUNCTION` handler ends with, for `runtime`."""
    return (".js", ".mjs", ".cjs") if runtime.startswith("nodejs") else (".py",)


class AliasDeclaration(_Strict):
    """`[functions.NAME.aliases.ALIAS]`: an alias of published versions (`edge publish`).

    Applied at start when the alias does not exist yet or when this declaration changed since
    it was last applied; otherwise the alias stays as the API (UpdateAlias, a deployment) last
    left it."""

    version: str = Field(
        pattern=r"^(\$LATEST|[0-9]+)$",
        description='The published version the alias points to ("3"), or "$LATEST".',
    )
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="At most one more published version and the share of invocations it gets "
        '(`{"4" = 0.1}`), 0.0 to 1.0 (Lambda\'s AdditionalVersionWeights).',
    )
    description: str = Field(default="", max_length=256, description="The alias's description.")


class FunctionConfig(_Strict):
    """`[functions.NAME]`: a Lambda function behaviors, function origins and the Invoke API call.

    Python: `handler = "dir/module.function"` or `"dir/file.py::function"` (relative to the
    config file), or `code = "dir"` with `handler = "module.function"` as Lambda writes it.
    Node.js (`runtime = "nodejs"`, or Lambda's `nodejs18.x`, `nodejs20.x`, `nodejs22.x`, all
    run by the installed `node`): the same keys, the module `dir/index.js`, `.mjs` or `.cjs`
    (`"dir/index.mjs::handler"` too). Custom runtimes (`runtime = "provided"`, or Lambda's
    `provided.al2023`, `provided.al2`): `code = "dir"` holding an executable `bootstrap` that
    speaks Lambda's Runtime API; `handler` is optional and only passed on (`_HANDLER`). WASM:
    `module = "path/fn.wasm"` (or `.wat`), `abi = "core" | "wasi"`.
    """

    runtime: Literal[
        "python",
        "nodejs",
        "nodejs18.x",
        "nodejs20.x",
        "nodejs22.x",
        "provided",
        "provided.al2023",
        "provided.al2",
        "wasm",
        "cloudfront-js-1.0",
        "cloudfront-js-2.0",
    ] = Field(
        default="python",
        description='"python" (a handler), "nodejs" (a JavaScript handler; Lambda\'s names '
        '"nodejs18.x", "nodejs20.x" and "nodejs22.x" too, all run by the installed `node`), '
        '"provided" (a custom runtime: an executable `bootstrap` in `code` that speaks Lambda\'s '
        'Runtime API; Lambda\'s names "provided.al2023" and "provided.al2" too), '
        '"wasm" (a WebAssembly module), or "cloudfront-js-2.0" / "cloudfront-js-1.0" (a '
        "CloudFront Function: `code` is its .js file; viewer triggers only).",
    )
    handler: str | None = Field(
        default=None,
        description="Python: `dir/module.function` or `dir/file.py::function`, relative to "
        "edge.toml; with `code`, `module.function` inside it, as Lambda writes it. Node.js: "
        "the same, the module being `module.js`, `.mjs` or `.cjs` (`dir/index.js::handler`). "
        "Custom runtimes: optional, any text, passed to the bootstrap as `_HANDLER`.",
    )
    code: Path | None = Field(
        default=None,
        description="Python, Node.js: the folder the handler's module is in (Lambda's "
        "deployment package), relative to edge.toml. Custom runtimes: the folder with the "
        "executable `bootstrap` (the task root, `LAMBDA_TASK_ROOT`). CloudFront Functions: the "
        ".js file (at most 10 KB).",
    )
    key_value_store: str | None = Field(
        default=None,
        description="CloudFront Functions 2.0: the `[key_value_stores.NAME]` that `cf.kvs()` "
        "reads (one per function).",
    )
    module: Path | None = Field(
        default=None,
        description="WASM: the module, `.wasm` or `.wat` text, relative to edge.toml.",
    )
    abi: Literal["core", "wasi"] = Field(
        default="core",
        description='WASM: "core" (the edge ABI\'s exports, one per trigger) or "wasi" (the '
        "event on stdin, the result on stdout).",
    )
    reuse_instance: bool = Field(
        default=False,
        description="WASM: true keeps one warm instance per execution slot, globals and all "
        "(Lambda's model); false: a fresh instance per invocation.",
    )
    fuel: int | None = Field(
        default=None,
        gt=0,
        description="WASM: an instruction budget per invocation; not set: no budget (the timeout "
        "still holds).",
    )
    timeout: Annotated[float, Field(gt=0, le=900)] | None = Field(
        default=None,
        description="Seconds an invocation may run; not set: the trigger's limit in "
        "`[lambda_edge]` (5 viewer, 30 origin).",
    )
    memory_pages: int | None = Field(
        default=None,
        ge=1,
        le=65_536,
        description="WASM: the memory cap in 64 KiB pages (wasm's own unit), instead of `memory`.",
    )
    # A wasm32 memory holds at most 4 GiB.
    memory: int = Field(
        default=128,
        ge=1,
        le=10_240,
        description="MB. Python: the process's address-space limit (Lambda's 128 to 10,240). "
        "Node.js: V8's heap (90 %) and the process's data limit (128 to 10,240). Custom "
        "runtimes: the environment's data limit (128 to 10,240). "
        "WASM: the cap on the guest's memory (1 to 4,096).",
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables the function sees (a triggered function only with "
        "`[lambda_edge] allow_environment`).",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Python, Node.js: Lambda's log format. \"json\": the runtime's logger "
        "(Python's logging, Node's console) writes JSON lines with timestamp, level, message "
        "and requestId, and START/REPORT become `platform.start`/`platform.report` records "
        "(AWS_LAMBDA_LOG_FORMAT=JSON in `environment` does the same).",
    )
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] | None = Field(
        default=None,
        description='With log_format = "json": the least level the function\'s logger writes '
        "(Lambda's application log level, AWS_LAMBDA_LOG_LEVEL); not set: INFO, as on Lambda.",
    )
    max_concurrency: int = Field(
        default=64,
        ge=0,
        le=10_000,
        description="Invocations in flight at once (Lambda's concurrency); beyond them an "
        "invocation is throttled (503 at a trigger).",
    )
    max_wait: Annotated[float, Field(ge=0, le=900)] = Field(
        default=0.0,
        description="Seconds an invocation may wait for room under max_concurrency before it "
        "is throttled; 0: throttled at once.",
    )
    max_environments: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Python: processes (execution environments) per edge worker for this "
        "function; 0: as many as the machine has cores. An invocation beyond them waits for "
        "one to be free: it still counts toward max_concurrency, runs warm (no Init), is timed "
        "from its own start, and is throttled if its deadline passes first.",
    )
    environment_wait: Annotated[float, Field(ge=0, le=900)] = Field(
        default=0.02,
        description="Python: seconds an invocation waits beyond max_environments before one "
        "more process starts for it, when every busy one has slept that long in its "
        "invocation (slow, I/O-bound handlers scale out as in Lambda); at least the timeout: "
        "max_environments is a hard cap.",
    )
    idle_timeout: Annotated[float, Field(gt=0)] = Field(
        default=300.0,
        description="Seconds an idle environment is kept before it is stopped.",
    )
    provisioned: int = Field(
        default=0, ge=0, description="Environments started in advance, before any request."
    )
    reserved_concurrency: int | None = Field(
        default=None,
        ge=0,
        description="Lambda's reserved concurrency: a cap for this function, carved out of "
        "`[invoke] node_concurrency` (0 throttles it); not set: it shares the rest.",
    )
    network: bool = Field(
        default=False,
        description="Python, Node.js, custom runtimes: true gives the function the edge's "
        "network (127.0.0.1 included); false: no network at all (a custom runtime still "
        "reaches its Runtime API, inside its environment).",
    )
    writable_paths: list[Path] = Field(
        default_factory=list,
        description="Python, Node.js, custom runtimes: host folders the function may write, "
        "at the same path "
        "(relative to edge.toml); it sees no other host folder but its code, read-only.",
    )
    layers: list[Path] = Field(
        default_factory=list,
        description="Python, Node.js, custom runtimes: Lambda layers, folders or .zip files "
        "(relative to "
        "edge.toml), at most 5, merged in order under /opt as Lambda extracts them (a later "
        "layer's file replaces an earlier one's): `python/`, `nodejs/node_modules/`, `bin/` "
        "and `lib/` are on the function's search paths.",
    )
    ephemeral_storage: int = Field(
        default=512,
        ge=512,
        le=10_240,
        description="MB: the size of the function's /tmp and of any one file it writes "
        "(Lambda's ephemeral storage; Lambda@Edge allows only 512).",
    )
    maximum_retry_attempts: int = Field(
        default=2,
        ge=0,
        le=2,
        description="Asynchronous invocation: retries after a function error.",
    )
    maximum_event_age: int = Field(
        default=21_600,
        ge=60,
        le=21_600,
        description="Asynchronous invocation: seconds an event may wait to run; then it is "
        "given up (to on_failure).",
    )
    on_success: str | None = Field(
        default=None,
        description="Where the record of a successful asynchronous invocation goes: "
        "`function:NAME`, `file:PATH.jsonl` (relative to edge.toml) or an http(s):// URL.",
    )
    on_failure: str | None = Field(
        default=None,
        description="Where the record of an asynchronous invocation goes when every attempt "
        "failed or the event grew too old (the same forms as on_success).",
    )
    dead_letter: str | None = Field(
        default=None,
        description="Where a given-up asynchronous event goes, as Lambda's dead-letter queue "
        "gets it (the same forms as on_success).",
    )
    aliases: dict[str, AliasDeclaration] = Field(
        default_factory=dict,
        description="Aliases of the function's published versions, by name "
        "(`[functions.NAME.aliases.live]`).",
    )

    @field_validator("on_success", "on_failure", "dead_letter")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("function:", "file:", "http://", "https://")):
            raise ValueError(
                "expected a destination 'function:NAME', 'file:PATH.jsonl' or an http(s):// "
                f"URL, found {value!r}"
            )
        return value

    @field_validator("handler")
    @classmethod
    def _handler(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            if str(info.data.get("runtime", "")).startswith("provided"):
                return value  # only passed on to the bootstrap, as Lambda does
            # Either spelling; a ValueError says what was expected.
            parse_handler(value, file_suffixes=_handler_files(info.data.get("runtime", "")))
        return value

    @field_validator("memory_pages")
    @classmethod
    def _pages_for_wasm(cls, value: int | None, info: ValidationInfo) -> int | None:
        runtime = info.data.get("runtime", "python")
        if value is not None and runtime != "wasm":
            raise ValueError(
                f"expected no memory_pages for a {runtime} function (64 KiB pages cap a wasm "
                f"function's memory; set memory, in MB), found {value}"
            )
        return value

    @field_validator("memory")
    @classmethod
    def _memory_for_runtime(cls, value: int, info: ValidationInfo) -> int:
        # Runs only when `memory` is given (defaults are not validated).
        runtime = info.data.get("runtime", "python")
        if info.data.get("memory_pages") is not None:
            raise ValueError(
                "expected either memory (MB) or memory_pages (64 KiB pages), found both"
            )
        if runtime.startswith(("python", "nodejs", "provided")) and value < 128:
            raise ValueError(
                f"expected at least 128 (MB) for a {runtime} function (Lambda's minimum; a "
                f"wasm function may have less), found {value}"
            )
        if runtime == "wasm" and value > 4096:
            raise ValueError(
                "expected at most 4096 (MB) for a wasm function (a wasm32 memory holds at most "
                f"4 GiB), found {value}"
            )
        return value

    @model_validator(mode="after")
    def _runtime_fields(self) -> FunctionConfig:
        if self.runtime == "python" and self.handler is None:
            raise ValueError('a python function needs handler = "dir/module.function"')
        if self.is_nodejs and self.handler is None:
            raise ValueError(f'a {self.runtime} function needs handler = "dir/index.handler"')
        if self.is_provided and self.code is None:
            raise ValueError(
                f'a {self.runtime} function needs code = "dir" (a folder with an executable '
                "bootstrap)"
            )
        if self.runtime == "wasm" and self.module is None:
            raise ValueError('a wasm function needs module = "path/to/function.wasm"')
        if self.runtime.startswith("cloudfront-js") and self.code is None:
            raise ValueError(f'a {self.runtime} function needs code = "path/to/function.js"')
        if self.log_level is not None and self.log_format != "json":
            raise ValueError(
                'expected log_format = "json" with log_level (Lambda filters by level in its '
                f'JSON format only), found log_format = "{self.log_format}"'
            )
        if self.key_value_store is not None and self.runtime != "cloudfront-js-2.0":
            raise ValueError(
                "expected key_value_store only on a cloudfront-js-2.0 function (cf.kvs() is "
                f"a 2.0 feature), found it on a {self.runtime} function"
            )
        return self

    @property
    def is_nodejs(self) -> bool:
        """True for a Node.js function (`nodejs` or one of Lambda's `nodejsNN.x` names)."""
        return self.runtime.startswith("nodejs")

    @property
    def is_provided(self) -> bool:
        """True for a custom runtime (`provided`, `provided.al2023`, `provided.al2`)."""
        return self.runtime.startswith("provided")

    @property
    def memory_size_mb(self) -> int:
        """The memory cap in whole MB (pages rounded up): what Lambda reports as MemorySize."""
        if self.memory_pages is not None:
            return -(-self.memory_pages * 65_536 // (1 << 20))
        return self.memory

    @property
    def code_dir_and_handler(self) -> tuple[Path, str]:
        """(code directory, Lambda's `module.function`), from either spelling of `handler`;
        a custom runtime's `code` and its handler as written."""
        if self.is_provided:
            return self.code or Path("."), self.handler or ""
        ref = parse_handler(self.handler or "", file_suffixes=_handler_files(self.runtime))
        if self.code is not None:
            # Within `code`, a folder is part of the module (`sub/auth.handler`, as Lambda).
            inner = ref.folder / ref.module if ref.folder != Path(".") else Path(ref.module)
            return self.code, f"{inner.as_posix()}.{ref.function}"
        return ref.folder, ref.lambda_handler


class KeyValueStoreConfig(_Strict):
    """`[key_value_stores.NAME]`: a CloudFront KeyValueStore, read by CloudFront Functions."""

    file: Path = Field(
        description='The store in AWS\'s import format (`{"data": [{"key": ..., "value": ...}]}`), '
        "relative to edge.toml; reloaded within a second when it changes.",
    )


class InvokeConfig(_Strict):
    """`[invoke]`: Lambda's Invoke API on the admin listener, and asynchronous invocation."""

    node_concurrency: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Concurrent executions across all functions of this node (Lambda's account "
        "limit).",
    )
    queue_path: Path = Field(
        default=Path(".edge/async-queue.sqlite3"),
        description="The durable queue of accepted asynchronous events (an SQLite file, made "
        "when the admin listener runs with any function configured), relative to edge.toml.",
    )
    sync_payload_bytes: int = Field(
        default=6 * 1024 * 1024,
        ge=1,
        description="The largest event and result of a synchronous invocation.",
    )
    async_payload_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        description="The largest event of an asynchronous invocation.",
    )
    retry_delays: tuple[float, float] = Field(
        default=(60.0, 120.0),
        description="Seconds before the 2nd and the 3rd attempt after a function error "
        "(Lambda: about 1 and 2 minutes).",
    )


class AdminConfig(_Strict):
    """`[admin]`: who may use the admin listener (its address is `server.admin`).

    With `access_key_id` and a secret (from the environment variable or the file named here,
    never from this file), every request but /healthz must carry an AWS Signature Version 4
    made with that key, as boto3 and the AWS CLI send.
    """

    allowed_hosts: tuple[str, ...] = Field(
        default=(),
        description="Host names the listener answers to besides its IP addresses and "
        'localhost: "edge.internal", ".example.com" (the domain and its subdomains), or "*" '
        "(any).",
    )
    allowed_origins: tuple[str, ...] = Field(
        default=(),
        description='Browser origins allowed to send requests ("https://admin.example.com").',
    )
    access_key_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_+.@-]+$",
        description="The key id every request but /healthz must be signed with (AWS Signature "
        "Version 4): letters, digits and `_+.@-`; not set: requests are not signed.",
    )
    secret_access_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The name of the environment variable that holds the key's secret.",
    )
    secret_access_key_file: Path | None = Field(
        default=None,
        description="The file that holds the key's secret, relative to edge.toml.",
    )
    unsigned_metrics: bool = Field(
        default=False,
        description="true: /metrics can be read without a signature (Prometheus cannot sign).",
    )
    unsigned_status: bool = Field(
        default=False,
        description="true: the status page (/status, /status.json) can be read without a "
        "signature (a browser cannot sign); it shows counts, names and recent failures' "
        "request ids and causes.",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if not re.fullmatch(r"\*|\.?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", host):
                raise ValueError(
                    f'expected host names without port ("edge.internal", ".example.com" '
                    f'or "*"), found {host!r}'
                )
        return tuple(host.lower() for host in value)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
            ):
                raise ValueError(
                    f'expected an origin such as "https://admin.example.com" (scheme, host, '
                    f"optional port; no path), found {origin!r}"
                )
        # A browser's Origin has no trailing slash.
        return tuple(origin.lower().removesuffix("/") for origin in value)

    @model_validator(mode="after")
    def _one_secret(self) -> AdminConfig:
        sources = [
            key
            for key in ("secret_access_key_env", "secret_access_key_file")
            if getattr(self, key) is not None
        ]
        if self.access_key_id is not None and len(sources) != 1:
            raise ValueError(
                "access_key_id needs exactly one of secret_access_key_env (an environment "
                f"variable's name) or secret_access_key_file, found {sources or 'neither'}"
            )
        if self.access_key_id is None and sources:
            raise ValueError(f"{sources[0]} needs access_key_id, found none")
        return self


class LambdaEdgeConfig(_Strict):
    """`[lambda_edge]`: CloudFront's limits for triggered functions, and what the event shows."""

    viewer_timeout: Annotated[float, Field(gt=0, le=900)] = Field(
        default=5.0,
        description="Seconds a viewer-request or viewer-response function may run at most "
        "(CloudFront's limit: 5).",
    )
    origin_timeout: Annotated[float, Field(gt=0, le=900)] = Field(
        default=30.0,
        description="Seconds an origin-request or origin-response function may run at most "
        "(CloudFront's limit: 30).",
    )
    viewer_memory: int = Field(
        default=128,
        ge=128,
        le=10_240,
        description="MB a viewer-request or viewer-response function may have at most "
        "(CloudFront's limit: 128).",
    )
    allow_environment: bool = Field(
        default=False,
        description="Lambda@Edge has no environment variables; true allows them on triggered "
        "functions (4 KB in all).",
    )
    strict: bool = Field(
        default=False,
        description="A viewer-response function that changes the status: false keeps the "
        "status and logs a warning; true answers 502.",
    )
    distribution_id: str = Field(
        default="EDFDVBD6EXAMPLE",
        description="The distribution id events show (`config.distributionId`).",
    )
    distribution_domain_name: str = Field(
        default="d111111abcdef8.cloudfront.net",
        description="The distribution's domain name events show (`config.distributionDomainName`).",
    )


class SandboxConfig(_Strict):
    """`[sandbox]`: how Python functions are isolated from the edge and from each other.

    `isolation`: "auto" (the best this machine allows, said at start), "namespaces" (refuse
    to start without them), "uid-only" (a uid per environment, no namespaces; needs root) or
    "none" (the edge's own user). Environments get uids from [uid_base, uid_base + uid_count)
    when the edge runs as root, 1024 per function zygote.
    """

    isolation: Literal["auto", "namespaces", "uid-only", "none"] = Field(
        default="auto",
        description='"auto": the best this machine allows; "namespaces": refuse to start '
        'without them; "uid-only": a uid per environment, no namespaces (needs root); "none": '
        "the edge's own user.",
    )
    uid_base: int = Field(
        default=1_900_000_000,
        ge=1000,
        le=2**31 - 2**21,
        description="The first uid functions run under when the edge runs as root.",
    )
    uid_count: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=2**21,
        description="How many uids from uid_base functions may use: a multiple of 1024 (each "
        "function takes 1024).",
    )

    @field_validator("uid_count")
    @classmethod
    def _whole_blocks(cls, value: int) -> int:
        if value % 1024:
            raise ValueError(f"expected a multiple of 1024 (uids per zygote), found {value}")
        return value


Association = Annotated[str | FunctionAssociation, Field(union_mode="left_to_right")]


ViewerProtocolPolicy = Literal["allow-all", "redirect-to-https", "https-only"]


class BehaviorConfig(_Strict):
    """`[[behaviors]]`: a path pattern, its origin, methods, and the slots for functions."""

    path: str = Field(
        min_length=1,
        max_length=255,
        description="A CloudFront path pattern (`*` and `?` wildcards, case-sensitive); the "
        "first behavior that matches wins, and `*` is the default behavior.",
    )
    origin: str = Field(description="The origin its requests go to (a name of `[origins]`).")
    methods: MethodSet = Field(
        default="all",
        description='The methods allowed (others get 403): "get-head", "get-head-options", '
        '"all" (CloudFront\'s sets) or "any" (every method).',
    )
    cache: CachePolicyName | CachePolicyConfig = Field(
        default="rfc9111",
        description='The cache policy: "rfc9111" (the origin\'s headers decide), '
        '"caching-optimized" (CloudFront\'s managed policy), "disabled", or a policy table.',
    )
    viewer_protocol_policy: ViewerProtocolPolicy = Field(
        default="allow-all",
        description=(
            "What an HTTP (not HTTPS) request gets, as CloudFront's ViewerProtocolPolicy: "
            "allow-all serves it; redirect-to-https answers 301 to the https URL (307 for "
            "methods other than GET and HEAD) before any function runs; https-only answers 403."
        ),
    )
    viewer_request: Association | None = Field(
        default=None,
        alias="viewer-request",
        description="The function run on the viewer's request, before the cache.",
    )
    origin_request: Association | None = Field(
        default=None,
        alias="origin-request",
        description="The function run on a cache miss, before the request goes to the origin.",
    )
    origin_response: Association | None = Field(
        default=None,
        alias="origin-response",
        description="The function run on the origin's response, before the cache stores it.",
    )
    viewer_response: Association | None = Field(
        default=None,
        alias="viewer-response",
        description="The function run on the response before it goes to the viewer (not for "
        "statuses of 400 and above).",
    )

    def association(self, trigger: str) -> FunctionAssociation | None:
        """The function attached to `trigger`, normalised to a FunctionAssociation."""
        value = getattr(self, trigger.replace("-", "_"))
        if isinstance(value, str):
            return FunctionAssociation(function=value)
        return value  # type: ignore[no-any-return]

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        # CloudFront: patterns are paths; a leading slash is optional, `*` and `?` are
        # wildcards, and only these characters are allowed: A-Z a-z 0-9 _ - . * $ / ~ " ' @ : +
        # and & (CacheBehavior.PathPattern).
        bad = sorted({c for c in value if not PATH_PATTERN_CHARACTER.fullmatch(c)})
        if bad:
            shown = ", ".join(repr(c) for c in bad)
            raise ValueError(
                "expected a path pattern of A-Z a-z 0-9 _ - . * ? $ / ~ \" ' @ : + & "
                f"(CloudFront's characters), found {value!r} with {shown}"
            )
        return value


class TracingConfig(_Strict):
    """`[tracing]`: OpenTelemetry spans of every request, off unless an endpoint is set."""

    otlp_endpoint: str | None = Field(
        default=None,
        description="Where spans go: an OTLP/HTTP traces URL, e.g. "
        "\"http://127.0.0.1:4318/v1/traces\" (needs `pip install 'edge[tracing]'`); not "
        "set: no spans are made. Each viewer request gets one (its trace id is the Root of its "
        "X-Amzn-Trace-Id), with one per function trigger, the cache lookup and the origin "
        "fetch under it.",
    )
    service_name: str = Field(default="edge", description="The spans' `service.name`.")
    sample_ratio: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="The share of new traces recorded; a viewer's trace with `Parent` and "
        "`Sampled=0|1` keeps its own decision.",
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s):// URL, found {value!r}")
        return value


def _stable_node_id() -> str:
    """This machine's host name: the same across restarts, so a node keeps its identity."""
    return socket.gethostname() or "edge"


class ClusterConfig(_Strict):
    """`[cluster]`: several nodes (and a node's workers) sharing one Redis, off unless `redis`
    is set.

    With it, reserved and account concurrency are counted across every worker of every node,
    and an invalidation sent to any node's admin listener purges every node's cache. While
    Redis cannot be reached each node keeps serving with its own limits.
    """

    redis: str | None = Field(
        default=None,
        description='The Redis URL, e.g. "redis://127.0.0.1:6379/0" (needs `pip install '
        "'edge[cluster]'`); not set: this node acts alone (its workers still share one "
        "concurrency count).",
    )
    key_prefix: str = Field(
        default="edge:",
        min_length=1,
        max_length=64,
        description="The prefix of every key the edge keeps in Redis; nodes with the same "
        "prefix form one cluster.",
    )
    node_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="This node's name in the cluster (its leases, logs, status page); not "
        "set: the host name. Two nodes on one host need different names.",
    )
    lease_seconds: Annotated[float, Field(ge=1, le=300)] = Field(
        default=10.0,
        description="How long a concurrency lease lives unless renewed: a node that dies "
        "mid-invocation gives its capacity back after at most this. Leases of running "
        "invocations are renewed every third of it.",
    )
    timeout: Annotated[float, Field(gt=0, le=10)] = Field(
        default=0.5,
        description="Seconds a Redis command may take before the node falls back to its "
        "local limits (and reconnects in the background).",
    )
    invalidation_history: int = Field(
        default=10_000,
        ge=100,
        le=10_000_000,
        description="Invalidations kept in Redis for nodes that reconnect to replay.",
    )
    shared_cache: bool = Field(
        default=True,
        description="A second cache tier in Redis that every node shares: a miss in a "
        "worker's own tiers looks there before the origin, and concurrent misses for one "
        "object on several nodes make one origin fetch.",
    )
    shared_cache_max_object_bytes: int = Field(
        default=1024 * 1024,
        ge=0,
        le=512 * 1024 * 1024,
        description="Responses with larger bodies stay in the node's own tiers only.",
    )
    shared_cache_wait: Annotated[float, Field(ge=0, le=300)] = Field(
        default=5.0,
        description="Seconds a node's miss waits for another node fetching the same object "
        "before it fetches itself.",
    )
    shared_state: bool = Field(
        default=True,
        description="Published versions, aliases, the management API's changes to $LATEST "
        "(code, configuration, concurrency) and deployment records kept in Redis, so every "
        "node runs the same versions and the same alias weights; `[server] state_dir` becomes "
        "each node's replica. While Redis is away such changes are refused and nodes serve "
        "from their replica. false: each node keeps its own.",
    )
    async_queue: Literal["redis", "local"] = Field(
        default="redis",
        description='Where accepted asynchronous events wait: "redis" (Redis Streams: any '
        'node runs them, also when the node that accepted one dies) or "local" (the '
        "node's own `[invoke] queue_path`).",
    )
    event_visibility: Annotated[float, Field(ge=1, le=86400)] = Field(
        default=30.0,
        description="Seconds an event claimed by a node that went silent waits before another "
        "node takes it over (never less than the function's timeout plus 2 s).",
    )

    @field_validator("redis")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f'expected a redis://, rediss:// or unix:// URL, found "{value}"')
        return value

    @property
    def enabled(self) -> bool:
        return self.redis is not None

    @property
    def node_name(self) -> str:
        """`node_id`, or the host name: the same across restarts."""
        return self.node_id or _stable_node_id()


class EdgeConfig(_Strict):
    """The whole of edge.toml, after validation."""

    server: ServerConfig = Field(
        default_factory=ServerConfig, description="Where to listen, and the protocol limits."
    )
    origins: dict[str, OriginConfig] = Field(
        description="Where requests go: at least one, by name."
    )
    behaviors: list[BehaviorConfig] = Field(
        default_factory=list,
        description="Which origin and functions serve a path, in order; the first that "
        "matches wins.",
    )
    functions: dict[str, FunctionConfig] = Field(
        default_factory=dict, description="Lambda functions, by name."
    )
    key_value_stores: dict[str, KeyValueStoreConfig] = Field(
        default_factory=dict, description="CloudFront KeyValueStores, by name."
    )
    lambda_edge: LambdaEdgeConfig = Field(
        default_factory=LambdaEdgeConfig,
        description="CloudFront's limits for triggered functions, and what events show.",
    )
    invoke: InvokeConfig = Field(
        default_factory=InvokeConfig,
        description="Lambda's Invoke API and asynchronous invocation.",
    )
    cache: CacheConfig = Field(
        default_factory=CacheConfig, description="The store every behavior's cache policy uses."
    )
    sandbox: SandboxConfig = Field(
        default_factory=SandboxConfig, description="How Python functions are isolated."
    )
    admin: AdminConfig = Field(
        default_factory=AdminConfig, description="Who may use the admin listener."
    )
    tracing: TracingConfig = Field(
        default_factory=TracingConfig, description="OpenTelemetry spans (off by default)."
    )
    cluster: ClusterConfig = Field(
        default_factory=ClusterConfig,
        description="Several nodes sharing concurrency and invalidations through Redis.",
    )
    source: str = Field(default="<memory>", exclude=True)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @field_validator("origins")
    @classmethod
    def _some_origin(cls, value: dict[str, OriginConfig]) -> dict[str, OriginConfig]:
        if not value:
            raise ValueError("expected at least one [origins.NAME] table, found none")
        return value
