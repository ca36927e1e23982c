"""DuckDB engine: a read-only, locked-down database in a memory-capped worker process.

The file is opened ``read_only`` with external access (files, network, extensions) disabled and
the configuration locked, so no statement can undo it. The engine itself refuses anything but
exactly one SELECT statement (DuckDB would otherwise run every statement of a multi-statement
string), and reads the statement with DuckDB's own parser before it runs (``json_serialize_sql``):
every function it calls must be allowed (``guard.CallPolicy``) and no table name may be a file path. Timeouts and cancellation call ``interrupt()`` on the query's own cursor. This module
never decides what SQL is allowed; the guard does.

Why a worker process: DuckDB computes a result one vector (2,048 rows) at a time, and the first row
can only be fetched once its whole vector exists. Rows are fetched incrementally (``fetchmany``, up
to the row cap and ``MAX_RESULT_BYTES`` of text), but no fetch size bounds a vector: 5,000 rows of
1 MB strings hold ~4 GiB inside DuckDB before the first row comes out, and DuckDB's ``memory_limit``
covers its buffer manager, not those vectors. So DuckDB runs in a child process whose data segment
may grow by at most ``memory_bytes`` (``RLIMIT_DATA``, default :data:`WORKER_MEMORY_BYTES`): DuckDB
turns a failed allocation into an "out of memory" error, the server's own memory never holds more
than the capped rows, and a worker that dies anyway is replaced on the next call. Queries run
concurrently in the worker, each on its own cursor.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import pickle
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import duckdb

from sqlr1.mcp_server.core.errors import QueryError, QueryFailed
from sqlr1.mcp_server.core.results import Column, json_safe
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
    fetch_bounded,
    timeout_error,
)
from sqlr1.mcp_server.db.engines.calls import calls_in_duckdb_tree, duckdb_tables
from sqlr1.mcp_server.sql.dialects import FILE_PATH_TABLE_CHARS
from sqlr1.mcp_server.sql.guard import CallPolicy

__all__ = ["LOCKED_CONFIG", "WORKER_MEMORY_BYTES", "DuckdbEngine"]

log = logging.getLogger("sqlr1.engines")

# Order matters only in that lock_configuration is applied last by DuckDB at startup.
LOCKED_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "lock_configuration": True,
}
# How much memory a worker may take on top of what it holds once started (DuckDB, Python, the file
# opened). Results are capped far below this; it bounds what DuckDB computes on the way.
WORKER_MEMORY_BYTES = 2 << 30
_START_TIMEOUT_S = 120.0  # a worker is a fresh interpreter: slow only on a very loaded machine
_BACKSTOP_S = 5.0  # the worker stops a query at its timeout; past this more, the worker is killed
_PART_BYTES = 4 << 20  # rows cross from the worker in messages of about this much text
_MAX_CHARS = 50_000_000  # the largest character cap a caller can set (GuardSettings.max_chars)

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
    """One DuckDB file, read-only, served by a worker process (started on first use)."""

    def __init__(
        self,
        spec: DatabaseSpec,
        *,
        memory_bytes: int = WORKER_MEMORY_BYTES,
        extra_functions: Sequence[str] = (),
    ) -> None:
        if spec.path is None:
            raise QueryFailed.of("config", f"DuckDB database {spec.name!r} has no file path")
        self.spec = spec
        # The administrator's extra_functions, sent with each statement: the worker checks calls with them.
        self.extra_functions: tuple[str, ...] = tuple(extra_functions)
        self.path = Path(spec.path)
        self.memory_bytes = memory_bytes
        self._worker: _Worker | None = None
        self._retiring: list[_Worker] = []  # still answering their last queries
        self._lock = threading.Lock()

    def privilege_warnings(self) -> list[str]:
        """None: the file is opened read-only by this process, with no server role to warn about."""
        return []

    @property
    def dialect(self) -> str:
        return "duckdb"

    def allow_functions(self, names: Sequence[str]) -> None:
        """Also allow these functions in DuckDB's own reading of a statement (``extra_functions``)."""
        self.extra_functions = tuple(dict.fromkeys([*self.extra_functions, *names]))

    @property
    def worker_pid(self) -> int | None:
        """The process id of the worker taking new queries, if one runs (diagnostics, measurements)."""
        worker = self._worker
        return worker.proc.pid if worker is not None and worker.usable else None

    @property
    def _active(self) -> set[int]:
        """Requests sent to the worker and not answered yet (like the other engines' running statements)."""
        worker = self._worker
        return worker.pending() if worker is not None and worker.owner == os.getpid() else set()

    def _get_worker(self) -> _Worker:
        with self._lock:
            worker = self._worker
            if worker is not None and worker.owner == os.getpid() and worker.usable:
                return worker
            if worker is not None:
                # Dead, inherited through fork (its socket and reader thread belong to the parent), or
                # retiring after running out of memory (it ends once its last query has answered).
                if worker.owner != os.getpid() or not worker.alive:
                    worker.abandon(kill=worker.owner == os.getpid())
                else:
                    self._retiring.append(worker)
                self._worker = None
            self._retiring = [w for w in self._retiring if w.alive and w.owner == os.getpid()]
            if not self.path.is_file():
                raise QueryFailed.of("not_found", f"DuckDB file {self.path} no longer exists")
            self._worker = _Worker(self.path, self.memory_bytes)
            return self._worker

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
            sql, max_rows=max_rows, timeout_s=timeout_s, cancel=cancel, explain=False, fingerprint=fingerprint
        )

    def explain(self, sql: str, *, timeout_s: float) -> RawResult:
        return self._run(sql, max_rows=10_000, timeout_s=timeout_s, cancel=None, explain=True)

    def _run(
        self,
        sql: str,
        *,
        max_rows: int,
        timeout_s: float,
        cancel: CancelHandle | None,
        explain: bool,
        fingerprint: ResultFingerprint | None = None,
    ) -> RawResult:
        started = time.monotonic()
        if cancel is not None and cancel.cancelled:  # cancelled before it reached the engine
            raise cancelled_error()
        # The deadline counts from here: starting a worker (first query, or after one died) is part of it.
        worker, call = self._submit(
            lambda: (
                "run",
                sql,
                max_rows,
                timeout_s,
                max(0.001, started + timeout_s - time.monotonic()),
                explain,
                self.extra_functions,
                fingerprint is not None,  # the worker fingerprints the stream, the state comes back
            )
        )
        if cancel is not None:
            cancel.bind(lambda: worker.interrupt(call.rid))
        try:
            if not call.done.wait(max(0.0, started + timeout_s + _BACKSTOP_S - time.monotonic())):
                # DuckDB checks for interrupts between vectors; one that never ends is stopped here.
                log.warning("DuckDB worker for %s ignored an interrupt; killing it", self.path)
                worker.abandon(kill=True)
                raise timeout_error(timeout_s)
        finally:
            if cancel is not None:
                cancel.unbind()
        columns, truncated, state = call.result(self.memory_bytes)
        if fingerprint is not None and state is not None:
            fingerprint.merge(state)
        return RawResult(
            columns=[Column(name=name, type=type_) for name, type_ in columns],
            rows=call.rows,
            truncated=truncated,
            elapsed_ms=(time.monotonic() - started) * 1000,
        )

    def _submit(self, request: Callable[[], tuple[Any, ...]]) -> tuple[_Worker, _Call]:
        """Send ``request()`` (built once a worker is ready) to a worker that takes it."""
        for _ in range(3):  # a worker may start retiring between being picked and taking the request
            worker = self._get_worker()
            call = worker.submit(request())
            if call is not None:
                return worker, call
        raise execution_error("no DuckDB worker process could take the query; try again")

    def interrupt(self) -> None:
        with self._lock:
            workers = [self._worker, *self._retiring]
        for worker in workers:
            if worker is not None and worker.owner == os.getpid() and worker.alive:
                worker.interrupt(None)

    # -- catalog -------------------------------------------------------------------------------
    def read_calls(self, sql: str) -> list[str]:
        """The functions DuckDB's parser reads in ``sql`` (its own reading: parsed, never run, not checked)."""
        _, call = self._submit(lambda: ("calls", sql))
        call.done.wait()
        names: list[str] = call.result(self.memory_bytes)
        return names

    def _meta(self, sql: str) -> list[tuple[Any, ...]]:
        _, call = self._submit(lambda: ("meta", sql))
        call.done.wait()
        rows: list[tuple[Any, ...]] = call.result(self.memory_bytes)
        return rows

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
        with self._lock:
            workers = [self._worker, *self._retiring]
            self._worker, self._retiring = None, []
        for worker in workers:
            if worker is not None:
                worker.abandon(kill=worker.owner == os.getpid(), wait=True)


