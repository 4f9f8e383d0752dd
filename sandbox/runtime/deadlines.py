"""How long one invocation may run: the function's timeout, shortened by the caller's deadline."""

from __future__ import annotations

import time


def invocation_deadline(
    timeout_seconds: float, deadline: float | None, caller_timeout_seconds: float | None
) -> tuple[float, float]:
    """(the absolute deadline on `time.monotonic()`'s clock, the budget a timeout message names).

    The caller's `deadline` can only shorten the function's `timeout_seconds`. When it does, the
    message names `caller_timeout_seconds` (the caller's own limit, e.g. a trigger's 5 s), or
    else the time that was left.
    """
    now = time.monotonic()
    budget = now + timeout_seconds
    if deadline is None or deadline >= budget:
        return budget, timeout_seconds
    if caller_timeout_seconds is not None:
        return deadline, caller_timeout_seconds
    return deadline, max(0.0, deadline - now)
