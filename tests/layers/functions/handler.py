"""A Python function that uses its layers (tests/test_layers.py)."""

import ctypes
import os
import subprocess
import sys

import greeting
import shadowed
import shared


def handler(event, context):
    found = {
        "greeting": greeting.WORDS,
        "shared": shared.VALUE,
        "shadowed": shadowed.WHERE,
        "sys_path": sys.path[:3],
        "PATH": os.environ["PATH"],
        "LD_LIBRARY_PATH": os.environ.get("LD_LIBRARY_PATH"),
    }
    if event.get("versioned"):
        import versioned

        found["versioned"] = versioned.WHERE
    if event.get("tool"):
        done = subprocess.run(["layer-tool", "x"], capture_output=True, text=True, check=True)
        found["tool"] = done.stdout.strip()
    if event.get("library"):
        found["library"] = bool(ctypes.CDLL(event["library"]))
    if event.get("write"):
        try:
            with open(os.path.join(event["write"], "python", "new.txt"), "w") as file:
                file.write("x")
            found["written"] = True
        except OSError as exc:
            found["written"] = type(exc).__name__
    return found


def viewer(event, context):
    """viewer-request: a generated response that says what the layer gave."""
    return {"status": "200", "body": f"{greeting.WORDS}; {shared.VALUE}"}
