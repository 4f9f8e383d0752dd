"""The schema of edge.toml: one frozen, strict pydantic model per table, defaults written once.

Field validators say what one key may hold; what spans several keys (references between
tables, AWS's rules across functions) is `edge.config.checks`'; turning pydantic's errors into
the lines a user reads is `edge.config.messages`'.
"""

from __future__ import annotations

import re
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
from origin_proxy import DEFAULT_MAX_RESPONSE_HEADER_BYTES, DEFAULT_MAX_RESPONSE_HEADER_FIELDS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Seconds = Annotated[float, Field(gt=0, le=3600)]
# `dir/module.function`, relative to edge.toml (Lambda's handler string, with a folder).
HANDLER_PATTERN = r"^[^:]+\.[A-Za-z_][A-Za-z0-9_]*$"
PATH_PATTERN_CHARACTER = re.compile(r"[A-Za-z0-9_\-.*?$/~\"'@:+&]")
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HeaderName = Annotated[str, Field(pattern=HEADER_NAME_PATTERN)]


class ServerConfig(_Strict):
    """`[server]`: where to listen and the protocol limits."""

    listen: str = "127.0.0.1:8080"
    workers: int = Field(default=1, ge=1, le=64)
    admin: str | None = None
    name: str = Field(default="edge", pattern=r"^[A-Za-z0-9._-]+$")
    max_body_bytes: int = Field(default=1024**3 * 8, ge=0)
    max_header_bytes: int = Field(default=20 * 1024, ge=1024, le=1024 * 1024)
    max_url_bytes: int = Field(default=8 * 1024, ge=256, le=1024 * 1024)
    graceful_timeout: Seconds = 30.0
    keep_alive_timeout: Seconds = 60.0
    # Seconds a request body may pause between two chunks before the viewer gets 408.
    client_body_timeout: Seconds = 30.0
    # Seconds a response write may wait for a viewer that reads nothing; then it is abandoned
    # (the origin's connection is freed).
    send_timeout: Seconds = 60.0
    # "reject": a path with %2F or %5C gets 400 (origins disagree on what it means); "keep":
    # matched and forwarded as written.
    escaped_slashes: Literal["reject", "keep"] = "reject"
    access_log: bool = True

    @field_validator("listen", "admin")
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

    url: str
    # Another name this origin answers to when an origin-request function switches to it.
    domain_name: str | None = None
    keep_host: bool = False
    headers: dict[HeaderName, str] = Field(default_factory=dict)
    connect_timeout: Seconds = 10.0
    read_timeout: Seconds = 30.0
    max_connections: int = Field(default=512, ge=1, le=100_000)
    # Of those, how many requests whose body streams from the viewer may hold at once
    # (default: three quarters, so stalled uploads leave the rest to other requests).
    max_upload_connections: int | None = Field(default=None, ge=1, le=100_000)
    # An answer whose head (status line, fields, interim heads) is larger gets a 502.
    max_response_header_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_HEADER_BYTES, ge=1024, le=16 * 1024 * 1024
    )
    max_response_header_fields: int = Field(
        default=DEFAULT_MAX_RESPONSE_HEADER_FIELDS, ge=1, le=100_000
    )
    # How Lambda@Edge events describe it: `origin.custom`, or `origin.s3` for an S3-compatible
    # server (a bucket's REST endpoint, MinIO).
    origin_kind: OriginKind = "custom"

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

    directory: Path
    index_document: str | None = "index.html"
    error_document: str | None = None
    # The S3 bucket domain this origin stands for in Lambda@Edge events (and answers to when
    # an origin-request function switches to it). Default: `<name>.s3.us-east-1.amazonaws.com`
    # (`<name>.s3-website-us-east-1.amazonaws.com` with origin_kind = "custom").
    domain_name: str | None = None
    # How Lambda@Edge events describe it: `origin.s3` (a bucket), or `origin.custom` (the
    # bucket's website endpoint, which CloudFront reaches as a custom origin).
    origin_kind: OriginKind = "s3"

    @property
    def kind(self) -> Literal["directory"]:
        return "directory"


