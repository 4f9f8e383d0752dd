"""The admin listener's status page: `/status`, a page that updates itself, and `/status.json`.

What it shows comes from the same numbers as `/metrics` (so every worker process counts, as a
scrape sees them): per function its invocations, errors, cold starts, throttles, concurrency
now and at peak, environments alive and busy; the cache's hit ratio, entries and bytes; the
requests by status class; and the most recent failures with their request ids, which each
viewer process records as it logs them (`RecentErrors`: in memory with one worker, a bounded
journal file beside the metrics with several). The page is one self-contained document (no
script or style from elsewhere) that reads `/status.json` twice a second.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from edge.config import EdgeConfig

RECENT_ERRORS = 20
_JOURNAL_MAX_BYTES = 256 * 1024  # a journal past this starts over (only the latest matter)
_JOURNAL_TAIL_BYTES = 32 * 1024
_CAUSE_CHARS = 300


class RecentErrors:
    """The latest failures answered to viewers, newest last.

    With `journal` (a file every worker process appends to) they reach the admin listener's
    process; without, they stay in this process (one worker: the admin shares it).
    """

    def __init__(self, journal: Path | None = None, *, keep: int = RECENT_ERRORS) -> None:
        self.journal = journal
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._keep = keep

    def record(self, entry: Mapping[str, Any]) -> None:
        """One failure (already logged); bounded fields, never raises."""
        document = {k: (v[:_CAUSE_CHARS] if isinstance(v, str) else v) for k, v in entry.items()}
        document.setdefault("time", time.time())
        if self.journal is None:
            with self._lock:
                self._entries.append(document)
            return
        line = orjson.dumps(document) + b"\n"
        try:
            # One write with O_APPEND: lines from several processes do not interleave.
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size > _JOURNAL_MAX_BYTES:
                    os.ftruncate(fd, 0)
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError:
            pass  # the status page is a convenience: never fail a request over it

    def latest(self) -> list[dict[str, Any]]:
        """The newest failures, newest first."""
        if self.journal is None:
            with self._lock:
                return list(reversed(self._entries))
        try:
            with self.journal.open("rb") as file:
                size = file.seek(0, os.SEEK_END)
                file.seek(max(0, size - _JOURNAL_TAIL_BYTES))
                lines = file.read().splitlines()
        except OSError:
            return []
        found: list[dict[str, Any]] = []
        for line in reversed(lines):
            try:
                found.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue  # a line cut by the tail's start, or by a start-over
            if len(found) == self._keep:
                break
        return found


def status_document(
    config: EdgeConfig,
    metrics_text: str,
    errors: Iterable[Mapping[str, Any]],
    *,
    started: float,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What the page shows, from a `/metrics` scrape, the config and the recent failures."""
    values = _metric_values(metrics_text)

    def total(name: str, **match: str) -> float:
        return sum(
            value
            for labels, value in values.get(name, ())
            if all(labels.get(k) == v for k, v in match.items())
        )

    functions = []
    for name, function in config.functions.items():
        functions.append(
            {
                "name": name,
                "runtime": function.runtime,
                "memory_mb": function.memory_size_mb,
                "invocations": total("edge_function_invocations_total", function=name),
                "errors": total("edge_function_errors_total", function=name),
                "cold_starts": total("edge_function_cold_starts_total", function=name),
                # The triggers' count where the edge keeps one, else the limiter's.
                "throttles": total("edge_function_throttles_total", function=name)
                or total("edge_throttles_total", function=name),
                "concurrency": total("edge_function_concurrent_executions", function=name),
                "peak_concurrency": total(
                    "edge_function_concurrent_executions_peak", function=name
                ),
                "environments": total("edge_function_environments", function=name),
                "busy": total("edge_function_environments", function=name, state="busy"),
            }
        )
    hits = total("edge_cache_results_total", result="Hit") + total(
        "edge_cache_results_total", result="RefreshHit"
    )
    looked = hits + total("edge_cache_results_total", result="Miss")
    by_class: dict[str, float] = collections.defaultdict(float)
    for labels, value in values.get("edge_requests_total", ()):
        by_class[f"{labels.get('status', '0')[:1]}xx"] += value
    document: dict[str, Any] = {
        "edge": config.server.name,
        "uptime_seconds": round(time.time() - started, 1),
        "functions": functions,
        "cache": {
            "hit_ratio": round(hits / looked, 4) if looked else None,
            "hits": hits,
            "misses": looked - hits,
            "entries": total("edge_cache_entries"),
            "bytes": total("edge_cache_bytes"),
        },
        "requests": {"total": sum(by_class.values()), "by_class": dict(sorted(by_class.items()))},
        "recent_errors": list(errors),
    }
    if extra:
        document.update(extra)
    return document


def _metric_values(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)] of a Prometheus text exposition."""
    values: dict[str, list[tuple[dict[str, str], float]]] = collections.defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name].append((dict(sample.labels), float(sample.value)))
    return values


def status_routes(
    config: EdgeConfig,
    scrape: Callable[[], Awaitable[bytes]],
    errors: RecentErrors,
    *,
    extra: Callable[[], Mapping[str, Any]] | None = None,
) -> list[Route]:
    """`/status` and `/status.json`; `scrape` gives what `/metrics` would answer now, `extra`
    more sections for the document (versions and aliases, deployments)."""
    started = time.time()

    async def page(_: Request) -> Response:
        return HTMLResponse(_PAGE, headers={"cache-control": "no-store"})

    async def document(_: Request) -> Response:
        text = (await scrape()).decode("utf-8", "replace")
        body = status_document(
            config,
            text,
            errors.latest(),
            started=started,
            extra=extra() if extra is not None else None,
        )
        return Response(
            orjson.dumps(body),
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )

    return [Route("/status", page), Route("/status.json", document)]


_PAGE_FILE = Path(__file__).with_name("status_page.html")
_PAGE = _PAGE_FILE.read_text(encoding="utf-8")
