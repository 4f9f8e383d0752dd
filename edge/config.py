"""edge.toml -> a typed, frozen, validated configuration.

Every error names the file, the key path (`behaviors[1].origin`), what was expected and what
was found; unknown keys are errors with the nearest valid name suggested. Defaults are written
here once. Nothing else in the project parses configuration.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge.behaviors import METHOD_SETS, MethodSet
from origin_proxy import DEFAULT_MAX_RESPONSE_HEADER_BYTES, DEFAULT_MAX_RESPONSE_HEADER_FIELDS
from sandbox import check_environment


class ConfigError(Exception):
    """The configuration cannot be used. `problems` are one line each, ready to print."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: invalid configuration\n{lines}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Seconds = Annotated[float, Field(gt=0, le=3600)]
_HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HeaderName = Annotated[str, Field(pattern=_HEADER_NAME_PATTERN)]


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
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"expected HOST:PORT such as 127.0.0.1:8080, found {value!r}")
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
    with `handler = "module.function"` as Lambda writes it. WASM: `module = "path/fn.wasm"`
    (or `.wat`), `abi = "core" | "wasi"`.
    """

    runtime: Literal["python", "wasm"] = "python"
    handler: str | None = Field(default=None, pattern=r"^[^:]+\.[A-Za-z_][A-Za-z0-9_]*$")
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
        if runtime == "python" and value < 128:
            raise ValueError(
                "expected at least 128 (MB) for a python function (Lambda's minimum; a wasm "
                f"function may have less), found {value}"
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
        if self.runtime == "wasm" and self.module is None:
            raise ValueError('a wasm function needs module = "path/to/function.wasm"')
        return self

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


class BehaviorConfig(_Strict):
    """`[[behaviors]]`: a path pattern, its origin, methods, and the slots for functions."""

    path: str = Field(min_length=1, max_length=255)
    origin: str
    methods: MethodSet = "all"
    # "rfc9111" (the default: the origin's headers decide), "caching-optimized",
    # "disabled", or a policy table.
    cache: CachePolicyName | CachePolicyConfig = "rfc9111"
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
        # CloudFront: patterns are paths; a leading slash is optional, `*` and `?` are wildcards.
        if any(c.isspace() for c in value):
            raise ValueError(f"a path pattern has no white space, found {value!r}")
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


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _loc_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a table",
    "list_type": "an array",
    "model_type": "a table",
    "model_attributes_type": "a table",
}


def _known_fields(model: type[BaseModel]) -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        names.append(info.alias or name)
    return names


_MODELS_BY_LOC: dict[str, type[BaseModel]] = {
    "server": ServerConfig,
    "behaviors": BehaviorConfig,
    "functions": FunctionConfig,
    "lambda_edge": LambdaEdgeConfig,
    "invoke": InvokeConfig,
    "cache": CacheConfig,
    "sandbox": SandboxConfig,
    "admin": AdminConfig,
}


def _model_for(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model whose table holds the key at `loc` (for suggesting names)."""
    parents = [p for p in loc[:-1] if isinstance(p, str)]
    if not parents:
        return EdgeConfig
    top = parents[0]
    if top == "origins":
        if "HttpOriginConfig" in parents:
            return HttpOriginConfig
        if "FunctionOriginConfig" in parents:
            return FunctionOriginConfig
        if "OriginGroupConfig" in parents:
            return OriginGroupConfig
        return DirectoryOriginConfig
    if top == "behaviors" and "FunctionAssociation" in parents:
        return FunctionAssociation
    return _MODELS_BY_LOC.get(top)


def _describe(error: Mapping[str, Any]) -> str:
    loc = [
        f'"{p}"' if isinstance(p, str) and not _IDENT.fullmatch(p) else p
        for p in error["loc"]
        if p
        not in (
            "HttpOriginConfig",
            "DirectoryOriginConfig",
            "FunctionOriginConfig",
            "OriginGroupConfig",
            "OriginGroupConfig",
            "str",
            "FunctionAssociation",
        )
        and p != "[key]"
    ]
    where = _loc_path(loc) or "(top level)"
    kind = error["type"]
    found = error.get("input")
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        model = _model_for(error["loc"])
        hint = ""
        if model is not None:
            close = difflib.get_close_matches(key, _known_fields(model), n=1)
            if close:
                hint = f"; did you mean {close[0]!r}?"
        return f"{where}: unknown key{hint}"
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind in _TYPE_WORDS:
        return f"{where}: expected {_TYPE_WORDS[kind]}, found {found!r}"
    ctx = error.get("ctx", {})
    bounds = {
        "greater_than": "greater than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
    }
    if kind in bounds:
        return f"{where}: expected a number {bounds[kind].format(**ctx)}, found {found!r}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == _HEADER_NAME_PATTERN:
        return f"{where}: expected an HTTP header name (RFC 9110 token), found {found!r}"
    if kind == "string_pattern_mismatch":
        return f"{where}: expected text matching {ctx.get('pattern')}, found {found!r}"
    if kind in ("string_too_short", "string_too_long"):
        return f"{where}: {str(error['msg']).lower()}, found {found!r}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{where}: expected one of {expected}, found {found!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if "found" in message or kind == "value_error":
        return f"{where}: {message}"
    return f"{where}: {message}, found {found!r}"


