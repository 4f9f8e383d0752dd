"""One custom-runtime execution environment, host side: an agent process (and the bootstrap it
runs) served by the framed environment every process runtime shares
(`sandbox.runtime.framed_environment`), with Lambda's words for a bootstrap that fails.
"""

from __future__ import annotations

from typing import Any

from sandbox.runtime.framed_environment import FramedEnvironment

# What the environment itself reports when Init failed without the bootstrap saying why (it
# could not start, or it exited): the agent did not know the invocation's request id.
PLATFORM_INIT_ERRORS = frozenset({"Runtime.ExitError", "Runtime.InvalidEntrypoint"})


class ProvidedEnvironment(FramedEnvironment):
    """A Lambda execution environment backed by one agent and its bootstrap. Create with
    `configure()`."""

    def exit_message(self, wait_status: int | None) -> str:
        """A clean exit during an invocation is still an error: the runtime gave no reason."""
        if wait_status == 0:
            return "Runtime exited without providing a reason"
        return super().exit_message(wait_status)

    def init_error(self, error: dict[str, Any], request_id: str) -> tuple[dict[str, Any], str]:
        """A bootstrap that could not start or exited during Init: Lambda's message names the
        request and is logged, as for an exit during an invocation. What the bootstrap reported
        itself (`/runtime/init/error`) is its own document, as it sent it."""
        error_type = str(error.get("errorType", ""))
        if error_type not in PLATFORM_INIT_ERRORS:
            return error, ""
        message = f"RequestId: {request_id} Error: {error.get('errorMessage', '')}"
        return {**error, "errorMessage": message}, f"{message}\n{error_type}\n"
