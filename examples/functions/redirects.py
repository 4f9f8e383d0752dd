"""Viewer-request: redirects and URL normalisation.

- Moved pages answer 301 with Location (a generated response, nothing else runs).
- Runs of slashes collapse (`//docs///x` -> `/docs/x`), with a 301 to the clean URL.
- A directory URI gets its index document (`/docs/` -> `/docs/index.html`) without a redirect,
  the classic fix for S3 origins behind CloudFront.
"""

import re

REDIRECTS = {
    "/old": "/",
    "/home": "/",
    "/documentation": "/docs/",
    "/blog": "https://blog.example.com/",
}


def _redirect(location, querystring):
    if querystring and "://" not in location:
        location = f"{location}?{querystring}"
    return {
        "status": "301",
        "statusDescription": "Moved Permanently",
        "headers": {
            "location": [{"key": "Location", "value": location}],
            "cache-control": [{"key": "Cache-Control", "value": "max-age=3600"}],
        },
    }


def handler(event, context):
    request = event["Records"][0]["cf"]["request"]
    uri = request["uri"]
    target = REDIRECTS.get(uri.rstrip("/") or "/")
    if target is not None and target != uri:
        return _redirect(target, request["querystring"])
    clean = re.sub(r"/{2,}", "/", uri)
    if clean != uri:
        return _redirect(clean, request["querystring"])
    if uri.endswith("/"):
        request["uri"] = uri + "index.html"
    return request
