"""The `context` object a handler receives, with the members Lambda's Python runtime gives it.

Spec §12.1. Values come from the environment variables of §12.3 (read per invocation, as the RIC
does) and from the invocation itself (request id, invoked ARN, deadline, client context,
Cognito identity). Runs inside the execution environment.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, NamedTuple


class CognitoIdentity:
    """`context.identity`: always present, members `None` unless the invoker sent an identity."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, document: dict[str, Any] | None = None) -> None:
        document = document or {}
        self.cognito_identity_id: str | None = document.get("cognitoIdentityId")
        self.cognito_identity_pool_id: str | None = document.get("cognitoIdentityPoolId")

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id}"
            f",cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class Client:
    """`context.client_context.client`: the mobile SDK's description of the calling app."""

    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, document: dict[str, Any]) -> None:
        self.installation_id: str | None = document.get("installation_id")
        self.app_title: str | None = document.get("app_title")
        self.app_version_name: str | None = document.get("app_version_name")
        self.app_version_code: str | None = document.get("app_version_code")
        self.app_package_name: str | None = document.get("app_package_name")


class ClientContext:
    """`context.client_context`: present only when the invoker sent `X-Amz-Client-Context`."""

    __slots__ = ("client", "custom", "env")

    def __init__(self, document: dict[str, Any]) -> None:
        client = document.get("client")
        self.client: Client | None = Client(client) if isinstance(client, dict) else None
        self.custom: dict[str, Any] | None = document.get("custom")
        self.env: dict[str, Any] | None = document.get("env")


class EnvironmentFacts(NamedTuple):
    """The context members that come from the environment's variables."""

    function_name: str | None
    function_version: str | None
    memory_limit_in_mb: str | None
    log_group_name: str | None
    log_stream_name: str | None

    @classmethod
    def from_environ(cls) -> EnvironmentFacts:
        """Read them once per environment: `os.environ` lookups cost ~1 µs each."""
        environ = os.environ
        return cls(
            environ.get("AWS_LAMBDA_FUNCTION_NAME"),
            environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
            # The RIC passes the variable's string through ("128"), not an int: so do we.
            environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
            environ.get("AWS_LAMBDA_LOG_GROUP_NAME"),
            environ.get("AWS_LAMBDA_LOG_STREAM_NAME"),
        )


class LambdaContext:
    """The second argument of `handler(event, context)`."""

    def __init__(
        self,
        *,
        aws_request_id: str,
        invoked_function_arn: str,
        deadline_epoch_ms: int,
        client_context: dict[str, Any] | None = None,
        cognito_identity: dict[str, Any] | None = None,
        facts: EnvironmentFacts | None = None,
    ) -> None:
        if facts is None:
            facts = EnvironmentFacts.from_environ()
        self.aws_request_id = aws_request_id
        self.invoked_function_arn = invoked_function_arn
        (
            self.function_name,
            self.function_version,
            self.memory_limit_in_mb,
            self.log_group_name,
            self.log_stream_name,
        ) = facts
        self.identity = CognitoIdentity(cognito_identity)
        self.client_context = ClientContext(client_context) if client_context else None
        self.tenant_id: str | None = None
        self._deadline_epoch_ms = deadline_epoch_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the invocation's deadline, floored at 0."""
        remaining = self._deadline_epoch_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg: object) -> None:
        """Write `msg` to the function's log as is (no newline added, as Lambda's runtime)."""
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},identity={self.identity}])"
        )
