"""Engines: how fast a runaway is stopped, how fast a cancel lands, what the read-only wrapping costs.

For each reachable engine (SQLite and DuckDB always; PostgreSQL / MariaDB at the test URLs) on
Spider's concert_singer:
  * runaway stop: an unbounded recursive CTE (a 10^12-row cross join on MariaDB) under a 1 s
    timeout; reports the time past the deadline (goal: < 1 s) and that the connection still works;
  * cancel latency: ``CancelHandle.cancel()`` 0.2 s into a runaway -> time until ``execute`` returns;
  * execution overhead: a point lookup through the engine vs the bare driver, p50 over N runs,
    side by side in this run (goal ratio near 1; SQLite: authorizer + progress handler + pool).
  * peak RSS growth while capping a 10^6-row result at 1,000 rows.

Usage: python benchmarks/engines_bench.py [--runs 300]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from itertools import islice
from pathlib import Path

import apsw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from service_data import build_duckdb, load_mariadb, load_postgres  # noqa: E402

from sqlr1.mcp_server.core.errors import QueryFailed  # noqa: E402
from sqlr1.mcp_server.db.engines.base import CancelHandle, DatabaseSpec, Engine  # noqa: E402

CONCERT = REPO / "tests" / "data" / "spider" / "concert_singer" / "concert_singer.sqlite"
UNBOUNDED = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
CROSS = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) "
    "SELECT count(*) FROM r AS a, r AS b, r AS c, r AS d"
)
MILLION = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) "
    "SELECT a.n, b.n, 'some text to make the row wider' FROM r AS a, r AS b"
)
PG_URL = os.environ.get("SQLR1_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MY_URL = os.environ.get("SQLR1_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def engines(tmp: Path) -> list[tuple[str, Engine, object]]:
    """(label, engine, bare-driver point-lookup callable)."""
    from sqlr1.mcp_server.db.engines.duckdb import LOCKED_CONFIG, DuckdbEngine
    from sqlr1.mcp_server.db.engines.sqlite import SqliteEngine

    out: list[tuple[str, Engine, object]] = []
    sq = SqliteEngine(DatabaseSpec(name="c", kind="sqlite", url="", path=CONCERT))
    # The bare driver is the engine's own SQLite (APSW): the ratio is what the engine's wrapping costs.
    bare = apsw.Connection(f"file:{CONCERT}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    out.append(("sqlite", sq, lambda sql: list(islice(bare.execute(sql), 1001))))
    duck_path = build_duckdb(tmp / "c.duckdb")
    import duckdb

    dk = DuckdbEngine(DatabaseSpec(name="c", kind="duckdb", url="", path=duck_path))
    bare_duck = duckdb.connect(str(duck_path), read_only=True, config=dict(LOCKED_CONFIG))
    out.append(("duckdb", dk, lambda sql: bare_duck.execute(sql).fetchmany(1001)))
    try:
        import psycopg

        from sqlr1.mcp_server.db.engines.postgres import PostgresEngine, conninfo_from_url

        url = load_postgres(PG_URL)
        pg = PostgresEngine(DatabaseSpec(name="c", kind="postgresql", url=url))
        bare_pg = psycopg.connect(conninfo_from_url(url), autocommit=True)
        out.append(("postgresql", pg, lambda sql: bare_pg.execute(sql).fetchmany(1001)))
    except Exception as exc:  # benchmark: report and go on with what is reachable
        print(f"(postgresql skipped: {exc})")
    try:
        import pymysql

        from sqlr1.mcp_server.db.engines.mysql import MysqlEngine, connect_args_from_url

        url = load_mariadb(MY_URL)
        my = MysqlEngine(DatabaseSpec(name="c", kind="mysql", url=url))
        bare_my = pymysql.connect(**connect_args_from_url(url), autocommit=True)

        def my_lookup(sql: str) -> object:
            with bare_my.cursor() as cur:
                cur.execute(sql)
                return cur.fetchmany(1001)

        out.append(("mariadb", my, my_lookup))
    except Exception as exc:
        print(f"(mariadb skipped: {exc})")
    return out


def runaway_stop(engine: Engine, sql: str, timeout_s: float = 1.0) -> tuple[float, str, bool]:
    started = time.monotonic()
    kind = "finished"
    try:
        engine.execute(sql, max_rows=5, timeout_s=timeout_s)
    except QueryFailed as exc:
        kind = exc.error.kind
    over = time.monotonic() - started - timeout_s
    usable = engine.execute("SELECT 1", max_rows=1, timeout_s=5).rows[0][0] == 1
    return over, kind, usable


def cancel_latency(engine: Engine, sql: str) -> float:
    handle = CancelHandle()
    fired: list[float] = []

    def fire() -> None:
        fired.append(time.monotonic())
        handle.cancel()

    timer = threading.Timer(0.2, fire)
    timer.start()
    outcome = "finished"
    try:
        engine.execute(sql, max_rows=5, timeout_s=30, cancel=handle)
    except QueryFailed as exc:  # the expected outcome; the latency is what we measure
        outcome = exc.error.kind
    timer.join()
    assert outcome == "execution", outcome
    return time.monotonic() - fired[0]


def p50_ms(fn, runs: int) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        found = engines(Path(tmp))
        print("| engine | runaway: stopped as | past the 1 s deadline | usable after | cancel latency |")
        print("|---|---|---:|---|---:|")
        for label, engine, _ in found:
            sql = CROSS if label == "mariadb" else UNBOUNDED
            over, kind, usable = runaway_stop(engine, sql)
            lat = cancel_latency(engine, sql)
            print(f"| {label} | {kind} | {over * 1000:.0f} ms | {usable} | {lat * 1000:.0f} ms |")
        print()
        print(f"point lookup, p50 of {args.runs} runs (`SELECT * FROM singer WHERE Singer_ID = 3`)")
        print("| engine | bare driver ms | sqlr1 engine ms | ratio |")
        print("|---|---:|---:|---:|")
        for label, engine, bare in found:
            sql = 'SELECT * FROM singer WHERE "Singer_ID" = 3'
            if label == "mariadb":
                sql = "SELECT * FROM singer WHERE Singer_ID = 3"
            base = p50_ms(lambda sql=sql, bare=bare: bare(sql), args.runs)  # type: ignore[operator]
            ours = p50_ms(
                lambda sql=sql, engine=engine: engine.execute(sql, max_rows=1000, timeout_s=30), args.runs
            )
            print(f"| {label} | {base:.3f} | {ours:.3f} | {ours / base:.2f} |")
        print()
        print("capping a 10^6-row result at 1,000 rows: peak RSS growth")
        print("| engine | rows returned | truncated | wall s | peak RSS growth MiB |")
        print("|---|---:|---|---:|---:|")
        for label, engine, _ in found:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t = time.monotonic()
            raw = engine.execute(MILLION, max_rows=1000, timeout_s=30)
            wall = time.monotonic() - t
            growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
            print(f"| {label} | {len(raw.rows)} | {raw.truncated} | {wall:.2f} | {growth:.1f} |")
        for _, engine, _ in found:
            engine.close()


if __name__ == "__main__":
    main()