def _origin_kind_of(raw: Mapping[str, Any], name: str) -> str | None:
    table = raw.get("origins", {}).get(name)
    if isinstance(table, Mapping):
        if "url" in table:
            return "HttpOriginConfig"
        if "directory" in table:
            return "DirectoryOriginConfig"
        if "function" in table:
            return "FunctionOriginConfig"
        if "primary" in table:
            return "OriginGroupConfig"
    return None


def _format_errors(exc: ValidationError, raw: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) >= 3 and loc[0] == "origins" and isinstance(loc[1], str):
            wanted = _origin_kind_of(raw, loc[1])
            if wanted is not None and loc[2] != wanted:
                continue
        if len(loc) >= 3 and loc[0] == "behaviors" and "str" in loc:
            # An association given as a table failed; the string alternative is noise.
            continue
        if len(loc) >= 3 and loc[0] == "behaviors" and "FunctionAssociation" in loc:
            behavior = raw.get("behaviors", [])[loc[1]] if isinstance(loc[1], int) else {}
            if isinstance(behavior, Mapping) and isinstance(behavior.get(str(loc[2])), str):
                continue
        text = _describe(error)
        if text not in problems:
            problems.append(text)
    return problems


def parse_config(
    raw: Mapping[str, Any], *, source: str = "<memory>", base_dir: Path | None = None
) -> EdgeConfig:
    """Validate a TOML document already parsed into `raw`."""
    base = base_dir or Path(".")
    shape_problems = _check_origin_shapes(raw)
    if shape_problems:
        raise ConfigError(source, shape_problems)
    try:
        config = EdgeConfig.model_validate({**raw, "source": source, "base_dir": base})
    except ValidationError as exc:
        raise ConfigError(source, _format_errors(exc, raw)) from None
    problems = _check_references(config, raw) + _check_reserved_concurrency(config)
    if problems:
        raise ConfigError(source, problems)
    return _resolve_paths(config, base)


def _check_origin_shapes(raw: Mapping[str, Any]) -> list[str]:
    """Each origin is exactly one kind; said plainly before the model's union errors."""
    problems: list[str] = []
    origins = raw.get("origins")
    if not isinstance(origins, Mapping):
        return problems
    for name, table in origins.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(name)):
            problems.append(
                f"origins.{name}: expected a name of letters, digits, '-', '_' and '.', "
                f"found {name!r}"
            )
        elif (
            isinstance(table, Mapping)
            and sum(kind in table for kind in ("url", "directory", "function", "primary")) != 1
        ):
            keys = ", ".join(repr(k) for k in table) or "no keys"
            problems.append(
                f"origins.{name}: expected exactly one of 'url' (an HTTP origin), "
                f"'directory' (a local folder), 'function' (a Lambda function) or 'primary' "
                f"with 'secondary' (an origin group), found {keys}"
            )
    return problems


