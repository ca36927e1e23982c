"""DuckDB engine: a read-only, locked-down in-process database with interrupt-based timeouts.

The file is opened ``read_only`` with external access (files, network, extensions) disabled and
the configuration locked, so no statement can undo it. The engine itself refuses anything but
exactly one SELECT statement (DuckDB would otherwise run every statement of a multi-statement
string). Timeouts and cancellation call ``interrupt()`` on the query's own cursor. This module
never decides what SQL is allowed; the guard does.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import duckdb

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

__all__ = ["LOCKED_CONFIG", "DuckdbEngine"]

# Order matters only in that lock_configuration is applied last by DuckDB at startup.
LOCKED_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "lock_configuration": True,
}

_COLUMNS_SQL = (
    "SELECT schema_name, table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
    "WHERE database_name = current_database() AND NOT internal ORDER BY schema_name, table_name, column_index"
)
_CONSTRAINTS_SQL = (
    "SELECT schema_name, table_name, constraint_type, constraint_column_names, referenced_table, "
    "referenced_column_names FROM duckdb_constraints() WHERE database_name = current_database() "
    "AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') ORDER BY schema_name, table_name, constraint_index"
)


class DuckdbEngine:
    """One DuckDB file, read-only; each query runs on its own cursor from a small pool."""

    def __init__(self, spec: DatabaseSpec) -> None:
        if spec.path is None:
            raise QueryFailed.of("config", f"DuckDB database {spec.name!r} has no file path")
        self.spec = spec
        self.path = Path(spec.path)
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._open_lock = threading.Lock()
        self._pool: IdlePool[duckdb.DuckDBPyConnection] = IdlePool(lambda c: c.close())
        self._active: set[duckdb.DuckDBPyConnection] = set()
        self._lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return "duckdb"

    def _root(self) -> duckdb.DuckDBPyConnection:
        with self._open_lock:
            if self._conn is None:
                if not self.path.is_file():
                    raise QueryFailed.of("not_found", f"DuckDB file {self.path} no longer exists")
                try:
                    self._conn = duckdb.connect(str(self.path), read_only=True, config=dict(LOCKED_CONFIG))
                except duckdb.Error as exc:
                    raise execution_error(f"cannot open DuckDB file {self.path}: {exc}") from exc
            return self._conn

    def _acquire(self) -> duckdb.DuckDBPyConnection:
        cur = self._pool.take() or self._root().cursor()
        with self._lock:
            self._active.add(cur)
        return cur

    def _release(self, cur: duckdb.DuckDBPyConnection) -> None:
        with self._lock:
            self._active.discard(cur)
        self._pool.give(cur)

    # -- queries -------------------------------------------------------------------------------
    def execute(
        self, sql: str, *, max_rows: int, timeout_s: float, cancel: CancelHandle | None = None
    ) -> RawResult:
        return self._run(sql, max_rows=max_rows, timeout_s=timeout_s, cancel=cancel, explain=False)

    def explain(self, sql: str, *, timeout_s: float) -> None:
        self._run(sql, max_rows=10_000, timeout_s=timeout_s, cancel=None, explain=True)

    def _run(
        self, sql: str, *, max_rows: int, timeout_s: float, cancel: CancelHandle | None, explain: bool
    ) -> RawResult:
        started = time.monotonic()
        cur = self._acquire()
        stopped = threading.Event()

        def stop() -> None:
            stopped.set()
            cur.interrupt()

        disarm = WATCHDOG.schedule(timeout_s, cur.interrupt)
        if cancel is not None:
            cancel.bind(stop)
        try:
            if cancel is not None and cancel.cancelled:  # cancelled before it reached the server
                raise cancelled_error()
            statements = cur.extract_statements(sql)
            if len(statements) != 1:
                raise engine_refused(f"expected exactly one statement, got {len(statements)}")
            if statements[0].type != duckdb.StatementType.SELECT:
                raise engine_refused(f"{statements[0].type.name} statements cannot run; only SELECT")
            if explain:
                cur.execute("EXPLAIN " + sql)
            else:
                cur.execute(statements[0])
            rows, cut = fetch_bounded(cur.fetchmany, max_rows + 1)
            description = cur.description or []
        except duckdb.Error as exc:
            raise self._map_error(exc, timeout_s, started, stopped.is_set()) from exc
        finally:
            disarm()
            if cancel is not None:
                cancel.unbind()
            self._release(cur)
        truncated = len(rows) > max_rows or cut
        columns = [Column(name=d[0], type=str(d[1])) for d in description]
        return RawResult(
            columns=columns,
            rows=rows[:max_rows],
            truncated=truncated,
            elapsed_ms=(time.monotonic() - started) * 1000,
        )

    def _map_error(self, exc: duckdb.Error, timeout_s: float, started: float, cancelled: bool) -> QueryFailed:
        msg = str(exc).strip()
        if isinstance(exc, duckdb.InterruptException):
            if cancelled and time.monotonic() - started < timeout_s:
                return cancelled_error()
            return timeout_error(timeout_s)
        if (
            isinstance(exc, duckdb.PermissionException)
            or "read-only mode" in msg
            or "configuration has been locked" in msg
        ):
            return engine_refused(msg)
        if isinstance(exc, duckdb.CatalogException) and "does not exist" in msg:
            return execution_error(msg, missing="table" if "Table" in msg else None)
        if isinstance(exc, duckdb.BinderException) and "column" in msg.lower() and "not found" in msg.lower():
            return execution_error(msg, missing="column")
        if isinstance(exc, duckdb.ParserException):
            return QueryFailed.of("syntax", msg)
        return execution_error(msg)

    def interrupt(self) -> None:
        with self._lock:
            active = list(self._active)
        for cur in active:
            cur.interrupt()

    # -- catalog -------------------------------------------------------------------------------
    def _meta(self, sql: str) -> list[tuple[Any, ...]]:
        cur = self._acquire()
        try:
            return cur.execute(sql).fetchall()
        except duckdb.Error as exc:
            raise execution_error(f"reading the DuckDB catalog of {self.path}: {exc}") from exc
        finally:
            self._release(cur)

    def catalog(self) -> list[CatalogTable]:
        tables: dict[tuple[str, str], CatalogTable] = {}
        for schema, table, col, ctype, nullable in self._meta(_COLUMNS_SQL):
            t = tables.setdefault((schema, table), CatalogTable(name=table, schema=schema))
            t.columns.append(CatalogColumn(name=col, type=ctype, nullable=bool(nullable)))
        for schema, table, kind, cols, ref_table, ref_cols in self._meta(_CONSTRAINTS_SQL):
            found = tables.get((schema, table))
            if found is None:
                continue
            t = found
            if kind == "PRIMARY KEY":
                t.primary_key = list(cols)
                for c in t.columns:
                    c.primary_key = c.name in t.primary_key
            elif ref_table:
                t.foreign_keys.append(
                    CatalogForeignKey(
                        columns=list(cols), ref_table=ref_table, ref_columns=list(ref_cols or [])
                    )
                )
        return list(tables.values())

    def fingerprint(self) -> str:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise QueryFailed.of("not_found", f"DuckDB file {self.path} is gone: {exc}") from exc
        digest = hashlib.sha256(f"{st.st_mtime_ns}:{st.st_size}".encode())
        digest.update(repr(self._meta(_COLUMNS_SQL)).encode())
        return "duckdb:" + digest.hexdigest()[:16]

    def close(self) -> None:
        self._pool.close()
        with self._open_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
