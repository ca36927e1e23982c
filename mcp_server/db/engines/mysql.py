"""MariaDB/MySQL engine (PyMySQL): read-only transactions, statement time limits, KILL QUERY.

Connections never ask for ``CLIENT.MULTI_STATEMENTS`` (the server refuses a second statement),
the session is ``TRANSACTION READ ONLY`` and every statement runs inside
``START TRANSACTION READ ONLY`` … ``ROLLBACK``, after which the session is reset
(``COM_RESET_CONNECTION``: locks, user variables, temporary tables, prepared statements), so nothing
one statement did reaches the next. ``sql_mode`` and the character set, which change how the server
lexes SQL, are pinned to what the guard's dialect assumes (``mcp_server.db.engines.pinning``) and
checked. Before a statement runs, the server describes it (``EXPLAIN EXTENDED`` and the rewritten query
in its note 1003) and every function it resolved must be allowed (``guard.CallPolicy``). The server stops a statement at its time limit
(MariaDB ``max_statement_time``, MySQL ``max_execution_time``); ``sql_select_limit`` and an
unbuffered cursor keep at most ``max_rows + 1`` rows in memory, and a row longer than
``max_value_bytes`` is refused while it arrives (the driver would otherwise buffer it whole), as is a
value the server itself cut to NULL at its ``max_allowed_packet``. Cancellation sends
``KILL QUERY <id>`` from a second connection. This module never decides what SQL is allowed;
the guard does.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from typing import Any, Literal

import pymysql
import pymysql.cursors
from pymysql.connections import MAX_PACKET_LEN
from pymysql.constants import FIELD_TYPE
from sqlalchemy.engine import make_url

from sqlr1.mcp_server.core.config import DEFAULT_MAX_VALUE_BYTES
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.core.results import Column
from sqlr1.mcp_server.db.engines.base import (
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
    fetch_bounded,
    timeout_error,
)
from sqlr1.mcp_server.db.engines.calls import calls_in_rendering, variables_in_rendering
from sqlr1.mcp_server.db.engines.pinning import MARIADB_CHARSETS, MARIADB_SQL_MODE, refuse_session
from sqlr1.mcp_server.sql.guard import CallPolicy

__all__ = ["MysqlEngine", "connect_args_from_url"]

_COM_RESET_CONNECTION = 0x1F  # resets the session's state without a new login (MariaDB 10.2+, MySQL 5.7+)
_REWRITTEN_QUERY = 1003  # the note EXPLAIN [EXTENDED] leaves: the statement as the optimizer rewrote it
# What a least-privilege account must not have (read at the first connection, shown as warnings).
_POWERS_SQL = (
    'SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = CONCAT("\'", '
    "SUBSTRING_INDEX(CURRENT_USER(), '@', 1), \"'@'\", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), \"'\")"
)
_DB_WRITES_SQL = (
    "SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE TABLE_SCHEMA = DATABASE() "
    "AND GRANTEE = CONCAT(\"'\", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), \"'@'\", "
    "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), \"'\")"
)
_SERVER_POWERS = ("FILE", "SUPER", "PROCESS", "SHUTDOWN", "CREATE USER", "GRANT OPTION", "RELOAD")
_WRITES = ("INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX", "CREATE VIEW", "TRIGGER")

log = logging.getLogger("sqlr1.engines.mysql")

_TYPE_NAMES = {v: k for k, v in vars(FIELD_TYPE).items() if k.isupper() and isinstance(v, int)}
_TIMEOUT_CODES = {1969, 3024}  # MariaDB max_statement_time, MySQL max_execution_time
_INTERRUPTED = 1317
_REFUSED_CODES = {1792, 1142, 1044, 1045, 1227, 1290, 1036}  # read-only txn, privileges, read-only server
_LOST_CODES = {2003, 2006, 2013, 2014, 2055, 4031}
_PACKET_OVERFLOW = 1301  # warning: a function's result passed max_allowed_packet and became NULL

_COLUMNS_SQL = (
    "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE, c.COLUMN_KEY "
    "FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA = DATABASE() "
    "ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION"
)
_KEYS_SQL = (
    "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME "
    "FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.TABLE_CONSTRAINTS t "
    "ON t.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND t.TABLE_NAME = k.TABLE_NAME "
    "AND t.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
    "WHERE k.TABLE_SCHEMA = DATABASE() AND t.CONSTRAINT_TYPE IN ('PRIMARY KEY', 'FOREIGN KEY') "
    "ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION"
)


def connect_args_from_url(url: str) -> dict[str, Any]:
    """PyMySQL connect() arguments from a ``mysql[+pymysql]://`` / ``mariadb://`` URL."""
    u = make_url(url)
    args: dict[str, Any] = {
        "host": u.host or "localhost",
        "port": u.port or 3306,
        "user": u.username or "root",
        "password": u.password or "",
        "database": u.database,
        "charset": "utf8mb4",
        "connect_timeout": 5,
        "sql_mode": MARIADB_SQL_MODE,  # how the server lexes SQL: pinned (engines.pinning)
    }
    ssl: dict[str, str] = {}
    for key, value in u.query.items():
        v = value if isinstance(value, str) else value[-1]
        if key == "connect_timeout":
            args[key] = float(v)
        elif key.startswith("ssl_"):
            ssl[key.removeprefix("ssl_")] = v
        else:
            args[key] = v
    if ssl:
        args["ssl"] = ssl
    return args


