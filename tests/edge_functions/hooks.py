"""Lambda@Edge handlers the pipeline tests attach to behaviors (ordinary AWS-style code)."""

import base64
import os
import time


def _cf(event):
    return event["Records"][0]["cf"]


def tag_request(event, context):
    """viewer-request / origin-request: mark the request, rewrite uri and query."""
    cf = _cf(event)
    request = cf["request"]
    trigger = cf["config"]["eventType"]
    request["headers"][f"x-{trigger}"] = [{"key": f"X-{trigger}", "value": "ran"}]
    if "/rewrite/" in request["uri"]:
        request["uri"] = request["uri"].replace("/rewrite/", "/rewritten/")
        request["querystring"] = "added=1"
    return request


def tag_response(event, context):
    """origin-response / viewer-response: add a header naming the trigger."""
    cf = _cf(event)
    response = cf["response"]
    trigger = cf["config"]["eventType"]
    response["headers"][f"x-{trigger}"] = [{"key": f"X-{trigger}", "value": "ran"}]
    return response


def echo_event_response(event, context):
    """A generated response whose body is the event the function got."""
    import json

    return {
        "status": "200",
        "statusDescription": "OK",
        "headers": {"content-type": [{"key": "Content-Type", "value": "application/json"}]},
        "body": json.dumps(event),
    }


def generate(event, context):
    """Answer every request with a generated 200."""
    return {
        "status": "200",
        "statusDescription": "OK",
        "headers": {"content-type": [{"key": "Content-Type", "value": "text/plain"}]},
        "body": f"generated at {_cf(event)['config']['eventType']}",
    }


def replace_body(event, context):
    """origin-request with include-body: show the body's length, replace it."""
    request = _cf(event)["request"]
    body = request["body"]
    seen = len(base64.b64decode(body["data"]))
    request["headers"]["x-seen-body"] = [
        {"key": "X-Seen-Body", "value": f"{seen}:{body['inputTruncated']}"}
    ]
    if request["uri"].endswith("/replace"):
        body["action"] = "replace"
        body["encoding"] = "text"
        body["data"] = "replaced body"
    return request


def raise_error(event, context):
    raise KeyError("missing-thing")


def sleep_forever(event, context):
    while True:
        time.sleep(1)


def sleep_briefly(event, context):
    time.sleep(0.5)
    return _cf(event)["request"]


def eat_memory(event, context):
    hog = []
    while True:
        hog.append(bytearray(16 * 1024 * 1024))


def crash(event, context):
    os._exit(3)


def invalid_json(event, context):
    return {"status": "200", "headers": {"x-cache": [{"key": "X-Cache", "value": "fake"}]}}


def read_only_host(event, context):
    request = _cf(event)["request"]
    request["headers"]["host"] = [{"key": "Host", "value": "elsewhere.example"}]
    return request


def not_an_object(event, context):
    return ["not", "an", "object"]


def switch_origin(event, context):
    """origin-request: send the request to the custom origin named in X-Switch-To (host:port)."""
    request = _cf(event)["request"]
    target = request["headers"].get("x-switch-to")
    if target:
        host, _, port = target[0]["value"].partition(":")
        request["origin"] = {
            "custom": {
                "customHeaders": {"x-switched": [{"key": "X-Switched", "value": "yes"}]},
                "domainName": host,
                "keepaliveTimeout": 5,
                "path": "/switched",
                "port": int(port),
                "protocol": "http",
                "readTimeout": 30,
                "sslProtocols": ["TLSv1.2"],
            }
        }
        request["headers"]["host"] = [{"key": "Host", "value": target[0]["value"]}]
    return request


def name_the_origin(event, context):
    """origin-request: tell the origin which origin the event named (X-Event-Origin), and drop
    the /named prefix from the uri."""
    request = _cf(event)["request"]
    custom = request["origin"]["custom"]
    named = f"{custom['domainName']}:{custom['port']}"
    request["headers"]["x-event-origin"] = [{"key": "X-Event-Origin", "value": named}]
    request["uri"] = request["uri"].removeprefix("/named")
    return request


def personalise_body(event, context):
    """viewer-response: replace the body for this viewer."""
    response = _cf(event)["response"]
    response["body"] = "just for you"
    return response
