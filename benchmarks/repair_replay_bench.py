"""The last attempt's join completion, replayed on every final failure recorded in the accuracy runs.

``generate_sql(join_missing=True)`` (the agent's last attempt) joins, one engine error at a time, the table
of a column the query names without joining it (``sql.join_completion``). A model run shows only the few
questions where that happens; this replays the same repair on every distinct query that a recorded run
(``benchmarks/model_accuracy_rows.jsonl``, realistic set) ended with and that failed on a column, and
counts how many it makes run, and how many of those are right (Spider's result comparison against the
gold query). No model runs; each query runs read-only on the real database. A second repair, moving a
column qualified by the wrong table to the one table of the query that has it, was measured the same way
and not shipped (benchmarks/RESULTS.md, "Hints for the retry"; ``git show 9887b05`` has that version).

    PYTHONPATH=. python benchmarks/repair_replay_bench.py
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

from sqlr1.mcp_server.db.registry import Registry
from sqlr1.mcp_server.method.compare import spider_equal
from sqlr1.mcp_server.sql.column_hint import missing_column
from sqlr1.mcp_server.sql.join_completion import ForeignKeyLink, complete_joins, foreign_key_links

HERE = Path(__file__).resolve().parent
DBS = HERE.parent.parent / "shared" / "data" / "sample_dbs"
MAX_REPAIRS = 3  # as generation.MAX_JOINS_COMPLETED


def _catalog(path: Path) -> tuple[dict[str, list[str]], list[ForeignKeyLink]]:
    """The database's tables and views (name → columns) and foreign keys, as the executor reads them."""
    registry = Registry.from_targets([str(path)])
    try:
        catalog = registry.engine(registry.names()[0]).catalog()
    finally:
        registry.close()
    return {t.name: [c.name for c in t.columns] for t in catalog}, foreign_key_links(catalog)


def _repair(con: sqlite3.Connection, sql: str, error: str, tables, links) -> tuple[str, list[str]] | None:
    """The completed query and its steps, or None if it still fails (or names a column's table wrongly)."""
    done: list[str] = []
    for _ in range(MAX_REPAIRS):
        missing = missing_column(error)
        if missing is None:
            return None
        qualifier, column = missing
        joined = complete_joins(sql, "sqlite", tables, links, column) if qualifier is None else None
        if joined is None:
            return None
        sql = joined.sql
        done.append("join")
        try:
            con.execute(sql).fetchmany(1)
            return sql, done
        except sqlite3.Error as exc:
            error = str(exc)
    return None


def main() -> None:
    gold = {
        q["question_id"]: q for q in json.loads((HERE / "realistic_eval.json").read_text(encoding="utf-8"))
    }
    rows = [
        json.loads(line) for line in (HERE / "model_accuracy_rows.jsonl").read_text().splitlines() if line
    ]
    rows = [r for r in rows if r["setting"].startswith("realistic:")]
    counts: Counter[str] = Counter()
    seen: set[tuple[int, str]] = set()
    catalogs: dict[str, tuple[dict[str, list[str]], list[ForeignKeyLink]]] = {}  # read once per database
    for row in rows:
        if row["pred_status"] == "ok" or not row["pred_sql"] or (row["question_id"], row["pred_sql"]) in seen:
            continue  # the same query of the same question, ended with by several runs, counts once
        seen.add((row["question_id"], row["pred_sql"]))
        counts["failed"] += 1
        error = row["pred_error"] or ""
        if missing_column(error) is None:
            continue
        counts["failed on a column"] += 1
        q = gold[row["question_id"]]
        path = DBS / q["db_id"] / f"{q['db_id']}.sqlite"
        if q["db_id"] not in catalogs:
            catalogs[q["db_id"]] = _catalog(path)
        tables, links = catalogs[q["db_id"]]
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            mended = _repair(con, row["pred_sql"], error, tables, links)
            if mended is None:
                continue
            kind = "+".join(sorted(set(mended[1])))
            counts[f"runs after {kind}"] += 1
            pred = con.execute(mended[0]).fetchall()
            want = con.execute(q["query"]).fetchall()
            if spider_equal(pred, want, order_matters="order by" in q["query"].lower()):
                counts[f"right after {kind}"] += 1
        finally:
            con.close()
    runs = len({(r["runs"], r["setting"]) for r in rows})
    print(f"distinct final queries that failed, over {runs} recorded runs of the realistic set:")
    for key, value in sorted(counts.items()):
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