_NO_SELECT_LIMIT = 18446744073709551615  # sql_select_limit's default: no limit


class _RowTooLong(Exception):
    """A result row passed ``max_packet_bytes`` while it arrived; the connection was closed."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class _BoundedConnection(pymysql.connections.Connection):  # type: ignore[misc]  # PyMySQL ships no types
    """PyMySQL reads a packet (a row, sent in pieces of 16 MiB) whole before parsing it; this refuses one
    longer than ``max_packet_bytes`` before reading the piece that would pass it."""

    max_packet_bytes = DEFAULT_MAX_VALUE_BYTES
    _packet_bytes = 0  # of the packet being read, in the pieces before this one

    def reset_session(self) -> None:
        """``COM_RESET_CONNECTION``: roll back, release locks (``GET_LOCK`` included), drop temporary tables,
        user variables and prepared statements, and reset session variables to the server's defaults (the
        engine sets its own again before each statement). PyMySQL has no public call for it."""
        self._execute_command(_COM_RESET_CONNECTION, "")
        self._read_ok_packet()

    def _read_bytes(self, num_bytes: int) -> bytes:
        if num_bytes != 4:  # a packet's body or one piece of it (4: a header, or a body too short to count)
            total = self._packet_bytes + num_bytes
            if total > self.max_packet_bytes:
                if self._result is not None:
                    self._result.unbuffered_active = False  # closing the cursor must not read on
                self._force_close()  # the rest of the packet is unread: the connection can't go on
                raise _RowTooLong(total)
            self._packet_bytes = total if num_bytes == MAX_PACKET_LEN else 0  # a full piece: more follow
        data: bytes = _read_bytes(self, num_bytes)
        return data


_read_bytes = pymysql.connections.Connection._read_bytes


class _Conn:
    def __init__(self, raw: pymysql.connections.Connection, mariadb: bool) -> None:
        self.raw = raw
        self.mariadb = mariadb
        self.thread_id = raw.thread_id()
        self.read_only_var = "transaction_read_only"


class MysqlEngine:
    """One MariaDB/MySQL database; thread-safe through a pool of connections."""

    def __init__(
        self,
        spec: DatabaseSpec,
        *,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        extra_functions: Sequence[str] = (),
    ) -> None:
        self.spec = spec
        self.max_row_bytes = max_value_bytes
        self.calls = CallPolicy("mysql", extra_functions)
        self.warnings: list[str] = []  # least-privilege findings of the first connection
        self._args = connect_args_from_url(spec.url)
        self._where = f"{self._args['host']}:{self._args['port']}/{self._args.get('database') or ''}"
        self._pool: ConnectionPool[_Conn] = ConnectionPool(lambda c: c.raw.close())
        self._privileges_checked = False

    @property
    def dialect(self) -> str:
        return "mysql"

    @property
    def _active(self) -> set[_Conn]:
        """The connections running a statement now (tests look at it)."""
        return set(self._pool.busy())

    def limit_values(self, max_bytes: int) -> None:
        """Refuse a result row longer than ``max_bytes`` (``max_value_bytes``) as it arrives."""
        self.max_row_bytes = max_bytes

    def allow_functions(self, names: Sequence[str]) -> None:
        """Also allow these functions in the server's own reading of a statement (``extra_functions``)."""
        self.calls.allow(names)

    def privilege_warnings(self) -> list[str]:
        """What the connection's role may do beyond reading (read at the first connection: connects now if
        none was made yet)."""
        if not self._privileges_checked:
            self._release(self._acquire(), reuse=True)
        return list(self.warnings)

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> _Conn:
        try:
            raw = _BoundedConnection(**self._args, autocommit=True, client_flag=0)
            with raw.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION READ ONLY")
        except pymysql.Error as exc:
            raise execution_error(
                f"cannot connect to MariaDB/MySQL at {self._where}: {exc} (is the server running and the URL right?)"
            ) from exc
        try:
            conn = _Conn(raw, "mariadb" in raw.get_server_info().lower())
            with raw.cursor() as cur:
                try:
                    cur.execute("SELECT @@session.transaction_read_only")
                    conn.read_only_var = "transaction_read_only"
                except pymysql.Error:  # MariaDB before 11.1 only knows the old name
                    conn.read_only_var = "tx_read_only"
                self._check_pinned(cur)
                if not self._privileges_checked:
                    self.warnings = self._privilege_warnings(cur)
                    self._privileges_checked = True
        except BaseException:
            raw.close()
            raise
        return conn

    def _check_pinned(self, cur: Any) -> None:
        """Refuse a session whose ``sql_mode`` or character set is not the pinned one (``engines.pinning``)."""
        cur.execute("SELECT @@session.sql_mode, @@session.character_set_client")
        sql_mode, charset = cur.fetchone()
        if set(str(sql_mode).upper().split(",")) != set(MARIADB_SQL_MODE.split(",")):
            raise refuse_session("sql_mode", str(sql_mode), MARIADB_SQL_MODE, "MariaDB/MySQL", self.spec.name)
        if str(charset).lower() not in MARIADB_CHARSETS:
            raise refuse_session(
                "character_set_client", str(charset), "utf8mb4", "MariaDB/MySQL", self.spec.name
            )

    def _privilege_warnings(self, cur: Any) -> list[str]:
        """What the account can do beyond reading (docs/security.md shows a read-only account)."""
        cur.execute(_POWERS_SQL)
        server = sorted({r[0] for r in cur.fetchall()} & set(_SERVER_POWERS + _WRITES))
        cur.execute(_DB_WRITES_SQL)
        database = sorted({r[0] for r in cur.fetchall()} & set(_WRITES))
        powers = []
        if server:
            powers.append(f"holds server-wide privileges {', '.join(server)}")
        if database:
            powers.append(f"may {', '.join(p.lower() for p in database)} in this database")
        if not powers:
            return []
        return [
            f"the MariaDB/MySQL account {self._args['user']!r} {'; '.join(powers)}. The guard, the server's "
            "own check of every call and read-only transactions still apply, but FILE lets LOAD_FILE read "
            "server files; connect with a read-only account (docs/security.md)"
        ]

    def _acquire(self) -> _Conn:
        conn = self._pool.take()
        if conn is None:
            conn = self._connect()
            self._pool.add_busy(conn)
        return conn

    def _release(self, conn: _Conn, *, reuse: bool) -> None:
        """Back to the pool, reset (``COM_RESET_CONNECTION`` rolls back and clears the session), or closed."""
        if reuse and conn.raw.open:
            try:
                conn.raw.reset_session()
            except pymysql.Error:
                self._pool.discard(conn)
                return
            self._pool.give(conn)
        else:
            self._pool.discard(conn)

    def _kill(self, conn: _Conn) -> None:
        """Stop the statement ``conn`` is running, from a second connection."""
        try:
            killer = pymysql.connect(**self._args, autocommit=True, client_flag=0)
        except pymysql.Error as exc:
            raise execution_error(f"cannot reach {self._where} to stop a query: {exc}") from exc
        try:
            with killer.cursor() as cur:
                cur.execute("KILL QUERY %s", (conn.thread_id,))
        except pymysql.Error as exc:
            if exc.args and exc.args[0] == 1094:  # unknown thread: it already finished
                return
            raise execution_error(f"stopping a query on {self._where} failed: {exc}") from exc
        finally:
            killer.close()

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

    def explain(self, sql: str, *, timeout_s: float) -> RawResult:
        # The call check's EXPLAIN plans the statement (binding names and types) without running it.
        return self._run(sql, max_rows=1, timeout_s=timeout_s, cancel=None, mode="explain")

    def read_calls(self, sql: str, *, timeout_s: float = 10.0) -> list[str]:
        """The functions MariaDB/MySQL resolves in ``sql`` (its own reading: planned, never run, not checked)."""
        raw = self._run(sql, max_rows=100_000, timeout_s=timeout_s, cancel=None, mode="read")
        return [row[0] for row in raw.rows]

    def _run(
        self,
        sql: str,
        *,
        max_rows: int,
        timeout_s: float,
        cancel: CancelHandle | None,
        mode: Literal["run", "explain", "read", "meta"] = "run",
        fingerprint: ResultFingerprint | None = None,
    ) -> RawResult:
        """``mode``: run a caller's statement, only check and plan it, only read its calls, or run sqlr1's
        own catalog query."""
        started = time.monotonic()
        for attempt in (0, 1):
            conn = self._acquire()
            reuse = True
            partial = ResultFingerprint() if fingerprint is not None else None  # a retry starts afresh
            try:
                # a retry gets what is left of the caller's time, so the deadline stays timeout_s
                left = max(0.01, timeout_s - (time.monotonic() - started))
                columns, rows, reuse = self._fetch(conn, sql, max_rows + 1, left, cancel, mode, partial)
            except pymysql.Error as exc:
                code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
                reuse = conn.raw.open and code not in _LOST_CODES
                if not reuse and attempt == 0 and not (cancel and cancel.cancelled):
                    self._pool.clear()
                    continue  # server restarted or connection dropped: read-only, so retry once
                raise self._map_error(exc, code, timeout_s, started, cancel) from exc
            finally:
                self._release(conn, reuse=reuse)
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
        conn: _Conn,
        sql: str,
        limit: int,
        timeout_s: float,
        cancel: CancelHandle | None,
        mode: Literal["run", "explain", "read", "meta"],
        fingerprint: ResultFingerprint | None = None,
    ) -> tuple[list[Column], list[tuple[Any, ...]], bool]:
        raw = conn.raw
        # With a fingerprint the whole result streams through (never held), so the server sends it all
        select_limit = _NO_SELECT_LIMIT if fingerprint is not None else limit
        with raw.cursor() as setup:
            # Re-asserted for every statement: session state must not carry over from a previous one.
            # sql_mode again: the reset after the previous statement set it back to the server default.
            if conn.mariadb:
                setup.execute(
                    f"SET SESSION max_statement_time = %s, sql_select_limit = %s, {conn.read_only_var} = 1, "
                    "sql_mode = %s",
                    (float(timeout_s), select_limit, MARIADB_SQL_MODE),
                )
            else:
                setup.execute(
                    f"SET SESSION max_execution_time = %s, sql_select_limit = %s, {conn.read_only_var} = 1, "
                    "sql_mode = %s",
                    (max(1, int(timeout_s * 1000)), select_limit, MARIADB_SQL_MODE),
                )
            setup.execute("START TRANSACTION READ ONLY")
            if mode == "read":
                calls, _ = self._reading(setup, conn, sql)
                return [Column(name="function", type="text")], [(name,) for name in calls], True
            if mode != "meta":
                self._check_calls(setup, conn, sql)
        if mode == "explain":
            return [], [], True
        raw.max_packet_bytes = self.max_row_bytes

        def stop() -> None:
            self._kill(conn)

        # Backstop: MySQL's max_execution_time covers only SELECT; KILL QUERY covers the rest.
        disarm = WATCHDOG.schedule(timeout_s + 0.5, stop)
        if cancel is not None:
            cancel.bind(stop)
        reuse = True
        try:
            if cancel is not None and cancel.cancelled:  # cancelled before it reached the server
                raise cancelled_error()
            cur = raw.cursor(pymysql.cursors.SSCursor)
            try:
                cur.execute(sql)  # no args: the text is sent as is, never %-formatted
                # Row by row from the unbuffered cursor: a row cap alone does not bound memory (a cut
                # here is then over the character cap too, so the executor marks the result truncated).
                rows, cut = fetch_bounded(cur.fetchmany, limit, fingerprint=fingerprint)
                description = cur.description or ()
                if cut or (len(rows) == limit and cur.fetchone() is not None):
                    # An explicit LIMIT beat sql_select_limit, or the result is too big to hold:
                    # stop the server instead of draining the rest of the result.
                    self._kill(conn)
                    warned = True  # not known: the end of the result, with its warning count, never came
                else:
                    warned = cur.warning_count > 0
            except _RowTooLong as exc:
                with contextlib.suppress(QueryFailed):
                    self._kill(conn)  # the connection is closed; make sure the statement ends too
                raise self._row_too_long(exc.size) from None
            finally:
                try:
                    cur.close()
                except pymysql.Error as exc:  # the killed statement's error ends the result
                    reuse = (exc.args[0] if exc.args else None) == _INTERRUPTED
            if warned and reuse and (overflow := self._packet_overflow(raw)):
                raise QueryFailed.of(
                    "execution",
                    f"{overflow}: the server returned NULL for a value longer than its max_allowed_packet; "
                    "ask for less of it (LEFT(x, 1000), LENGTH(x))",
                )
        finally:
            disarm()
            if cancel is not None:
                cancel.unbind()
        columns = [Column(name=d[0], type=_TYPE_NAMES.get(d[1], str(d[1]))) for d in description]
        return columns, rows, reuse

    def _check_calls(self, cur: Any, conn: _Conn, sql: str) -> None:
        """Check the functions and variables in the server's own reading of ``sql`` (``guard.CallPolicy``;
        raises ``QueryFailed`` blocked)."""
        calls, variables = self._reading(cur, conn, sql)
        self.calls.check(calls, "MariaDB/MySQL")
        for variable in variables:
            raise QueryFailed.of(
                "blocked",
                f"{variable}: MariaDB/MySQL reads this statement as reading a user or server variable; "
                "variables are not allowed, use literals",
                rule="parameter",
            )

    @staticmethod
    def _reading(cur: Any, conn: _Conn, sql: str) -> tuple[list[str], list[str]]:
        """The functions and variables in the server's own reading of ``sql``: ``EXPLAIN EXTENDED`` leaves
        the statement as the optimizer rewrote it in note 1003, every function under the server's canonical
        name (``upper`` is ``ucase``). EXPLAIN plans without running the statement, but MariaDB may read a
        const table (one row, or a primary-key lookup) while planning."""
        if _first_word(sql) not in _QUERY_WORDS:
            # EXPLAIN would describe (never run) an UPDATE or DELETE too; only reads run here.
            raise engine_refused("only a SELECT, WITH … SELECT or VALUES statement can run")
        cur.execute(("EXPLAIN EXTENDED " if conn.mariadb else "EXPLAIN ") + sql)
        cur.fetchall()
        cur.execute("SHOW WARNINGS")
        rewritten = [message for _level, code, message in cur.fetchall() if code == _REWRITTEN_QUERY]
        if not rewritten:
            raise QueryFailed.of(
                "blocked",
                "the server did not describe which functions this statement calls (no EXPLAIN note 1003), "
                "so it cannot be checked; rewrite it as a plain SELECT",
                rule="function_not_allowed",
            )
        calls: list[str] = []
        variables: list[str] = []
        for text in rewritten:
            calls += calls_in_rendering(text, identifier_quote="`", backslash_escapes=True)
            variables += variables_in_rendering(text, identifier_quote="`", backslash_escapes=True)
        return calls, variables

    @staticmethod
    def _packet_overflow(raw: pymysql.connections.Connection) -> str | None:
        """The server's warning when the last statement cut a value to NULL at max_allowed_packet."""
        with raw.cursor() as cur:
            cur.execute("SHOW WARNINGS")
            for _level, code, message in cur.fetchall():
                if code == _PACKET_OVERFLOW:
                    return str(message)
        return None

    def _row_too_long(self, size: int) -> QueryFailed:
        return QueryFailed.of(
            "execution",
            f"a row of the result holds at least {size:,} bytes, more than the {_size(self.max_row_bytes)} a "
            "row may hold (the max_value_bytes guard setting); ask for less of its long values "
            "(LEFT(x, 1000), LENGTH(x)) or raise max_value_bytes",
        )

    def _map_error(
        self,
        exc: pymysql.Error,
        code: int | None,
        timeout_s: float,
        started: float,
        cancel: CancelHandle | None,
    ) -> QueryFailed:
        msg = exc.args[1] if len(exc.args) > 1 else str(exc)
        if code in _TIMEOUT_CODES:
            return timeout_error(timeout_s)
        if code == _INTERRUPTED:
            if cancel is not None and cancel.cancelled and time.monotonic() - started < timeout_s:
                return cancelled_error()
            return timeout_error(timeout_s)
        if code in _REFUSED_CODES:
            return engine_refused(msg)
        if code == 1146:
            return execution_error(msg, missing="table")
        if code in (1054, 1052):  # unknown, ambiguous
            return execution_error(msg, missing="column")
        if code == 1064:
            return QueryFailed.of("syntax", f"{msg} (only one statement can be sent)")
        if code in _LOST_CODES or code is None:
            return execution_error(f"connection to MariaDB/MySQL at {self._where} failed: {msg}; try again")
        return execution_error(msg)

    def interrupt(self) -> None:
        active = self._pool.busy()
        for conn in active:
            self._kill(conn)

    # -- catalog -------------------------------------------------------------------------------
    def _meta(self, sql: str) -> list[tuple[Any, ...]]:
        result = self._run(sql, max_rows=1_000_000, timeout_s=30.0, cancel=None, mode="meta")
        return result.rows

    def catalog(self) -> list[CatalogTable]:
        tables: dict[str, CatalogTable] = {}
        for table, col, ctype, nullable, _key in self._meta(_COLUMNS_SQL):
            t = tables.setdefault(table, CatalogTable(name=table))
            t.columns.append(CatalogColumn(name=col, type=ctype, nullable=nullable == "YES"))
        fks: dict[tuple[str, str], CatalogForeignKey] = {}
        for table, constraint, col, ref_table, ref_col in self._meta(_KEYS_SQL):
            found = tables.get(table)
            if found is None:
                continue
            t = found
            if ref_table is None:
                t.primary_key.append(col)
                for c in t.columns:
                    c.primary_key = c.primary_key or c.name == col
                continue
            fk = fks.get((table, constraint))
            if fk is None:
                fk = fks[(table, constraint)] = CatalogForeignKey(
                    columns=[], ref_table=ref_table, ref_columns=[]
                )
                t.foreign_keys.append(fk)
            fk.columns.append(col)
            fk.ref_columns.append(ref_col)
        return list(tables.values())

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for rows in (self._meta(_COLUMNS_SQL), self._meta(_KEYS_SQL)):
            digest.update(repr(rows).encode())
        return "mysql:" + digest.hexdigest()[:16]

    def close(self) -> None:
        self._pool.close()


_QUERY_WORDS = frozenset({"select", "with", "values", "table"})
_LEADING_NOISE = re.compile(r"(?:\s+|\(|--[ \t][^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)


def _first_word(sql: str) -> str:
    """The statement's first keyword, lower case, after whitespace, comments and opening parentheses."""
    rest = sql[_LEADING_NOISE.match(sql).end() :]  # type: ignore[union-attr]
    word = re.match(r"[A-Za-z]+", rest)
    return word.group(0).lower() if word else ""


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n:,} bytes"
