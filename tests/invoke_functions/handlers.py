"""Handlers for the Invoke API tests: ordinary Lambda code with observable side effects."""

import json
import os
import time


def echo(event, context):
    return {"echo": event, "request_id": context.aws_request_id}


def client_context(event, context):
    """What the handler's context says of the invoker's X-Amz-Client-Context."""
    found = context.client_context
    if found is None:
        return {"client_context": None}
    client = found.client
    return {
        "client_context": {
            "installation_id": client.installation_id if client else None,
            "app_title": client.app_title if client else None,
            "custom": found.custom,
            "env": found.env,
        }
    }


def fail(event, context):
    print("about to fail")
    return {"action": event["action"]}


def chatty(event, context):
    for number in range(500):
        print(f"line {number:04d} of a long log")
    return {"lines": 500}


def _append(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _wait_for(path, seconds):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} never opened")
        time.sleep(0.005)


def gated(event, context):
    """Note the start, wait for the gate file (if any), note the end: one line each."""
    marks = event["marks"]
    # The pid namespace too: under the sandbox the pid is the environment's own (2), and the
    # namespace is how the host finds what is left of the environment.
    _append(
        marks,
        json.dumps(
            {"start": event["id"], "pid": os.getpid(), "pidns": os.readlink("/proc/self/ns/pid")}
        ),
    )
    if event.get("gate"):
        _wait_for(event["gate"], 25)
    _append(marks, json.dumps({"done": event["id"], "request_id": context.aws_request_id}))
    return {"id": event["id"]}


def flaky(event, context):
    """Note every attempt; fail always (or until the attempt count in `succeed_on`)."""
    _append(event["marks"], json.dumps({"attempt": event["id"]}))
    raise RuntimeError(f"attempt failed for {event['id']}")


def sink(event, context):
    """Append the event to the file named by $SINK (a `function:` destination's target)."""
    _append(os.environ["SINK"], json.dumps(event))
    return None


def sleepy(event, context):
    time.sleep(event.get("seconds", 5))
    return "woke"
