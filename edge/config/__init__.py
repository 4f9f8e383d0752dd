"""edge.toml -> a typed, frozen, validated configuration.

Every error names the file, the key path (`behaviors[1].origin`), what was expected and what
was found; unknown keys are errors with the nearest valid name suggested. Defaults are written
here once. Nothing else in the project parses configuration.

The schema (`schema`), the messages a user reads (`messages`), the checks across keys
(`checks`) and reading a file (`loading`) are modules of their own; use them through the
names exported here.
"""

from __future__ import annotations

from edge.behaviors import METHOD_SETS
from edge.config.loading import (
    config_for_origin,
    load_config,
    parse_config,
    with_server_flags,
)
from edge.config.messages import ConfigError
from edge.config.schema import (
    AdminConfig,
    BehaviorConfig,
    CacheConfig,
    CachePolicyConfig,
    ClusterConfig,
    DirectoryOriginConfig,
    EdgeConfig,
    FunctionAssociation,
    FunctionConfig,
    FunctionOriginConfig,
    HttpOriginConfig,
    InvokeConfig,
    LambdaEdgeConfig,
    OriginConfig,
    OriginGroupConfig,
    SandboxConfig,
    ServerConfig,
    TracingConfig,
)

__all__ = [
    "METHOD_SETS",
    "AdminConfig",
    "BehaviorConfig",
    "CacheConfig",
    "CachePolicyConfig",
    "ClusterConfig",
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
    "OriginGroupConfig",
    "SandboxConfig",
    "ServerConfig",
    "TracingConfig",
    "config_for_origin",
    "load_config",
    "parse_config",
    "with_server_flags",
]
