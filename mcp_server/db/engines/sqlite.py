"""SQLite engine: read-only file connections, an authorizer allowlist, deadline and cancellation.

The engine talks to SQLite through APSW, which bundles a current SQLite (3.5x) on every platform, rather
than the standard library's ``sqlite3``, which links whatever the system has (3.40 on Debian 12). The
Spider dev gold queries take 0.73x the time in the newer SQLite here, with the same rows up to a float's
last digits (``benchmarks/sqlite_build_bench.py``); every install runs the same SQLite; and APSW exposes
what the guard needs: limits, authorizer, progress handler, interrupt, the statement's read-only flag and
typed errors.

Defence in depth under the guard: the file is opened with a ``mode=ro`` URI, ``PRAGMA query_only``
is on, and an authorizer lets a statement only read tables, read the schema through table-valued
pragmas (``pragma_table_info('t')``) and call allowlisted functions (everything else — writes, ATTACH,
other pragmas, transactions, ``load_extension`` — is denied when the statement is prepared). The
authorizer is SQLite's own reading of the statement: a function it is asked about that the
``guard.CallPolicy`` does not allow is refused as ``blocked`` naming the function. A progress handler stops a statement at its deadline; ``interrupt()`` and
per-query cancel handles stop it from another thread. This module never decides what SQL is
allowed; the guard does.

Memory: ``SQLITE_LIMIT_LENGTH`` (``max_value_bytes``) bounds one value, and SQLite's process-wide hard heap
limit (``max_sqlite_heap_bytes``, :class:`_HeapLimit`) bounds everything SQLite holds, a row of many values
each under the first limit included. SQLite can hand one stored value to several result columns without
copying it, while Python builds a copy per column, so a statement's result columns also share
``max_sqlite_heap_bytes`` per row: with N columns, each value is at most that over N (set when the
statement is prepared, :meth:`_Conn.trace`). A statement past any of these fails with an execution error
naming the setting, and the connection stays usable.

``execute_inline`` lets an async caller run a cheap statement on its own thread (no hand-off to a worker
thread): the engine stops it at a short budget, and the caller then runs it in a worker thread. Only
statements that cannot build large values (no ``printf``, ``replace``, ``||``, ``group_concat``, …: see
``mcp_server.sql.dialects.SQLITE_INLINE_FUNCTIONS``) are run inline, so no single VM step (which no deadline can interrupt) outlasts
the budget by much on data of ordinary size.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import apsw
import sqlglot.expressions as exp

from sqlr1.mcp_server.core.config import DEFAULT_MAX_SQLITE_HEAP_BYTES, DEFAULT_MAX_VALUE_BYTES
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.core.results import column as _column
from sqlr1.mcp_server.db.engines.base import (
    MAX_RESULT_BYTES,
    WATCHDOG,
    CancelHandle,
    CatalogColumn,
    CatalogForeignKey,
    CatalogTable,
    ConnectionPool,
    DatabaseSpec,
    RawResult,
    ResultFingerprint,
    cancelled_error,
    engine_refused,
    execution_error,
    timeout_error,
)
from sqlr1.mcp_server.sql.dialects import SQLITE_INLINE_FUNCTIONS, SQLITE_READ_PRAGMAS
from sqlr1.mcp_server.sql.guard import CallPolicy, function_name

__all__ = [
    "MAX_HEAP_BYTES",
    "MAX_VALUE_BYTES",
    "SqliteEngine",
    "inline_safe",
]

MAX_VALUE_BYTES = DEFAULT_MAX_VALUE_BYTES  # longest string/blob a statement may build or read, by default
MAX_HEAP_BYTES = DEFAULT_MAX_SQLITE_HEAP_BYTES  # most memory SQLite may allocate in the process, by default
_PROGRESS_OPS = 4000  # VM instructions between deadline checks (tens of microseconds of work)
_monotonic = time.monotonic
_CACHED_STATEMENTS = 128  # prepared statements each connection keeps (APSW's default is 16)
_READS = frozenset({apsw.SQLITE_SELECT, apsw.SQLITE_READ, apsw.SQLITE_RECURSIVE})  # authorizer actions

_INLINE_VERDICTS = 512  # statements whose inline verdict an engine remembers
_INLINE_MAX_SKIP = 64  # most calls a statement that outlasted its inline budget goes straight to a worker
_INLINE_WATCH_S = 0.02  # how often the backstop looks at inline statements while any run
_INLINE_WATCH_LINGER_S = 1.0  # it keeps looking this long after the last one (no re-arming per call)


def inline_safe(expression: exp.Expr) -> bool:
    """True when the statement calls only ``dialects.SQLITE_INLINE_FUNCTIONS`` and never concatenates."""
    for node in expression.walk():
        if isinstance(node, exp.DPipe):
            return False
        if isinstance(node, exp.Func) and function_name(node) not in SQLITE_INLINE_FUNCTIONS:
            return False
    return True


class _OverBudget(Exception):
    """An inline statement was stopped at its budget (not an error: it runs again in a worker thread)."""


class _InlineWatch:
    """Backstop for inline statements: interrupts one still running past its budget.

    The progress handler stops a statement at its budget, but not inside one long VM step (``count(*)``
    of a huge table, a LIKE over a huge value). While inline statements run, and for
    ``_INLINE_WATCH_LINGER_S`` after the last one started, one watchdog entry every ``_INLINE_WATCH_S``
    looks at every engine's busy connections and interrupts those past their deadline, so such a step
    is interrupted at most that long after the budget. A statement itself only notes that it started
    (a wake-up of the watchdog thread, or even a lock, per statement would cost more than a cheap one).
    A connection's ``run_id`` is read before its deadline, so a statement that ended meanwhile is never
    stopped in place of its successor (:meth:`_Conn.stop` compares run ids under the connection's lock).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: weakref.WeakSet[SqliteEngine] = weakref.WeakSet()
        self.armed = False
        self.last = 0.0  # when the last inline statement started
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        """In a forked child: no entry of its own is scheduled (and the lock may be held by a dead thread)."""
        self._lock = threading.Lock()
        self.armed = False

    def add(self, engine: SqliteEngine) -> None:
        with self._lock:
            self._engines.add(engine)

    def arm(self) -> None:
        """Start looking (every ``_INLINE_WATCH_S``) unless already looking."""
        with self._lock:
            if self.armed:
                return
            self.armed = True
        WATCHDOG.schedule(_INLINE_WATCH_S, self._check)

    def _check(self) -> None:
        now = time.monotonic()
        with self._lock:
            engines = list(self._engines)
        for engine in engines:
            for conn in engine.busy_connections():
                run_id = conn.run_id
                if conn.running.deadline <= now:
                    conn.stop(run_id, cancel=False)
        with self._lock:
            self.armed = now - self.last < _INLINE_WATCH_LINGER_S or any(
                e.busy_connections() for e in engines
            )
            if not self.armed:
                return
        WATCHDOG.schedule(_INLINE_WATCH_S, self._check)


class _HeapLimit:
    """SQLite's process-wide hard heap limit (``PRAGMA hard_heap_limit``), asked for once per distinct value.

    Past the limit SQLite's allocations fail (``SQLITE_NOMEM``, which APSW raises as ``apsw.NoMemError``)
    and the statement fails. The pragma takes effect only when it lowers the limit (or
    sets the first one), so the limit in force is the lowest any engine in the process asked for:
    ``effective``, as SQLite reports it. A forked child inherits both SQLite's limit and this record.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.asked: set[int] = set()
        self.effective = 0  # bytes; 0 until a limit was asked for

    def ask(self, max_bytes: int) -> None:
        if max_bytes in self.asked:
            return
        with self._lock:
            if max_bytes in self.asked:
                return
            try:
                raw = apsw.Connection(":memory:")
                try:  # the pragma, unlike the C call, only ever lowers the limit
                    raw.execute(f"PRAGMA hard_heap_limit = {int(max_bytes)}").fetchall()
                finally:
                    raw.close()
                effective = apsw.hard_heap_limit(-1)  # a negative value reads the limit in force
            except (apsw.Error, MemoryError) as exc:
                raise execution_error(
                    f"cannot set SQLite's heap limit (max_sqlite_heap_bytes={max_bytes}): {exc!r}"
                ) from exc
            self.effective = effective
            self.asked.add(max_bytes)


_HEAP = _HeapLimit()


class _Running:
    """State of the statement a pooled connection is running (read by the progress handler)."""

    __slots__ = ("deadline", "stop")

    def __init__(self) -> None:
        self.deadline = float("inf")
        self.stop = False

    def progress(self) -> bool:
        """SQLite's progress handler: True interrupts the statement (stopped, or past its deadline)."""
        return self.stop or _monotonic() > self.deadline


class _Conn:
    def __init__(
        self, raw: apsw.Connection, running: _Running, file_id: tuple[int, int], max_value_bytes: int
    ) -> None:
        self.raw = raw
        self.value_bytes = max_value_bytes  # the engine's max_value_bytes when last acquired
        self.row_bytes = MAX_HEAP_BYTES  # the engine's max_heap_bytes when last acquired: a row's budget
        self.length_limit = -1  # the SQLITE_LIMIT_LENGTH set on ``raw`` now
        self.running = running
        self.file_id = file_id  # (st_dev, st_ino) of the file it opened
        self.denied_call: str | None = (
            None  # a function the authorizer refused in the statement being prepared
        )
        self.lock = threading.Lock()
        self.run_id = 0  # advanced when a statement ends, so a late stop can't hit the next one
        # Set by ``trace`` for the statement being run: its result columns (name, declared type), and why
        # it was refused before it ran (None when it was not).
        self.description: tuple[tuple[str, str | None], ...] | None = None
        self.refused: str | None = None

    def trace(self, cursor: apsw.Cursor, sql: str, bindings: Any) -> bool:
        """APSW's exec tracer, called when each statement of a run is prepared and before it steps:
        records the first one's columns and refuses (``apsw.ExecTraceAbort``) a statement that would
        write, or any further statement that does something (comments after a ``;`` do nothing)."""
        if self.description is None:
            if not cursor.is_readonly:
                self.refused = "the statement would write to the database"
                return False
            self.description = description = cursor.get_description()
            if len(description) * self.value_bytes > self.row_bytes:
                # SQLite may hand one stored value to several result columns (``SELECT body, body, ...``)
                # without copying it, past its heap limit, while Python builds each column's own copy:
                # the columns share the row's budget, each value at most its part.
                self.limit_length(max(1, self.row_bytes // len(description)))
            return True
        if cursor.has_vdbe:
            self.refused = "only one statement may be sent at a time"
            return False
        return True

    def limit_length(self, max_bytes: int) -> None:
        """Refuse to build or read a string/blob longer than ``max_bytes`` (``SQLITE_LIMIT_LENGTH``)."""
        if max_bytes != self.length_limit:
            self.length_limit = max_bytes
            self.raw.limit(apsw.SQLITE_LIMIT_LENGTH, max_bytes)

    def stop(self, run_id: int, *, cancel: bool) -> None:
        """Interrupt statement ``run_id`` if this connection is still running it (from any thread)."""
        with self.lock:
            if self.run_id == run_id:
                if cancel:
                    self.running.stop = True
                self.raw.interrupt()

    def finish(self) -> None:
        with self.lock:
            self.run_id += 1


_INLINE_WATCH = _InlineWatch()


class SqliteEngine:
    """One SQLite file, read-only; thread-safe through a small pool of connections."""

    def __init__(
        self,
        spec: DatabaseSpec,
        *,
        extra_functions: Iterable[str] = (),
        busy_timeout_s: float = 5.0,
        max_value_bytes: int = MAX_VALUE_BYTES,
        max_heap_bytes: int = MAX_HEAP_BYTES,
    ) -> None:
        if spec.path is None:
            raise QueryFailed.of("config", f"SQLite database {spec.name!r} has no file path")
        self.spec = spec
        self.path = Path(spec.path)
        self._path_str = str(self.path)
        self.calls = CallPolicy("sqlite", extra_functions)
        self.busy_timeout_s = busy_timeout_s  # how long a read waits for a writer's lock
        self.max_value_bytes = max_value_bytes
        self.max_heap_bytes = max_heap_bytes
        self._pool: ConnectionPool[_Conn] = ConnectionPool(lambda c: c.raw.close())
        self._verdicts_lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._meta: apsw.Connection | None = None
        self._meta_id: tuple[int, int] | None = None
        # sql -> [calls left to skip the inline attempt (-1: never, not inline_safe), last skip]; oldest first
        self._inline_verdicts: dict[str, list[int]] = {}
        _INLINE_WATCH.add(self)

    def privilege_warnings(self) -> list[str]:
        """None: the file is opened read-only by this process, with no server role to warn about."""
        return []

    @property
    def dialect(self) -> str:
        return "sqlite"

    def busy_connections(self) -> list[_Conn]:
        """The connections running a statement now."""
        return self._pool.busy()

    @property
    def _active(self) -> set[_Conn]:
        return set(self._pool.busy())

    def allow_functions(self, names: Iterable[str]) -> None:
        """Also allow these functions (the ``extra_functions`` guard setting)."""
        self.calls.allow(names)

    def limit_values(self, max_bytes: int) -> None:
        """Refuse to build or read a string/blob longer than ``max_bytes`` (``SQLITE_LIMIT_LENGTH``)."""
        self.max_value_bytes = max_bytes

    def limit_heap(self, max_bytes: int) -> None:
        """Ask SQLite to allocate at most ``max_bytes`` in this process (``PRAGMA hard_heap_limit``, the
        ``max_sqlite_heap_bytes`` guard setting) before the next connection is used; process-wide, and the
        lowest value any engine asked for applies."""
        self.max_heap_bytes = max_bytes

    # -- connections -------------------------------------------------------------------------
    def _file_id(self) -> tuple[int, int]:
        """(device, inode) of the file now at the path: an open connection keeps reading a deleted or
        replaced file's old inode, so connections opened on another one are never used again."""
        try:
            st = os.stat(self._path_str)
        except FileNotFoundError as exc:
            raise QueryFailed.of(
                "not_found", f"SQLite file {self.path} no longer exists (database {self.spec.name!r})"
            ) from exc
        except OSError as exc:
            raise execution_error(f"cannot open SQLite file {self.path}: {exc}") from exc
        return st.st_dev, st.st_ino

    def _open(self) -> apsw.Connection:
        if not self.path.is_file():
            raise QueryFailed.of(
                "not_found", f"SQLite file {self.path} no longer exists (database {self.spec.name!r})"
            )
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            raw = apsw.Connection(
                uri,
                flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI,
                statementcachesize=_CACHED_STATEMENTS,
            )
            raw.set_busy_timeout(int(self.busy_timeout_s * 1000))
            raw.execute("PRAGMA query_only = ON")
        except (apsw.NoMemError, MemoryError) as exc:
            raise self._out_of_memory(f"cannot open SQLite file {self.path}") from exc
        except apsw.Error as exc:
            raise execution_error(f"cannot open SQLite file {self.path}: {exc}") from exc
        return raw

    def _acquire(self) -> _Conn:
        if self.max_heap_bytes not in _HEAP.asked:
            _HEAP.ask(self.max_heap_bytes)
        file_id = self._file_id()
        # One opened on a file since deleted or replaced is never used again.
        conn = self._pool.take(lambda c: c.file_id == file_id)
        if conn is None:
            raw = self._open()
            running = _Running()
            # Forbid ATTACH outright; the value limit is set below.
            raw.limit(apsw.SQLITE_LIMIT_ATTACHED, 0)
            raw.set_progress_handler(running.progress, _PROGRESS_OPS)
            conn = _Conn(raw, running, file_id, -1)
            raw.set_authorizer(partial(self._authorize, conn))
            raw.exec_trace = conn.trace
            self._pool.add_busy(conn)
        if conn.value_bytes != self.max_value_bytes or conn.row_bytes != self.max_heap_bytes:
            # Bounds each value a statement builds or reads (printf/replace blow-ups are single VM
            # steps the progress handler can't interrupt; a row holds its values whole).
            conn.value_bytes, conn.row_bytes = self.max_value_bytes, self.max_heap_bytes
            conn.limit_length(conn.value_bytes)
        return conn

    def _release(self, conn: _Conn) -> None:
        """Back to the pool after a statement ended (its run id advanced first: a late stop misses it)."""
        conn.finish()
        if conn.length_limit != conn.value_bytes:  # lowered for a wide statement (``_Conn.trace``)
            conn.limit_length(conn.value_bytes)
        conn.running.deadline = float("inf")
        conn.running.stop = False
        self._pool.give(conn)

    def _authorize(
        self, conn: _Conn, action: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None
    ) -> int:
        if action in _READS:
            return apsw.SQLITE_OK
        if action == apsw.SQLITE_FUNCTION:
            if arg2 is not None and self.calls.allows(arg2):
                return apsw.SQLITE_OK
            conn.denied_call = conn.denied_call or str(arg2)
            return apsw.SQLITE_DENY
        if action == apsw.SQLITE_PRAGMA and arg1 is not None and arg1.lower() in SQLITE_READ_PRAGMAS:
            return apsw.SQLITE_OK  # pragma_table_info('t') and the like: the schema, read only
        if action == apsw.SQLITE_UPDATE and arg1 == "sqlite_master" and src is None:
            # An eponymous virtual table (json_each) declares its schema through this check when it
            # is first used; real writes to the schema are impossible on a mode=ro, query_only file.
            return apsw.SQLITE_OK
        return apsw.SQLITE_DENY

    # -- queries -------------------------------------------------------------------------------
    def execute(
        self,
        sql: str,
        *,
        max_rows: int,
        timeout_s: float,
        cancel: CancelHandle | None = None,
        fingerprint: ResultFingerprint | None = None,
    ) -> RawResult:
        return self._run(sql, max_rows=max_rows, timeout_s=timeout_s, cancel=cancel, fingerprint=fingerprint)

    def execute_inline(
        self, sql: str, expression: exp.Expr, *, max_rows: int, timeout_s: float, budget_s: float
    ) -> RawResult | None:
        """``execute`` on the calling thread (an event loop's), for a statement that finishes within ``budget_s``.

        Returns ``None`` without a result when the statement may not run inline (``inline_safe`` is false
        for ``expression``, its parsed form) or when it outlasted ``budget_s``: the engine stopped it then,
        nothing was kept, and the caller runs it again with ``execute`` (in a worker thread, with what is
        left of the timeout). Such a statement (or one that finished but took longer than the budget) then
        skips the inline attempt for its next 1, 2, 4, … up to ``_INLINE_MAX_SKIP`` calls (one slow run may
        have been a cold cache; a slow statement wastes the budget only that rarely), and a run within
        the budget resets that. Raises like ``execute``; a timeout shorter than the budget is the usual
        timeout error.
        """
        verdict = self._inline_verdicts.get(sql)
        if verdict is None:
            verdict = [0, 0] if inline_safe(expression) else [-1, 0]
            self._remember_verdict(sql, verdict)
        if verdict[0] != 0:  # not inline-safe (-1), or calls left to skip after it outlasted the budget
            if verdict[0] > 0:
                verdict[0] -= 1
            return None
        try:
            result = self._run(sql, max_rows=max_rows, timeout_s=timeout_s, cancel=None, budget_s=budget_s)
        except _OverBudget:
            result = None
        if result is None or result.elapsed_ms > budget_s * 1000:  # stopped, or only just made it
            verdict[1] = min(_INLINE_MAX_SKIP, 2 * verdict[1] or 1)
            verdict[0] = verdict[1]
        else:
            verdict[1] = 0
        return result

    def _remember_verdict(self, sql: str, verdict: list[int]) -> None:
        with self._verdicts_lock:
            self._inline_verdicts[sql] = verdict
            if len(self._inline_verdicts) > _INLINE_VERDICTS:
                del self._inline_verdicts[next(iter(self._inline_verdicts))]

    def read_calls(self, sql: str) -> list[str]:
        """The functions SQLite resolves in ``sql`` (its own reading: prepared for EXPLAIN QUERY PLAN, never
        run, not checked), asked of an authorizer that records them, on a connection of its own."""
        names: list[str] = []

        def record(action: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None) -> int:
            if action == apsw.SQLITE_FUNCTION and arg2 is not None:
                names.append(arg2.lower())
                return apsw.SQLITE_OK
            return apsw.SQLITE_OK if action in _READS or action == apsw.SQLITE_PRAGMA else apsw.SQLITE_DENY

        raw = self._open()
        try:
            raw.limit(apsw.SQLITE_LIMIT_ATTACHED, 0)
            raw.set_authorizer(record)
            raw.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        except (apsw.Error, ValueError) as exc:
            raise execution_error(f"SQLite cannot read this statement: {exc}") from exc
        finally:
            raw.close()
        return names

    def explain(self, sql: str, *, timeout_s: float) -> RawResult:
        # Preparing the plan runs the authorizer over the statement without reading any rows.
        return self._run("EXPLAIN QUERY PLAN " + sql, max_rows=1000, timeout_s=timeout_s, cancel=None)

    def _run(
        self,
        sql: str,
        *,
        max_rows: int,
        timeout_s: float,
        cancel: CancelHandle | None,
        budget_s: float | None = None,
        fingerprint: ResultFingerprint | None = None,
    ) -> RawResult:
        """Run ``sql`` on a pooled connection; with ``budget_s`` below ``timeout_s``, a statement still
        running at the budget is stopped and ``_OverBudget`` raised instead of the timeout error."""
        conn = self._acquire()
        running = conn.running
        run_id = conn.run_id
        budgeted = budget_s is not None and budget_s < timeout_s
        limit_s = budget_s if budgeted and budget_s is not None else timeout_s
        started = time.monotonic()
        running.deadline = started + limit_s
        # Backstop for a single long VM step (e.g. a huge LIKE) that the progress handler can't see.
        disarm: Callable[[], None] | None = None
        if budgeted:
            _INLINE_WATCH.last = started
            if not _INLINE_WATCH.armed:
                _INLINE_WATCH.arm()
        else:
            disarm = WATCHDOG.schedule(timeout_s + 0.25, partial(conn.stop, run_id, cancel=False))
        if cancel is not None:
            cancel.bind(partial(conn.stop, run_id, cancel=True))
        conn.description = conn.refused = conn.denied_call = None
        try:
            cur = conn.raw.execute(sql)  # prepares, runs conn.trace, steps to the first row
            try:
                rows, cut, chars_bound = _fetch_bounded(cur, max_rows + 1, fingerprint)
            finally:
                cur.close(True)
            description: tuple[tuple[str, str | None], ...] = conn.description or ()
        except apsw.ExecTraceAbort as exc:
            raise engine_refused(conn.refused or "refused before it ran") from exc
        except _NotUtf8 as exc:
            raise execution_error(
                f"row {exc.row} of the result holds a text value that is not valid UTF-8 (stored in another "
                "encoding); read it as bytes with CAST(column AS BLOB) or hex(column)"
            ) from exc
        except ValueError as exc:  # APSW's refusal of a statement text it cannot pass to SQLite (a NUL)
            raise engine_refused(f"{exc}: a statement cannot contain a NUL character") from exc
        except (apsw.NoMemError, MemoryError) as exc:  # SQLITE_NOMEM: past the heap limit
            raise self._out_of_memory("SQLite ran out of memory") from exc
        except apsw.Error as exc:
            timed_out = time.monotonic() >= running.deadline
            if budgeted and not running.stop and _interrupted(exc):
                raise _OverBudget from exc
            if (
                conn.denied_call is not None
            ):  # the authorizer refused a function (SQLite says "not authorized")
                self.calls.check([conn.denied_call], "SQLite")  # raises: blocked, naming the function
            raise self._map_error(
                exc, timeout_s, timed_out=timed_out, cancelled=running.stop, conn=conn
            ) from exc
        finally:
            if disarm is not None:
                disarm()
            if cancel is not None:
                cancel.unbind()
            self._release(conn)
        truncated = cut
        if len(rows) > max_rows:
            truncated = True
            rows = rows[:max_rows]
        types = _infer_types(rows, len(description))
        columns = [_column(d[0], t) for d, t in zip(description, types, strict=True)]
        return RawResult(
            columns=columns,
            rows=rows,
            truncated=truncated,
            elapsed_ms=(time.monotonic() - started) * 1000,
            plain_chars_bound=chars_bound,
        )

    def _map_error(
        self, exc: apsw.Error, timeout_s: float, *, timed_out: bool, cancelled: bool, conn: _Conn
    ) -> QueryFailed:
        msg = str(exc)
        low = msg.lower()
        if _interrupted(exc):
            if cancelled and not timed_out:
                return cancelled_error()
            return timeout_error(timeout_s)
        if (
            isinstance(exc, apsw.AuthError | apsw.ReadOnlyError)
            or "not authorized" in low
            or "prohibited" in low
            or "readonly database" in low
            or "may not be modified" in low
        ):
            return engine_refused(msg)
        if "no such table" in low:
            return execution_error(msg, missing="table")
        if "no such column" in low or "ambiguous column name" in low:
            return execution_error(msg, missing="column")
        if "syntax error" in low or "incomplete input" in low:
            return QueryFailed.of("syntax", f"{msg} (SQLite)")
        too_big = isinstance(exc, apsw.TooBigError) or "too big" in low
        if too_big and conn.length_limit < self.max_value_bytes:
            columns = len(conn.description or ())
            return execution_error(
                f"{msg}: a value is longer than {_size(conn.length_limit)}, this statement's share of a row: "
                f"its {columns} result columns share the {_size(conn.row_bytes)} one row may hold (the "
                f"max_sqlite_heap_bytes guard setting), each at most {_size(self.max_value_bytes)} "
                "(max_value_bytes); ask for fewer columns or part of a long value (substr(x, 1, 1000), length(x))"
            )
        if too_big:
            return execution_error(
                f"{msg}: a value is longer than {_size(self.max_value_bytes)} (the max_value_bytes guard "
                "setting); build shorter strings or ask for part of a computed one (substr(x, 1, 1000)); a "
                "stored value that long can be read only with a higher max_value_bytes"
            )
        if isinstance(exc, apsw.BusyError | apsw.LockedError) or "database is locked" in low:
            return execution_error(
                f"{self.path} is locked by another process that is writing to it; try again in a moment"
            )
        if isinstance(exc, apsw.NotADBError | apsw.CorruptError) or "malformed" in low:
            return execution_error(f"{self.path}: {msg} (the file is damaged or not SQLite)")
        return execution_error(msg)

    def _out_of_memory(self, what: str) -> QueryFailed:
        """The error for an allocation SQLite refused at its heap limit (``max_sqlite_heap_bytes``)."""
        limit = _HEAP.effective
        setting = "the max_sqlite_heap_bytes guard setting"
        if 0 < limit < self.max_heap_bytes:
            asked = _size(self.max_heap_bytes)
            setting += f"; {asked} was asked for here, the lowest value set in the process applies"
        return execution_error(
            f"{what}: the statement needs more than the {_size(limit)} SQLite may allocate in this server "
            f"process ({setting}), open connections included; ask for fewer or shorter values "
            "(substr(x, 1, 1000), length(x), fewer columns) or raise max_sqlite_heap_bytes"
        )

    def interrupt(self) -> None:
        active = self._pool.busy()
        for conn in active:
            conn.stop(conn.run_id, cancel=True)

    # -- catalog -------------------------------------------------------------------------------
    def _meta_query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Schema reads on an internal connection without the statement authorizer (still read-only)."""
        _HEAP.ask(self.max_heap_bytes)
        with self._meta_lock:
            file_id = self._file_id()
            if self._meta is not None and self._meta_id != file_id:
                self._meta.close()  # opened on a file since replaced
                self._meta = None
            if self._meta is None:
                self._meta, self._meta_id = self._open(), file_id
            try:
                return self._meta.execute(sql, params).fetchall()
            except (apsw.Error, MemoryError) as exc:
                self._meta.close()
                self._meta = None
                if isinstance(exc, apsw.NoMemError | MemoryError):
                    raise self._out_of_memory(f"reading the schema of {self.path}") from exc
                raise execution_error(f"reading the schema of {self.path}: {exc}") from exc

    def catalog(self) -> list[CatalogTable]:
        cols = self._meta_query(
            'SELECT m.name, m.type, p.name, p.type, p."notnull", p.pk '
            "FROM sqlite_schema AS m JOIN pragma_table_info(m.name) AS p "
            "WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY m.name, p.cid"
        )
        fks = self._meta_query(
            'SELECT m.name, f.id, f."table", f."from", f."to" '
            "FROM sqlite_schema AS m JOIN pragma_foreign_key_list(m.name) AS f "
            "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY m.name, f.id, f.seq"
        )
        tables: dict[str, CatalogTable] = {}
        pk_order: dict[str, list[tuple[int, str]]] = {}
        for table, _kind, col, ctype, notnull, pk in cols:
            t = tables.setdefault(table, CatalogTable(name=table))
            t.columns.append(
                CatalogColumn(name=col, type=ctype or "", nullable=not notnull, primary_key=pk > 0)
            )
            if pk > 0:
                pk_order.setdefault(table, []).append((pk, col))
        for table, order in pk_order.items():
            tables[table].primary_key = [c for _, c in sorted(order)]
        grouped: dict[tuple[str, int], CatalogForeignKey] = {}
        for table, fk_id, ref_table, from_col, to_col in fks:
            if table not in tables:
                continue
            fk = grouped.get((table, fk_id))
            if fk is None:
                fk = grouped[(table, fk_id)] = CatalogForeignKey(
                    columns=[], ref_table=ref_table, ref_columns=[]
                )
                tables[table].foreign_keys.append(fk)
            fk.columns.append(from_col)
            fk.ref_columns.append(to_col)
        for fk in grouped.values():
            if any(c is None for c in fk.ref_columns):  # REFERENCES t without columns: t's primary key
                ref = tables.get(fk.ref_table)
                fk.ref_columns = list(ref.primary_key) if ref is not None else []
        # Column descriptions written as comments in the CREATE statement (SynSQL-2.5M's databases)
        for table, ddl in self._meta_query(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND (instr(sql, '/*') OR instr(sql, '--'))"
        ):
            if table in tables:
                tables[table].ddl = ddl
        return list(tables.values())

    def fingerprint(self) -> str:
        (version,) = self._meta_query("PRAGMA schema_version")[0]
        try:
            st = self.path.stat()
        except OSError as exc:
            raise QueryFailed.of("not_found", f"SQLite file {self.path} is gone: {exc}") from exc
        raw = f"{version}:{st.st_mtime_ns}:{st.st_size}"
        return "sqlite:" + hashlib.sha256(raw.encode()).hexdigest()[:16]

    def close(self) -> None:
        self._pool.close()
        with self._meta_lock:
            if self._meta is not None:
                self._meta.close()
                self._meta = None


def _fetch_bounded(
    cur: apsw.Cursor, limit: int, fingerprint: ResultFingerprint | None = None
) -> tuple[list[tuple[Any, ...]], bool, int | None]:
    """``engines.base.fetch_bounded`` for SQLite rows, one at a time (the memory bound holds to the row),
    in a tighter loop: SQLite values are exactly ``str``, ``bytes``, ``int``, ``float`` or ``None``.

    Also returns ``RawResult.plain_chars_bound``: the rows' characters as ``executor.cap_rows`` counts
    them, at most (an int has at most 20 characters, None 4), or None when a value needs converting first
    (bytes, float). With ``fingerprint``, every row goes into it, the rest of the result read to the end.
    """
    rows: list[tuple[Any, ...]] = []
    used = 0  # characters of text and bytes of blobs: the memory bound
    short = 0  # ints and NULLs
    plain = True
    cut = False
    rows_iter = islice(cur, max(0, limit))  # iterating steps one row per call, like fetchone
    while True:
        try:
            row = next(rows_iter, None)
        except UnicodeDecodeError as exc:  # APSW decodes TEXT as UTF-8; the file may hold another encoding
            raise _NotUtf8(len(rows) + 1) from exc
        if row is None:
            break
        rows.append(row)
        for value in row:
            if type(value) is str:
                used += len(value)
            elif value is None or type(value) is int:
                short += 1
            else:
                plain = False
                if type(value) is bytes:
                    used += len(value)
        if used > MAX_RESULT_BYTES:
            cut = True
            break
    if fingerprint is not None:
        for row in rows:
            fingerprint.add(row)
        if cut or len(rows) >= limit:
            seen = len(rows)
            try:
                for row in cur:  # past the cap: fingerprinted, never kept
                    seen += 1
                    fingerprint.add(row)
            except UnicodeDecodeError as exc:
                raise _NotUtf8(seen + 1) from exc
    if cut:
        return rows, True, None
    return rows, False, used + 20 * short if plain else None


class _NotUtf8(Exception):
    """Row ``row`` of a result held a TEXT value that is not valid UTF-8."""

    def __init__(self, row: int) -> None:
        super().__init__(row)
        self.row = row


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n:,} bytes"


def _interrupted(exc: apsw.Error) -> bool:
    return isinstance(exc, apsw.InterruptError)


_PY_TO_SQLITE = {int: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}


def _infer_types(rows: list[tuple[Any, ...]], width: int) -> list[str | None]:
    """SQLite has no result-column types in the Python API: report each column's first storage class seen."""
    types: list[str | None] = [None] * width
    for row in rows:
        for i, value in enumerate(row):
            if value is not None and types[i] is None:
                types[i] = _PY_TO_SQLITE.get(type(value))
        if None not in types:
            break
    return types
