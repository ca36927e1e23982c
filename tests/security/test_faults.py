"""Faults while the server runs, through the real in-memory MCP client, and runaways tests/test_runaway.py lacks.

* A SQLite file deleted, locked by another connection's exclusive transaction, or corrupted under a
  running server: each call gets a clear error naming the problem, other calls keep working, and the
  database answers again once the file is back.
* PostgreSQL / MariaDB connections dropped under the server (``pg_terminate_backend`` / ``KILL
  CONNECTION`` from a second connection, which is what a server restart does to a client, without
  restarting the shared services): idle connections reconnect on the next call; a query running when
  its connection dies gets a clear error and the call after it works.
* Runaways not covered by tests/test_runaway.py: regular-expression / GLOB blow-ups evaluated per row,
  on every engine through the executor, stopped by the engine within timeout + 1 s; elapsed times are
  printed (``-s``) for the report.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pymysql
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from service_data import duckdb_concert, mariadb_concert_url, pg_concert_url  # noqa: F401  (fixtures)
from sqlalchemy.engine import make_url
from sqlite_lock import exclusive_lock

from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig, GuardSettings
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.engines.mysql import connect_args_from_url
from sqlr1.mcp_server.db.engines.postgres import conninfo_from_url
from sqlr1.mcp_server.db.executor import Executor
from sqlr1.mcp_server.protocol.server import build_server

COUNT = "SELECT count(*) FROM singer"
SINGERS = 6


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def call(client: Client, name: str, args: dict[str, Any], timeout: float = 60) -> Any:
    with anyio.fail_after(timeout):
        return await client.call_tool(name, args)


async def count(client: Client, db: str = "concert_singer") -> Any:
    return await call(client, "execute_sql", {"database": db, "sql": COUNT})


def serve(*targets: tuple[str, str], timeout_s: float = 5.0) -> MCPServer:
    config = AppConfig(
        guard=GuardSettings(timeout_s=timeout_s),
        databases=[DatabaseConfig(name=name, target=target) for name, target in targets],
    )
    return build_server(config)


# --------------------------------------------------------------------------- SQLite file faults


@pytest.fixture
def files(spider_copy: Any, tmp_path: Path) -> tuple[Path, Path]:
    """(the served concert_singer copy, a pristine backup of it)."""
    db = spider_copy("concert_singer")
    backup = tmp_path / "backup.sqlite"
    shutil.copyfile(db, backup)
    return db, backup


async def test_deleted_file_then_restored(files: tuple[Path, Path], chinook_copy: Path) -> None:
    db, backup = files
    server = serve(("concert_singer", str(db)), ("chinook", str(chinook_copy)))
    async with Client(server) as client:
        assert (await count(client)).structured_content["rows"] == [[SINGERS]]
        db.unlink()
        for tool, args in (
            ("execute_sql", {"database": "concert_singer", "sql": COUNT}),
            ("validate_sql", {"database": "concert_singer", "sql": COUNT}),
            ("list_tables", {"database": "concert_singer"}),
            ("sample_values", {"database": "concert_singer", "table": "singer", "column": "Name"}),
        ):
            res = await call(client, tool, args)
            text = text_of(res) + str(res.structured_content or "")
            assert "not_found" in text and str(db) in text, (tool, text)
        # the other database is unaffected, and so is the server
        res = await call(client, "execute_sql", {"database": "chinook", "sql": "SELECT count(*) FROM Genre"})
        assert res.structured_content["rows"] == [[25]]
        shutil.copyfile(backup, db)
        assert (await count(client)).structured_content["rows"] == [[SINGERS]]  # back without a restart


async def test_replaced_file_is_served_fresh(files: tuple[Path, Path], tmp_path: Path) -> None:
    """A file swapped under the server (rename over it, as deploy scripts do): never the old data."""
    db, backup = files
    server = serve(("concert_singer", str(db)))
    newer = tmp_path / "newer.sqlite"
    shutil.copyfile(backup, newer)
    with sqlite3.connect(newer) as conn:
        conn.execute("INSERT INTO singer (Singer_ID, Name) VALUES (99, 'Newcomer')")
        conn.execute("CREATE TABLE extra (x INTEGER)")
    conn.close()
    async with Client(server) as client:
        assert (await count(client)).structured_content["rows"] == [[SINGERS]]
        res = await call(client, "list_tables", {"database": "concert_singer"})
        assert "extra" not in res.structured_content["tables"]
        newer.replace(db)
        assert (await count(client)).structured_content["rows"] == [[SINGERS + 1]]
        res = await call(client, "list_tables", {"database": "concert_singer"})
        assert "extra" in res.structured_content["tables"]


async def test_exclusive_lock_held_by_another_connection(files: tuple[Path, Path]) -> None:
    db, backup = files
    server = serve(("concert_singer", str(db)))
    async with Client(server) as client:
        assert (await count(client)).structured_content["rows"] == [[SINGERS]]
        with exclusive_lock(db):  # a writer in another process, mid-transaction
            started = time.monotonic()
            res = await count(client)
            waited = time.monotonic() - started
            assert res.is_error and "locked" in text_of(res), text_of(res)
            assert "execution" in text_of(res)
            print(f"\nlocked SQLite file: clear error after {waited:.1f} s (the busy wait)")
            # list_databases needs no file access: the server answers while the lock is held
            res = await call(client, "list_databases", {})
            assert not res.is_error
        assert (await count(client)).structured_content["rows"] == [[SINGERS]]
    assert db.read_bytes() == backup.read_bytes()


async def test_corrupted_file_then_restored(files: tuple[Path, Path]) -> None:
    db, backup = files
    server = serve(("concert_singer", str(db)))
    async with Client(server) as client:
        assert (await count(client)).structured_content["rows"] == [[SINGERS]]
        size = db.stat().st_size
        db.write_bytes(b"SQLite format 3\x00" + b"\xa5" * (size - 16))  # header intact, pages garbage
        res = await count(client)
        assert res.is_error
        text = text_of(res)
        assert "execution" in text and (
            "damaged" in text or "malformed" in text or "not a database" in text
        ), text
        db.write_bytes(b"this is not a database at all" * 100)
        res = await count(client)
        assert res.is_error and "execution" in text_of(res)
        res = await call(client, "list_databases", {})
        assert not res.is_error
        shutil.copyfile(backup, db)
        res = await count(client)
        assert res.structured_content["rows"] == [[SINGERS]], text_of(res)


# --------------------------------------------------------------------------- server connections dropped


ACTIVE_KILLED: list[int] = []  # per drop: how many of the dropped connections were running a query


def _own_client_ports(server_port: int) -> set[int]:
    """Local ports of this process's TCP connections to ``server_port`` (from /proc): only our own
    server's connections are dropped, never those of other test sessions sharing the service."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports: set[int] = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table, encoding="ascii") as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def _terminate_pg(url: str) -> int:
    ports = _own_client_ports(make_url(url).port or 5432)
    with psycopg.connect(conninfo_from_url(url), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid), state FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND client_port = ANY(%s)",
            (sorted(ports),),
        ).fetchall()
    ACTIVE_KILLED.append(sum(1 for _, state in rows if state == "active"))
    return len(rows)


