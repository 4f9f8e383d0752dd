"""Lambda's request ids: one per invocation, a random UUID."""

from __future__ import annotations

import os

# Random bytes drawn 4 KiB at a time (256 ids per getrandom call), dropped in a forked child so
# that two processes never hand out the same ids.
_POOL_BYTES = 4096
_pool = b""
_used = _POOL_BYTES


def _forget_pool() -> None:
    global _pool, _used
    _pool, _used = b"", _POOL_BYTES


os.register_at_fork(after_in_child=_forget_pool)


def new_request_id() -> str:
    """A random (version 4) UUID string, as Lambda's request ids; ~3x cheaper than uuid4()."""
    global _pool, _used
    if _used >= _POOL_BYTES:
        _pool, _used = os.urandom(_POOL_BYTES), 0
    raw = bytearray(_pool[_used : _used + 16])
    _used += 16
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
