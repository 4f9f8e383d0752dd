"""Lambda@Edge hooks of the cluster tests."""

from __future__ import annotations

import time
from typing import Any


def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Take `?sleep=SECONDS` (default 1) before passing the request on unchanged."""
    request: dict[str, Any] = event["Records"][0]["cf"]["request"]
    query = dict(part.split("=", 1) for part in request["querystring"].split("&") if "=" in part)
    time.sleep(float(query.get("sleep", "1")))
    return request