def _check_references(config: EdgeConfig, raw: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    names = sorted(config.origins)
    for index, behavior in enumerate(config.behaviors):
        if behavior.origin not in config.origins:
            close = difflib.get_close_matches(behavior.origin, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                f"behaviors[{index}].origin: expected one of the origins "
                f"{', '.join(repr(n) for n in names)}, found {behavior.origin!r}{hint}"
            )
        if behavior.path == "*" and index != len(config.behaviors) - 1:
            problems.append(
                f"behaviors[{index}].path: '*' is the default behavior and must come last, "
                f"found it at position {index} of {len(config.behaviors)}"
            )
    functions = sorted(config.functions)
    edge = config.lambda_edge
    for index, behavior in enumerate(config.behaviors):
        for trigger in TRIGGERS:
            association = behavior.association(trigger)
            if association is None:
                continue
            where = f"behaviors[{index}].{trigger}"
            table = raw["behaviors"][index]
            given = table.get(trigger, table.get(trigger.replace("-", "_")))
            qualified = _qualified_name(
                f"{where}.function" if isinstance(given, Mapping) else where, association.function
            )
            if qualified:
                problems.append(qualified)
                continue
            if association.name not in config.functions:
                close = difflib.get_close_matches(association.name, functions, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                known = ", ".join(repr(n) for n in functions) or "none are defined"
                problems.append(
                    f"{where}: expected one of the functions ({known}), "
                    f"found {association.name!r}{hint}"
                )
                continue
            if association.include_body and trigger.endswith("-response"):
                problems.append(
                    f"{where}.include_body: expected false (CloudFront allows include_body only "
                    f"on viewer-request and origin-request), found true"
                )
            function = config.functions[association.name]
            viewer = trigger.startswith("viewer")
            limit = edge.viewer_timeout if viewer else edge.origin_timeout
            if function.timeout is not None and function.timeout > limit:
                problems.append(
                    f"functions.{association.name}.timeout: expected at most {limit:g} s for a "
                    f"function on {trigger} ({where}), found {function.timeout:g}"
                )
            if function.ephemeral_storage > 512:
                problems.append(
                    f"functions.{association.name}.ephemeral_storage: expected at most 512 MB "
                    f"for a function on a Lambda@Edge trigger ({where}), "
                    f"found {function.ephemeral_storage}"
                )
            if viewer and function.memory_size_mb > edge.viewer_memory:
                key = "memory" if function.memory_pages is None else "memory_pages"
                problems.append(
                    f"functions.{association.name}.{key}: expected at most "
                    f"{edge.viewer_memory} MB for a function on {trigger} ({where}), "
                    f"found {function.memory_size_mb}"
                )
            if function.environment and not edge.allow_environment:
                problems.append(
                    f"functions.{association.name}.environment: expected none for a function "
                    f"on a Lambda@Edge trigger ({where}); Lambda@Edge has no environment "
                    f"variables (set lambda_edge.allow_environment = true to allow them), "
                    f"found {len(function.environment)}"
                )
    for name, function in config.functions.items():
        problems += _check_function_destinations(name, function, functions)
        problems += _check_runtime_keys(name, function)
        problems += _check_provisioned(name, function)
        try:
            check_environment(function.environment)
        except ValueError as exc:
            problems.append(f"functions.{name}.environment: {exc}")
        if function.runtime == "wasm" and function.module is not None:
            module = function.module
            found = module if module.is_absolute() else config.base_dir / module
            if not found.is_file():
                problems.append(
                    f"functions.{name}.module: expected an existing .wasm or .wat file, "
                    f"found {str(module)!r} (looked at {found})"
                )
            continue
        for index, writable in enumerate(function.writable_paths):
            found = writable if writable.is_absolute() else config.base_dir / writable
            if not found.is_dir():
                problems.append(
                    f"functions.{name}.writable_paths[{index}]: expected an existing directory, "
                    f"found {str(writable)!r} (looked at {found})"
                )
        code_dir, _ = function.code_dir_and_handler
        folder = code_dir if code_dir.is_absolute() else config.base_dir / code_dir
        if not folder.is_dir():
            problems.append(
                f"functions.{name}.handler: expected code in an existing directory, "
                f"found {str(code_dir)!r} (looked at {folder})"
            )
    paths = [b.path for b in config.behaviors]
    for index, path in enumerate(paths):
        if path in paths[:index]:
            problems.append(
                f"behaviors[{index}].path: each path pattern may appear once, "
                f"found {path!r} again (first at behaviors[{paths.index(path)}])"
            )
    if (not config.behaviors or config.behaviors[-1].path != "*") and len(config.origins) > 1:
        problems.append(
            'behaviors: expected a default behavior with path = "*" (needed when there is '
            f"more than one origin), found none among {len(config.behaviors)} behaviors"
        )
    for name, origin in config.origins.items():
        if isinstance(origin, OriginGroupConfig):
            for role in ("primary", "secondary"):
                member = getattr(origin, role)
                target = config.origins.get(member)
                if target is None or isinstance(target, OriginGroupConfig) or member == name:
                    plain = sorted(
                        n for n, o in config.origins.items() if not isinstance(o, OriginGroupConfig)
                    )
                    problems.append(
                        f"origins.{name}.{role}: expected one of the origins "
                        f"{', '.join(repr(n) for n in plain)} (not a group), found {member!r}"
                    )
        qualified = (
            _qualified_name(f"origins.{name}.function", origin.function)
            if isinstance(origin, FunctionOriginConfig)
            else None
        )
        if qualified:
            problems.append(qualified)
        elif isinstance(origin, FunctionOriginConfig) and origin.function not in config.functions:
            close = difflib.get_close_matches(origin.function, functions, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(repr(n) for n in functions) or "none are defined"
            problems.append(
                f"origins.{name}.function: expected one of the functions ({known}), "
                f"found {origin.function!r}{hint}"
            )
        if isinstance(origin, DirectoryOriginConfig):
            folder = (
                origin.directory
                if origin.directory.is_absolute()
                else (config.base_dir / origin.directory)
            )
            if not folder.is_dir():
                problems.append(
                    f"origins.{name}.directory: expected an existing directory, "
                    f"found {str(origin.directory)!r} (looked at {folder})"
                )
    return problems


def _qualified_name(where: str, reference: str) -> str | None:
    """A `name:qualifier` reference is refused: until versions and aliases exist it would run
    $LATEST unnoticed."""
    name, sep, _ = reference.partition(":")
    if not sep:
        return None
    return (
        f"{where}: qualified function names (versions, aliases) are not supported yet: "
        f"expected {name!r}, found {reference!r}"
    )


def _check_function_destinations(
    name: str, function: FunctionConfig, functions: Sequence[str]
) -> list[str]:
    """A `function:NAME` destination names a configured function (else its records would be
    dropped at run time)."""
    problems: list[str] = []
    for key in ("on_success", "on_failure", "dead_letter"):
        target = getattr(function, key)
        if target is None or not target.startswith("function:"):
            continue
        where = f"functions.{name}.{key}"
        reference = target.removeprefix("function:")
        qualified = _qualified_name(where, reference)
        if qualified:
            problems.append(qualified)
        elif reference not in functions:
            close = difflib.get_close_matches(reference, functions, n=1)
            hint = f" (did you mean 'function:{close[0]}'?)" if close else ""
            problems.append(
                f"{where}: expected 'function:NAME' naming one of the functions "
                f"({', '.join(repr(n) for n in functions)}), found {target!r}{hint}"
            )
    return problems


# Keys one runtime reads and the other would silently pass over.
_RUNTIME_KEYS = {
    "python": ("handler", "code", "network", "writable_paths"),
    "wasm": ("module", "abi", "reuse_instance", "fuel"),
}


def _check_runtime_keys(name: str, function: FunctionConfig) -> list[str]:
    other = "wasm" if function.runtime == "python" else "python"
    return [
        f"functions.{name}.{key}: expected no {key} for a {function.runtime} function (a "
        f"{other} setting), found {getattr(function, key)!r}"
        for key in _RUNTIME_KEYS[other]
        if key in function.model_fields_set
    ]


def _check_provisioned(name: str, function: FunctionConfig) -> list[str]:
    """Environments started in advance never exceed what may run: `max_concurrency`, and (as
    Lambda refuses provisioned concurrency over it) the reservation."""
    where = f"functions.{name}.provisioned"
    if function.provisioned > function.max_concurrency:
        return [
            f"{where}: expected at most max_concurrency ({function.max_concurrency}), "
            f"found {function.provisioned}"
        ]
    reserved = function.reserved_concurrency
    if reserved is not None and function.provisioned > reserved:
        return [
            f"{where}: expected at most reserved_concurrency ({reserved}), which provisioned "
            f"environments count against, found {function.provisioned}"
        ]
    return []


# Lambda (PutFunctionConcurrency): reservations must leave at least this much of the account's
# concurrency unreserved (UnreservedConcurrentExecutions >= 100), else InvalidParameterValue.
MIN_UNRESERVED_CONCURRENCY = 100


def _check_reserved_concurrency(config: EdgeConfig) -> list[str]:
    """The first reservation (in file order) that leaves less than 100 of the node unreserved,
    as Lambda refuses the PutFunctionConcurrency that would."""
    node = config.invoke.node_concurrency
    reserved_so_far = 0
    for name, function in config.functions.items():
        reserved = function.reserved_concurrency
        if not reserved:  # None, or 0: it takes nothing from the others
            continue
        allowed = max(0, node - MIN_UNRESERVED_CONCURRENCY - reserved_so_far)
        if reserved > allowed:
            others = (
                f" less {reserved_so_far} reserved by other functions," if reserved_so_far else ""
            )
            return [
                f"functions.{name}.reserved_concurrency: expected at most {allowed} "
                f"(invoke.node_concurrency {node},{others} less the "
                f"{MIN_UNRESERVED_CONCURRENCY} that must stay unreserved), found {reserved}"
            ]
        reserved_so_far += reserved
    return []


def _resolve_paths(config: EdgeConfig, base: Path) -> EdgeConfig:
    origins: dict[str, OriginConfig] = {}
    for name, origin in config.origins.items():
        if isinstance(origin, DirectoryOriginConfig) and not origin.directory.is_absolute():
            origin = origin.model_copy(update={"directory": (base / origin.directory).resolve()})
        origins[name] = origin
    functions: dict[str, FunctionConfig] = {}
    for name, function in config.functions.items():
        if function.runtime == "wasm" and function.module is not None:
            module = function.module if function.module.is_absolute() else base / function.module
            functions[name] = function.model_copy(update={"module": module.resolve()})
            continue
        code_dir, handler = function.code_dir_and_handler
        if not code_dir.is_absolute():
            code_dir = (base / code_dir).resolve()
        writable = [(base / w).resolve() for w in function.writable_paths]
        functions[name] = function.model_copy(
            update={"code": code_dir, "handler": handler, "writable_paths": writable}
        )
    behaviors = list(config.behaviors)
    if not behaviors or behaviors[-1].path != "*":
        # CloudFront always has a default behavior; with one origin it is implied.
        behaviors.append(BehaviorConfig(path="*", origin=next(iter(origins))))
    cache = config.cache
    if cache.disk_directory is not None and not cache.disk_directory.is_absolute():
        cache = cache.model_copy(update={"disk_directory": (base / cache.disk_directory).resolve()})
    invoke = config.invoke
    if not invoke.queue_path.is_absolute():
        invoke = invoke.model_copy(update={"queue_path": (base / invoke.queue_path).resolve()})
    return config.model_copy(
        update={
            "origins": origins,
            "behaviors": behaviors,
            "functions": functions,
            "invoke": invoke,
            "cache": cache,
        }
    )


def load_config(path: Path) -> EdgeConfig:
    """Read and validate edge.toml at `path`. Raises ConfigError."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"cannot read the file: {exc}"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    return parse_config(raw, source=source, base_dir=path.resolve().parent)


def config_for_origin(
    target: str,
    *,
    hooks: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    include_body: bool = False,
    origin_kind: str | None = None,
) -> EdgeConfig:
    """The one-behavior configuration of `edge serve --origin URL|DIR [--viewer-request ...]`.

    `hooks` maps a trigger to `FILE.py::FUNCTION`; each becomes a function of its own.
    `include_body` is `include_body = true` on the request triggers among them; `origin_kind`
    the origin's `origin_kind` (default: "custom" for a URL, "s3" for a directory).
    """
    origin: dict[str, Any] = {"url": target} if "://" in target else {"directory": target}
    if origin_kind is not None:
        origin["origin_kind"] = origin_kind
    # A generic caching proxy forwards every method, extension methods included.
    behavior: dict[str, Any] = {"path": "*", "origin": "origin", "methods": "any"}
    functions: dict[str, Any] = {}
    for trigger, spec in (hooks or {}).items():
        file, sep, function = spec.rpartition("::")
        if not sep or not file.endswith(".py"):
            raise ConfigError(f"--{trigger}", [f"expected FILE.py::FUNCTION, found {spec!r}"])
        path = Path(file)
        name = f"{trigger}-{path.stem}".replace("_", "-")[:64]
        functions[name] = {"handler": f"{path.parent / path.stem}.{function}"}
        wants_body = include_body and trigger.endswith("-request")
        behavior[trigger] = {"function": name, "include_body": True} if wants_body else name
    raw: dict[str, Any] = {"origins": {"origin": origin}, "behaviors": [behavior]}
    if functions:
        raw["functions"] = functions
    return parse_config(raw, source="--origin", base_dir=base_dir or Path.cwd())


__all__ = [
    "METHOD_SETS",
    "AdminConfig",
    "BehaviorConfig",
    "ConfigError",
    "DirectoryOriginConfig",
    "EdgeConfig",
    "FunctionAssociation",
    "FunctionConfig",
    "FunctionOriginConfig",
    "HttpOriginConfig",
    "InvokeConfig",
    "LambdaEdgeConfig",
    "OriginConfig",
    "SandboxConfig",
    "ServerConfig",
    "config_for_origin",
    "load_config",
    "parse_config",
]
