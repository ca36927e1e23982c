"""Self-consistency on results past the row cap: what the whole-result fingerprint costs, side by side
with the capped run every candidate already makes and with holding the whole result instead.

On a SQLite table of ``--rows`` rows (an int, a float and a 20-character text per row), one process:

* capped run: ``Executor.run`` with the serving cap (1,000 rows), what each candidate costs today;
* fingerprint: ``Executor.fingerprint`` (the engine streams every row into a ResultFingerprint, keeps none),
  the second pass a candidate pays only when two or more distinct candidates were cut by a cap;
* whole result: ``run_raw`` with no row cap and a ``frozenset`` of the rows (the alternative that holds
  every row), with the peak traced memory of each way.

    python benchmarks/vote_fingerprint_bench.py [--rows 1000000] [--write]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from sqlr1.mcp_server.core.config import GuardSettings
from sqlr1.mcp_server.db.executor import Executor
from sqlr1.mcp_server.db.registry import Registry

SQL = "SELECT id, score, label FROM big"


def _make(path: Path, rows: int) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE big (id INTEGER, score REAL, label TEXT)")
        conn.executemany(
            "INSERT INTO big VALUES (?, ?, ?)", ((i, i / 7, f"label-{i:014d}") for i in range(rows))
        )
        conn.commit()


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(median seconds, peak traced MB of one run)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return statistics.median(times), peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="record the result in benchmarks/RESULTS.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "big.sqlite"
        _make(db, args.rows)
        ex = Executor(Registry.from_targets([str(db)]), GuardSettings(timeout_s=120))
        capped = _timed(lambda: ex.run("big", SQL), args.repeat)
        printed = _timed(lambda: ex.fingerprint("big", SQL), args.repeat)
        whole = _timed(lambda: frozenset(ex.run_raw("big", SQL, max_rows=args.rows + 1).rows), args.repeat)
    lines = [
        "## Self-consistency past the row cap: whole-result fingerprint (`benchmarks/vote_fingerprint_bench.py`)",
        "",
        f"A SQLite table of {args.rows:,} rows (int, float, 20-character text); median of {args.repeat} runs, "
        "peak memory traced by `tracemalloc` over one run.",
        "",
        "| way | time | peak memory |",
        "|---|---|---|",
        f"| capped run (`Executor.run`, 1,000 rows: every candidate) | {capped[0] * 1000:,.1f} ms | {capped[1]:,.1f} MB |",
        f"| fingerprint of the whole result (`Executor.fingerprint`) | {printed[0] * 1000:,.0f} ms | {printed[1]:,.1f} MB |",
        f"| whole result held (`run_raw` without a cap + `frozenset`) | {whole[0] * 1000:,.0f} ms | {whole[1]:,.1f} MB |",
        "",
        f"The fingerprint costs {printed[0] / whole[0]:.2f}× the time of holding the whole result, with "
        f"{printed[1] * 1000:,.0f} KB of peak memory against {whole[1]:,.1f} MB (flat whatever the size); it "
        "runs only for candidates cut by a cap, and only when two or more distinct ones were.",
        "",
        f"Command: `python benchmarks/vote_fingerprint_bench.py --rows {args.rows} --write`.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from results_md import write_section

        write_section(lines[0], text)


if __name__ == "__main__":
    main()
