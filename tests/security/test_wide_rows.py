"""One very wide row (many long values) on SQLite, PostgreSQL and MariaDB: bounded memory, specific errors.

The drivers hold a row whole, so the 64 MiB bound a result has (``engines.base.MAX_RESULT_BYTES``) does
not bound one row. ``guard.max_value_bytes`` (16 MiB by default) does: SQLite refuses to build or read a
longer value, PostgreSQL rows arrive one at a time and a longer one fails, MariaDB refuses a longer row
while it arrives (and a value its server cut to NULL at ``max_allowed_packet`` fails instead of passing
as NULL). A SQLite row of many values each under that limit is bounded by ``guard.max_sqlite_heap_bytes``
(256 MiB by default), SQLite's process-wide hard heap limit. Each oversized statement runs in a child
process whose peak RSS (``VmHWM``, reset after a warm-up) is measured; the figures are printed (``-s``).
The heap limit is process-wide and can only be lowered, so a test that lowers it does so in a child.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pymysql
import pytest
from child_process import run_json_child

from sqlr1.mcp_server.core.config import DEFAULT_MAX_SQLITE_HEAP_BYTES, GuardSettings, load_config
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.engines.mysql import connect_args_from_url
from sqlr1.mcp_server.db.executor import Executor

MIB = 1024 * 1024

CHILD = """
import json, sys
from sqlr1.mcp_server.core.config import GuardSettings
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.executor import Executor

def hwm():
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))

target, sql, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ex = Executor.from_targets([f"db={target}"], GuardSettings(timeout_s=120, **settings))
ex.run("db", "SELECT 1")  # connections and imports are not the statement's
with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
    fh.write("5")  # the peak restarts at the current RSS
before = hwm()
out = {}
try:
    result = ex.run("db", sql)
    out.update(rows=result.row_count, truncated=result.truncated)
except QueryFailed as exc:
    out.update(kind=exc.error.kind, message=exc.error.message)
out["growth_mib"] = hwm() - before
out["after"] = ex.run("db", "SELECT 1").rows  # the engine (its connection pool) still works
print(json.dumps(out))
"""


def measure(target: str, sql: str, **settings: Any) -> dict[str, Any]:
    """Run ``sql`` through an executor in a child process: its outcome and peak RSS growth (MiB)."""
    got = run_json_child(CHILD, target, sql, json.dumps(settings))
    assert got["after"] == [[1]]
    print(
        f"\n{target.split(':')[0]}: {sql[:70]}... -> {got.get('message', got)!s:.90}; +{got['growth_mib']:.0f} MiB"
    )
    return got


def columns(expression: str, count: int) -> str:
    return ", ".join(f"{expression} AS c{i}" for i in range(count))


FIFTEEN_MB = "printf('%.*c', 15000000, 'x')"  # under max_value_bytes (16 MiB)
HEAP_MIB = DEFAULT_MAX_SQLITE_HEAP_BYTES // MIB


def assert_heap_error(got: dict[str, Any], mib: int, *, columns: int | None = None) -> None:
    """SQLite's heap limit stopped the statement, or (``columns``) the statement's result columns' share of
    a row's budget did, before the first value past it was built or read."""
    assert got.get("kind") == "execution", got
    message = got["message"]
    if columns is None:
        assert "out of memory" in message and f"{mib} MiB" in message, message
    else:
        assert "too big" in message and f"its {columns} result columns share the {mib} MiB" in message, (
            message
        )
    assert "max_sqlite_heap_bytes" in message and "substr" in message and "fewer columns" in message, message


# -- SQLite ------------------------------------------------------------------------------------------


def test_sqlite_a_row_of_values_over_the_limit_fails_before_it_is_held(tmp_path: Path) -> None:
    """20 values of 20 MB in one row (400 MB; with SQLite's own copy and Python's, ~800 MiB if held)."""
    db = tmp_path / "empty.sqlite"
    sqlite3.connect(db).close()
    twenty_mb = "(printf('%.*c', 10000000, 'x') || printf('%.*c', 10000000, 'x'))"
    got = measure(str(db), f"SELECT {columns(twenty_mb, 20)}")
    assert got.get("kind") == "execution", got
    assert "too big" in got["message"] and "16 MiB" in got["message"] and "max_value_bytes" in got["message"]
    assert got["growth_mib"] < 128  # at most a value or two of 20 MB were built before the refusal


