"""The narrow engine protocol every database kind implements.

An engine owns connections, engine-enforced read-only mode, engine-level
timeouts and cancellation, and the raw catalog. It never decides whether a
statement is allowed: that is the guard's job (``mcp_server.sql.guard``), and the
engine's read-only settings are defence in depth on top of it.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.core.results import Column

EngineKind = Literal["sqlite", "postgresql", "mysql", "duckdb"]

__all__ = [
    "MAX_RESULT_BYTES",
    "WATCHDOG",
    "CancelHandle",
    "CatalogColumn",
    "CatalogForeignKey",
    "CatalogTable",
    "ConnectionPool",
    "DatabaseSpec",
    "Engine",
    "EngineKind",
    "RawResult",
    "ResultFingerprint",
    "Watchdog",
    "cancelled_error",
    "engine_refused",
    "execution_error",
    "fetch_bounded",
    "timeout_error",
]


@dataclass(frozen=True)
class DatabaseSpec:
    """A named database the registry knows."""

    name: str
    kind: EngineKind
    # SQLAlchemy-style URL (sqlite:///abs/path.sqlite for files); may hold a password, so not in repr
    url: str = field(repr=False)
    path: Path | None = None  # the file, for SQLite / DuckDB
    description_dir: Path | None = None  # BIRD database_description/ folder, if any
    tables_json: Path | None = None  # Spider/BIRD tables.json next to the folder, if any

    @property
    def display_url(self) -> str:
        """The URL with any password masked, for logs and tool output."""
        if "://" not in self.url or "@" not in self.url:
            return self.url
        scheme, rest = self.url.split("://", 1)
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else self.url


class CancelHandle:
    """Per-query cancellation: the engine binds a stop callback while the query runs.

    ``cancel()`` may be called from any thread, before, during or after the query; a query
    started on an already-cancelled handle is stopped at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._callback: Callable[[], None] | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            callback = self._callback
        if callback is not None:
            callback()

    def bind(self, callback: Callable[[], None]) -> None:
        """Register how to stop the running query (called by the engine when it starts)."""
        with self._lock:
            self._callback = callback
            already = self._cancelled
        if already:
            callback()

    def unbind(self) -> None:
        with self._lock:
            self._callback = None


def timeout_error(timeout_s: float) -> QueryFailed:
    return QueryFailed.of(
        "timeout",
        f"stopped after {timeout_s:.1f} s (timeout); simplify the query (fewer joins, add filters) "
        "or ask for fewer rows",
    )


def cancelled_error() -> QueryFailed:
    return QueryFailed.of("execution", "the query was cancelled before it finished")


def engine_refused(message: str) -> QueryFailed:
    """The engine's own read-only enforcement (defence in depth) refused the statement."""
    return QueryFailed.of(
        "blocked",
        f"refused by the database engine (read-only): {message.strip()}; only read queries are allowed",
        rule="engine_read_only",
    )


T = TypeVar("T")

log = logging.getLogger("sqlr1.engines")


class Watchdog:
    """One daemon thread that fires callbacks at deadlines (engine-side timeouts as a backstop).

    Cheaper than a ``threading.Timer`` per query; restarts itself after ``fork`` so worker
    processes get their own thread.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, list[Any]]] = []
        self._seq = itertools.count()
        self._pid = -1
        self._dead = 0

    def schedule(self, delay_s: float, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` after ``delay_s`` unless the returned disarm function is called first."""
        entry: list[Any] = [callback]
        item = (time.monotonic() + delay_s, next(self._seq), entry)
        with self._cond:
            if self._pid != os.getpid():
                self._heap = []
                self._dead = 0
                self._pid = os.getpid()
                threading.Thread(target=self._loop, name="sqlr1-watchdog", daemon=True).start()
            if self._dead > 512 and self._dead * 2 > len(self._heap):
                # Most queries finish long before their deadline: drop their disarmed entries.
                self._heap = [e for e in self._heap if e[2][0] is not None]
                heapq.heapify(self._heap)
                self._dead = 0
            heapq.heappush(self._heap, item)
            if self._heap[0] is item:  # only an earlier deadline needs to wake the thread
                self._cond.notify()

        def disarm() -> None:
            if entry[0] is not None:
                entry[0] = None
                with self._cond:
                    self._dead += 1

        return disarm

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                _, _, entry = heapq.heappop(self._heap)
                callback = entry[0]
                if callback is None:
                    self._dead = max(0, self._dead - 1)
            if callback is not None:
                try:
                    callback()
                except Exception:  # a failed stop must not kill the watchdog for other queries
                    log.exception("watchdog callback failed")


WATCHDOG = Watchdog()


