"""Lambda's function management: published versions and aliases kept in the state directory,
and (in its modules) the management API on the admin listener.

`FunctionStore` is the durable record (one JSON file, replaced atomically, plus each version's
code snapshot); `AliasRouter` turns a qualifier into the version that runs, reading the store
again only when its file changed.
"""

from __future__ import annotations

from edge.lambda_service.routing import AliasRouter, Resolved
from edge.lambda_service.store import (
    Alias,
    AliasConflict,
    CodeTooLarge,
    FunctionStore,
    InvalidAlias,
    NotFound,
    RevisionMismatch,
    SharedStore,
    StateUnavailable,
    Version,
    code_digest,
    is_version_number,
    share_state,
    shared_store,
    validate_alias_name,
)

__all__ = [
    "Alias",
    "AliasConflict",
    "AliasRouter",
    "CodeTooLarge",
    "FunctionStore",
    "InvalidAlias",
    "NotFound",
    "Resolved",
    "RevisionMismatch",
    "SharedStore",
    "StateUnavailable",
    "Version",
    "code_digest",
    "is_version_number",
    "share_state",
    "shared_store",
    "validate_alias_name",
]