def test_sqlite_value_limit_follows_the_setting_for_built_and_stored_values(tmp_path: Path) -> None:
    db = tmp_path / "docs.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO docs VALUES (1, ?), (2, 'short')", ("d" * (3 * MIB),))
    before = db.read_bytes()
    small = Executor.from_targets([f"docs={db}"], GuardSettings(max_value_bytes=MIB))
    for sql in (
        "SELECT body FROM docs WHERE id = 1",  # stored: can't even be measured under the limit
        "SELECT length(body) FROM docs WHERE id = 1",
        "SELECT printf('%.*c', 600000, 'x') || printf('%.*c', 600000, 'x')",  # built
    ):
        with pytest.raises(QueryFailed) as info:
            small.run("docs", sql)
        assert info.value.error.kind == "execution", sql
        assert "1 MiB" in info.value.error.message and "max_value_bytes" in info.value.error.message
    assert small.run("docs", "SELECT body FROM docs WHERE id = 2").rows == [["short"]]
    assert small.run("docs", "SELECT length(printf('%.*c', 600000, 'x'))").rows == [[600000]]
    large = Executor.from_targets([f"docs={db}"], GuardSettings(max_value_bytes=4 * MIB))
    assert large.run("docs", "SELECT length(body) FROM docs WHERE id = 1").rows == [[3 * MIB]]
    # the setting reaches engines created before it, too (one registry, a new executor)
    small.registry.limit_values(4 * MIB)
    assert small.run("docs", "SELECT length(body) FROM docs WHERE id = 1").rows == [[3 * MIB]]
    assert db.read_bytes() == before


def test_sqlite_a_row_of_many_values_under_the_limit_is_bounded_by_the_heap_limit(tmp_path: Path) -> None:
    """20 values of 15 MB in one row, each under max_value_bytes: +859 MiB when SQLite's copy and Python's
    were held whole; now the 20 columns share the row's 256 MiB (12.8 MiB each), so the first value past
    its share fails the statement before it is built (SQLite's heap limit stops what the share lets through:
    ``test_sqlite_heap_limit_is_process_wide_and_the_lowest_applies``)."""
    db = tmp_path / "empty.sqlite"
    sqlite3.connect(db).close()
    got = measure(str(db), f"SELECT {columns(FIFTEEN_MB, 20)}")
    assert_heap_error(got, HEAP_MIB, columns=20)
    assert got["growth_mib"] < 64  # SQLite's heap; nothing reached Python
    # the same with a stored value read 20 times into one row (each column is its own 15 MB copy)
    stored = tmp_path / "stored.sqlite"
    with sqlite3.connect(stored) as conn:
        conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO docs VALUES (1, ?)", ("d" * 15_000_000,))
    # SQLite 3.5x reads it once for all 20 columns (no heap growth), Python would build 20 copies: the
    # columns' share of the row (256 MiB / 20) refuses it before it is read
    got = measure(str(stored), f"SELECT {columns('body', 20)} FROM docs")
    assert_heap_error(got, HEAP_MIB, columns=20)
    assert got["growth_mib"] < 64
    # the same stored value in 2,000 columns (30 GB in Python): refused the same way, nothing held
    got = measure(str(stored), f"SELECT {columns('body', 2000)} FROM docs")
    assert_heap_error(got, HEAP_MIB, columns=2000)
    assert got["growth_mib"] < 64
    # and 10 columns of it (150 MB) are within the share (25.6 MiB each) and the heap limit: allowed
    got = measure(str(stored), f"SELECT {columns('body', 10)} FROM docs")
    assert got.get("rows") == 1 and got["truncated"] is True, got  # cut to max_chars


