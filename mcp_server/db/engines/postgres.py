"""PostgreSQL engine (psycopg 3): read-only transactions, server-side timeouts, cancel, reconnect.

Every statement runs in its own ``READ ONLY`` transaction with ``SET LOCAL``-scoped
``statement_timeout`` and is rolled back afterwards; then ``DISCARD ALL`` resets the session (advisory
locks, settings, prepared statements, temporary objects), so nothing one statement did reaches the
next. Connections pin the settings that change how the server lexes SQL
(``mcp_server.db.engines.pinning``) and are refused if the server reports other values. Before it runs,
the server describes the statement (``EXPLAIN (VERBOSE, FORMAT JSON)``, which plans but never executes
it) and every function it resolved must be allowed (``guard.CallPolicy``): PostgreSQL reads ``(x).f``
and ``alias.f`` as calls of ``f``, which sqlglot reads as columns. The statement is then sent alone
through the extended protocol as a server-side cursor (``DECLARE … CURSOR FOR <sql>``), so the server
itself refuses a second statement, anything that is not a SELECT/VALUES and data-modifying CTEs; only
``max_rows + 1`` rows are fetched, in one ``FETCH`` received a row at a time (libpq single-row mode),
so the client never holds more than one row beyond those it has counted. Cancellation uses the libpq
cancel request. A connection that broke (server restart) is dropped and the statement retried once on a
fresh one. This module never decides what SQL is allowed; the guard does.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal, cast

import psycopg
from psycopg import errors as pgerr
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from sqlr1.mcp_server.core.config import DEFAULT_MAX_VALUE_BYTES
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.core.results import Column
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
from sqlr1.mcp_server.db.engines.calls import calls_in_postgres_plan
from sqlr1.mcp_server.db.engines.pinning import POSTGRES_SETTINGS, postgres_options, refuse_session
from sqlr1.mcp_server.sql.guard import CallPolicy

__all__ = ["PostgresEngine", "conninfo_from_url"]

_EXPLAIN_CALLS = "EXPLAIN (VERBOSE, FORMAT JSON) "  # the server's own reading of a statement, not run
_PINNED_SQL = "SELECT " + ", ".join(f"current_setting('{name}')" for name in POSTGRES_SETTINGS)
# What a least-privilege role must not have (read at the first connection, shown as warnings).
_PRIVILEGES_SQL = """
SELECT r.rolsuper,
  pg_has_role(current_user, 'pg_read_server_files', 'MEMBER'),
  pg_has_role(current_user, 'pg_write_server_files', 'MEMBER'),
  pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER'),
  pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'),
  (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = ANY (current_schemas(false))
   AND (pg_has_role(current_user, c.relowner, 'USAGE')
        OR has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')))
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user
"""

_ROW_CHECK_HEAD = "SELECT * FROM ("  # what precedes the caller's SQL in the row-checked cursor query
_ROW_CHECK_MARK = "sqlr1_row_over_max_value_bytes:"  # in the error a too-long row raises

_COLUMNS_SQL = """
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname = ANY (current_schemas(false))
ORDER BY n.nspname, c.relname, a.attnum
"""

_CONSTRAINTS_SQL = """
SELECT n.nspname, c.relname, con.contype,
  ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
  rn.nspname, rc.relname,
  ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord)
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype IN ('p', 'f') AND n.nspname = ANY (current_schemas(false))
ORDER BY n.nspname, c.relname, con.conname
"""

log = logging.getLogger("sqlr1.engines.postgres")

_FIRST_FETCH = 16  # rows in the first FETCH (most results need only that one); later ones 4x, up to:
_MAX_FETCH = 256
_BROKEN = (psycopg.OperationalError, psycopg.InterfaceError)
# The server ended the session (pg_terminate_backend, shutdown, restart): the error can arrive before
# psycopg marks the connection broken, so these SQLSTATEs count as a dropped connection too.
_SESSION_ENDED = {"57P01", "57P02", "57P03"}


def _dropped(conn: psycopg.Connection[Any], exc: BaseException) -> bool:
    return conn.closed or conn.broken or getattr(exc, "sqlstate", None) in _SESSION_ENDED


def conninfo_from_url(url: str) -> str:
    """A libpq conninfo string from a ``postgresql[+psycopg]://`` URL (options already validated)."""
    u = make_url(url)
    params: dict[str, Any] = {
        "host": u.host,
        "port": u.port,
        "user": u.username,
        "password": u.password,
        "dbname": u.database,
        "connect_timeout": 5,
        "application_name": "sqlr1",
    }
    params.update({k: v if isinstance(v, str) else v[-1] for k, v in u.query.items()})
    params["options"] = postgres_options(params.get("options"))
    params["client_encoding"] = POSTGRES_SETTINGS["client_encoding"]
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


class PostgresEngine:
    """One PostgreSQL database; thread-safe through a pool of connections."""

    def __init__(
        self,
        spec: DatabaseSpec,
        *,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        extra_functions: Sequence[str] = (),
    ) -> None:
        self.spec = spec
        self.max_row_bytes = max_value_bytes
        self.calls = CallPolicy("postgres", extra_functions)
        self.warnings: list[str] = []  # least-privilege findings of the first connection
        self._conninfo = conninfo_from_url(spec.url)
        u = make_url(spec.url)
        self._where = f"{u.host or 'localhost'}:{u.port or 5432}/{u.database or ''}"
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(lambda c: c.close())
        self._names = itertools.count()
        self._privileges_checked = False
        self._planner: _Planner | None = None
        self._planner_lock = threading.Lock()
        threading.Thread(target=self._warm_planner, name="sqlr1-pg-planner-start", daemon=True).start()

    @property
    def dialect(self) -> str:
        return "postgres"

    @property
    def _active(self) -> set[psycopg.Connection[Any]]:
        """The connections running a statement now (tests look at it)."""
        return set(self._pool.busy())

    def limit_values(self, max_bytes: int) -> None:
        """Refuse a result row whose text and bytes pass ``max_bytes`` (``max_value_bytes``)."""
        self.max_row_bytes = max_bytes

    def allow_functions(self, names: Sequence[str]) -> None:
        """Also allow these functions in the server's own reading of a statement (``extra_functions``)."""
        self.calls.allow(names)

    def privilege_warnings(self) -> list[str]:
        """What the connection's role may do beyond reading (read at the first connection: connects now if
        none was made yet)."""
        if not self._privileges_checked:
            self._release(self._acquire())
        return list(self.warnings)

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        try:
            # autocommit: we open each read-only transaction ourselves, together with its settings.
            # No prepared statements: DISCARD ALL after every statement would drop them anyway.
            conn = psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=None)
        except psycopg.Error as exc:
            raise execution_error(
                f"cannot connect to PostgreSQL at {self._where}: {str(exc).strip()} "
                "(is the server running and the URL right?)"
            ) from exc
        try:
            self._check_pinned(conn)
            if not self._privileges_checked:
                self.warnings = self._privilege_warnings(conn)
                self._privileges_checked = True
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_pinned(self, conn: psycopg.Connection[Any]) -> None:
        """Refuse a session whose lexing settings are not the pinned ones (``engines.pinning``)."""
        row = conn.execute(_PINNED_SQL).fetchone()
        self._check_pinned_values(tuple(row or ()), self.spec.name)

    @staticmethod
    def _check_pinned_values(values: tuple[Any, ...], database: str) -> None:
        for (name, wanted), found in zip(POSTGRES_SETTINGS.items(), values, strict=True):
            if str(found).lower() != wanted.lower():
                raise refuse_session(name, str(found), wanted, "PostgreSQL", database)

    def _privilege_warnings(self, conn: psycopg.Connection[Any]) -> list[str]:
        """What the connection's role can do beyond reading (docs/security.md shows a read-only role)."""
        row = conn.execute(_PRIVILEGES_SQL).fetchone()
        if row is None:
            return []
        superuser, read_files, write_files, programs, signal, writable = row
        powers = [
            text
            for held, text in (
                (superuser, "is a superuser"),
                (read_files and not superuser, "can read server files (pg_read_server_files)"),
                (write_files and not superuser, "can write server files (pg_write_server_files)"),
                (programs and not superuser, "can run server programs (pg_execute_server_program)"),
                (signal and not superuser, "can signal other backends (pg_signal_backend)"),
                (writable, f"owns or may write {writable} of the tables it reads"),
            )
            if held
        ]
        if not powers:
            return []
        return [
            f"the PostgreSQL role {conn.info.user!r} {'; '.join(powers)}. The guard, the server's own "
            "check of every call and read-only transactions still apply, but connect with a read-only "
            "role (docs/security.md)"
        ]

    def _acquire(self) -> psycopg.Connection[Any]:
        conn = self._pool.take(lambda c: not (c.closed or c.broken))
        if conn is None:
            conn = self._connect()
            self._pool.add_busy(conn)
        return conn

    def _release(self, conn: psycopg.Connection[Any]) -> None:
        """Back to the pool, reset: rolled back, then ``DISCARD ALL`` (advisory locks, settings, prepared
        statements, temporary objects; the pinned settings are the session's own, so they stay)."""
        if conn.closed or conn.broken:
            self._pool.discard(conn)
            return
        try:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
            conn.execute("DISCARD ALL")
        except psycopg.Error:
            self._pool.discard(conn)
            return
        self._pool.give(conn)

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
        return self._run(
            sql, max_rows=max_rows, timeout_s=timeout_s, cancel=cancel, mode="run", fingerprint=fingerprint
        )

    def explain(self, sql: str, *, timeout_s: float) -> RawResult:
        # EXPLAIN plans the statement (binding names and types) without running it; the server's reading
        # of its calls is checked as for a run.
        return self._run(sql, max_rows=1, timeout_s=timeout_s, cancel=None, mode="explain")

    def read_calls(self, sql: str, *, timeout_s: float = 10.0) -> list[str]:
        """The functions PostgreSQL resolves in ``sql`` (its own reading: planned, never run, not checked)."""
        raw = self._run(sql, max_rows=1, timeout_s=timeout_s, cancel=None, mode="read")
        return list(calls_in_postgres_plan(raw.rows[0][0]))

    def _run(
        self,
        sql: str,
        *,
        max_rows: int,
        timeout_s: float,
        cancel: CancelHandle | None,
        mode: Literal["run", "explain", "read"],
        fingerprint: ResultFingerprint | None = None,
    ) -> RawResult:
        """``mode``: check and run ``sql``; check it and return its plan; or only return its plan."""
        started = time.monotonic()
        for attempt in (0, 1):
            name = f"sqlr1_{next(self._names)}"
            # Errors come from the EXPLAIN of the server-side check, before the statement runs: report
            # positions in the caller's SQL, not in the text around it.
            prefix = len(_EXPLAIN_CALLS) + (len(_ROW_CHECK_HEAD) if mode == "run" else 0)
            conn = self._acquire()
            partial = ResultFingerprint() if fingerprint is not None else None  # a retry starts afresh
            try:
                columns, rows = self._fetch(
                    conn, name, sql, max_rows + 1, timeout_s, cancel, started, mode, partial
                )
            except _BROKEN as exc:
                if _dropped(conn, exc) and attempt == 0 and not (cancel and cancel.cancelled):
                    self._pool.clear()
                    conn.close()
                    continue  # server restarted or connection dropped: read-only, so retry once
                raise self._map_error(exc, timeout_s, started, cancel, prefix) from exc
            except psycopg.Error as exc:
                raise self._map_error(exc, timeout_s, started, cancel, prefix) from exc
            finally:
                self._release(conn)
            if fingerprint is not None and partial is not None:
                fingerprint.merge(partial.state())
            truncated = len(rows) > max_rows
            return RawResult(
                columns=columns,
                rows=rows[:max_rows],
                truncated=truncated,
                elapsed_ms=(time.monotonic() - started) * 1000,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch(
        self,
        conn: psycopg.Connection[Any],
        name: str,
        sql: str,
        limit: int,
        timeout_s: float,
        cancel: CancelHandle | None,
        started: float,
        mode: Literal["run", "explain", "read"],
        fingerprint: ResultFingerprint | None = None,
    ) -> tuple[list[Column], list[tuple[Any, ...]]]:
        if cancel is not None and cancel.cancelled:  # cancelled before it reached the server
            raise cancelled_error()
        query = self._with_row_check(sql, name) if mode == "run" else sql
        try:
            plan = self._plan(query, max(0.001, timeout_s - (time.monotonic() - started)))
        except _PlanTooLarge:
            raise self._plan_too_large() from None
        if mode != "read":
            self.calls.check(calls_in_postgres_plan(plan), "PostgreSQL")
        if mode != "run":
            return [Column(name="QUERY PLAN", type="json")], [(plan,)]
        remaining = timeout_s - (time.monotonic() - started)  # planning counts towards the timeout
        if remaining <= 0:
            raise timeout_error(timeout_s)
        self._begin(conn, remaining)

        def stop() -> None:
            conn.cancel_safe(timeout=2.0)

        disarm = WATCHDOG.schedule(remaining + 0.5, stop)  # backstop if the server timeout misfires
        if cancel is not None:
            cancel.bind(stop)
        try:
            if cancel is not None and cancel.cancelled:  # cancelled while it was being planned
                raise cancelled_error()
            cur = conn.cursor(name=name)
            try:
                cur.execute(query)
                columns = [
                    Column(name=d.name, type=self._type_name(conn, d.type_code))
                    for d in cur.description or ()
                ]
                rows = self._fetch_rows(conn, name, limit, fingerprint)
                if not conn.closed:  # ends the transaction and drops the cursor in one round trip
                    conn.execute("ROLLBACK")
            finally:
                cur.close()
        finally:
            disarm()
            if cancel is not None:
                cancel.unbind()
        return columns, rows

    def _plan(self, query: str, timeout_s: float) -> Any:
        """The server's plan of ``query`` (``EXPLAIN (VERBOSE, FORMAT JSON)``: planned, not run), whose
        expressions name every function it resolved. Made by :class:`_Planner`, a child process: the plan
        holds every constant PostgreSQL folded while planning, which may be huge."""
        for attempt in (0, 1):
            planner = self._live_planner()
            try:
                return planner.plan(query, timeout_s)
            except _PlannerGone:
                if attempt:  # a fresh one died too
                    raise execution_error("the PostgreSQL planner process stopped; try again") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _live_planner(self) -> _Planner:
        with self._planner_lock:
            if self._planner is None or not self._planner.alive:
                planner = _Planner(self._conninfo, _PLANNER_MEMORY_BYTES + 16 * self.max_row_bytes)
                self._check_pinned_values(planner.settings, self.spec.name)
                self._planner = planner
            return self._planner

    def _warm_planner(self) -> None:
        """Start the planner process ahead of the first statement (a fresh interpreter takes a moment)."""
        with contextlib.suppress(Exception):  # the first statement starts it again and reports why not
            self._live_planner()

    def _with_row_check(self, sql: str, name: str) -> str:
        """``sql`` as a subquery whose rows PostgreSQL refuses to send when longer than ``max_row_bytes``.

        libpq receives a row (up to 1 GB) as one message before any client code sees it, so the limit is
        checked where the row is built: a row whose text form is longer fails the statement with an
        error carrying :data:`_ROW_CHECK_MARK` (mapped to :meth:`_row_too_long`). The check's error is
        computed from the row, so the planner can't fold it into a constant and raise it for every
        statement. ``(alias.*)`` is the whole row even when a column has the alias's name; a trailing
        ``;`` is dropped (it can't sit inside parentheses); a line comment ends at the newline before
        ``)``. Rows keep the subquery's order (a filter over a subquery scan does not reorder).
        """
        body = _without_trailing_semicolons(sql)
        row = "(sqlr1_row.*)::text"
        return (
            f"{_ROW_CHECK_HEAD}{body}\n) AS sqlr1_row WHERE CASE WHEN octet_length({row}) > "
            f"{self.max_row_bytes:d} THEN CAST('{_ROW_CHECK_MARK}{name}:' || octet_length({row}) AS int) = 0 "
            "ELSE true END"
        )

    def _fetch_rows(
        self,
        conn: psycopg.Connection[Any],
        name: str,
        limit: int,
        fingerprint: ResultFingerprint | None = None,
    ) -> list[tuple[Any, ...]]:
        """Up to ``limit`` rows of cursor ``name``, each received alone (libpq single-row mode).

        ``FETCH``es of 16, 64, then 256 rows: the server builds a FETCH's rows before sending them,
        but the client holds one row at a time whatever the size. Stops once the rows' text and bytes
        pass MAX_RESULT_BYTES: a row cap alone does not bound memory (a cut is then over the character
        cap too, so the executor marks the result truncated). A row over ``max_row_bytes`` is refused by
        the server before it is sent (:meth:`_with_row_check`); one whose values pass it only once
        decoded fails here too (``QueryFailed``). Either way the connection is closed, which ends the
        statement on the server without receiving the rest of the FETCH and frees libpq's grown buffer.
        With ``fingerprint``, every row goes into it and the rest of the result is fetched (not kept).
        """
        rows: list[tuple[Any, ...]] = []
        used = 0
        batch = _FIRST_FETCH
        keeping = True
        with conn.cursor() as plain:
            while fingerprint is not None or len(rows) < limit:
                want = batch if fingerprint is not None else min(batch, limit - len(rows))
                got = 0
                # a generator holding the connection lock: closed even when left early
                fetch = cast(
                    Generator[Any, None, None], plain.stream(f'FETCH FORWARD {want:d} FROM "{name}"')
                )
                with contextlib.closing(fetch):
                    try:
                        for row in fetch:
                            got += 1
                            size = 0
                            for value in row:
                                if isinstance(value, str | bytes | bytearray | memoryview):
                                    size += len(value)
                            if size > self.max_row_bytes:
                                conn.close()
                                raise self._row_too_long(len(rows) + 1, size)
                            if fingerprint is not None:
                                fingerprint.add(row)
                            if not keeping or len(rows) >= limit:
                                continue  # past the cap: fingerprinted, not kept
                            rows.append(row)
                            used += size
                            if used > MAX_RESULT_BYTES:
                                if fingerprint is None:
                                    conn.close()
                                    return rows
                                keeping = False
                    except pgerr.InvalidTextRepresentation as exc:
                        over = _row_check_size(exc)
                        if over is None:
                            raise
                        raise self._row_too_long(None, over) from exc  # refused before it was sent
                if got < want:
                    break
                batch = min(batch * 4, _MAX_FETCH)
        return rows

    def _plan_too_large(self) -> QueryFailed:
        return QueryFailed.of(
            "execution",
            "PostgreSQL's plan of this statement is too large to check: it computes constant expressions "
            "while planning, and one here builds a value far longer than the "
            f"{_size(self.max_row_bytes)} a row may hold (the max_value_bytes guard setting); build shorter "
            "values or compute them from a column",
        )

    def _row_too_long(self, number: int | None, size: int) -> QueryFailed:
        """Row ``number`` (received) holds ``size`` characters/bytes; ``None``: PostgreSQL refused to send
        a row whose text form is ``size`` bytes long (:meth:`_with_row_check`)."""
        what = (
            f"row {number} of the result holds {size:,} characters/bytes of text and binary values"
            if number is not None
            else f"a row of the result is {size:,} bytes long as text"
        )
        return QueryFailed.of(
            "execution",
            f"{what}, more "
            f"than the {_size(self.max_row_bytes)} a row may hold (the max_value_bytes guard setting); ask "
            "for less of its long values (left(x, 1000), length(x)) or raise max_value_bytes",
        )

    @staticmethod
    def _begin(conn: psycopg.Connection[Any], timeout_s: float) -> None:
        """Open a READ ONLY transaction with its statement timeout: one round trip, our own text only."""
        ms = max(1, int(timeout_s * 1000))
        conn.execute(
            f"BEGIN READ ONLY; SET LOCAL statement_timeout = {ms:d}; SET LOCAL cursor_tuple_fraction = 1"
        )

    @staticmethod
    def _type_name(conn: psycopg.Connection[Any], oid: int) -> str:
        info = conn.adapters.types.get(oid)
        return info.name if info is not None else f"oid:{oid}"

    def _map_error(
        self, exc: psycopg.Error, timeout_s: float, started: float, cancel: CancelHandle | None, prefix: int
    ) -> QueryFailed:
        if isinstance(exc, pgerr.QueryCanceled):
            if cancel is not None and cancel.cancelled and time.monotonic() - started < timeout_s:
                return cancelled_error()
            return timeout_error(timeout_s)
        if isinstance(exc, _BROKEN) and not isinstance(exc, psycopg.DatabaseError | pgerr.QueryCanceled):
            return execution_error(
                f"PostgreSQL connection to {self._where} failed: {str(exc).strip()}; try again"
            )
        diag = exc.diag
        msg = (diag.message_primary or str(exc)).strip()
        if diag.message_hint:
            msg += f" (PostgreSQL hint: {diag.message_hint})"
        position: int | None = None
        if diag.statement_position and diag.statement_position.isdigit():
            # Report where in the caller's SQL, not in our DECLARE/EXPLAIN wrapper.
            position = max(0, int(diag.statement_position) - 1 - prefix)
        failed: QueryFailed
        over = _row_check_size(exc)
        if over is not None:
            return self._row_too_long(None, over)
        if isinstance(exc, pgerr.ReadOnlySqlTransaction | pgerr.InsufficientPrivilege):
            failed = engine_refused(msg)
        elif "multiple commands" in msg or (
            isinstance(exc, pgerr.SyntaxError) and prefix and msg.endswith('at or near ";"')
        ):
            failed = engine_refused("only one statement may be sent at a time")
        elif isinstance(exc, pgerr.SyntaxError) and position == 0 and prefix:
            failed = engine_refused("only a SELECT / WITH … SELECT / VALUES statement can run")
        elif isinstance(exc, pgerr.UndefinedTable):
            failed = execution_error(msg, missing="table")
        elif isinstance(exc, pgerr.UndefinedColumn | pgerr.AmbiguousColumn):
            failed = execution_error(msg, missing="column")
        elif isinstance(exc, pgerr.SyntaxError):
            failed = QueryFailed.of("syntax", f"{msg} (PostgreSQL)")
        else:
            failed = execution_error(msg)
        failed.error.position = position
        return failed

    def interrupt(self) -> None:
        active = self._pool.busy()
        for conn in active:
            try:
                conn.cancel_safe(timeout=2.0)
            except psycopg.Error as exc:
                raise execution_error(f"cancelling a PostgreSQL query failed: {exc}") from exc

    # -- catalog -------------------------------------------------------------------------------
    def _meta(self, sql: str) -> list[tuple[Any, ...]]:
        for attempt in (0, 1):
            conn = self._acquire()
            try:
                self._begin(conn, 30.0)
                with conn.cursor() as cur:
                    cur.execute(sql, prepare=False)
                    return cur.fetchall()
            except _BROKEN as exc:
                if _dropped(conn, exc) and attempt == 0:
                    self._pool.clear()
                    conn.close()
                    continue
                raise execution_error(f"reading the PostgreSQL catalog at {self._where}: {exc}") from exc
            except psycopg.Error as exc:
                raise execution_error(f"reading the PostgreSQL catalog at {self._where}: {exc}") from exc
            finally:
                self._release(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def catalog(self) -> list[CatalogTable]:
        tables: dict[tuple[str, str], CatalogTable] = {}
        for schema, table, col, ctype, notnull in self._meta(_COLUMNS_SQL):
            t = tables.setdefault((schema, table), CatalogTable(name=table, schema=schema))
            t.columns.append(CatalogColumn(name=col, type=ctype, nullable=not notnull))
        for schema, table, kind, cols, ref_schema, ref_table, ref_cols in self._meta(_CONSTRAINTS_SQL):
            found = tables.get((schema, table))
            if found is None:
                continue
            t = found
            if kind == "p":
                t.primary_key = list(cols)
                for c in t.columns:
                    c.primary_key = c.name in t.primary_key
            else:
                ref = ref_table if ref_schema == schema else f"{ref_schema}.{ref_table}"
                t.foreign_keys.append(
                    CatalogForeignKey(columns=list(cols), ref_table=ref, ref_columns=list(ref_cols))
                )
        return list(tables.values())

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for rows in (self._meta(_COLUMNS_SQL), self._meta(_CONSTRAINTS_SQL)):
            digest.update(repr(rows).encode())
        return "postgresql:" + digest.hexdigest()[:16]

    def close(self) -> None:
        self._pool.close()
        with self._planner_lock:
            if self._planner is not None:
                self._planner.stop()
                self._planner = None


# -- the planner process ---------------------------------------------------------------------------

_PLANNER_MEMORY_BYTES = (
    64 << 20
)  # what the planner may allocate on top of 16 rows (a plan holds several copies)
_PLANNER_START_S = 60.0


class _PlanTooLarge(Exception):
    """The planner process ran out of memory receiving a plan (or died doing so)."""


class _PlannerGone(Exception):
    """The planner process had ended before a request reached it."""


class _Planner:
    """A child process that plans statements on a connection of its own, under a memory cap
    (``mcp_server.db.engines.planner``, which imports little so it starts fast).

    PostgreSQL folds constant expressions while planning, so a plan can hold a value of up to 1 GB
    (``repeat('x', 100000000)`` is a literal there) that the statement itself would never send (the row
    check refuses it); libpq receives a message whole, so the server process would hold it. Here a plan
    past the cap kills only this process (its next use starts another). Its session has the same URL,
    pinned settings (``settings``: their values as it found them) and role as the engine's, and every
    statement it plans is in a read-only transaction. One request at a time.
    """

    def __init__(self, conninfo: str, memory_bytes: int) -> None:
        self._lock = threading.Lock()
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[3])
        code = (
            f"import sys; sys.path.insert(0, {root!r}); from sqlr1.mcp_server.db.engines.planner import serve; "
            "serve(int(sys.argv[1]), int(sys.argv[2]))"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(theirs.fileno()), str(memory_bytes)],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # stdout may be the MCP stdio transport
        )
        theirs.close()
        self._conn = Connection(os.dup(ours.fileno()))
        ours.close()
        self.alive = True
        self._conn.send((conninfo, _EXPLAIN_CALLS, _PINNED_SQL))  # not on the command line: a password
        kind, payload = self._answer(_PLANNER_START_S)
        if kind != "ok":
            self.stop()
            raise payload if isinstance(payload, BaseException) else execution_error(f"planner: {payload}")
        self.settings: tuple[Any, ...] = tuple(payload)

    def plan(self, query: str, timeout_s: float) -> Any:
        """The plan of ``query``; raises a psycopg error as the server raised it, ``_PlanTooLarge``, or
        ``_PlannerGone`` when the process had ended before the request (start another and retry)."""
        with self._lock:
            try:
                self._conn.send((query, max(1, int(timeout_s * 1000))))
            except OSError:  # it ended after its last answer (out of memory, a broken connection)
                self.stop()
                raise _PlannerGone from None
            kind, payload = self._answer(timeout_s + 5.0)
        if kind == "ok":
            return payload
        if kind == "memory":
            self.stop()  # it ends after saying so
            raise _PlanTooLarge()
        sqlstate = getattr(payload, "sqlstate", None)
        if sqlstate in _SESSION_ENDED or (isinstance(payload, _BROKEN) and sqlstate is None):
            self.stop()  # its connection was dropped (a server restart): plan again on a new one
            raise _PlannerGone
        raise payload  # a psycopg error (they pickle with their diagnostics)

    def _answer(self, wait_s: float) -> tuple[str, Any]:
        try:
            if not self._conn.poll(wait_s):
                self.stop()
                return "error", execution_error("PostgreSQL did not plan the statement in time")
            answer: tuple[str, Any] = self._conn.recv()
            return answer
        except (EOFError, OSError):  # it died: out of memory while receiving a plan, or killed
            self.stop()
            return "memory", None

    def stop(self) -> None:
        self.alive = False
        with contextlib.suppress(OSError):
            self._conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def _row_check_size(exc: psycopg.Error) -> int | None:
    """The size of the row :meth:`PostgresEngine._with_row_check` refused, if ``exc`` is that refusal."""
    if not isinstance(exc, pgerr.InvalidTextRepresentation):
        return None
    msg = exc.diag.message_primary or ""
    mark = msg.find(_ROW_CHECK_MARK)
    if mark < 0:
        return None
    size = msg[mark:].rsplit(":", 1)[1].rstrip('"')
    return int(size) if size.isdigit() else 0


def _without_trailing_semicolons(sql: str) -> str:
    """``sql`` without the ``;`` (and what follows it: whitespace, comments) that may end a statement."""
    if ";" not in sql:
        return sql
    try:
        tokens = Dialect.get_or_raise("postgres").tokenize(sql)
    except Exception:  # not tokenizable: PostgreSQL reports the error on the text as it is
        return sql
    end = len(sql)
    while tokens and tokens[-1].token_type == TokenType.SEMICOLON:
        end = tokens.pop().start
    return sql[:end]


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n:,} bytes"