class FunctionOriginConfig(_Strict):
    """`[origins.NAME]` with `function`: a Lambda function is the origin, called the way an
    Application Load Balancer calls a Lambda target (ALB event in, ALB response out)."""

    function: str
    multi_value_headers: bool = False
    target_group_arn: str = (
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/edge/0123456789abcdef"
    )
    domain_name: str | None = None

    @property
    def kind(self) -> Literal["function"]:
        return "function"


FailoverStatus = Literal[400, 403, 404, 416, 500, 502, 503, 504]
_DEFAULT_FAILOVER: tuple[FailoverStatus, ...] = (500, 502, 503, 504)


class OriginGroupConfig(_Strict):
    """`[origins.NAME]` with `primary` and `secondary`: CloudFront's origin group. GET, HEAD
    and OPTIONS requests go to the secondary when the primary answers one of
    `failover_statuses`, cannot be reached or times out."""

    primary: str
    secondary: str
    failover_statuses: list[FailoverStatus] = Field(
        default_factory=lambda: list(_DEFAULT_FAILOVER), min_length=1
    )

    @property
    def kind(self) -> Literal["group"]:
        return "group"


OriginConfig = HttpOriginConfig | DirectoryOriginConfig | FunctionOriginConfig | OriginGroupConfig


class CachePolicyConfig(_Strict):
    """A behavior's cache policy, CloudFront-style (`cache = { ... }`)."""

    min_ttl: Annotated[float, Field(ge=0)] = 0.0
    # None: the origin's headers decide, with RFC 9111's heuristic when they say nothing.
    default_ttl: Annotated[float, Field(ge=0)] | None = None
    max_ttl: Annotated[float, Field(ge=0)] | None = None
    query_strings: Literal["none", "all"] | list[str] = "all"
    headers: list[str] = Field(default_factory=list)
    cookies: Literal["none", "all"] | list[str] = "none"
    compress: bool = False
    # An expired stored copy stands in for a failing origin (CloudFront's way); false: only
    # within a stale-if-error window (RFC 5861).
    serve_stale_on_error: bool = True
    # A response with Set-Cookie is stored (and its cookie replayed on every hit to viewers
    # with the same keyed cookies, as CloudFront does when it forwards cookies). Default: not
    # stored, so one viewer's cookie never reaches another.
    cache_set_cookie: bool = False


CachePolicyName = Literal["rfc9111", "caching-optimized", "disabled"]


class CacheConfig(_Strict):
    """`[cache]`: the store every behavior's policy uses."""

    memory_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    # Bodies larger than this go to the disk tier (when there is one).
    memory_object_max_bytes: int = Field(default=1024 * 1024, ge=0)
    disk_directory: Path | None = None
    disk_bytes: int = Field(default=0, ge=0)
    # How long concurrent misses for one key wait for the request that fetches it.
    collapse_wait: Annotated[float, Field(ge=0, le=300)] = 30.0


class FunctionAssociation(_Strict):
    """A function attached to one trigger of a behavior (`name` or `name:qualifier`)."""

    function: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?$")
    include_body: bool = False

    @property
    def name(self) -> str:
        return self.function.partition(":")[0]


TRIGGERS = ("viewer-request", "origin-request", "origin-response", "viewer-response")
Trigger = Literal["viewer-request", "origin-request", "origin-response", "viewer-response"]