def _mysql_ids(url: str) -> list[int]:
    """Server thread ids of this process's own connections."""
    ports = _own_client_ports(make_url(url).port or 3306)
    admin = pymysql.connect(**connect_args_from_url(url))
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            me = cur.fetchone()[0]  # type: ignore[index]
            cur.execute("SELECT ID, HOST, COMMAND FROM information_schema.PROCESSLIST WHERE ID <> %s", (me,))
            own = [row for row in cur.fetchall() if str(row[1]).rsplit(":", 1)[-1] in {str(p) for p in ports}]
            ACTIVE_KILLED.append(sum(1 for row in own if row[2] == "Query"))
            return [row[0] for row in own]
    finally:
        admin.close()


def _kill_mysql(url: str, ids: list[int]) -> int:
    admin = pymysql.connect(**connect_args_from_url(url))
    killed = 0
    try:
        with admin.cursor() as cur:
            for thread_id in ids:
                try:
                    cur.execute("KILL CONNECTION %s", (thread_id,))
                    killed += 1
                except pymysql.err.OperationalError:  # it ended by itself meanwhile (unknown thread id)
                    continue
    finally:
        admin.close()
    return killed


@pytest.fixture
def server_db(request: pytest.FixtureRequest) -> tuple[str, str]:
    kind = request.param
    return kind, request.getfixturevalue("pg_concert_url" if kind == "postgresql" else "mariadb_concert_url")


