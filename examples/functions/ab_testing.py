"""A/B testing with a sticky cookie.

viewer_request: a viewer in a group (cookie `ab-group=a|b`) keeps it; a new viewer is put in
one at random. The page `/experiment/` is then served from `/experiment/a/` or
`/experiment/b/`. The choice travels to viewer_response in a request header.

viewer_response: a viewer who came without the cookie gets it, so the next visit lands in the
same group.
"""

import random

COOKIE = "ab-group"
GROUPS = ("a", "b")
HEADER = "x-ab-group"


def _group_from_cookies(headers):
    for entry in headers.get("cookie", []):
        for part in entry["value"].split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and value in GROUPS:
                return value
    return None


def viewer_request(event, context):
    request = event["Records"][0]["cf"]["request"]
    headers = request["headers"]
    group = _group_from_cookies(headers)
    if group is None:
        group = random.choice(GROUPS)
        headers[HEADER] = [{"key": "X-AB-Group", "value": f"new:{group}"}]
    else:
        headers[HEADER] = [{"key": "X-AB-Group", "value": group}]
    if request["uri"] in ("/experiment", "/experiment/", "/experiment/index.html"):
        request["uri"] = f"/experiment/{group}/index.html"
    return request


def viewer_response(event, context):
    cf = event["Records"][0]["cf"]
    response = cf["response"]
    marker = cf["request"]["headers"].get(HEADER, [{"value": ""}])[0]["value"]
    if marker.startswith("new:"):
        group = marker[4:]
        response["headers"].setdefault("set-cookie", []).append(
            {
                "key": "Set-Cookie",
                "value": f"{COOKIE}={group}; Path=/; Max-Age=2592000; SameSite=Lax",
            }
        )
    return response