class FunctionConfig(_Strict):
    """`[functions.NAME]`: a Lambda function the behaviors (and later origins) can call.

    Python: `handler = "dir/module.function"` (relative to the config file), or `code = "dir"`
    with `handler = "module.function"` as Lambda writes it. Node.js (`runtime = "nodejs"`, or
    Lambda's `nodejs18.x`, `nodejs20.x`, `nodejs22.x`, all run by the installed `node`): the
    same keys, the module `dir/index.js`, `.mjs` or `.cjs`. WASM: `module = "path/fn.wasm"`
    (or `.wat`), `abi = "core" | "wasi"`.
    """

    runtime: Literal["python", "nodejs", "nodejs18.x", "nodejs20.x", "nodejs22.x", "wasm"] = (
        "python"
    )
    handler: str | None = Field(default=None, pattern=HANDLER_PATTERN)
    code: Path | None = None
    module: Path | None = None
    abi: Literal["core", "wasi"] = "core"
    reuse_instance: bool = False
    fuel: int | None = Field(default=None, gt=0)
    timeout: Annotated[float, Field(gt=0, le=900)] | None = None
    # WASM: the guest's memory cap in 64 KiB pages (wasm's own unit), instead of `memory`.
    memory_pages: int | None = Field(default=None, ge=1, le=65_536)
    # MB. Python: Lambda's 128..10,240. WASM: 1..4,096 (a wasm32 memory holds at most 4 GiB).
    memory: int = Field(default=128, ge=1, le=10_240)
    environment: dict[str, str] = Field(default_factory=dict)
    max_concurrency: int = Field(default=64, ge=0, le=10_000)
    # Seconds an invocation may wait for a busy environment before it is throttled (0: never).
    max_wait: Annotated[float, Field(ge=0, le=900)] = 0.0
    idle_timeout: Annotated[float, Field(gt=0)] = 300.0
    provisioned: int = Field(default=0, ge=0)
    # Lambda's reserved concurrency: a cap for this function, carved out of the node's limit.
    reserved_concurrency: int | None = Field(default=None, ge=0)
    # Python: the environments share the edge's network (127.0.0.1 included); false: none.
    network: bool = False
    # Python: host directories the function may write, bound at the same path (relative to
    # edge.toml). The sandbox shows no other host directory but the code, read-only.
    writable_paths: list[Path] = Field(default_factory=list)
    # Lambda's ephemeral storage in MB: the size of /tmp and of any one file (spec §14).
    ephemeral_storage: int = Field(default=512, ge=512, le=10_240)
    # Asynchronous invocation (Lambda's event invoke config, spec §9).
    maximum_retry_attempts: int = Field(default=2, ge=0, le=2)
    maximum_event_age: int = Field(default=21_600, ge=60, le=21_600)
    # Destinations: "function:NAME", "file:PATH.jsonl" or "http(s)://URL".
    on_success: str | None = None
    on_failure: str | None = None
    dead_letter: str | None = None

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
        if runtime != "wasm" and value < 128:
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
        if self.runtime == "wasm" and self.module is None:
            raise ValueError('a wasm function needs module = "path/to/function.wasm"')
        return self

    @property
    def is_nodejs(self) -> bool:
        """True for a Node.js function (`nodejs` or one of Lambda's `nodejsNN.x` names)."""
        return self.runtime.startswith("nodejs")

    @property
    def memory_size_mb(self) -> int:
        """The memory cap in whole MB (pages rounded up): what Lambda reports as MemorySize."""
        if self.memory_pages is not None:
            return -(-self.memory_pages * 65_536 // (1 << 20))
        return self.memory

    @property
    def code_dir_and_handler(self) -> tuple[Path, str]:
        """(code directory, `module.function`)."""
        handler = self.handler or ""
        if self.code is not None:
            return self.code, handler
        folder, slash, rest = handler.rpartition("/")
        return (Path(folder) if slash else Path(".")), rest


class InvokeConfig(_Strict):
    """`[invoke]`: Lambda's Invoke API on the admin listener, and asynchronous invocation."""

    # Concurrent executions across all functions of this node (Lambda's account limit).
    node_concurrency: int = Field(default=1000, ge=1, le=100_000)
    # The durable queue of accepted asynchronous events (SQLite); relative to edge.toml.
    queue_path: Path = Path(".edge/async-queue.sqlite3")
    sync_payload_bytes: int = Field(default=6 * 1024 * 1024, ge=1)
    async_payload_bytes: int = Field(default=1024 * 1024, ge=1)
    # Waits before the 2nd and 3rd attempt after a function error (Lambda: ~1 and ~2 minutes).
    retry_delays: tuple[float, float] = (60.0, 120.0)


class AdminConfig(_Strict):
    """`[admin]`: who may use the admin listener (its address is `server.admin`).

    With `access_key_id` and a secret (from the environment variable or the file named here,
    never from this file), every request but /healthz must carry an AWS Signature Version 4
    made with that key, as boto3 and the AWS CLI send.
    """

    # Host names the listener answers to besides its IP addresses and localhost:
    # "edge.internal", ".example.com" (the domain and its subdomains), or "*" (any).
    allowed_hosts: tuple[str, ...] = ()
    # Browser origins allowed to send requests ("https://admin.example.com").
    allowed_origins: tuple[str, ...] = ()
    access_key_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_+.@-]+$"
    )
    secret_access_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # Relative to edge.toml.
    secret_access_key_file: Path | None = None
    # Let /metrics be scraped without a signature (Prometheus cannot sign).
    unsigned_metrics: bool = False

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

    viewer_timeout: Annotated[float, Field(gt=0, le=900)] = 5.0
    origin_timeout: Annotated[float, Field(gt=0, le=900)] = 30.0
    viewer_memory: int = Field(default=128, ge=128, le=10_240)
    # Lambda@Edge refuses user environment variables; allowing them is an extension.
    allow_environment: bool = False
    # A viewer-response status change: False keeps the status and warns, True answers 502.
    strict: bool = False
    distribution_id: str = "EDFDVBD6EXAMPLE"
    distribution_domain_name: str = "d111111abcdef8.cloudfront.net"