class ConnectionPool(Generic[T]):
    """An engine's connections: idle ones it reuses (newest first) and busy ones running a query, under one
    lock. A connection runs one query (thread) at a time; ``busy()`` is what an interrupt must reach."""

    def __init__(self, close: Callable[[T], None], max_idle: int = 8) -> None:
        self._close = close
        self._max_idle = max_idle
        self._idle: list[T] = []
        self._busy: set[T] = set()
        self._lock = threading.Lock()
        self._closed = False

    def take(self, usable: Callable[[T], bool] | None = None) -> T | None:
        """An idle connection, now busy; idle ones that ``usable`` rejects are closed on the way."""
        stale: list[T] = []
        found: T | None = None
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if usable is None or usable(conn):
                    self._busy.add(conn)
                    found = conn
                    break
                stale.append(conn)
        for conn in stale:
            self._close_quietly(conn)
        return found

    def add_busy(self, conn: T) -> None:
        """A connection just opened for a query."""
        with self._lock:
            self._busy.add(conn)

    def give(self, conn: T) -> None:
        """A busy connection whose query ended: kept idle, or closed past ``max_idle`` or after ``close``."""
        with self._lock:
            self._busy.discard(conn)
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        self._close_quietly(conn)

    def discard(self, conn: T) -> None:
        """Close a connection that must not be reused (broken, or its query could not be ended cleanly)."""
        with self._lock:
            self._busy.discard(conn)
        self._close_quietly(conn)

    def busy(self) -> list[T]:
        """The connections running a query now."""
        with self._lock:
            return list(self._busy)

    def idle(self) -> list[T]:
        """The idle connections, the next one to be reused last."""
        with self._lock:
            return list(self._idle)

    def clear(self) -> None:
        """Drop every idle connection (after one broke, e.g. a server restart, the rest are stale too)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self._close_quietly(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            self._close_quietly(conn)

    def _close_quietly(self, conn: T) -> None:
        try:
            self._close(conn)
        except Exception as exc:  # a broken connection may fail to close; it is dropped either way
            log.debug("closing a pooled connection failed: %s", exc)


MAX_RESULT_BYTES = 64 * 1024 * 1024  # text and blobs one result may hold in memory before the caps


_MASK = (1 << 128) - 1


def _canonical(value: Any) -> Any:
    """``value`` such that Python-equal values (``1 == 1.0 == True == Decimal(1)``) have one repr."""
    kind = type(value)
    if kind is str or kind is int or value is None:
        return value
    if kind is bool:
        return int(value)
    if kind is float:
        return int(value) if value.is_integer() else value
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        return as_float if Decimal(as_float) == value else ("<decimal>", str(value.normalize()))
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, list | tuple):
        return (kind.__name__, tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((repr(_canonical(k)), repr(_canonical(v))) for k, v in value.items())))
    return value  # dates, times, UUIDs: their repr is their value


class ResultFingerprint:
    """An order-independent fingerprint of a whole result, fed one row at a time in constant memory.

    Two results get the same :meth:`key` when they hold the same rows the same number of times (as
    bags, in any order; values compared by Python equality, as ``compare.result_key``). Engines feed it
    while they stream a result (``execute(..., fingerprint=)``), rows past ``max_rows`` included, so
    self-consistency can group results larger than the row cap.

    A row's digest is Python's own hash of it (C speed, and equal for equal rows by construction;
    string hashing is per process, so keys compare within one process), with the count of cells
    equal to -1 on the side because Python hashes -1 like -2. ``stable=True`` digests each row with
    BLAKE2b over a canonical form instead (the same in every process, about 20x slower), for a worker
    process whose state the parent merges (DuckDB).
    """

    __slots__ = ("_minus_ones", "_stable", "_sum", "_xor", "rows")

    def __init__(self, *, stable: bool = False) -> None:
        self.rows = 0
        self._sum = 0
        self._xor = 0
        self._minus_ones = 0
        self._stable = stable

    def add(self, row: Sequence[Any]) -> None:
        if self._stable:
            data = repr(tuple(_canonical(v) for v in row)).encode("utf-8", "surrogatepass")
            digest = int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")
        else:
            try:
                digest = hash(row if type(row) is tuple else tuple(row))
            except TypeError:  # lists, dicts (PostgreSQL arrays, JSON)
                digest = hash(tuple(_canonical(v) for v in row))
            self._minus_ones += row.count(-1)
        self.rows += 1
        self._sum = (self._sum + digest) & _MASK
        self._xor ^= digest & _MASK

    def state(self) -> tuple[int, int, int, int, bool]:
        """Picklable state (a worker process computes it, the parent :meth:`merge` s it)."""
        return (self.rows, self._sum, self._xor, self._minus_ones, self._stable)

    def merge(self, state: tuple[int, int, int, int, bool]) -> None:
        rows, total, xor, minus_ones, stable = state
        if self.rows and stable != self._stable:
            raise ValueError("cannot merge a stable fingerprint with a per-process one")
        self._stable = stable
        self.rows += rows
        self._sum = (self._sum + total) & _MASK
        self._xor ^= xor
        self._minus_ones += minus_ones

    def key(self) -> tuple[str, int, int, int, int]:
        return (
            "stable" if self._stable else "fingerprint",
            self.rows,
            self._sum,
            self._xor,
            self._minus_ones,
        )


def fetch_bounded(
    fetch: Callable[[int], Any], limit: int, batch: int = 1, fingerprint: ResultFingerprint | None = None
) -> tuple[list[Any], bool]:
    """Up to ``limit`` rows via ``fetch(n)`` (a cursor's ``fetchmany``), ``batch`` at a time, stopping
    early (True) once their text and blobs pass MAX_RESULT_BYTES.

    The row cap alone does not bound memory: 1,000 rows of 60 MB strings are cheap to ask for. No
    character cap (``max_chars`` is at most 50 M) needs more than this, so capped results are unchanged.
    With ``fingerprint``, every row of the result goes into it: the rest is read (not kept) to the end.
    """
    rows: list[Any] = []
    used = 0
    cut = False
    while len(rows) < limit and not cut:
        want = min(batch, limit - len(rows))
        got = list(fetch(want))
        for row in got:
            if fingerprint is not None:
                fingerprint.add(row)
            if cut:
                continue  # past the memory bound: fingerprinted, not kept
            rows.append(row)
            used += sum(len(v) for v in row if isinstance(v, str | bytes | bytearray | memoryview))
            cut = used > MAX_RESULT_BYTES
        if len(got) < want:
            return rows, cut  # the end of the result
    if fingerprint is not None:
        while more := list(fetch(max(batch, 256))):
            for row in more:
                fingerprint.add(row)
    return rows, cut


TABLE_HINT = " (hint: check the table name and its quoting with list_tables / describe_schema)"
COLUMN_HINT = (
    " (hint: check the column name, its table and its quoting with describe_schema;"
    " qualify columns with the table alias when several tables share a name)"
)  # the executor puts a precise one in its place where it can (mcp_server.sql.column_hint)


def execution_error(message: str, *, missing: Literal["table", "column"] | None = None) -> QueryFailed:
    """An engine error as a value; a missing table, or a missing or ambiguous column, gets a hint on how
    to fix it."""
    message = message.strip()
    if missing == "table":
        message += TABLE_HINT
    elif missing == "column":
        message += COLUMN_HINT
    return QueryFailed.of("execution", message)


@dataclass
class RawResult:
    """Rows as the engine returned them (before JSON conversion and character capping)."""

    columns: list[Column]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows existed than max_rows (one extra row was fetched to know)
    elapsed_ms: float
    # Set by an engine that saw every value while fetching: when all of them are already JSON scalars
    # that need no conversion (str, int, None), an upper bound of the characters executor.cap_rows would
    # count for ``rows``, so a result within the character cap skips that second pass. None: unknown.
    plain_chars_bound: int | None = None


@dataclass
class CatalogColumn:
    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False


@dataclass
class CatalogForeignKey:
    columns: list[str]
    ref_table: str
    ref_columns: list[str]


@dataclass
class CatalogTable:
    name: str
    columns: list[CatalogColumn] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    foreign_keys: list[CatalogForeignKey] = field(default_factory=list)
    schema: str | None = None  # e.g. "public"; None for SQLite main
    # The CREATE statement as stored, when it holds comments (SynSQL's /* column descriptions */)
    ddl: str | None = None


class Engine(Protocol):
    """What the executor, schema inspector and value index need from a database."""

    spec: DatabaseSpec

    @property
    def dialect(self) -> str:
        """The sqlglot dialect name ("sqlite", "postgres", "mysql", "duckdb")."""
        ...

    def execute(
        self,
        sql: str,
        *,
        max_rows: int,
        timeout_s: float,
        cancel: CancelHandle | None = None,
        fingerprint: ResultFingerprint | None = None,
    ) -> RawResult:
        """Run one already-guarded read statement read-only; the engine stops it at ``timeout_s``.

        Fetches at most ``max_rows + 1`` rows to set ``truncated``. ``cancel`` stops this query
        only (from any thread). With ``fingerprint``, every row of the result is added to it as it
        streams, the rows past ``max_rows`` too (read to the end within the timeout, never kept).
        Raises ``QueryFailed`` (kind ``timeout``, ``execution``, or ``blocked`` when the engine's
        own read-only enforcement refused it). Thread-safe: each call uses its own connection or a
        pooled one.
        """
        ...

    def explain(self, sql: str, *, timeout_s: float) -> RawResult:
        """Engine-level dry run (EXPLAIN) without returning data; raises ``QueryFailed``. Returns the
        engine's plan rows (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: one JSON plan; DuckDB: EXPLAIN;
        MariaDB/MySQL: none)."""
        ...

    def read_calls(self, sql: str) -> list[str]:
        """The functions the engine itself reads ``sql`` as calling (its own parser; nothing runs), lower
        case, in its own names. ``execute`` and ``explain`` refuse a statement whose reading calls anything
        ``guard.CallPolicy`` does not allow; this only reports (tests and the differential benchmark)."""
        ...

    def interrupt(self) -> None:
        """Stop every statement this engine is running now (used for cancellation)."""
        ...

    def catalog(self) -> list[CatalogTable]:
        """Tables with columns, types, primary and foreign keys (user tables only)."""
        ...

    def privilege_warnings(self) -> list[str]:
        """What the connection's role may do beyond reading (superuser, server files, writes), in words a
        person can act on; connects if needed. Empty for a file opened read-only."""
        ...

    def fingerprint(self) -> str:
        """Changes whenever the schema (or, for files, the content) changes; keys caches."""
        ...

    def close(self) -> None: ...
