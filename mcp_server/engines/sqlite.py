"""SQLite engine: read-only file connections, an authorizer allowlist, deadline and cancellation.

Defence in depth under the guard: the file is opened with a ``mode=ro`` URI, ``PRAGMA query_only``
is on, and an authorizer lets a statement only read tables and call allowlisted functions
(everything else — writes, ATTACH, PRAGMA, transactions, ``load_extension`` — is denied when the
statement is prepared). A progress handler stops a statement at its deadline; ``interrupt()`` and
per-query cancel handles stop it from another thread. This module never decides what SQL is
allowed; the guard does.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mcp_server.dialects import ALLOWED_FUNCTIONS
from mcp_server.engines.base import (
    WATCHDOG,
    CancelHandle,
    CatalogColumn,
    CatalogForeignKey,
    CatalogTable,
    DatabaseSpec,
    IdlePool,
    RawResult,
    cancelled_error,
    engine_refused,
    execution_error,
    fetch_bounded,
    timeout_error,
)
from mcp_server.errors import QueryFailed
from mcp_server.results import Column

__all__ = ["MAX_VALUE_BYTES", "SQLITE_NATIVE_FUNCTIONS", "SqliteEngine"]

# SQLite's own names for its side-effect-free built-ins (core, date, aggregate, window, math, JSON).
# Deliberately absent: load_extension, fts3_tokenizer, randomblob/zeroblob (memory blow-ups),
# sqlite_* introspection, changes/last_insert_rowid.
SQLITE_NATIVE_FUNCTIONS = frozenset(
    [
        "abs",
        "char",
        "coalesce",
        "concat",
        "concat_ws",
        "format",
        "glob",
        "hex",
        "ifnull",
        "iif",
        "instr",
        "length",
        "like",
        "likelihood",
        "likely",
        "lower",
        "ltrim",
        "max",
        "min",
        "nullif",
        "octet_length",
        "printf",
        "quote",
        "random",
        "replace",
        "round",
        "rtrim",
        "sign",
        "soundex",
        "substr",
        "substring",
        "trim",
        "typeof",
        "unhex",
        "unicode",
        "unlikely",
        "upper",
        "date",
        "time",
        "datetime",
        "julianday",
        "unixepoch",
        "strftime",
        "timediff",
        "current_date",
        "current_time",
        "current_timestamp",
        "avg",
        "count",
        "group_concat",
        "string_agg",
        "sum",
        "total",
        "row_number",
        "rank",
        "dense_rank",
        "percent_rank",
        "cume_dist",
        "ntile",
        "lag",
        "lead",
        "first_value",
        "last_value",
        "nth_value",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atan2",
        "atanh",
        "ceil",
        "ceiling",
        "cos",
        "cosh",
        "degrees",
        "exp",
        "floor",
        "ln",
        "log",
        "log10",
        "log2",
        "mod",
        "pi",
        "pow",
        "power",
        "radians",
        "sin",
        "sinh",
        "sqrt",
        "tan",
        "tanh",
        "trunc",
        "json",
        "json_array",
        "json_array_length",
        "json_extract",
        "json_insert",
        "json_replace",
        "json_set",
        "json_remove",
        "json_patch",
        "json_object",
        "json_type",
        "json_valid",
        "json_quote",
        "json_group_array",
        "json_group_object",
        "json_each",
        "json_tree",
        "->",
        "->>",
    ]
)

MAX_VALUE_BYTES = 64 * 1024 * 1024  # largest string/blob a statement may build
_PROGRESS_OPS = 2000  # VM instructions between deadline checks (a few microseconds of work)


class _Running:
    """State of the statement a pooled connection is running (read by the progress handler)."""

    __slots__ = ("deadline", "stop")

    def __init__(self) -> None:
        self.deadline = float("inf")
        self.stop = False


class _Conn:
    def __init__(self, raw: sqlite3.Connection, running: _Running, file_id: tuple[int, int]) -> None:
        self.raw = raw
        self.running = running
        self.file_id = file_id  # (st_dev, st_ino) of the file it opened


class SqliteEngine:
    """One SQLite file, read-only; thread-safe through a small pool of connections."""

    def __init__(
        self, spec: DatabaseSpec, *, extra_functions: Iterable[str] = (), busy_timeout_s: float = 5.0
    ) -> None:
        if spec.path is None:
            raise QueryFailed.of("config", f"SQLite database {spec.name!r} has no file path")
        self.spec = spec
        self.path = Path(spec.path)
        self.allowed_functions = {f.lower() for f in ALLOWED_FUNCTIONS["sqlite"]} | SQLITE_NATIVE_FUNCTIONS
        self.allow_functions(extra_functions)
        self.busy_timeout_s = busy_timeout_s  # how long a read waits for a writer's lock
        self._pool: IdlePool[_Conn] = IdlePool(lambda c: c.raw.close())
        self._active: set[_Conn] = set()
        self._active_lock = threading.Lock()
        self._meta_lock = threading.Lock()
        self._meta: sqlite3.Connection | None = None
        self._meta_id: tuple[int, int] | None = None

    @property
    def dialect(self) -> str:
        return "sqlite"

    def allow_functions(self, names: Iterable[str]) -> None:
        """Also allow these functions (the ``extra_functions`` guard setting)."""
        self.allowed_functions |= {n.lower() for n in names}

    # -- connections -------------------------------------------------------------------------
    def _file_id(self) -> tuple[int, int]:
        """(device, inode) of the file now at the path: an open connection keeps reading a deleted or
        replaced file's old inode, so connections opened on another one are never used again."""
        try:
            st = self.path.stat()
        except FileNotFoundError as exc:
            raise QueryFailed.of(
                "not_found", f"SQLite file {self.path} no longer exists (database {self.spec.name!r})"
            ) from exc
        except OSError as exc:
            raise execution_error(f"cannot open SQLite file {self.path}: {exc}") from exc
        return st.st_dev, st.st_ino

    def _open(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise QueryFailed.of(
                "not_found", f"SQLite file {self.path} no longer exists (database {self.spec.name!r})"
            )
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            raw = sqlite3.connect(
                uri, uri=True, check_same_thread=False, isolation_level=None, timeout=self.busy_timeout_s
            )
            raw.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise execution_error(f"cannot open SQLite file {self.path}: {exc}") from exc
        return raw

    def _acquire(self) -> _Conn:
        file_id = self._file_id()
        conn = self._pool.take()
        while conn is not None and conn.file_id != file_id:
            self._pool.discard(conn)  # opened on a file since deleted or replaced
            conn = self._pool.take()
        if conn is None:
            raw = self._open()
            running = _Running()
            # Bound what one VM step can allocate (printf/replace blow-ups are single steps the
            # progress handler can't interrupt), and forbid ATTACH outright.
            raw.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
            raw.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            raw.set_authorizer(self._authorize)
            raw.set_progress_handler(lambda: self._progress(running), _PROGRESS_OPS)
            conn = _Conn(raw, running, file_id)
        with self._active_lock:
            self._active.add(conn)
        return conn

    def _release(self, conn: _Conn) -> None:
        with self._active_lock:
            self._active.discard(conn)
        conn.running.deadline = float("inf")
        conn.running.stop = False
        self._pool.give(conn)

    @staticmethod
    def _progress(running: _Running) -> int:
        return 1 if running.stop or time.monotonic() > running.deadline else 0

    def _authorize(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None
    ) -> int:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and arg2 is not None and arg2.lower() in self.allowed_functions:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" and src is None:
            # An eponymous virtual table (json_each) declares its schema through this check when it
            # is first used; real writes to the schema are impossible on a mode=ro, query_only file.
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    # -- queries -------------------------------------------------------------------------------
    def execute(
        self, sql: str, *, max_rows: int, timeout_s: float, cancel: CancelHandle | None = None
    ) -> RawResult:
        return self._run(sql, max_rows=max_rows, timeout_s=timeout_s, cancel=cancel)

    def explain(self, sql: str, *, timeout_s: float) -> None:
        # Preparing the plan runs the authorizer over the statement without reading any rows.
        self._run("EXPLAIN QUERY PLAN " + sql, max_rows=1000, timeout_s=timeout_s, cancel=None)

    def _run(self, sql: str, *, max_rows: int, timeout_s: float, cancel: CancelHandle | None) -> RawResult:
        conn = self._acquire()
        running = conn.running
        started = time.monotonic()
        running.deadline = started + timeout_s

        def stop() -> None:
            running.stop = True
            conn.raw.interrupt()

        # Backstop for a single long VM step (e.g. a huge LIKE) that the progress handler can't see.
        disarm = WATCHDOG.schedule(timeout_s + 0.25, conn.raw.interrupt)
        if cancel is not None:
            cancel.bind(stop)
        try:
            cur = conn.raw.cursor()
            try:
                cur.execute(sql)
                rows, cut = fetch_bounded(cur.fetchmany, max_rows + 1)
                description = cur.description or ()
            finally:
                cur.close()
        except sqlite3.Error as exc:
            timed_out = time.monotonic() >= running.deadline
            raise self._map_error(exc, timeout_s, timed_out=timed_out, cancelled=running.stop) from exc
        finally:
            disarm()
            if cancel is not None:
                cancel.unbind()
            self._release(conn)
        truncated = len(rows) > max_rows or cut
        rows = rows[:max_rows]
        columns = [Column(name=d[0], type=_infer_type(rows, i)) for i, d in enumerate(description)]
        return RawResult(
            columns=columns, rows=rows, truncated=truncated, elapsed_ms=(time.monotonic() - started) * 1000
        )

    def _map_error(
        self, exc: sqlite3.Error, timeout_s: float, *, timed_out: bool, cancelled: bool
    ) -> QueryFailed:
        msg = str(exc)
        low = msg.lower()
        if "interrupted" in low:
            if cancelled and not timed_out:
                return cancelled_error()
            return timeout_error(timeout_s)
        if (
            "not authorized" in low
            or "prohibited" in low
            or "readonly database" in low
            or "may not be modified" in low
        ):
            return engine_refused(msg)
        if isinstance(exc, sqlite3.ProgrammingError) and "one statement" in low:
            return engine_refused("only one statement may be sent at a time")
        if "no such table" in low:
            return execution_error(msg, missing="table")
        if "no such column" in low:
            return execution_error(msg, missing="column")
        if "syntax error" in low or "incomplete input" in low:
            return QueryFailed.of("syntax", f"{msg} (SQLite)")
        if "too big" in low:
            return execution_error(
                f"{msg}: a value would exceed {MAX_VALUE_BYTES // (1024 * 1024)} MiB; build smaller strings"
            )
        if "database is locked" in low or "database is busy" in low:
            return execution_error(
                f"{self.path} is locked by another process that is writing to it; try again in a moment"
            )
        if "not a database" in low or "malformed" in low:
            return execution_error(f"{self.path}: {msg} (the file is damaged or not SQLite)")
        return execution_error(msg)

    def interrupt(self) -> None:
        with self._active_lock:
            active = list(self._active)
        for conn in active:
            conn.running.stop = True
            conn.raw.interrupt()

    # -- catalog -------------------------------------------------------------------------------
    def _meta_query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Schema reads on an internal connection without the statement authorizer (still read-only)."""
        with self._meta_lock:
            file_id = self._file_id()
            if self._meta is not None and self._meta_id != file_id:
                self._meta.close()  # opened on a file since replaced
                self._meta = None
            if self._meta is None:
                self._meta, self._meta_id = self._open(), file_id
            try:
                return self._meta.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                self._meta.close()
                self._meta = None
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


_PY_TO_SQLITE = {int: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}


def _infer_type(rows: list[tuple[Any, ...]], index: int) -> str | None:
    """SQLite has no result-column types in the Python API: report the storage class seen."""
    for row in rows:
        value = row[index]
        if value is not None:
            return _PY_TO_SQLITE.get(type(value))
    return None