def test_sqlite_heap_limit_follows_the_setting(tmp_path: Path) -> None:
    """6 values of 15 MB (90 MB): allowed under the default heap limit, refused under 64 MiB."""
    db = tmp_path / "empty.sqlite"
    sqlite3.connect(db).close()
    sql = f"SELECT {columns(FIFTEEN_MB, 6)}"
    allowed = measure(str(db), sql)
    assert allowed.get("rows") == 1 and allowed["truncated"] is True, allowed  # cut to max_chars
    refused = measure(str(db), sql, max_sqlite_heap_bytes=64 * MIB)
    assert_heap_error(refused, 64, columns=6)  # 6 x 15 MB: over the 10.7 MiB share of each column
    assert refused["growth_mib"] < 64 + 32
    # the stored value read into 6 columns (SQLite holds it once): refused by the share as well
    stored = tmp_path / "stored.sqlite"
    with sqlite3.connect(stored) as conn:
        conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO docs VALUES (1, ?)", ("d" * 15_000_000,))
    stored_sql = f"SELECT {columns('body', 6)} FROM docs"
    assert measure(str(stored), stored_sql).get("rows") == 1
    refused = measure(str(stored), stored_sql, max_sqlite_heap_bytes=64 * MIB)
    assert_heap_error(refused, 64, columns=6)
    assert refused["growth_mib"] < 32


LOWEST_APPLIES = """
import json, sys
from sqlr1.mcp_server.core.config import GuardSettings
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.executor import Executor

low = Executor.from_targets([f"a={sys.argv[1]}"], GuardSettings(max_sqlite_heap_bytes=64 * 2**20))
low.run("a", "SELECT 1")
high = Executor.from_targets([f"b={sys.argv[1]}"], GuardSettings())  # asks for 256 MiB: SQLite keeps 64
try:
    high.run("b", sys.argv[2])
    out = {"message": None}
except QueryFailed as exc:
    out = {"kind": exc.error.kind, "message": exc.error.message}
out["after"] = high.run("b", "SELECT 1").rows
print(json.dumps(out))
"""


def test_sqlite_heap_limit_is_process_wide_and_the_lowest_applies(tmp_path: Path) -> None:
    db = tmp_path / "empty.sqlite"
    sqlite3.connect(db).close()
    got = run_json_child(LOWEST_APPLIES, str(db), f"SELECT {columns(FIFTEEN_MB, 6)}")
    assert_heap_error(got, 64)
    assert f"{HEAP_MIB} MiB was asked for here, the lowest value set in the process applies" in got["message"]
    assert got["after"] == [[1]]


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("max_sqlite_heap_bytes = 1000000\n", "max_sqlite_heap_bytes"),  # under 16 MiB
        ('max_sqlite_heap_bytes = "lots"\n', "max_sqlite_heap_bytes"),
        ("max_value_bytes = 100000000\nmax_sqlite_heap_bytes = 50000000\n", "max_sqlite_heap_bytes"),
    ],
)
def test_bad_heap_limit_is_a_config_error_naming_the_key(tmp_path: Path, toml: str, named: str) -> None:
    cfg = tmp_path / "sqlr1.toml"
    cfg.write_text("[guard]\n" + toml, encoding="utf-8")
    with pytest.raises(QueryFailed) as info:
        load_config(cfg)
    assert info.value.error.kind == "config" and named in info.value.error.message, info.value.error.message
    cfg.write_text("[guard]\nmax_sqlite_heap_bytes = 67108864\n", encoding="utf-8")
    assert load_config(cfg).guard.max_sqlite_heap_bytes == 64 * MIB


# -- PostgreSQL --------------------------------------------------------------------------------------


def test_postgres_rows_arrive_one_at_a_time(postgres_url: str) -> None:
    """16 rows of 12 MB (each under the limit): fetching stops past 64 MiB, holding one row at a time
    (16 at a time would be ~200 MB of values, ~600 MiB with libpq's copies)."""
    got = measure(
        postgres_url, "SELECT n, repeat('x', 12000000 + 0 * n) AS big FROM generate_series(1, 16) AS g(n)"
    )
    assert got.get("truncated") is True and got["rows"] == 1, got  # the character cap shows one
    assert got["growth_mib"] < 192


def test_postgres_a_row_over_the_limit_fails(postgres_url: str) -> None:
    """4 rows of 60 MB: PostgreSQL refuses the first before sending it (the engine's row check), so
    nothing is received (+172 MiB when the first row was received whole and then refused; ~720 MiB if
    the four were fetched together). The value depends on a column, so it is built while the statement
    runs, not while it is planned."""
    got = measure(
        postgres_url, "SELECT n, repeat('x', 60000000 + 0 * n) AS big FROM generate_series(1, 4) AS g(n)"
    )
    assert got.get("kind") == "execution", got
    assert "60,000,0" in got["message"] and "16 MiB" in got["message"] and "max_value_bytes" in got["message"]
    assert got["growth_mib"] < 32  # not even one row crossed


