"""The guard against each engine's own reading, on 100,000+ generated statements per engine.

Generates statements from the grammar in ``tests/security/differential.py`` (calls in every notation,
literals whose end readers may place differently, comments, casts, subqueries), reads each with the guard
and with the engine itself (``Engine.read_calls``), and counts the statements where the two disagree about
which functions are called. A control run then turns sqlr1's session pinning off (PostgreSQL
``standard_conforming_strings=off``; MariaDB ``sql_mode=ANSI,NO_BACKSLASH_ESCAPES``) on a smaller sample,
to show the same generator finds the differentials the pinning closes.

Needs the local PostgreSQL and MariaDB (``SQLR1_TEST_POSTGRES_URL`` / ``SQLR1_TEST_MARIADB_URL``).

    .venv/bin/python benchmarks/guard_differential.py                 # 100,000 per engine, ~15 min
    .venv/bin/python benchmarks/guard_differential.py --count 2000    # a quick look
    .venv/bin/python benchmarks/guard_differential.py --write         # also replace the RESULTS.md section
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from results_md import write_section  # noqa: E402
from security.differential import DiffResult, compare, generate  # noqa: E402
from security.test_differential import prepare_canary  # noqa: E402

from sqlr1.mcp_server.core.errors import QueryFailed  # noqa: E402
from sqlr1.mcp_server.db.registry import Registry  # noqa: E402

POSTGRES = os.environ.get("SQLR1_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB = os.environ.get("SQLR1_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
SECTION = "## Guard vs the engines' own reading (differential)"


def _targets(folder: Path) -> dict[str, tuple[str, str]]:
    """dialect -> (engine kind, target)."""
    return {
        "sqlite": ("sqlite", str(folder / "diff.sqlite")),
        "duckdb": ("duckdb", str(folder / "diff.duckdb")),
        "postgres": ("postgresql", POSTGRES),
        "mysql": ("mysql", MARIADB),
    }


def run(dialect: str, kind: str, target: str, count: int, seed: int) -> tuple[DiffResult, float]:
    registry = Registry.from_targets([f"diff={prepare_canary(kind, target)}"])
    try:
        engine = registry.engine("diff")
        started = time.monotonic()
        result = compare(dialect, generate(dialect, count, seed=seed), engine.read_calls)
        return result, time.monotonic() - started
    finally:
        registry.close()


def control(count: int) -> dict[str, DiffResult]:
    """The same comparison against servers read with their lexing settings *not* pinned: PostgreSQL with
    ``standard_conforming_strings=off``, MariaDB with ``sql_mode=ANSI,NO_BACKSLASH_ESCAPES`` (raw
    connections, the engines' own readers of the plan and the rewritten query)."""
    import psycopg
    import pymysql
    from sqlalchemy.engine import make_url

    from sqlr1.mcp_server.db.engines.calls import calls_in_postgres_plan, calls_in_rendering

    out = {}
    pg = make_url(prepare_canary("postgresql", POSTGRES))
    pg_conn = psycopg.connect(
        f"host={pg.host} port={pg.port or 5432} user={pg.username} dbname={pg.database} "
        "options='-c standard_conforming_strings=off -c search_path=sqlr1_diff'",
        autocommit=True,
    )

    def pg_calls(sql: str) -> list[str]:
        try:
            row = pg_conn.execute("EXPLAIN (VERBOSE, FORMAT JSON) " + sql, binary=True).fetchone()
        except psycopg.Error as exc:
            raise QueryFailed.of("execution", str(exc)) from exc
        return list(calls_in_postgres_plan(row[0] if row else []))

    out["postgres"] = compare("postgres", generate("postgres", count, seed=99), pg_calls)
    pg_conn.close()
    my = make_url(prepare_canary("mysql", MARIADB))
    my_conn = pymysql.connect(
        host=my.host, port=my.port or 3306, user=my.username, password=my.password or "",
        database=my.database, sql_mode="ANSI,NO_BACKSLASH_ESCAPES", autocommit=True,
    )  # fmt: skip

    def my_calls(sql: str) -> list[str]:
        try:
            with my_conn.cursor() as cur:
                cur.execute("EXPLAIN EXTENDED " + sql)
                cur.fetchall()
                cur.execute("SHOW WARNINGS")
                notes = [m for _, code, m in cur.fetchall() if code == 1003]
        except pymysql.Error as exc:
            raise QueryFailed.of("execution", str(exc)) from exc
        # under ANSI_QUOTES the server quotes names with "..."
        return [
            c
            for note in notes
            for c in calls_in_rendering(note, identifier_quote='"', backslash_escapes=False)
        ]

    out["mysql"] = compare("mysql", generate("mysql", count, seed=99), my_calls)
    my_conn.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="statements per engine")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--control", type=int, default=5_000, help="statements per server, pinning off")
    parser.add_argument("--write", action="store_true", help="replace the section in RESULTS.md")
    args = parser.parse_args()
    rows = []
    failures = 0
    with tempfile.TemporaryDirectory() as folder:
        for dialect, (kind, target) in _targets(Path(folder)).items():
            result, seconds = run(dialect, kind, target, args.count, args.seed)
            failures += len(result.disagreements)
            print(f"{dialect}: {result.line()} ({seconds:.0f} s, {args.count / seconds:,.0f} statements/s)")
            for sql, ours, theirs in result.disagreements[:5]:
                print(f"    {sql!r}: guard {ours}, engine {theirs}")
            rows.append(
                f"| {dialect} | {result.statements:,} | {result.compared:,} | {result.guard_refused:,} | "
                f"{result.engine_unreadable:,} | {len(result.calls_seen)} | **{len(result.disagreements)}** | "
                f"{seconds:.0f} s |"
            )
    controls = control(args.control)
    for dialect, result in controls.items():
        print(f"control, {dialect}, pinning off: {result.line()}")
        for sql, ours, theirs in result.disagreements[:3]:
            print(f"    {sql!r}: guard {ours}, engine {theirs}")
    if args.write:
        text = "\n".join(
            [
                SECTION,
                "",
                f"`benchmarks/guard_differential.py --count {args.count} --seed {args.seed}`: statements from the "
                "grammar in `tests/security/differential.py` (calls in every notation, literals whose end readers "
                "may place differently, comments, casts, subqueries), each read by the guard (`guard.read_calls`) "
                "and by the engine itself (`Engine.read_calls`: PostgreSQL's `EXPLAIN (VERBOSE)` plan, MariaDB's "
                "rewritten query, DuckDB's `json_serialize_sql`, SQLite's authorizer). *Compared*: statements the "
                "guard accepts or refuses only for a call (what would reach an engine); the rest the guard refuses "
                "outright (syntax, stacked statements, ...) or the engine cannot parse or bind.",
                "",
                "| engine | statements | compared | refused by the guard first | engine cannot read | "
                "vocabulary calls seen | disagreements | time |",
                "|---|---:|---:|---:|---:|---:|---:|---:|",
                *rows,
                "",
                f"Control (`--control {args.control}`), the same generator with sqlr1's pinning of lexing settings "
                "turned off in the benchmark process: "
                + "; ".join(
                    f"{d} {len(r.disagreements)} disagreements in {r.compared:,} compared"
                    for d, r in controls.items()
                )
                + " (PostgreSQL `standard_conforming_strings=off`, MariaDB `sql_mode=ANSI,NO_BACKSLASH_ESCAPES`): "
                "the generator finds the class the pinning closes.",
                "",
            ]
        )
        write_section(SECTION, text)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
