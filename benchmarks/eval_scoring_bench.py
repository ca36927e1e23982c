"""Scoring speed: our Scorer vs the BIRD reference evaluator's approach, on all Spider dev golds.

The baseline re-implements ``evaluation_ex.py``: a ``multiprocessing.Pool`` with one
``apply_async`` task per pair, ``func_timeout`` around a fresh ``sqlite3`` connection that
runs the prediction then the gold, and ``set(pred) == set(gold)``. Both sides use the same
pairs and the same worker count. Scenarios:

1. golds scored against themselves, and against a shuffled prediction set (cold and warm cache);
2. the same run with 4 injected never-ending predictions and a 5 s timeout: the reference's
   timeout fires but SQLite keeps computing in the abandoned thread; ours stops the engine.

Usage: python benchmarks/eval_scoring_bench.py [--data ../shared/data] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

from func_timeout import FunctionTimedOut, func_timeout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlr1.agent.evaluation.scoring import Scorer, ScoreTask

RUNAWAY = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT max(i) FROM r"

# ---------------------------------------------------------------- the reference approach

_results: list[dict] = []


def _execute_sql(predicted_sql: str, ground_truth: str, db_path: str) -> int:
    conn = sqlite3.connect(db_path)
    cursor = conn.cursor()
    cursor.execute(predicted_sql)
    predicted_res = cursor.fetchall()
    cursor.execute(ground_truth)
    ground_truth_res = cursor.fetchall()
    return 1 if set(predicted_res) == set(ground_truth_res) else 0


def _execute_model(
    predicted_sql: str, ground_truth: str, db_place: str, idx: int, meta_time_out: float
) -> dict:
    try:
        res = func_timeout(meta_time_out, _execute_sql, args=(predicted_sql, ground_truth, db_place))
    except FunctionTimedOut:
        res = 0
    except Exception:
        res = 0
    return {"sql_idx": idx, "res": res}


def reference_run(
    pairs: list[tuple[str, str]], db_places: list[str], workers: int, timeout: float
) -> list[int]:
    _results.clear()
    pool = mp.Pool(processes=workers)
    for i, (pred, gold) in enumerate(pairs):
        pool.apply_async(
            _execute_model, args=(pred, gold, db_places[i], i, timeout), callback=_results.append
        )
    pool.close()
    pool.join()
    return [r["res"] for r in sorted(_results, key=lambda r: r["sql_idx"])]


# ---------------------------------------------------------------- CPU monitor


class ChildCpu:
    """Samples the CPU use of this process's children (the workers) every 0.25 s."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (time, cores busy)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _children_ticks() -> float:
        total = 0.0
        me = os.getpid()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == me:  # ppid
                total += int(stat[11]) + int(stat[12])  # utime + stime
        return total / os.sysconf("SC_CLK_TCK")

    def _loop(self) -> None:
        last_t, last_c = time.perf_counter(), self._children_ticks()
        while not self._stop.wait(0.25):
            t, c = time.perf_counter(), self._children_ticks()
            self.samples.append((t, max(0.0, (c - last_c) / (t - last_t))))
            last_t, last_c = t, c

    def __enter__(self) -> ChildCpu:
        self.start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def busy_after(self, seconds: float) -> float:
        """Mean cores busy from ``seconds`` after the start to the end."""
        vals = [c for t, c in self.samples if t - self.start >= seconds]
        return sum(vals) / len(vals) if vals else 0.0


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("SQLR1_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")),
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--runaway-timeout", type=float, default=5.0)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()

    dev = json.loads((args.data / "spider" / "dev.json").read_text(encoding="utf-8"))[: args.limit]
    tmp = Path(tempfile.mkdtemp(prefix="sqlr1-evalbench-"))
    db_root = tmp / "database"
    for db_id in sorted({d["db_id"] for d in dev}):  # never touch the shared copy
        shutil.copytree(args.data / "spider" / "database" / db_id, db_root / db_id)
    golds = [d["query"] for d in dev]
    places = [str(db_root / d["db_id"] / f"{d['db_id']}.sqlite") for d in dev]
    shuffled = golds[:]
    random.Random(0).shuffle(shuffled)
    print(f"pairs: {len(golds)}  workers: {args.workers}  cpus: {os.cpu_count()}")

    def ours(preds: list[str], cache: Path, timeout: float = 30.0) -> tuple[float, list[int]]:
        tasks = [
            ScoreTask(idx=i, db_files=[places[i]], pred_sql=p, gold_sql=golds[i]) for i, p in enumerate(preds)
        ]
        scorer = Scorer("bird", timeout_s=timeout, workers=args.workers, cache_path=cache)
        t0 = time.perf_counter()
        res = scorer.score(tasks)
        return time.perf_counter() - t0, [int(r.correct) for r in res]

    def ref(preds: list[str], timeout: float = 30.0) -> tuple[float, list[int]]:
        t0 = time.perf_counter()
        res = reference_run(list(zip(preds, golds, strict=True)), places, args.workers, timeout)
        return time.perf_counter() - t0, res

    def floor(preds: list[str]) -> float:
        t0 = time.perf_counter()
        for p, db in zip(preds, places, strict=True):
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            with contextlib.suppress(sqlite3.Error):  # the floor counts failing predictions too
                conn.execute(p).fetchall()
            conn.close()
        return time.perf_counter() - t0

    rows = []
    for name, preds in (("self", golds), ("shuffled", shuffled)):
        t_ref, r_ref = ref(preds)
        cache = tmp / f"cache-{name}.sqlite"
        t_cold, r_cold = ours(preds, cache)
        t_warm, r_warm = ours(preds, cache)
        t_floor = floor(preds)
        agree = sum(a == b == c for a, b, c in zip(r_ref, r_cold, r_warm, strict=True))
        rows.append((name, t_ref, t_cold, t_warm, t_floor, sum(r_ref), sum(r_cold), agree))

    print(
        "\n| predictions | reference s | ours cold s (ratio) | ours warm s (ratio) | preds alone, 1 process s | EX ref / ours | verdicts agree |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, t_ref, t_cold, t_warm, t_floor, ex_ref, ex_ours, agree in rows:
        print(
            f"| {name} | {t_ref:.2f} | {t_cold:.2f} ({t_cold / t_ref:.2f}x) | {t_warm:.2f} ({t_warm / t_ref:.2f}x) "
            f"| {t_floor:.2f} ({t_floor / t_ref:.2f}x) | {ex_ref} / {ex_ours} | {agree}/{len(golds)} |"
        )

    # Runaways: 4 never-ending predictions, 5 s timeout, spread over the run.
    preds = golds[:]
    for pos in (10, len(preds) // 3, len(preds) // 2, (2 * len(preds)) // 3):
        preds[pos] = RUNAWAY
    to = args.runaway_timeout

    def child_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    c0 = child_cpu()
    with ChildCpu() as cpu_ref:
        t_ref, _ = ref(preds, timeout=to)
    cpu_ref_s = child_cpu() - c0
    cache = tmp / "cache-runaway.sqlite"
    ours(golds, cache)  # same warm state for the clean comparison run
    c0 = child_cpu()
    t_clean, _ = ours(golds, cache)
    cpu_clean_s = child_cpu() - c0
    c0 = child_cpu()
    with ChildCpu() as cpu_ours:
        t_ours, _ = ours(preds, cache, timeout=to)
    cpu_ours_s = child_cpu() - c0
    c0 = child_cpu()
    t_ref_clean, _ = ref(golds)
    cpu_ref_clean_s = child_cpu() - c0
    print(f"\nrunaways: 4 never-ending predictions, timeout {to:.0f} s, {args.workers} workers")
    print(
        "| scorer | clean run s | with runaways s | budget (clean + 4 × timeout) s "
        "| worker CPU s clean / with runaways | extra CPU per runaway s | worker cores busy after first timeout |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, tc, tr, cc, cr, busy in (
        ("reference", t_ref_clean, t_ref, cpu_ref_clean_s, cpu_ref_s, cpu_ref.busy_after(to + 1)),
        ("ours (warm)", t_clean, t_ours, cpu_clean_s, cpu_ours_s, cpu_ours.busy_after(to + 1)),
    ):
        print(
            f"| {name} | {tc:.2f} | {tr:.2f} | {tc + 4 * to:.2f} | {cc:.2f} / {cr:.2f} "
            f"| {(cr - cc) / 4:.2f} | {busy:.2f} |"
        )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
