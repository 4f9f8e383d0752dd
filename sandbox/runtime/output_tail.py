"""Reading what a dead or stuck environment wrote: the tail of its output file, from the host.

Every process runtime gives its processes one memory file as fds 1 and 2 and keeps it near the
log limit from inside (compacting it to a marker line and the tail). After a timeout or a crash
the process cannot drain it any more, so the host reads it here.
"""

from __future__ import annotations

import os
import re

from sandbox.runtime import log_lines

_MARKER = re.compile(rb"\[\.\.\. (\d{1,20}) bytes of output dropped \.\.\.\]\n")


def read_output_tail(fd: int, max_bytes: int) -> str:
    """What was written to the file `fd` since its last drain: the last `max_bytes`, after a
    marker line when more was written ("" when it cannot be read).

    The environment keeps the file near the limit by compacting it to its own marker line plus
    the tail; that marker's count is carried into this one when the marker is cut off."""
    try:
        end = os.fstat(fd).st_size
        start = max(0, end - max_bytes)
        data = os.pread(fd, end - start, start)
        head = os.pread(fd, log_lines.DROPPED_MARKER_MAX_BYTES, 0) if start else b""
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    if not start:
        return text
    earlier = _MARKER.match(head)
    dropped = start + (int(earlier[1]) - len(earlier[0]) if earlier else 0)
    return log_lines.dropped_marker(dropped) + text