@pytest.fixture
def before_ids(server_db: tuple[str, str]) -> Iterator[set[int]]:
    """MariaDB connections that existed before the test (other sessions'): never killed by it."""
    kind, url = server_db
    yield set(_mysql_ids(url)) if kind == "mysql" else set()


def _drop_connections(kind: str, url: str, spare: set[int]) -> int:
    if kind == "postgresql":
        return _terminate_pg(url)
    return _kill_mysql(url, [i for i in _mysql_ids(url) if i not in spare])


@pytest.mark.parametrize("server_db", ["postgresql", "mysql"], indirect=True)
async def test_idle_connections_dropped_reconnect_on_next_call(
    server_db: tuple[str, str], before_ids: set[int]
) -> None:
    kind, url = server_db
    server = serve(("concert_singer", url))
    async with Client(server) as client:
        for _ in range(3):  # three "restarts" in a row
            assert (await count(client)).structured_content["rows"] == [[SINGERS]]
            assert _drop_connections(kind, url, before_ids) >= 1
            res = await count(client)
            assert not res.is_error, text_of(res)
            assert res.structured_content["rows"] == [[SINGERS]]
            res = await call(client, "list_tables", {"database": "concert_singer"})
            assert not res.is_error and "singer" in res.structured_content["tables"]


RUNNING = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) "
    "SELECT count(*) FROM r AS a, r AS b, r AS c, r AS d"
)


MID_TIMEOUT = 4.0


@pytest.mark.parametrize("server_db", ["postgresql", "mysql"], indirect=True)
async def test_connection_dropped_mid_query(server_db: tuple[str, str], before_ids: set[int]) -> None:
    """The engine retries a read once on a fresh connection, within the caller's original deadline."""
    kind, url = server_db
    server = serve(("concert_singer", url), timeout_s=MID_TIMEOUT)
    async with Client(server) as client:
        assert (await count(client)).structured_content["rows"] == [[SINGERS]]
        box: dict[str, Any] = {}

        async def long_query() -> None:
            started = time.monotonic()
            box["res"] = await call(client, "execute_sql", {"database": "concert_singer", "sql": RUNNING})
            box["elapsed"] = time.monotonic() - started

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_query)
            await anyio.sleep(1.0)
            killed = await anyio.to_thread.run_sync(_drop_connections, kind, url, before_ids)
            assert killed >= 1 and ACTIVE_KILLED[-1] >= 1  # the running query's connection was dropped
        res, elapsed = box["res"], box["elapsed"]
        text = text_of(res)
        # The runaway, retried on a new connection, still ends at the first deadline (not 1 s + timeout).
        assert res.is_error and "timeout" in text, text
        assert elapsed < MID_TIMEOUT + 1.0, elapsed
        print(f"\n{kind}: connection dropped 1 s into a query -> {text[:70]!r} after {elapsed:.1f} s")
        res = await count(client)
        assert not res.is_error and res.structured_content["rows"] == [[SINGERS]], text_of(res)


# --------------------------------------------------------------------------- regex / GLOB runaways


