"""PostgreSQL engine on the local server (concert_singer in schema sqlr1_test): read-only, timeouts, cancel."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from engine_contract import EngineContract
from service_data import pg_concert_url  # noqa: F401  (fixture)

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.engines.base import CancelHandle, DatabaseSpec
from sqlr1.mcp_server.db.engines.postgres import PostgresEngine, conninfo_from_url


@pytest.fixture
def engine(pg_concert_url: str) -> Iterator[PostgresEngine]:  # noqa: F811
    # pg_sleep and pg_backend_pid are not allowed by default; these tests need a slow statement and the
    # server's process id, as an administrator's extra_functions would allow them.
    eng = PostgresEngine(
        DatabaseSpec(name="concert_singer", kind="postgresql", url=pg_concert_url),
        extra_functions=("pg_sleep", "pg_backend_pid"),
    )
    yield eng
    eng.close()


class TestPostgresEngine(EngineContract):
    write_attempts = (
        'INSERT INTO singer ("Singer_ID", "Name") VALUES (99, \'x\')',
        'UPDATE singer SET "Age" = 0',
        "DELETE FROM singer",
        "CREATE TABLE evil (a int)",
        "DROP TABLE singer",
        "TRUNCATE singer",
        "SET default_transaction_read_only = off",
        "SELECT 1; DELETE FROM singer",
        "COMMIT",
        "COPY singer TO STDOUT",
        "WITH d AS (DELETE FROM singer RETURNING *) SELECT * FROM d",
        "SELECT * FROM singer FOR UPDATE",
        "SELECT * INTO evil FROM singer",
        "CALL evil()",
        "DO $$ BEGIN DELETE FROM singer; END $$",
    )
    json_sql = (
        "SELECT '\\x0102'::bytea AS b, 1.25::numeric AS d, DATE '2020-01-02' AS day, "
        "TIMESTAMP '2020-01-02 03:04:05' AS ts, INTERVAL '90 seconds' AS iv"
    )
    json_expected = ("\x01\x02", 1.25, "2020-01-02", "2020-01-02T03:04:05", 90.0)


def test_multiple_statements_refused_by_the_server(engine: PostgresEngine) -> None:
    with pytest.raises(QueryFailed) as info:
        engine.execute("SELECT 1; SELECT 2", max_rows=5, timeout_s=5)
    assert info.value.error.kind == "blocked" and "one statement" in info.value.error.message


def test_error_position_points_into_the_callers_sql(engine: PostgresEngine) -> None:
    sql = "SELECT * FROM no_such_table"
    with pytest.raises(QueryFailed) as info:
        engine.execute(sql, max_rows=5, timeout_s=5)
    assert info.value.error.position == sql.index("no_such_table")


def run(engine: PostgresEngine, sql: str) -> list[tuple[object, ...]]:
    return engine.execute(sql, max_rows=100, timeout_s=10).rows


def test_row_check_keeps_what_the_statement_returns(engine: PostgresEngine) -> None:
    """The caller's SQL runs as a subquery under the row-size check: same rows, order, columns, types."""
    desc = run(engine, "SELECT g FROM generate_series(1, 50) AS g ORDER BY g DESC")
    assert [r[0] for r in desc] == list(range(50, 0, -1))
    dup = engine.execute("SELECT 1 AS a, 2 AS a, 'x'::text AS b", max_rows=5, timeout_s=10)
    assert [c.name for c in dup.columns] == ["a", "a", "b"] and dup.rows == [(1, 2, "x")]
    assert [c.type for c in dup.columns] == ["int4", "int4", "text"]
    assert run(engine, "SELECT 1 AS n; -- a trailing comment after the semicolon") == [(1,)]
    assert run(engine, "SELECT 2 AS n -- a comment that would swallow what follows") == [(2,)]
    assert run(engine, "SELECT 3 AS n;;") == [(3,)]
    assert run(engine, "SELECT ';' AS s") == [(";",)]
    assert run(engine, "VALUES (1, 'a'), (2, 'b')") == [(1, "a"), (2, "b")]
    assert run(
        engine, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r"
    ) == [(1,), (2,), (3,)]
    assert run(engine, "SELECT FROM generate_series(1, 2)") == [(), ()]  # zero columns