# -- the parent's side of a worker ---------------------------------------------------------------
class _Call:
    """One request to the worker: its reply arrives on the worker's reader thread."""

    def __init__(self, rid: int) -> None:
        self.rid = rid
        self.done = threading.Event()
        self.rows: list[tuple[Any, ...]] = []  # a result's rows arrive in parts before its reply
        self.reply: tuple[str, Any] = ("error", execution_error("no reply from the DuckDB worker").error)

    def settle(self, kind: str, payload: Any) -> None:
        self.reply = (kind, payload)
        self.done.set()

    def result(self, memory_bytes: int) -> Any:
        kind, payload = self.reply
        if kind == "ok":
            return payload
        if kind == "oom":
            raise _out_of_memory(memory_bytes, payload)
        assert isinstance(payload, QueryError)
        raise QueryFailed(payload)


def _out_of_memory(memory_bytes: int, detail: str) -> QueryFailed:
    return execution_error(
        f"DuckDB ran out of memory computing this result (its worker may use {memory_bytes >> 20} MiB; "
        f"{detail.strip().splitlines()[0]}); ask for less: select fewer or shorter columns, filter or "
        "aggregate before returning rows"
    )


class _Worker:
    """A child process serving one DuckDB file over a socket (pickled messages, one reader thread)."""

    def __init__(self, path: Path, memory_bytes: int) -> None:
        self.owner = os.getpid()
        self.path = path
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[3])
        code = (
            f"import sys; sys.path.insert(0, {root!r}); "
            "from sqlr1.mcp_server.db.engines.duckdb import _serve; _serve(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))"
        )
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, str(theirs.fileno()), str(path), str(memory_bytes)],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # stdout may be the MCP stdio transport
            )
        except OSError as exc:
            ours.close()
            raise execution_error(f"cannot start the DuckDB worker process: {exc}") from exc
        finally:
            theirs.close()
        # The reader thread's end, and ours to shut down: a shutdown wakes the reader without closing the
        # descriptor under it (a closed number can be reused by an unrelated file at once).
        self._sock = ours
        self.conn = Connection(os.dup(ours.fileno()))
        self._send_lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._calls_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._reader: threading.Thread | None = None
        self.alive = True
        self.retiring = False  # ran out of memory: takes no new queries, ends when the running ones have
        try:
            if not self.conn.poll(_START_TIMEOUT_S):
                raise execution_error(
                    f"the DuckDB worker for {path} did not start in {_START_TIMEOUT_S:.0f} s"
                )
            kind, payload = self.conn.recv()
        except (EOFError, OSError) as exc:
            self.abandon(kill=True)
            raise execution_error(f"the DuckDB worker for {path} exited while opening it") from exc
        except QueryFailed:
            self.abandon(kill=True)
            raise
        if kind != "ok":
            self.abandon(kill=False, wait=True)
            raise QueryFailed(payload)
        self._reader = threading.Thread(target=self._read, name=f"sqlr1-duckdb-{self.proc.pid}", daemon=True)
        self._reader.start()

    def pending(self) -> set[int]:
        with self._calls_lock:
            return set(self._calls)

    @property
    def usable(self) -> bool:
        return self.alive and not self.retiring

    def submit(self, request: tuple[Any, ...]) -> _Call | None:
        """Send a request; None when this worker takes no new ones (dead or retiring)."""
        call = _Call(next(self._ids))
        with self._calls_lock:
            if not self.usable:
                return None
            self._calls[call.rid] = call
        try:
            with self._send_lock:
                self.conn.send((request[0], call.rid, *request[1:]))
        except (OSError, ValueError):
            self._fail_all()
        return call

    def interrupt(self, rid: int | None) -> None:
        """Stop one request (``None``: every running one, like a timeout)."""
        try:
            with self._send_lock:
                self.conn.send(("interrupt", rid))
        except (OSError, ValueError):
            pass  # the worker is gone: its calls are failed by the reader thread

    def _read(self) -> None:
        while True:
            try:
                rid, kind, payload = self.conn.recv()
            except (EOFError, OSError, pickle.UnpicklingError):
                break
            if kind == "part":
                with self._calls_lock:
                    call = self._calls.get(rid)
                if call is not None:
                    call.rows.extend(payload)
                continue
            with self._calls_lock:
                call = self._calls.pop(rid, None)
                # Memory a failed allocation leaves behind stays mapped in the worker (DuckDB's
                # allocator keeps it), so after one the worker is replaced rather than reused.
                self.retiring = self.retiring or kind == "oom"
                drained = self.retiring and not self._calls
            if call is not None:
                call.settle(kind, payload)
            if drained:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)  # the worker exits; recv sees EOF
        self.conn.close()
        self._fail_all()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)  # reap it

    def _died_error(self) -> QueryError:
        code = self.proc.poll()
        how = f" (exit status {code})" if code is not None else ""
        return execution_error(
            f"the DuckDB worker process for {self.path} stopped{how} while running this query; "
            "the next query starts a new one"
        ).error

    def _fail_all(self) -> None:
        with self._calls_lock:
            self.alive = False
            calls, self._calls = list(self._calls.values()), {}
        if calls:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)
            error = self._died_error()
            for call in calls:
                call.settle("error", error)

    def abandon(self, *, kill: bool, wait: bool = False) -> None:
        """Stop using this worker; it exits when its socket ends, at once when ``kill``.

        In the process that started it the socket is shut down (the worker and the reader thread both
        see EOF; the reader closes it). A forked child only closes its inherited copy: shutting the
        socket down there would cut off the parent's worker too.
        """
        with self._calls_lock:
            self.alive = False
        if self.owner != os.getpid():
            self.conn.close()
            self._sock.close()
            return
        if kill:
            with contextlib.suppress(OSError):
                self.proc.kill()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        if self._reader is None:
            self.conn.close()
        if wait:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the worker process --------------------------------------------------------------------------
