"""npm's `aws-lambda-ric` (AWS's Node.js runtime interface client), installed once into the
user's cache directory for the custom-runtime tests.

It builds libcurl and a native module when installed, which takes a minute or two: `.ci/run`
installs it before the suite (`python -m tests.node_ric`), and the tests' fixture installs it
when it is missing. Either way the folder is reused afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

VERSION = "3.3.0"
# What the build needs besides node and npm (Debian: build-essential cmake autoconf automake
# libtool).
BUILD_TOOLS = ("make", "cmake", "g++", "autoreconf", "libtoolize")
INSTALL_SECONDS = 900


def folder() -> Path:
    """Where it is installed: `<user cache>/edge-tests/aws-lambda-ric-<version>`."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "edge-tests" / f"aws-lambda-ric-{VERSION}"


def _built(where: Path) -> bool:
    return (where / "node_modules" / "aws-lambda-ric" / "dist" / "rapid-client.node").is_file()


def install() -> tuple[Path | None, str]:
    """(the folder whose node_modules holds aws-lambda-ric, "") or (None, why it cannot be)."""
    where = folder()
    if _built(where):
        return where, ""
    missing = [t for t in ("node", "npm", *BUILD_TOOLS) if shutil.which(t) is None]
    if missing:
        return None, (
            f"aws-lambda-ric cannot be built here: missing {', '.join(missing)} (Debian: "
            "apt-get install nodejs npm build-essential cmake autoconf automake libtool)"
        )
    where.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", f"aws-lambda-ric@{VERSION}"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=INSTALL_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, f"npm install aws-lambda-ric took more than {INSTALL_SECONDS} s"
    if done.returncode != 0 or not _built(where):
        return None, f"npm install aws-lambda-ric@{VERSION} failed: {done.stderr[-1500:]}"
    return where, ""


if __name__ == "__main__":
    found, why = install()
    print(found if found is not None else f"not installed: {why}", file=sys.stderr)
