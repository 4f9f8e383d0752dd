"""The durable queue of accepted asynchronous events, and the outbox of destination deliveries.

One SQLite file in WAL mode with `synchronous = FULL`: a commit is fsync'd before `put()`
returns, so a 202 means the event survives a SIGKILL or a power cut. An event is `queued` or
`running`; it is deleted in the same transaction that records its outcome (the deliveries for
its destinations go into the outbox, events for `function:` destinations into the queue), so
it never runs again after that. On open, events left `running` by a crash are queued again:
delivery is at-least-once (spec §9).

All SQLite calls run on one dedicated thread, never on the event loop. Times are epoch
seconds (an event's age must survive a restart).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from edge.invoke.records import Outcome

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    payload BLOB NOT NULL,
    enqueued_at REAL NOT NULL,
    due_at REAL NOT NULL,
    invocations INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    throttles INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'queued',
    last_outcome TEXT
);
CREATE INDEX IF NOT EXISTS events_due ON events (function, state, due_at, seq);
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    due_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""

_EVENT_COLUMNS = (
    "seq, request_id, function, qualifier, payload, enqueued_at, invocations, errors, "
    "throttles, last_outcome"
)


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """An accepted asynchronous event, as claimed for a run."""

    seq: int
    request_id: str
    function: str
    qualifier: str
    payload: bytes
    enqueued_at: float
    invocations: int  # attempts that reached the function so far
    errors: int  # attempts that ended in a function error
    throttles: int
    last_outcome: Outcome | None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to put on the queue."""

    request_id: str
    function: str
    qualifier: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    """A record waiting in the outbox for its destination (`file:...` or an http(s) URL)."""

    seq: int
    target: str
    body: bytes
    created_at: float
    attempts: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    oldest_enqueued_at: float | None
    outbox: int


