"""What the engines' own check of every statement costs: on, off, side by side in one run.

The second check (issue: guard parser differentials) has each engine read a statement itself before it
runs: PostgreSQL plans it (``EXPLAIN (VERBOSE, FORMAT JSON)``, one more round trip), MariaDB describes it
(``EXPLAIN EXTENDED`` + ``SHOW WARNINGS``, two), DuckDB parses it (``json_serialize_sql``), SQLite asks its
authorizer (as before, now naming what it refuses). Sessions are also reset after every statement
(``DISCARD ALL``, ``COM_RESET_CONNECTION``). This measures, alternating on and off so machine noise hits
both alike:

* ``execute`` p50 of a point lookup and a join on Spider's concert_singer, per engine;
* the Spider dev gold run: all 1,034 gold queries through ``Executor.run_raw`` (guard + engine, the path
  evaluation and rewards take) on SQLite, and on PostgreSQL and MariaDB (transpiled, on copies of the 20
  dev databases), total time on vs off.

"Off" is the engine with its check stubbed out in this process only (SQLite: every function allowed by the
authorizer; DuckDB: the parse measured on its own, since the check runs in the worker process).

    .venv/bin/python benchmarks/engine_check_cost.py [--runs 200] [--write]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

import sqlglot  # noqa: E402
from results_md import write_section  # noqa: E402
from security.spider_engines import load_mariadb, load_postgres  # noqa: E402
from service_data import build_duckdb  # noqa: E402
from service_data import load_mariadb as load_concert_mariadb  # noqa: E402
from service_data import load_postgres as load_concert_postgres  # noqa: E402

from sqlr1.mcp_server.core.config import GuardSettings  # noqa: E402
from sqlr1.mcp_server.core.errors import QueryFailed  # noqa: E402
from sqlr1.mcp_server.db.engines.base import DatabaseSpec, Engine  # noqa: E402
from sqlr1.mcp_server.db.engines.mysql import MysqlEngine  # noqa: E402
from sqlr1.mcp_server.db.engines.postgres import PostgresEngine  # noqa: E402
from sqlr1.mcp_server.db.engines.sqlite import SqliteEngine  # noqa: E402
from sqlr1.mcp_server.db.executor import Executor  # noqa: E402
from sqlr1.mcp_server.db.registry import Registry  # noqa: E402
from sqlr1.mcp_server.sql.guard import CallPolicy  # noqa: E402

CONCERT = REPO / "tests" / "data" / "spider" / "concert_singer" / "concert_singer.sqlite"
SPIDER = REPO.parent / "shared" / "data" / "spider"
PG_URL = os.environ.get("SQLR1_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MY_URL = os.environ.get("SQLR1_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
SECTION = "## The engines' own check of every statement: cost (`benchmarks/engine_check_cost.py`)"
QUERIES = {
    "point lookup": 'SELECT "Name", "Age" FROM singer WHERE "Singer_ID" = 3',
    "join": (
        'SELECT c."concert_Name", count(*) FROM concert AS c JOIN singer_in_concert AS s '
        'ON s."concert_ID" = c."concert_ID" GROUP BY c."concert_Name" ORDER BY 2 DESC'
    ),
}


@contextlib.contextmanager
def check_off(kind: str) -> Iterator[None]:
    """Stub the engine's own check out, in this process, for the duration."""
    if kind == "sqlite":
        saved: Any = CallPolicy.allows
        CallPolicy.allows = lambda self, name: True  # type: ignore[method-assign]
        try:
            yield
        finally:
            CallPolicy.allows = saved  # type: ignore[method-assign]
    elif kind == "postgresql":
        saved = PostgresEngine._plan
        PostgresEngine._plan = lambda self, query, timeout_s: []  # type: ignore[method-assign]
        try:
            yield
        finally:
            PostgresEngine._plan = saved  # type: ignore[method-assign]
    else:
        saved = MysqlEngine.__dict__["_reading"]
        MysqlEngine._reading = staticmethod(lambda cur, conn, sql: ([], []))  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            MysqlEngine._reading = saved  # type: ignore[method-assign]


def p50_pair(run: Callable[[], object], kind: str, runs: int) -> tuple[float, float]:
    """p50 ms with the check on and off, alternating."""
    on: list[float] = []
    off: list[float] = []
    for _ in range(5):
        run()
    for _ in range(runs):
        for bucket, ctx in ((on, contextlib.nullcontext()), (off, check_off(kind))):
            with ctx:
                t = time.perf_counter()
                run()
                bucket.append((time.perf_counter() - t) * 1000)
    return statistics.median(on), statistics.median(off)


def engines() -> dict[str, Engine]:
    out: dict[str, Engine] = {
        "sqlite": SqliteEngine(
            DatabaseSpec(name="c", kind="sqlite", url=f"sqlite:///{CONCERT}", path=CONCERT)
        )
    }
    out["postgresql"] = PostgresEngine(
        DatabaseSpec(name="c", kind="postgresql", url=load_concert_postgres(PG_URL))
    )
    out["mysql"] = MysqlEngine(DatabaseSpec(name="c", kind="mysql", url=load_concert_mariadb(MY_URL)))
    return out