class SandboxConfig(_Strict):
    """`[sandbox]`: how Python functions are isolated from the edge and from each other.

    `isolation`: "auto" (the best this machine allows, said at start), "namespaces" (refuse
    to start without them), "uid-only" (a uid per environment, no namespaces; needs root) or
    "none" (the edge's own user). Environments get uids from [uid_base, uid_base + uid_count)
    when the edge runs as root, 1024 per function zygote.
    """

    isolation: Literal["auto", "namespaces", "uid-only", "none"] = "auto"
    uid_base: int = Field(default=1_900_000_000, ge=1000, le=2**31 - 2**21)
    uid_count: int = Field(default=1024 * 1024, ge=1024, le=2**21)

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

    path: str = Field(min_length=1, max_length=255)
    origin: str
    methods: MethodSet = "all"
    # "rfc9111" (the default: the origin's headers decide), "caching-optimized",
    # "disabled", or a policy table.
    cache: CachePolicyName | CachePolicyConfig = "rfc9111"
    viewer_protocol_policy: ViewerProtocolPolicy = Field(
        default="allow-all",
        description=(
            "What an HTTP (not HTTPS) request gets, as CloudFront's ViewerProtocolPolicy: "
            "allow-all serves it; redirect-to-https answers 301 to the https URL (307 for "
            "methods other than GET and HEAD) before any function runs; https-only answers 403."
        ),
    )
    viewer_request: Association | None = Field(default=None, alias="viewer-request")
    origin_request: Association | None = Field(default=None, alias="origin-request")
    origin_response: Association | None = Field(default=None, alias="origin-response")
    viewer_response: Association | None = Field(default=None, alias="viewer-response")

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


class EdgeConfig(_Strict):
    """The whole of edge.toml, after validation."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    origins: dict[str, OriginConfig]
    behaviors: list[BehaviorConfig] = Field(default_factory=list)
    functions: dict[str, FunctionConfig] = Field(default_factory=dict)
    lambda_edge: LambdaEdgeConfig = Field(default_factory=LambdaEdgeConfig)
    invoke: InvokeConfig = Field(default_factory=InvokeConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    source: str = Field(default="<memory>", exclude=True)
    base_dir: Path = Field(default=Path("."), exclude=True)

    @field_validator("origins")
    @classmethod
    def _some_origin(cls, value: dict[str, OriginConfig]) -> dict[str, OriginConfig]:
        if not value:
            raise ValueError("expected at least one [origins.NAME] table, found none")
        return value
