"""Guard cost per statement over the Spider dev gold queries: cold (cache cleared) and warm (cached).

Side by side in one run: sqlglot's tokenizer alone and a raw ``sqlglot.parse`` in the same dialect,
which are the floor the guard builds on. Goal (issue 2): guard p95 <= 1 ms per statement.

    python benchmarks/guard_bench.py [--data /work/shared/data] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import sqlglot
from sqlglot import tokens as sqlglot_tokens
from sqlglot.dialects.dialect import Dialect

from sqlr1.mcp_server.sql import guard

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _timings(
    queries: list[str], fn: Callable[[str], object], rounds: int, before: Callable[[], None]
) -> list[float]:
    """Per-statement wall time in ms: for each query, the median over ``rounds`` rounds."""
    per_query: list[list[float]] = [[] for _ in queries]
    for _ in range(rounds):
        before()
        for i, sql in enumerate(queries):
            t0 = time.perf_counter()
            fn(sql)
            per_query[i].append((time.perf_counter() - t0) * 1000)
    return [statistics.median(t) for t in per_query]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    queries = [
        q["query"] for q in json.loads((args.data / "spider" / "dev.json").read_text(encoding="utf-8"))
    ]
    dialect = Dialect.get_or_raise("sqlite")
    for sql in queries[:50]:  # warm imports and dialect tables
        sqlglot.parse(sql, read="sqlite")
        guard.check(sql, "sqlite")

    def nothing() -> None:
        return None

    rows = [
        ("sqlglot tokenize only", _timings(queries, dialect.tokenize, args.rounds, nothing)),
        ("sqlglot.parse (raw)", _timings(queries, lambda s: sqlglot.parse(s, read="sqlite"), args.rounds, nothing)),
        ("guard.check cold (cache cleared)", _timings(queries, lambda s: guard.check(s, "sqlite"), args.rounds, guard.cache_clear)),
        ("guard.check warm (cached verdict)", _timings(queries, lambda s: guard.check(s, "sqlite"), args.rounds, nothing)),
    ]  # fmt: skip
    raw_p50 = statistics.median(rows[1][1])
    print(f"Spider dev gold queries: {len(queries)}, rounds: {args.rounds} (median per statement)")
    print(f"sqlglot {sqlglot.__version__}, compiled sqlglotc in use: {sqlglot_tokens.SQLGLOTC_INSTALLED}")
    print()
    print("| step | p50 ms | p95 ms | max ms | p50 / raw parse p50 |")
    print("|---|---:|---:|---:|---:|")
    for name, times in rows:
        p50 = statistics.median(times)
        print(f"| {name} | {p50:.3f} | {_pct(times, 0.95):.3f} | {max(times):.3f} | {p50 / raw_p50:.2f} |")
    bird_path = args.data / "bird" / "dev" / "dev.json"
    if bird_path.is_file():
        bird = [q["SQL"] for q in json.loads(bird_path.read_text(encoding="utf-8"))]
        raw = _timings(bird, lambda s: sqlglot.parse(s, read="sqlite"), args.rounds, nothing)
        cold = _timings(bird, lambda s: guard.check(s, "sqlite"), args.rounds, guard.cache_clear)
        print(
            f"| BIRD dev ({len(bird)}): sqlglot.parse (raw) | {statistics.median(raw):.3f} | {_pct(raw, 0.95):.3f} | {max(raw):.3f} | |"
        )
        print(
            f"| BIRD dev ({len(bird)}): guard.check cold | {statistics.median(cold):.3f} | {_pct(cold, 0.95):.3f} | {max(cold):.3f} | |"
        )
    cold_p95 = _pct(rows[2][1], 0.95)
    print()
    print(
        f"goal: guard p95 <= 1 ms; cold p95 = {cold_p95:.3f} ms -> ratio {cold_p95 / 1.0:.2f} of the budget"
    )


if __name__ == "__main__":
    main()
