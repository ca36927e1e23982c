"""describe_schema on a generated 1,000-table SQLite database: cold (< 1 s goal) and warm (< 20 ms goal).

Cold = a fresh engine and inspector: catalog, descriptions, one example-value query per table, the
structured schema and the prompt DDL. Warm = the same call again (fingerprint check + cache). Also
shows a subset describe (5 tables), the usual case for a prompt, and the raw sqlite3 catalog floor.

    python benchmarks/describe_schema_bench.py [--tables 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from sqlr1.mcp_server.catalog.schema import SchemaInspector, render_ddl
from sqlr1.mcp_server.db.engines.base import DatabaseSpec, Engine
from sqlr1.mcp_server.db.engines.sqlite import SqliteEngine


class _One:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def engine(self, name: str) -> Engine:
        return self._engine


def build(path: Path, n_tables: int) -> None:
    rnd = random.Random(7)
    con = sqlite3.connect(path)
    for i in range(n_tables):
        cols = ["id INTEGER PRIMARY KEY", "name TEXT", "amount REAL", "created TEXT"]
        fk = ""
        if i > 0 and i % 3 == 0:
            cols.append("parent_id INTEGER")
            fk = f", FOREIGN KEY (parent_id) REFERENCES t{rnd.randrange(i)} (id)"
        con.execute(f"CREATE TABLE t{i} ({', '.join(cols)}{fk})")
        width = len(cols)
        rows = [
            (j, f"name {i}-{j} " + "x" * rnd.randrange(60), rnd.random() * 100, f"2024-01-{j + 1:02d}", j)[
                :width
            ]
            for j in range(5)
        ]
        con.executemany(f"INSERT INTO t{i} VALUES ({', '.join('?' * width)})", rows)
    con.commit()
    con.close()


def spec(path: Path) -> DatabaseSpec:
    return DatabaseSpec(name="big", kind="sqlite", url=f"sqlite:///{path}", path=path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.sqlite"
        build(path, args.tables)

        floor = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            con.execute(
                "SELECT m.name, p.name, p.type FROM sqlite_schema m JOIN pragma_table_info(m.name) p"
            ).fetchall()
            con.close()
            floor.append(time.perf_counter() - t0)

        cold, cold_catalog, warm, warm_subset, cold_subset = [], [], [], [], []
        ddl_chars = 0
        for _ in range(args.repeat):
            engine = SqliteEngine(spec(path))
            inspector = SchemaInspector(_One(engine))
            t0 = time.perf_counter()
            inspector.list_tables("big")  # catalog + descriptions only
            cold_catalog.append(time.perf_counter() - t0)
            engine.close()

            engine = SqliteEngine(spec(path))
            inspector = SchemaInspector(_One(engine))
            t0 = time.perf_counter()
            ddl = render_ddl(inspector.describe("big"))
            cold.append(time.perf_counter() - t0)
            ddl_chars = len(ddl)
            for _ in range(20):
                t0 = time.perf_counter()
                render_ddl(inspector.describe("big"))
                warm.append(time.perf_counter() - t0)
            engine.close()

            engine = SqliteEngine(spec(path))
            inspector = SchemaInspector(_One(engine))
            t0 = time.perf_counter()
            render_ddl(inspector.describe("big", ["t1", "t2", "t3", "t10", "t999"]))
            cold_subset.append(time.perf_counter() - t0)
            for _ in range(20):
                t0 = time.perf_counter()
                render_ddl(inspector.describe("big", ["t1", "t2", "t3", "t10", "t999"]))
                warm_subset.append(time.perf_counter() - t0)
            engine.close()

    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    p95 = lambda xs: sorted(xs)[int(len(xs) * 0.95) - 1] * 1000  # noqa: E731
    print(
        f"describe_schema on {args.tables} tables (SQLite, {args.repeat} runs, medians; DDL {ddl_chars:,} chars)"
    )
    print(f"  raw sqlite3 catalog query (floor)     {ms(floor):8.1f} ms")
    print(f"  catalog only (list_tables, cold)      {ms(cold_catalog):8.1f} ms")
    print(
        f"  cold describe + DDL, all tables       {ms(cold):8.1f} ms   goal < 1000 ms  ratio {ms(cold) / 1000:.2f}"
    )
    print(
        f"  warm describe + DDL, all tables       {ms(warm):8.3f} ms   p95 {p95(warm):.3f} ms"
        f"   goal < 20 ms  ratio {ms(warm) / 20:.3f}"
    )
    print(f"  cold describe + DDL, 5 tables         {ms(cold_subset):8.1f} ms")
    print(
        f"  cold all tables / raw catalog floor   {ms(cold) / ms(floor):8.1f} x   (machine load shows in both)"
    )
    print(f"  warm describe + DDL, 5 tables         {ms(warm_subset):8.3f} ms")


if __name__ == "__main__":
    main()
