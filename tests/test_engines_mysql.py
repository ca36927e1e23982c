"""MariaDB/MySQL engine on the local server (concert_singer in database sqlr1_test)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pymysql
import pytest
from engine_contract import EngineContract
from service_data import mariadb_concert_url  # noqa: F401  (fixture)

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.engines.base import CancelHandle, DatabaseSpec, Engine
from sqlr1.mcp_server.db.engines.mysql import MysqlEngine, connect_args_from_url


@pytest.fixture
def engine(mariadb_concert_url: str) -> Iterator[MysqlEngine]:  # noqa: F811
    # SLEEP and CONNECTION_ID are not allowed by default; these tests need a slow statement and the
    # server's connection id, as an administrator's extra_functions would allow them.
    eng = MysqlEngine(
        DatabaseSpec(name="concert_singer", kind="mysql", url=mariadb_concert_url),
        extra_functions=("sleep", "connection_id"),
    )
    yield eng
    eng.close()


class TestMysqlEngine(EngineContract):
    write_attempts = (
        "INSERT INTO singer (Singer_ID, Name) VALUES (99, 'x')",
        "UPDATE singer SET Age = 0",
        "DELETE FROM singer",
        "REPLACE INTO singer (Singer_ID, Name) VALUES (1, 'x')",
        "CREATE TABLE evil (a int)",
        "CREATE TEMPORARY TABLE evil (a int)",
        "DROP TABLE singer",
        "TRUNCATE TABLE singer",
        "ALTER TABLE singer ADD COLUMN evil int",
        "SELECT 1; DELETE FROM singer",
        "SET SESSION TRANSACTION READ WRITE",  # accepted, but the next statements stay read-only:
        "DELETE FROM singer",
        "SET SESSION tx_read_only = 0",
        "INSERT INTO singer (Singer_ID, Name) VALUES (98, 'y')",
    )
    json_sql = (
        "SELECT x'0102' AS b, CAST(1.25 AS DECIMAL(10,2)) AS d, DATE '2020-01-02' AS day, "
        "TIMESTAMP '2020-01-02 03:04:05' AS ts"
    )
    json_expected = ("\x01\x02", 1.25, "2020-01-02", "2020-01-02T03:04:05")

    def test_writes_refused_by_the_engine(self, engine: Engine) -> None:
        # SET statements too: only statements the server can describe as a read (EXPLAIN) run.
        from engine_contract import snapshot

        before = snapshot(engine)
        for sql in self.write_attempts:
            with pytest.raises(QueryFailed) as info:
                engine.execute(sql, max_rows=5, timeout_s=5)
            assert info.value.error.kind in ("blocked", "syntax"), sql
        assert snapshot(engine) == before


def test_multiple_statements_refused_by_the_server(engine: MysqlEngine) -> None:
    with pytest.raises(QueryFailed) as info:
        engine.execute("SELECT 1; SELECT 2", max_rows=5, timeout_s=5)
    assert info.value.error.kind == "syntax" and "SELECT 2" in info.value.error.message


def test_sleep_stopped_by_the_statement_time_limit(engine: MysqlEngine) -> None:
    started = time.monotonic()
    with pytest.raises(QueryFailed) as info:
        engine.execute("SELECT SLEEP(30)", max_rows=1, timeout_s=1.0)
    assert info.value.error.kind == "timeout" and time.monotonic() - started < 2.0
    assert engine.execute("SELECT 1", max_rows=1, timeout_s=5).rows == [(1,)]


def test_explicit_limit_beyond_the_cap_is_cut_short(engine: MysqlEngine) -> None:
    sql = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) "
        "SELECT a.n FROM r AS a, r AS b LIMIT 900000"
    )
    raw = engine.execute(sql, max_rows=3, timeout_s=20)
    assert raw.truncated is True and len(raw.rows) == 3
    assert engine.execute("SELECT 1", max_rows=1, timeout_s=5).rows == [(1,)]


def _processlist_state(url: str, thread_id: int) -> str | None:
    conn = pymysql.connect(**{**connect_args_from_url(url), "database": None}, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COMMAND FROM information_schema.PROCESSLIST WHERE ID = %s", (thread_id,))
            row = cur.fetchone()
            return None if row is None else str(row[0])
    finally:
        conn.close()


def test_cancel_kills_the_server_query(engine: MysqlEngine, mariadb_concert_url: str) -> None:  # noqa: F811
    thread_id = engine.execute("SELECT CONNECTION_ID()", max_rows=1, timeout_s=5).rows[0][0]
    handle = CancelHandle()
    errors: list[QueryFailed] = []

    def run() -> None:
        try:
            engine.execute("SELECT SLEEP(30)", max_rows=1, timeout_s=60, cancel=handle)
        except QueryFailed as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 5
    while _processlist_state(mariadb_concert_url, thread_id) != "Query" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processlist_state(mariadb_concert_url, thread_id) == "Query"
    handle.cancel()
    worker.join(5)
    assert not worker.is_alive()
    assert _processlist_state(mariadb_concert_url, thread_id) == "Sleep"


def test_reconnects_after_the_connection_is_killed(engine: MysqlEngine, mariadb_concert_url: str) -> None:  # noqa: F811
    with ThreadPoolExecutor(3) as pool:  # three pooled connections, all about to go stale
        ids = set(
            pool.map(
                lambda _: engine.execute("SELECT CONNECTION_ID(), SLEEP(0.2)", max_rows=1, timeout_s=5).rows[
                    0
                ][0],
                range(3),
            )
        )
    admin = pymysql.connect(**connect_args_from_url(mariadb_concert_url), autocommit=True)
    try:
        with admin.cursor() as cur:
            for thread_id in ids:
                cur.execute("KILL CONNECTION %s", (thread_id,))
    finally:
        admin.close()
    assert engine.execute("SELECT 41 + 1", max_rows=1, timeout_s=5).rows == [(42,)]


def test_unreachable_server_is_a_clear_error() -> None:
    eng = MysqlEngine(DatabaseSpec(name="nowhere", kind="mysql", url="mysql+pymysql://u@127.0.0.1:1/nowhere"))
    with pytest.raises(QueryFailed) as info:
        eng.execute("SELECT 1", max_rows=1, timeout_s=5)
    assert info.value.error.kind == "execution" and "cannot connect to MariaDB/MySQL at 127.0.0.1:1" in str(
        info.value
    )