def _event(row: Sequence[Any]) -> QueuedEvent:
    outcome = Outcome.from_json(orjson.loads(row[9])) if row[9] else None
    return QueuedEvent(
        int(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        bytes(row[4]),
        float(row[5]),
        int(row[6]),
        int(row[7]),
        int(row[8]),
        outcome,
    )


class EventQueue:
    """The SQLite file at `path`: `await open()` first, `await close()` at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-queue")
        self._db: sqlite3.Connection | None = None

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            assert self._db is not None, "the queue is not open"
            return work(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    @staticmethod
    def _transaction(db: sqlite3.Connection, work: Callable[[], T]) -> T:
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work()
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    async def open(self) -> int:
        """Create or open the file; requeue events a crash left running. Returns their count."""

        def connect() -> int:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode = WAL")
            # WAL + FULL: every commit is fsync'd before it returns (durable acceptance).
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA busy_timeout = 5000")
            db.executescript(_SCHEMA)
            self._db = db
            cursor = db.execute("UPDATE events SET state = 'queued' WHERE state = 'running'")
            return cursor.rowcount

        return await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def close(self) -> None:
        def disconnect() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._executor, disconnect)
        self._executor.shutdown(wait=True)

    async def put(self, event: NewEvent, now: float) -> None:
        """Store `event` durably (returns after the fsync'd commit)."""
        await self._run(lambda db: self._transaction(db, lambda: self._insert(db, [event], now)))

    @staticmethod
    def _insert(db: sqlite3.Connection, events: Iterable[NewEvent], now: float) -> None:
        db.executemany(
            "INSERT INTO events (request_id, function, qualifier, payload, enqueued_at, due_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(e.request_id, e.function, e.qualifier, e.payload, now, now) for e in events],
        )

    async def claim(
        self, room: Mapping[str, int], expired_before: Mapping[str, float], now: float
    ) -> list[QueuedEvent]:
        """Mark running and return due events, oldest due first: at most `room[f]` of each
        function `f`, plus (whatever the room) its events enqueued before `expired_before[f]`,
        so that they can end as too old."""

        def claim(db: sqlite3.Connection) -> list[QueuedEvent]:
            def work() -> list[QueuedEvent]:
                found: dict[int, QueuedEvent] = {}
                for function, cutoff in expired_before.items():
                    rows = db.execute(
                        f"SELECT {_EVENT_COLUMNS} FROM events WHERE function = ? AND "
                        "state = 'queued' AND enqueued_at <= ? ORDER BY seq LIMIT 256",
                        (function, cutoff),
                    ).fetchall()
                    found.update((int(row[0]), _event(row)) for row in rows)
                for function, limit in room.items():
                    if limit <= 0:
                        continue
                    rows = db.execute(
                        f"SELECT {_EVENT_COLUMNS} FROM events WHERE function = ? AND "
                        "state = 'queued' AND due_at <= ? ORDER BY due_at, seq LIMIT ?",
                        (function, now, limit),
                    ).fetchall()
                    found.update((int(row[0]), _event(row)) for row in rows)
                db.executemany(
                    "UPDATE events SET state = 'running' WHERE seq = ?", [(s,) for s in found]
                )
                return list(found.values())

            return self._transaction(db, work)

        return await self._run(claim)

    async def retry(
        self,
        event: QueuedEvent,
        *,
        due_at: float,
        invoked: bool,
        function_error: bool = False,
        throttled: bool = False,
        outcome: Outcome | None = None,
    ) -> None:
        """Put a claimed event back on the queue, due at `due_at`."""
        last = orjson.dumps(outcome.to_json()).decode() if outcome else None

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE events SET state = 'queued', due_at = ?, "
                "invocations = invocations + ?, errors = errors + ?, "
                "throttles = throttles + ?, last_outcome = COALESCE(?, last_outcome) "
                "WHERE seq = ?",
                (due_at, int(invoked), int(function_error), int(throttled), last, event.seq),
            )  # one statement: its own (fsync'd) transaction

        await self._run(work)

    async def finish(
        self,
        event: QueuedEvent,
        *,
        deliveries: Sequence[tuple[str, bytes]] = (),
        new_events: Sequence[NewEvent] = (),
        now: float,
    ) -> None:
        """Delete `event` and record its outcome (outbox deliveries, chained events) atomically."""

        def finish(db: sqlite3.Connection) -> None:
            def work() -> None:
                db.execute("DELETE FROM events WHERE seq = ?", (event.seq,))
                db.executemany(
                    "INSERT INTO deliveries (target, body, created_at, due_at) VALUES (?, ?, ?, ?)",
                    [(target, body, now, now) for target, body in deliveries],
                )
                self._insert(db, new_events, now)

            self._transaction(db, work)

        await self._run(finish)

    async def next_due(self, after: float) -> float | None:
        """The earliest due time after `after` of a queued event (None: none)."""

        def query(db: sqlite3.Connection) -> float | None:
            row = db.execute(
                "SELECT MIN(due_at) FROM events WHERE state = 'queued' AND due_at > ?", (after,)
            ).fetchone()
            return None if row[0] is None else float(row[0])

        return await self._run(query)

    async def stats(self) -> QueueStats:
        def query(db: sqlite3.Connection) -> QueueStats:
            depth, oldest = db.execute("SELECT COUNT(*), MIN(enqueued_at) FROM events").fetchone()
            (outbox,) = db.execute("SELECT COUNT(*) FROM deliveries").fetchone()
            return QueueStats(int(depth), None if oldest is None else float(oldest), int(outbox))

        return await self._run(query)

    async def due_deliveries(self, now: float, limit: int = 256) -> list[Delivery]:
        def query(db: sqlite3.Connection) -> list[Delivery]:
            rows = db.execute(
                "SELECT seq, target, body, created_at, attempts FROM deliveries "
                "WHERE due_at <= ? ORDER BY seq LIMIT ?",
                (now, limit),
            ).fetchall()
            return [
                Delivery(int(r[0]), str(r[1]), bytes(r[2]), float(r[3]), int(r[4])) for r in rows
            ]

        return await self._run(query)

    async def next_delivery_due(self) -> float | None:
        def query(db: sqlite3.Connection) -> float | None:
            row = db.execute("SELECT MIN(due_at) FROM deliveries").fetchone()
            return None if row[0] is None else float(row[0])

        return await self._run(query)

    async def delivered(self, seqs: Sequence[int]) -> None:
        """Forget deliveries that reached their destination (or were given up)."""

        def work(db: sqlite3.Connection) -> None:
            self._transaction(
                db,
                lambda: db.executemany(
                    "DELETE FROM deliveries WHERE seq = ?", [(s,) for s in seqs]
                ),
            )

        await self._run(work)

    async def delivery_failed(self, seq: int, due_at: float) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, due_at = ? WHERE seq = ?",
                (due_at, seq),
            )

        await self._run(work)
