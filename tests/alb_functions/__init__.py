"""Lambda handlers for ALB targets, built on real adapters (Mangum, apig-wsgi, Powertools).

Each module serves the same routes, so one table of tests runs against all three:

- `/echo` and `/echo/<anything>` (any method): JSON of method, decoded path, query pairs in
  order, headers, and the body (base64, so binary bodies compare exactly).
- `/binary`: PNG-like bytes, `image/png`.
- `/cookies`: two `Set-Cookie` headers (`a=1`, `b=2`).
- `/missing`: 404 with a JSON error.
"""

from __future__ import annotations

# The bytes /binary answers with: a PNG signature and every byte value.
BINARY_BODY = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