def test_postgres_a_huge_constant_is_stopped_while_planning(postgres_url: str) -> None:
    """repeat('x', 60000000) with constant arguments is folded into the plan the engine's call check reads
    (EXPLAIN): a 60 MB literal, several times over. The planner process stops at its memory cap; the server
    process receives nothing (+858 MiB when the plan was read in process)."""
    got = measure(postgres_url, "SELECT n, repeat('x', 60000000) AS big FROM generate_series(1, 4) AS g(n)")
    assert got.get("kind") == "execution", got
    assert "plan of this statement is too large" in got["message"] and "max_value_bytes" in got["message"]
    assert got["growth_mib"] < 32


def test_postgres_row_limit_follows_the_setting(postgres_url: str) -> None:
    ex = Executor.from_targets([f"pg={postgres_url}"], GuardSettings(max_value_bytes=MIB))
    wide = "SELECT repeat('a', 600000) AS a, repeat('b', 600000) AS b"
    with pytest.raises(QueryFailed) as info:
        ex.run("pg", f"SELECT 1 AS n, 'x' AS a, 'y' AS b UNION ALL {wide.replace('SELECT', 'SELECT 2,')}")
    assert info.value.error.kind == "execution"
    assert "1,200,005 bytes long as text" in info.value.error.message  # (2,aaa…,bbb…)
    assert ex.run("pg", "SELECT length(repeat('a', 900000)) AS n").rows == [[900000]]
    assert len(ex.run("pg", "SELECT repeat('a', 900000) AS a").rows) == 1
    ex.registry.close()


# -- MariaDB -----------------------------------------------------------------------------------------


def test_mariadb_a_long_row_is_refused_as_it_arrives(mariadb_url: str) -> None:
    """One row of 50 values of 10 MB (500 MB; +963 MiB when PyMySQL read it whole)."""
    ten_mb = "REPEAT('x', 10000000)"
    got = measure(mariadb_url, f"SELECT 1 AS n, {columns(ten_mb, 50)}")
    assert got.get("kind") == "execution", got
    assert "16 MiB" in got["message"] and "max_value_bytes" in got["message"]
    assert got["growth_mib"] < 64  # at most one 16 MiB piece of the row


def test_mariadb_row_limit_follows_the_setting(mariadb_url: str) -> None:
    ex = Executor.from_targets([f"my={mariadb_url}"], GuardSettings(max_value_bytes=MIB))
    with pytest.raises(QueryFailed) as info:
        ex.run("my", "SELECT REPEAT('a', 600000) AS a, REPEAT('b', 600000) AS b")
    assert info.value.error.kind == "execution" and "1 MiB" in info.value.error.message
    assert ex.run("my", "SELECT LENGTH(REPEAT('a', 900000)) AS n").rows == [[900000]]
    assert len(ex.run("my", "SELECT REPEAT('a', 900000) AS a").rows) == 1
    ex.registry.close()


def test_mariadb_value_the_server_cut_to_null_is_an_error(mariadb_url: str) -> None:
    """MariaDB returns NULL (with warning 1301) for a function result over its max_allowed_packet: that
    is an error here, not a NULL, also when the result was cut short of its end."""
    ex = Executor.from_targets([f"my={mariadb_url}"], GuardSettings(max_rows=5, max_value_bytes=64 * MIB))
    conn = pymysql.connect(**connect_args_from_url(mariadb_url))  # the guard refuses @@variables
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@max_allowed_packet")
            (packet,) = cur.fetchone()
    finally:
        conn.close()
    over = int(packet) + 1
    for sql in (
        f"SELECT REPEAT('x', {over}) AS big",
        # the over-long value in row 2 of 40 (an explicit LIMIT past the row cap: the rest is killed)
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 50) "
        f"SELECT n, IF(n = 2, REPEAT('x', {over}), 'a') AS big FROM r LIMIT 40",
    ):
        with pytest.raises(QueryFailed) as info:
            ex.run("my", sql)
        assert info.value.error.kind == "execution", sql
        assert "max_allowed_packet" in info.value.error.message
    # other warnings (an implicit cast) leave the result as it is
    assert ex.run("my", "SELECT CAST('12abc' AS SIGNED) AS n").rows == [[12]]
    ex.registry.close()