def test_row_check_sees_the_whole_row_whatever_the_columns_are_named(engine: PostgresEngine) -> None:
    """A column named like the check's alias must not narrow the check to that column."""
    engine.limit_values(1024 * 1024)
    with pytest.raises(QueryFailed) as info:
        run(engine, "SELECT 1 AS sqlr1_row, repeat('x', 2000000) AS big")
    assert "max_value_bytes" in info.value.error.message and "2,000,0" in info.value.error.message
    assert run(engine, "SELECT 1 AS sqlr1_row, repeat('x', 1000) AS small")[0][0] == 1  # still usable


def test_several_statements_are_refused_through_the_row_check(engine: PostgresEngine) -> None:
    with pytest.raises(QueryFailed) as info:
        engine.execute("SELECT 1; SELECT 2;", max_rows=5, timeout_s=5)
    assert info.value.error.kind == "blocked" and "one statement" in info.value.error.message


def test_pg_sleep_stopped_by_statement_timeout(engine: PostgresEngine) -> None:
    started = time.monotonic()
    with pytest.raises(QueryFailed) as info:
        engine.execute("SELECT pg_sleep(30)", max_rows=1, timeout_s=1.0)
    assert info.value.error.kind == "timeout" and time.monotonic() - started < 2.0
    assert engine.execute("SELECT 1", max_rows=1, timeout_s=5).rows == [(1,)]


def _is_active(url: str, pid: int) -> bool:
    with psycopg.connect(conninfo_from_url(url), autocommit=True) as conn:
        row = conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        return row is not None and row[0] == "active"


def test_cancel_reaches_the_server(engine: PostgresEngine, pg_concert_url: str) -> None:  # noqa: F811
    # The pool hands the same idle connection back (LIFO), so we know which backend will run it.
    pid = engine.execute("SELECT pg_backend_pid()", max_rows=1, timeout_s=5).rows[0][0]
    handle = CancelHandle()
    errors: list[QueryFailed] = []

    def run() -> None:
        try:
            engine.execute("SELECT pg_sleep(30)", max_rows=1, timeout_s=60, cancel=handle)
        except QueryFailed as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 5
    while not _is_active(pg_concert_url, pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _is_active(pg_concert_url, pid)
    handle.cancel()
    worker.join(5)
    assert not worker.is_alive() and errors and "cancelled" in errors[0].error.message
    assert not _is_active(pg_concert_url, pid)


def test_reconnects_after_the_connection_is_killed(engine: PostgresEngine, pg_concert_url: str) -> None:  # noqa: F811
    with ThreadPoolExecutor(3) as pool:  # three pooled connections, all about to go stale
        list(pool.map(lambda _: engine.execute("SELECT pg_sleep(0.2)", max_rows=1, timeout_s=5), range(3)))
    with psycopg.connect(conninfo_from_url(pg_concert_url), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'sqlr1' AND pid <> pg_backend_pid() AND datname = current_database()"
        )
    assert engine.execute("SELECT 41 + 1", max_rows=1, timeout_s=5).rows == [(42,)]


def test_unreachable_server_is_a_clear_error() -> None:
    eng = PostgresEngine(
        DatabaseSpec(name="nowhere", kind="postgresql", url="postgresql+psycopg://u@127.0.0.1:1/nowhere")
    )
    with pytest.raises(QueryFailed) as info:
        eng.execute("SELECT 1", max_rows=1, timeout_s=5)
    assert info.value.error.kind == "execution" and "cannot connect to PostgreSQL at 127.0.0.1:1" in str(
        info.value
    )
