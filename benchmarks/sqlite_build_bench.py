"""The SQLite the engine runs: the system library (stdlib ``sqlite3``) against APSW's bundled one.

The engine reaches SQLite through APSW (``mcp_server/db/engines/sqlite.py``), which bundles a current
SQLite, instead of the standard library's ``sqlite3`` module, which links the system's (3.40 on Debian 12).
This benchmark is the evidence for that choice, side by side in one run on read-only connections:

* every Spider dev gold query on its own database: the median of ``--rounds`` alternating runs of each
  query with each library (``execute`` + fetch all rows), the total and the per-query ratios;
* the two ``stdio_roundtrip.py`` queries on ``examples/chinook.sqlite`` (a point lookup and a 3-table join);
* that both libraries return the same rows for every query (as a multiset where the query has no
  ORDER BY).

Usage: ``.venv/bin/python benchmarks/sqlite_build_bench.py [--data ../shared/data] [--rounds 5] [--write-results]``
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import write_section  # benchmarks/ is not a package: import from beside this file

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("SQLR1_DATA", REPO.parent / "shared" / "data"))
SECTION = "## SQLite: the system's `sqlite3` vs APSW's bundled SQLite (benchmarks/sqlite_build_bench.py)"
CHINOOK = {
    "point lookup": "SELECT TrackId, Name, UnitPrice FROM Track WHERE TrackId = 1234",
    "3-table join": (
        "SELECT t.Name, a.Title, ar.Name AS Artist FROM Track t "
        "JOIN Album a ON a.AlbumId = t.AlbumId JOIN Artist ar ON ar.ArtistId = a.ArtistId "
        "WHERE ar.Name = 'Iron Maiden' ORDER BY t.TrackId LIMIT 20"
    ),
}

Runner = Callable[[str], list[Any]]


class Pair:
    """One database opened read-only through both libraries."""

    def __init__(self, path: Path) -> None:
        uri = path.resolve().as_uri() + "?mode=ro"
        self._std = sqlite3.connect(uri, uri=True, isolation_level=None)
        self._apsw = apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
        self.std: Runner = lambda sql: self._std.execute(sql).fetchall()
        self.apsw: Runner = lambda sql: self._apsw.execute(sql).fetchall()

    def close(self) -> None:
        self._std.close()
        self._apsw.close()


def _seconds(run: Runner, sql: str) -> float:
    t0 = time.perf_counter()
    run(sql)
    return time.perf_counter() - t0


def _rounded(rows: list[Any]) -> list[tuple[Any, ...]]:
    """Rows with floats at 12 significant digits: equal when only the last bits of a float differ."""
    return [tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in row) for row in rows]


def _same(a: list[Any], b: list[Any], sql: str) -> bool:
    return a == b or ("order by" not in sql.lower() and Counter(map(tuple, a)) == Counter(map(tuple, b)))


def time_pair(pair: Pair, sql: str, rounds: int) -> tuple[float, float, str]:
    """(stdlib median s, APSW median s, how the rows compare) for one query, the two alternating.

    The comparison is ``same``, ``float`` (equal once floats are rounded to 12 significant digits) or
    ``different``."""
    a, b = pair.std(sql), pair.apsw(sql)  # warm both page caches and statement caches
    same = "same" if _same(a, b, sql) else "float" if _same(_rounded(a), _rounded(b), sql) else "different"
    std: list[float] = []
    new: list[float] = []
    for i in range(rounds):
        first, second = (pair.std, pair.apsw) if i % 2 else (pair.apsw, pair.std)
        t1, t2 = _seconds(first, sql), _seconds(second, sql)
        std.append(t1 if first is pair.std else t2)
        new.append(t2 if first is pair.std else t1)
    return statistics.median(std), statistics.median(new), same


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(data: Path, rounds: int) -> str:
    dev = json.loads((data / "spider" / "dev.json").read_text(encoding="utf-8"))
    pairs: dict[str, Pair] = {}
    std_total = new_total = 0.0
    ratios: list[float] = []
    different: dict[str, list[str]] = {"float": [], "different": []}
    for item in dev:
        db_id, sql = item["db_id"], item["query"]
        pair = pairs.get(db_id)
        if pair is None:
            pair = pairs[db_id] = Pair(data / "spider" / "database" / db_id / f"{db_id}.sqlite")
        s, n, same = time_pair(pair, sql, rounds)
        std_total += s
        new_total += n
        ratios.append(n / s)
        if same != "same":
            different[same].append(f"{db_id}: {sql}")
    for pair in pairs.values():
        pair.close()
    chinook = Pair(REPO / "examples" / "chinook.sqlite")
    rows = []
    for label, sql in CHINOOK.items():
        s, n, same = time_pair(chinook, sql, max(rounds, 200))
        rows.append(f"| {label} (Chinook) | {s * 1e6:.1f} | {n * 1e6:.1f} | {n / s:.2f} | {same} |")
    chinook.close()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    slower = sum(r > 1.0 for r in ratios)
    lines = [
        SECTION,
        "",
        f"Run: {stamp} (load average {load:.1f}). System SQLite {sqlite3.sqlite_version} (Python's `sqlite3`) "
        f"against APSW {apsw.apsw_version()} with SQLite {apsw.sqlite_lib_version()} (the engine's), read-only "
        f"connections, `execute` + fetch all rows, each query's median of {rounds} alternating runs after a "
        "warm-up run of each (Chinook: 200 runs).",
        "",
        "| queries | system sqlite3 (µs) | APSW (µs) | APSW / system | same rows |",
        "|---|---:|---:|---:|---|",
        *rows,
        f"| all {len(dev)} Spider dev gold queries, sum of medians | {std_total * 1e6:,.0f} | "
        f"{new_total * 1e6:,.0f} | {new_total / std_total:.2f} | "
        f"{len(dev) - len(different['float']) - len(different['different'])} of {len(dev)} same, "
        f"{len(different['float'])} float rounding, {len(different['different'])} different |",
        "",
        f"Per-query ratio APSW / system over Spider dev: p10 {_pct(ratios, 0.1):.2f}, median "
        f"{statistics.median(ratios):.2f}, p90 {_pct(ratios, 0.9):.2f}; slower with APSW: {slower} of "
        f"{len(ratios)} queries.",
    ]
    if different["float"]:
        lines += [
            "",
            "Rows that differ only in a float's last digits (SQLite 3.43 and later add floats in `sum`/`avg` with "
            "compensated summation, so the newer results are the more exact ones; gold and predicted queries "
            "run through the same engine, so evaluation compares like with like):",
            *[f"- `{d}`" for d in sorted(set(different["float"]))],
        ]
    if different["different"]:
        lines += [
            "",
            "Rows that differ otherwise:",
            *[f"- `{d}`" for d in sorted(set(different["different"]))],
        ]
    lines += ["", "Reproduce: `.venv/bin/python benchmarks/sqlite_build_bench.py --write-results`.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    if not (args.data / "spider" / "dev.json").exists():
        sys.exit(f"no Spider data at {args.data} (set SQLR1_DATA or --data)")
    text = run(args.data, args.rounds)
    print(text)
    if args.write_results:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
