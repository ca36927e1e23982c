"""Reward computation throughput: completions scored per second with the process pool vs serially
in-process, side by side in one run, on Spider dev questions over their (copied) databases.

Each GRPO-sized batch (``--batch`` completions) mixes, per question: the gold SQL reformatted
(correct), a wrong query (result -3), an unexecutable one (execution -2) and a malformed answer
(format -1). Gold results are resolved once up front (as the disk cache does in training), so the
timing is the steady state: parse + format check + execute predictions + compare.

    python benchmarks/reward_throughput_bench.py [--questions 160] [--batch 64] [--workers 2] [--paired 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlr1.training.gold import GoldResolver
from sqlr1.training.pool import ExecutionPool, InProcessExecutor
from sqlr1.training.rewards import SQLR1Reward


def _data_dir() -> Path:
    env = os.environ.get("SQLR1_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return root / "spider"


def _answer(sql: str) -> str:
    return f"\nI look at the schema and write the query.\n</think>\n<answer>\n```sql\n{sql}\n```\n</answer>"


def _corpus(questions: int, tmp: Path, heavy: int = 0) -> tuple[list[str], list[str], list[str]]:
    spider = _data_dir()
    dev = json.loads((spider / "dev.json").read_text(encoding="utf-8"))[:questions]
    texts, dbs, golds = [], [], []
    for item in dev:
        db_id = item["db_id"]
        db = tmp / db_id / f"{db_id}.sqlite"
        if not db.exists():
            db.parent.mkdir(parents=True)
            shutil.copyfile(spider / "database" / db_id / f"{db_id}.sqlite", db)
        gold = item["query"]
        variants = [
            _answer(gold),
            _answer(f"SELECT * FROM ({gold.rstrip(';')}) LIMIT 1 OFFSET 1")  # usually a wrong result
            if not heavy
            # a BIRD-sized query: the engine works for tens of milliseconds
            else _answer(
                f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {heavy}) "
                "SELECT count(*) FROM c"
            ),
            _answer("SELECT no_such_column FROM no_such_table"),
            f"\nno tags, just {gold}",
        ]
        for v in variants:
            texts.append(v)
            dbs.append(str(db))
            golds.append(gold)
    return texts, dbs, golds


def _score_all(reward: SQLR1Reward, texts: list[str], dbs: list[str], golds: list[str], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        cols = {"db_path": dbs[i : i + batch], "gold_sql": golds[i : i + batch]}
        for f in reward.funcs:
            f(["p"] * len(cols["db_path"]), texts[i : i + batch], **cols)
    return time.perf_counter() - start


def _paired(
    rewards: tuple[SQLR1Reward, SQLR1Reward], texts: list[str], dbs: list[str], golds: list[str], args: Any
) -> tuple[float, float]:
    """Serial and pool alternate on each batch (order flipped every batch): load changes within a
    round hit both alike. Returns (pool/serial throughput over all batches, median batch ratio)."""
    totals, ratios = [0.0, 0.0], []
    for r in range(args.paired):
        for i in range(0, len(texts), args.batch):
            cols = {"db_path": dbs[i : i + args.batch], "gold_sql": golds[i : i + args.batch]}
            took = [0.0, 0.0]
            for k in (0, 1) if (r + i // args.batch) % 2 else (1, 0):
                start = time.perf_counter()
                rewards[k].funcs[0](["p"] * len(cols["db_path"]), texts[i : i + args.batch], **cols)
                took[k] = time.perf_counter() - start
            totals = [totals[0] + took[0], totals[1] + took[1]]
            ratios.append(took[0] / took[1])
    return totals[0] / totals[1], statistics.median(ratios)


def _measure(args: argparse.Namespace, heavy: int) -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        texts, dbs, golds = _corpus(args.questions, Path(d), heavy)
        serial_exec = InProcessExecutor(timeout_s=30)
        t0 = time.perf_counter()
        pool = ExecutionPool(workers=args.workers, timeout_s=30)
        pool.run([])  # start the workers
        startup = time.perf_counter() - t0
        try:
            serial_gold = GoldResolver(serial_exec)
            pool_gold = GoldResolver(pool)
            pairs = sorted(set(zip(dbs, golds, strict=True)))
            serial_gold.resolve(pairs)
            pool_gold.resolve(pairs)
            serial_t, pool_t = [], []
            for _ in range(args.rounds):  # interleaved, so load changes hit both alike
                serial_t.append(
                    _score_all(SQLR1Reward(serial_exec, serial_gold), texts, dbs, golds, args.batch)
                )
                pool_t.append(_score_all(SQLR1Reward(pool, pool_gold), texts, dbs, golds, args.batch))
            cols = {"db_path": dbs[:8], "gold_sql": golds[:8]}
            check_s = SQLR1Reward(serial_exec, serial_gold).funcs[2](["p"] * 8, texts[:8], **cols)
            check_p = SQLR1Reward(pool, pool_gold).funcs[2](["p"] * 8, texts[:8], **cols)
            assert check_s == check_p, (check_s, check_p)
            if args.paired:
                paired = _paired(
                    (SQLR1Reward(serial_exec, serial_gold), SQLR1Reward(pool, pool_gold)),
                    texts,
                    dbs,
                    golds,
                    args,
                )
        finally:
            pool.close()
    n = len(texts)
    s, p = statistics.median(serial_t), statistics.median(pool_t)
    kind = (
        f"1 in 4 completions runs a {heavy}-row recursive CTE" if heavy else "Spider dev queries as they are"
    )
    print(
        f"\n{kind}: {n} completions ({args.questions} questions x 4 variants), batch {args.batch}, "
        f"median of {args.rounds} rounds, cpus: {os.cpu_count()}, "
        f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    print("| executor | completions/s | s per 64-completion step |")
    print("|---|---:|---:|")
    print(f"| serial, in-process | {n / s:.0f} | {s / n * 64:.3f} |")
    print(f"| process pool ({args.workers} workers) | {n / p:.0f} | {p / n * 64:.3f} |")
    print(f"pool / serial throughput: {s / p:.2f}x; pool start-up (once per run): {startup:.2f} s")
    if args.paired:
        print(
            f"batch-paired ({args.paired} rounds): pool / serial throughput {paired[0]:.2f}x, "
            f"median batch {paired[1]:.2f}x; load average {os.getloadavg()[0]:.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=160)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--paired",
        type=int,
        default=0,
        help="rounds of batch-level alternation (0: skip); steadier under load",
    )
    ap.add_argument(
        "--heavy", type=int, default=200_000, help="rows of the slow query (0: skip that scenario)"
    )
    args = ap.parse_args()
    _measure(args, 0)
    if args.heavy:
        _measure(args, args.heavy)


if __name__ == "__main__":
    main()