def duckdb_parse_share(runs: int) -> tuple[float, float]:
    """DuckDB: p50 ms of the check's parse (json_serialize_sql + the walk) and of running the join."""
    import duckdb

    from sqlr1.mcp_server.db.engines.calls import calls_in_duckdb_tree

    with tempfile.TemporaryDirectory() as folder:
        path = build_duckdb(Path(folder) / "c.duckdb")
        conn = duckdb.connect(str(path), read_only=True)
        sql = sqlglot.transpile(QUERIES["join"], read="sqlite", write="duckdb")[0]
        policy = CallPolicy("duckdb")
        parse, execute = [], []
        for _ in range(runs):
            t = time.perf_counter()
            row = conn.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
            policy.check(calls_in_duckdb_tree(json.loads(row[0])), "DuckDB")
            parse.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            conn.execute(sql).fetchall()
            execute.append((time.perf_counter() - t) * 1000)
        conn.close()
    return statistics.median(parse), statistics.median(execute)


def gold_run(kind: str) -> tuple[float, float, int]:
    """Seconds for the 1,034 Spider dev gold queries through Executor.run_raw, check on and off."""
    items = json.loads((SPIDER / "dev.json").read_text(encoding="utf-8"))
    by_db: dict[str, list[str]] = {}
    for item in items:
        by_db.setdefault(item["db_id"], []).append(item["query"])
    targets = []
    for db in by_db:
        path = SPIDER / "database" / db / f"{db}.sqlite"
        if kind == "sqlite":
            targets.append(f"{db}={path}")
        elif kind == "postgresql":
            targets.append(f"{db}={load_postgres(PG_URL, path)}")
        else:
            targets.append(f"{db}={load_mariadb(MY_URL, path)}")
    dialect = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql"}[kind]
    work = [
        (db, sqlglot.transpile(q, read="sqlite", write=dialect)[0] if dialect != "sqlite" else q)
        for db, qs in by_db.items()
        for q in qs
    ]
    executor = Executor(Registry.from_targets(targets), GuardSettings(timeout_s=30))

    def one_pass() -> float:
        t = time.perf_counter()
        for db, sql in work:
            with contextlib.suppress(QueryFailed):
                executor.run_raw(db, sql, max_rows=1000)
        return time.perf_counter() - t

    try:
        one_pass()  # warm: connections, caches
        on, off = [], []
        for _ in range(2):
            on.append(one_pass())
            with check_off(kind):
                off.append(one_pass())
        return min(on), min(off), len(work)
    finally:
        executor.registry.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB"}
    rows = []
    for kind, engine in engines().items():
        for label, sql in QUERIES.items():
            text = sqlglot.transpile(sql, read="sqlite", write=engine.dialect)[0]
            on, off = p50_pair(
                lambda text=text, engine=engine: engine.execute(text, max_rows=100, timeout_s=10),
                kind,
                args.runs,
            )
            print(f"{names[kind]} {label}: check on {on:.3f} ms, off {off:.3f} ms, +{on - off:.3f} ms")
            rows.append(
                f"| {names[kind]} | {label} | {on:.3f} | {off:.3f} | +{on - off:.3f} | {on / off:.2f} |"
            )
        engine.close()
    parse, execute = duckdb_parse_share(args.runs)
    print(f"DuckDB join: the check's parse {parse:.3f} ms beside running it in process {execute:.3f} ms")
    gold = []
    for kind in ("sqlite", "postgresql", "mysql"):
        on, off, n = gold_run(kind)
        print(f"{names[kind]} Spider dev gold run ({n} queries): check on {on:.2f} s, off {off:.2f} s")
        gold.append(f"| {names[kind]} | {n:,} | {on:.2f} | {off:.2f} | {on / off:.2f} |")
    if args.write:
        write_section(
            SECTION,
            "\n".join(
                [
                    SECTION,
                    "",
                    f"`benchmarks/engine_check_cost.py --runs {args.runs}`, check on and off alternating in one run "
                    "(\"off\": the engine's own reading stubbed out in the benchmark process). Spider's concert_singer, "
                    "`engine.execute` p50 (ms):",
                    "",
                    "| engine | query | check on | off | cost | ratio |",
                    "|---|---|---:|---:|---:|---:|",
                    *rows,
                    "",
                    f"DuckDB (the check runs in its worker process): the parse the check adds, `json_serialize_sql` "
                    f"and the walk, p50 {parse:.3f} ms beside {execute:.3f} ms to run the join in process.",
                    "",
                    "The Spider dev gold run, every gold query through `Executor.run_raw` (guard + engine: the path "
                    "evaluation scoring and the GRPO reward take), best of two passes each (s):",
                    "",
                    "| engine | queries | check on | off | ratio |",
                    "|---|---:|---:|---:|---:|",
                    *gold,
                    "",
                    "SQLite's check is its authorizer, which was there before; it now names the function it refuses "
                    "(`guard.CallPolicy`), so its cost is the noise of this run. The stdio round trip (SQLite) is in "
                    "the section above.",
                    "",
                ]
            ),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
