"""The seam every runtime implements, and the Lambda vocabulary they share.

`protocol.Runtime` is what a runtime is to its callers (start, invoke, aclose, has_entry, stats);
`result` is a successful invocation, `errors` every way one fails; `request_ids`, `log_lines`
(START / END / REPORT and the runtime's own messages), `limits` (Lambda's numbers), `sink` (where
each invocation's log goes), `stats` (the counters a metrics layer reads) and `deadlines` (the
time an invocation may take) are the rest of what no runtime writes again; `framing` (the frames
between the host and a process) and `output_tail` (a dead process's output, read by the host)
are what the process runtimes share.

Runtimes (`sandbox.python_worker`, `sandbox.node_worker`, `sandbox.wasm`, those to come) import
from here and never from each other. Nothing is imported here: the processes of the Python
runtime import `log_lines` before they fork, and must not pay for the rest.
"""