TIMEOUT = 1.5
SERIES = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) "
# A backtracking-heavy pattern on every row of a 10^9-row join: no single call is slow, the volume is.
REGEX = {
    "sqlite": SERIES + "SELECT count(*) FROM r AS a, r AS b, r AS c "
    "WHERE (a.n || 'aaaaaaaaaaaaaaaaaaaa' || b.n || c.n) GLOB '*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b*'",
    "postgresql": SERIES + "SELECT count(*) FROM r AS a, r AS b, r AS c "
    "WHERE (a.n::text || 'aaaaaaaaaaaaaaaaaaaa' || b.n::text || c.n::text) ~ '^(a|aa|[0-9])*b$'",
    "mysql": SERIES + "SELECT count(*) FROM r AS a, r AS b, r AS c "
    "WHERE CONCAT(a.n, 'aaaaaaaaaaaaaaaaaaaa', b.n, c.n) REGEXP '^(a|aa|[0-9])*b$'",
    "duckdb": SERIES + "SELECT count(*) FROM r AS a, r AS b, r AS c "
    "WHERE regexp_matches(CAST(a.n AS VARCHAR) || 'aaaaaaaaaaaaaaaaaaaa' || CAST(b.n AS VARCHAR) "
    "|| CAST(c.n AS VARCHAR), '^(a|aa|[0-9])*b$')",
}


@pytest.fixture(params=["sqlite", "postgresql", "mysql", "duckdb"])
def engine_target(request: pytest.FixtureRequest, spider_copy: Any) -> tuple[str, str]:
    kind = request.param
    if kind == "sqlite":
        return kind, f"concert_singer={spider_copy('concert_singer')}"
    if kind == "duckdb":
        return kind, f"concert_singer={request.getfixturevalue('duckdb_concert')}"
    fixture = "pg_concert_url" if kind == "postgresql" else "mariadb_concert_url"
    return kind, "concert_singer=" + request.getfixturevalue(fixture)


def test_regex_blowup_stopped_by_the_engine(engine_target: tuple[str, str]) -> None:
    kind, target = engine_target
    ex = Executor.from_targets([target], GuardSettings(timeout_s=TIMEOUT))
    try:
        started = time.monotonic()
        with pytest.raises(QueryFailed) as info:
            ex.run("concert_singer", REGEX[kind])
        elapsed = time.monotonic() - started
        assert info.value.error.kind == "timeout", info.value.error
        assert elapsed < TIMEOUT + 1.0, elapsed
        print(
            f"\n{kind}: regex/GLOB blow-up stopped as a timeout after {elapsed:.2f} s (timeout {TIMEOUT} s)"
        )
        assert ex.run("concert_singer", COUNT).rows[0][0] == SINGERS
    finally:
        ex.registry.close()


def test_concurrent_runaways_leave_other_queries_alone(engine_target: tuple[str, str]) -> None:
    """Four runaways at once on one engine: each is stopped on time and a point query answers meanwhile."""
    kind, target = engine_target
    ex = Executor.from_targets([target], GuardSettings(timeout_s=TIMEOUT))
    outcomes: list[tuple[str, float]] = []
    lock = threading.Lock()

    def runaway() -> None:
        started = time.monotonic()
        try:
            ex.run("concert_singer", REGEX[kind])
            kind_seen = "finished"
        except QueryFailed as exc:
            kind_seen = exc.error.kind
        with lock:
            outcomes.append((kind_seen, time.monotonic() - started))

    try:
        threads = [threading.Thread(target=runaway) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        assert ex.run("concert_singer", COUNT).rows[0][0] == SINGERS
        point = time.monotonic() - t0
        for t in threads:
            t.join(30)
        assert [k for k, _ in outcomes] == ["timeout"] * 4, outcomes
        assert max(e for _, e in outcomes) < TIMEOUT + 1.0, outcomes
        print(
            f"\n{kind}: 4 concurrent runaways stopped after {max(e for _, e in outcomes):.2f} s max; "
            f"a point query meanwhile took {point * 1000:.0f} ms"
        )
    finally:
        ex.registry.close()
