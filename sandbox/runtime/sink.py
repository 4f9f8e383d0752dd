"""Where each invocation's log text goes: the caller's sink, which must never fail an invocation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# sink(text): one invocation's complete log (START..REPORT), called on the event loop; it must be
# quick and must not raise.
LogSink = Callable[[str], None]


def deliver_log(sink: LogSink | None, text: str) -> None:
    """Hand `text` to `sink`; a sink that raises is reported to the loop, not to the caller."""
    if sink is None:
        return
    try:
        sink(text)
    except Exception as exc:  # noqa: BLE001 - a broken sink must not fail invocations
        asyncio.get_running_loop().call_exception_handler(
            {"message": "log sink raised", "exception": exc}
        )
