"""One Node.js execution environment, host side: a `node` process running `runtime.js`, served
by the framed environment every process runtime shares (`sandbox.runtime.framed_environment`).
"""

from __future__ import annotations

from sandbox.runtime.framed_environment import FramedEnvironment


class NodeEnvironment(FramedEnvironment):
    """A Lambda execution environment backed by one `node` process. Create with `configure()`."""

    # What V8 prints when it ends the process for want of memory (its heap limit, or an
    # allocation RLIMIT_DATA refused).
    out_of_memory_marks = ("JavaScript heap out of memory", "Fatal process out of memory")