def _serve(fd: int, path: str, memory_bytes: int) -> None:
    """The worker's main loop: open ``path``, cap memory, answer requests until the socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the server; the worker ends with it
    conn = Connection(fd)
    try:
        root = duckdb.connect(path, read_only=True, config=dict(LOCKED_CONFIG))
    except duckdb.Error as exc:
        conn.send(("error", execution_error(f"cannot open DuckDB file {path}: {exc}").error))
        return
    _cap_memory(memory_bytes)
    conn.send(("ok", None))
    server = _WorkerState(root, conn)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        if msg[0] == "interrupt":
            server.interrupt(msg[1])
        else:
            server.start(msg)
    os._exit(0)  # running queries die with the process; nothing is written anywhere


def _cap_memory(memory_bytes: int) -> None:
    """Let this process's data segment grow by ``memory_bytes`` from here (the soft limit it inherited from
    the server is replaced; a hard limit still bounds it)."""
    used = 0
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmData:"):
                    used = int(line.split()[1]) * 1024
    except OSError:  # no /proc: the cap then counts from zero
        pass
    hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
    limit = used + memory_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


class _WorkerState:
    def __init__(self, root: duckdb.DuckDBPyConnection, conn: Connection) -> None:
        self.root = root
        self.conn = conn
        self.send_lock = threading.Lock()
        self.pool: ConnectionPool[duckdb.DuckDBPyConnection] = ConnectionPool(lambda c: c.close())
        self.active: dict[int, tuple[duckdb.DuckDBPyConnection, threading.Event]] = {}
        self.lock = threading.Lock()
        self.policies: dict[tuple[str, ...], CallPolicy] = {}  # by extra_functions
        # Threads are reused; more than this many queries at once on one file wait for a free one.
        self.threads = ThreadPoolExecutor(max_workers=64, thread_name_prefix="sqlr1-duckdb-query")

    def start(self, msg: tuple[Any, ...]) -> None:
        op, rid = msg[0], msg[1]
        try:
            cur = self.pool.take() or self.root.cursor()
        except (duckdb.Error, MemoryError) as exc:
            self.reply(rid, "error", execution_error(f"DuckDB cursor: {exc}").error)
            return
        with self.lock:  # registered before the next message is read, so an interrupt always finds it
            self.active[rid] = (cur, threading.Event())
        targets: dict[str, Callable[..., None]] = {"run": self.run, "calls": self.read_calls}
        target = targets.get(op, self.meta)
        try:
            self.threads.submit(target, cur, *msg[1:])
        except RuntimeError as exc:  # no memory left for a thread's stack
            self.reply(rid, "oom", f"cannot start a thread: {exc}")

    def interrupt(self, rid: int | None) -> None:
        """Interrupt one query (a cancel) or every running one (``None``: like a timeout)."""
        with self.lock:
            ids = list(self.active) if rid is None else [rid]
        for i in ids:
            self._interrupt(i, cancel=rid is not None, repeat=3)

    def _interrupt(self, rid: int, *, cancel: bool, repeat: int) -> None:
        # Repeated while the query still runs: an interrupt that lands just before DuckDB starts the
        # statement is lost. Request ids are never reused, so a later repeat cannot hit another query.
        with self.lock:
            entry = self.active.get(rid)
            if entry is None:
                return
            cur, stopped = entry
            if cancel:
                stopped.set()
            cur.interrupt()
        if repeat:
            WATCHDOG.schedule(0.1, lambda: self._interrupt(rid, cancel=cancel, repeat=repeat - 1))

    def reply(self, rid: int, kind: str, payload: Any) -> None:
        """The request's last message: the cursor goes back to the pool first."""
        with self.lock:
            entry = self.active.pop(rid, None)
        if entry is not None:
            self.pool.give(entry[0])
        if not self.send(rid, kind, payload):
            self.send(rid, "error", execution_error("cannot return this result").error)

    def send(self, rid: int, kind: str, payload: Any) -> bool:
        """One message; False (nothing sent) when the payload cannot be pickled."""
        try:
            data = pickle.dumps((rid, kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            data = pickle.dumps((rid, "oom", "the result could not be serialized"))
        except Exception:  # a value type pickle cannot carry
            return False
        with self.send_lock, contextlib.suppress(OSError):  # the server went away: the loop ends on EOF
            self.conn.send_bytes(data)
        return True

    def send_rows(self, rid: int, rows: list[tuple[Any, ...]]) -> bool:
        """Rows in parts of about ``_PART_BYTES`` of text: the server never holds a result twice (pickled
        and unpickled) at once."""
        start, size = 0, 0
        for i, row in enumerate(rows):
            size += 16 + sum(len(v) for v in row if isinstance(v, str | bytes | bytearray | memoryview))
            if size >= _PART_BYTES or i + 1 == len(rows):
                if not self.send(rid, "part", rows[start : i + 1]):
                    return False
                start, size = i + 1, 0
        return True

    def run(
        self,
        cur: duckdb.DuckDBPyConnection,
        rid: int,
        sql: str,
        max_rows: int,
        timeout_s: float,
        remaining_s: float,
        explain: bool,
        extra_functions: tuple[str, ...],
        digest: bool = False,
    ) -> None:
        started = time.monotonic() - (timeout_s - remaining_s)  # when the server started the query
        stopped = self.active[rid][1]
        disarm = WATCHDOG.schedule(remaining_s, cur.interrupt)
        try:
            if stopped.is_set():  # cancelled before it started
                raise QueryFailed(cancelled_error().error)
            statements = cur.extract_statements(sql)
            if len(statements) != 1:
                raise engine_refused(f"expected exactly one statement, got {len(statements)}")
            if statements[0].type != duckdb.StatementType.SELECT:
                raise engine_refused(f"{statements[0].type.name} statements cannot run; only SELECT")
            self.check_calls(cur, sql, extra_functions)
            if explain:
                cur.execute("EXPLAIN " + sql)
            else:
                cur.execute(statements[0])
            fingerprint = ResultFingerprint(stable=True) if digest else None  # merged in another process
            rows, cut = fetch_bounded(cur.fetchmany, max_rows + 1, fingerprint=fingerprint)
            if cut:
                rows = _trim_last_row(rows)
            description = cur.description or []
        except QueryFailed as exc:
            self.reply(rid, "error", exc.error)
            return
        except duckdb.OutOfMemoryException as exc:
            self.reply(rid, "oom", str(exc))
            return
        except MemoryError:
            self.reply(
                rid, "oom", f"Python could not hold the rows (at most {MAX_RESULT_BYTES >> 20} MiB of text)"
            )
            return
        except duckdb.Error as exc:
            self.reply(rid, "error", _map_error(exc, timeout_s, started, stopped.is_set()).error)
            return
        except Exception as exc:  # a value the driver cannot convert, ...: an answer, never silence
            self.reply(rid, "error", execution_error(f"DuckDB: {type(exc).__name__}: {exc}").error)
            return
        finally:
            disarm()
        columns = [(d[0], str(d[1])) for d in description]
        if self.send_rows(rid, rows[:max_rows]):
            state = fingerprint.state() if fingerprint is not None else None
            self.reply(rid, "ok", (columns, len(rows) > max_rows or cut, state))
        else:
            self.reply(
                rid, "error", execution_error("cannot return this result: a value cannot be sent").error
            )

    @staticmethod
    def parse(cur: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
        """DuckDB's own parse tree of ``sql`` (``json_serialize_sql``: parsed, never run); raises
        ``QueryFailed`` blocked when DuckDB cannot serialize it."""
        row = cur.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
        tree: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
        if tree.get("error"):
            raise QueryFailed.of(
                "blocked",
                f"DuckDB could not describe this statement's calls ({tree.get('error_message', 'no detail')}); "
                "rewrite it as a plain SELECT",
                rule="function_not_allowed",
            )
        return tree

    def read_calls(self, cur: duckdb.DuckDBPyConnection, rid: int, sql: str) -> None:
        try:
            names = list(calls_in_duckdb_tree(self.parse(cur, sql)))
        except QueryFailed as exc:
            self.reply(rid, "error", exc.error)
            return
        except duckdb.Error as exc:
            self.reply(rid, "error", execution_error(f"DuckDB: {exc}").error)
            return
        self.reply(rid, "ok", names)

    def check_calls(self, cur: duckdb.DuckDBPyConnection, sql: str, extra_functions: tuple[str, ...]) -> None:
        """DuckDB's own parse of ``sql``: every function must be allowed and no table name a file path
        (raises ``QueryFailed`` blocked). Parsing runs nothing."""
        policy = self.policies.get(extra_functions)
        if policy is None:
            policy = self.policies[extra_functions] = CallPolicy("duckdb", extra_functions)
        tree = self.parse(cur, sql)
        policy.check(calls_in_duckdb_tree(tree), "DuckDB")
        for table in duckdb_tables(tree):
            if any(c in FILE_PATH_TABLE_CHARS["duckdb"] for c in table):
                raise QueryFailed.of(
                    "blocked",
                    f"table name {table!r} looks like a file path or URL, which DuckDB would read from disk or "
                    "network; name a table of the database instead",
                    rule="file_path_table",
                )

    def meta(self, cur: duckdb.DuckDBPyConnection, rid: int, sql: str) -> None:
        try:
            rows = cur.execute(sql).fetchall()
        except duckdb.OutOfMemoryException as exc:
            self.reply(rid, "oom", str(exc))
            return
        except Exception as exc:
            self.reply(rid, "error", execution_error(f"reading the DuckDB catalog: {exc}").error)
            return
        self.reply(rid, "ok", rows)


def _json_len(value: Any) -> int:
    """A value's size as the executor's character cap counts it (``executor.cap_rows``)."""
    if type(value) is str:
        return len(value)
    if type(value) is int:
        return len(str(value))
    safe = json_safe(value)
    return len(safe) if isinstance(safe, str) else 4 if safe is None else len(str(safe))


def _trim_last_row(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows to send when ``fetch_bounded`` stopped on a row that took the text past MAX_RESULT_BYTES.

    That row alone may be huge (a wide row of long values), and the server would hold it twice while
    receiving it. It is cut to what no character cap (at most ``_MAX_CHARS``) can tell apart: a later
    row that puts the result over ``_MAX_CHARS`` is dropped (every cap stops before it); a first row
    keeps more than ``_MAX_CHARS`` characters in all, and each cut value more than the
    ``max(16, max_chars // columns)`` characters the cap shortens it to, so the capped result is the
    same (``truncated`` is set either way).
    """
    *before, last = rows
    sizes = [_json_len(v) for v in last]
    if before:
        used = sum(_json_len(v) for row in before for v in row)
        return before if used + sum(sizes) > _MAX_CHARS else rows
    keep = max(16, _MAX_CHARS // max(1, len(last))) + 1
    excess = sum(sizes) - (_MAX_CHARS + 1)  # what can go while every cap still has to shorten the row
    values = list(last)
    for i, value in enumerate(values):
        if excess <= 0:
            break
        text = value if isinstance(value, str) else json_safe(value) if sizes[i] > keep else None
        if not isinstance(text, str) or len(text) <= keep:
            continue
        cut = max(keep, len(text) - excess)
        excess -= len(text) - cut
        values[i] = text[:cut]
    return [tuple(values)]


def _map_error(exc: duckdb.Error, timeout_s: float, started: float, cancelled: bool) -> QueryFailed:
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
    low = msg.lower()
    if isinstance(exc, duckdb.BinderException) and (
        ("column" in low and "not found" in low) or "ambiguous reference to column" in low
    ):
        return execution_error(msg, missing="column")
    if isinstance(exc, duckdb.ParserException):
        return QueryFailed.of("syntax", msg)
    return execution_error(msg)
