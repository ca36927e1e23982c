"""Oversized results through a real server process: capped with ``truncated``, with bounded memory.

A ``sqlr1 serve --http`` subprocess on loopback serves a SQLite file with a 1,500-column table and
the concert_singer database on PostgreSQL, MariaDB and DuckDB. Clients ask for 10^6-row results,
very wide rows and rows of megabyte strings; each answer is capped (row cap, character cap) with
``truncated`` set, and the server's peak RSS (``VmHWM`` in /proc/<pid>/status) grows by a bounded
amount. The figures are printed (``-s``) for the report.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from service_data import duckdb_concert, mariadb_concert_url, pg_concert_url  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[2]
WIDE_COLUMNS = 1500
MAX_ROWS = 1000
MAX_CHARS = 200_000
# Peak RSS growth allowed for one oversized call (the result held between fetch and caps, the JSON).
GROWTH_LIMIT_MIB = 192
MILLION = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000000) "
    "SELECT n, 'row number ' || n AS label FROM r"
)
MILLION_BY_KIND = {
    "sqlite": MILLION,
    "duckdb": MILLION,
    "postgresql": MILLION,
    # MariaDB stops recursion at 1000 steps: 10^6 rows as a cross join
    "mysql": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) "
    "SELECT a.n * 1000 + b.n AS n, CONCAT('row number ', a.n) AS label FROM r AS a, r AS b",
}
BIG_CELLS = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5000) "
    "SELECT n, printf('%.1000000c', 'x') AS blob FROM r"
)


def hwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def make_wide(path: Path) -> Path:
    cols = ", ".join(f"c{i} TEXT" for i in range(WIDE_COLUMNS))
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"CREATE TABLE wide ({cols})")
        row = tuple(f"{i:04d}" + "x" * 96 for i in range(WIDE_COLUMNS))  # 100 chars a cell
        conn.executemany(f"INSERT INTO wide VALUES ({', '.join('?' * WIDE_COLUMNS)})", [row] * 50)
        conn.commit()
    finally:
        conn.close()
    return path


class Server:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc, self.url = proc, url


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    pg_concert_url: str,  # noqa: F811
    mariadb_concert_url: str,  # noqa: F811
    duckdb_concert: Path,  # noqa: F811
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("oversized")
    wide = make_wide(tmp / "wide.sqlite")
    config = tmp / "sqlr1.toml"
    config.write_text(
        f"[guard]\ntimeout_s = 60\nmax_rows = {MAX_ROWS}\nmax_chars = {MAX_CHARS}\n", encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if k != "SQLR1_TOKEN"}
    args = [sys.executable, "-m", "sqlr1.mcp_server.cli.main", "--config", str(config)]
    for name, target in (
        ("sqlite", str(wide)),
        ("postgresql", pg_concert_url),
        ("mysql", mariadb_concert_url),
        ("duckdb", str(duckdb_concert)),
    ):
        args += ["--db", f"{name}={target}"]
    proc = subprocess.Popen(
        [*args, "serve", "--http", "--port", "0"],
        cwd=str(REPO),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    banner = ""
    try:
        for line in proc.stderr:
            banner += line
            if m := re.search(r"(http://127\.0\.0\.1:\d+/mcp)", line):
                yield Server(proc, m.group(1))
                break
        else:
            pytest.fail(f"server did not start: {banner}")
        assert proc.poll() is None, "the server died"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def run_sql(url: str, database: str, sql: str, **extra: Any) -> Any:
    with anyio.fail_after(120):
        async with Client(url) as client:
            return await client.call_tool("execute_sql", {"database": database, "sql": sql, **extra})


async def measured(server: Server, database: str, sql: str, **extra: Any) -> tuple[Any, float]:
    """The call's result and how much it raised the server's peak RSS (MiB)."""
    warm = await run_sql(server.url, database, "SELECT 1")  # connections, imports: not the oversized call
    assert not warm.is_error
    with open(f"/proc/{server.proc.pid}/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")  # reset the peak to the current RSS, so earlier calls' peaks do not hide this one
    before = hwm_mib(server.proc.pid)
    res = await run_sql(server.url, database, sql, **extra)
    return res, hwm_mib(server.proc.pid) - before


def cell_chars(rows: list[list[Any]]) -> int:
    return sum(len(str(v)) for row in rows for v in row if v is not None)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql", "duckdb"])
async def test_million_rows_capped_with_bounded_memory(server: Server, kind: str) -> None:
    res, growth = await measured(server, kind, MILLION_BY_KIND[kind])
    assert not res.is_error, res.content
    data = res.structured_content
    assert data["row_count"] == MAX_ROWS == len(data["rows"]) and data["truncated"] is True
    print(f"\n{kind}: 10^6-row query -> {data['row_count']} rows, truncated; peak RSS +{growth:.1f} MiB")
    assert growth < GROWTH_LIMIT_MIB
    # a client may ask for fewer rows, never for more
    res = await run_sql(server.url, kind, MILLION_BY_KIND[kind], max_rows=10)
    assert res.structured_content["row_count"] == 10 and res.structured_content["truncated"] is True
    res = await run_sql(server.url, kind, MILLION_BY_KIND[kind], max_rows=10**9)
    assert res.structured_content["row_count"] == MAX_ROWS


async def test_very_wide_rows_capped_by_characters(server: Server) -> None:
    res, growth = await measured(server, "sqlite", "SELECT * FROM wide")
    assert not res.is_error, res.content
    data = res.structured_content
    assert len(data["columns"]) == WIDE_COLUMNS
    assert data["truncated"] is True and 1 <= data["row_count"] < 50
    assert cell_chars(data["rows"]) <= MAX_CHARS
    print(
        f"\nsqlite: 1,500 columns x 50 rows (150,000 chars a row) -> {data['row_count']} row(s) within the "
        f"{MAX_CHARS:,}-char cap; peak RSS +{growth:.1f} MiB"
    )
    assert growth < GROWTH_LIMIT_MIB
    # 1,500 x 1,500 computed columns in one row: still capped, the columns' shape kept
    wide_select = "SELECT " + ", ".join(f"printf('%.200c', 'y') AS y{i}" for i in range(WIDE_COLUMNS))
    res = await run_sql(server.url, "sqlite", wide_select)
    data = res.structured_content
    assert len(data["columns"]) == WIDE_COLUMNS and data["row_count"] == 1 and data["truncated"] is True
    assert cell_chars(data["rows"]) <= MAX_CHARS + 16 * WIDE_COLUMNS


BIG_CELLS_BY_KIND = {
    "sqlite": BIG_CELLS,
    "postgresql": "SELECT n, repeat('x', 1000000) AS blob FROM generate_series(1, 5000) AS g(n)",
    "mysql": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5000) "
    "SELECT n, REPEAT('x', 1000000) AS big FROM r",
    # DuckDB builds 2,048 rows at a time before the first can be fetched (2 GiB for the 1 MB cells above);
    # its worker process stops that at its memory cap with an error (tests/test_engines_duckdb.py, with a
    # small cap). Here 100 kB cells: the vectors stay in the worker, the server gets the capped rows.
    "duckdb": "SELECT range AS n, repeat('x', 100000) AS blob FROM range(2000)",
}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mysql", "duckdb"])
async def test_megabyte_cells_capped_with_bounded_memory(server: Server, kind: str) -> None:
    """5,000 rows of 1 MB strings (5 GB if held; DuckDB: 2,000 of 100 kB): capped, bounded memory."""
    res, growth = await measured(server, kind, BIG_CELLS_BY_KIND[kind])
    assert not res.is_error, res.content
    data = res.structured_content
    assert data["truncated"] is True and data["row_count"] == 1
    assert cell_chars(data["rows"]) <= MAX_CHARS
    print(f"\n{kind}: {BIG_CELLS_BY_KIND[kind][-40:]!r} -> 1 shortened row; peak RSS +{growth:.1f} MiB")
    assert growth < GROWTH_LIMIT_MIB
    res = await run_sql(server.url, kind, MILLION_BY_KIND[kind], max_rows=1)
    assert res.structured_content["row_count"] == 1
    assert server.proc.poll() is None
