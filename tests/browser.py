"""A real headless browser for the tests: Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Where screenshots are kept as test artifacts.
ARTIFACTS = Path(os.environ.get("EDGE_TEST_ARTIFACTS", REPO / ".test-artifacts"))
# Chromium as this machine lets it run (no sandbox as root, no network of its own).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
