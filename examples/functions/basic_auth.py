"""Viewer-request: HTTP Basic authentication in front of a behavior.

A viewer without valid credentials gets a generated 401 with WWW-Authenticate, so the
browser asks for a user name and password. Deploys to Lambda@Edge as it is.
"""

import base64
import hmac

REALM = "edge demo"
# Lambda@Edge has no environment variables: credentials live in the code (or a secret store).
USERS = {"demo": "edge"}


def _authorized(headers):
    for entry in headers.get("authorization", []):
        scheme, _, token = entry["value"].partition(" ")
        if scheme.lower() != "basic":
            continue
        try:
            user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        expected = USERS.get(user)
        return expected is not None and hmac.compare_digest(expected, password)
    return False


def handler(event, context):
    request = event["Records"][0]["cf"]["request"]
    if _authorized(request["headers"]):
        return request
    return {
        "status": "401",
        "statusDescription": "Unauthorized",
        "headers": {
            "www-authenticate": [{"key": "WWW-Authenticate", "value": f'Basic realm="{REALM}"'}],
            "content-type": [{"key": "Content-Type", "value": "text/plain; charset=utf-8"}],
            "cache-control": [{"key": "Cache-Control", "value": "no-store"}],
        },
        "body": "Authentication required.\n",
    }
