"""The viewer side of the edge: the server's request in, the edge's refusals, the answer out,
one access-log line and one metrics record per request.

- `admission`: what the edge refuses before any behavior sees a request (pure).
- `protocol`: what answering takes whatever the server's interface (heads, error pages, logs).
- `asgi`: the adapter for ASGI servers (one per server interface).
"""

from edge.viewer.admission import Admitted, Refused, ViewerLimits, admit, refuse_for_behavior
from edge.viewer.asgi import AsgiViewer
from edge.viewer.protocol import Journey, Viewer

__all__ = [
    "Admitted",
    "AsgiViewer",
    "Journey",
    "Refused",
    "Viewer",
    "ViewerLimits",
    "admit",
    "refuse_for_behavior",
]
