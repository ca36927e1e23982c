"""One `sqlr1 eval` scoring run, timed: all Spider dev golds scored as predictions of themselves (cold, then
warm cache) and shuffled (cold), with 2 workers; wall seconds and CPU seconds (this process and its workers).

Prints one JSON line, so two checkouts can be compared run by run on a busy machine, alternating::

    for i in 1 2 3 4 5; do for tree in /path/before /path/after; do
        PYTHONPATH=$tree python benchmarks/eval_scoring_cpu.py; done; done

CPU seconds move less with the machine's load than wall seconds. ``--data`` (default ``$SQLR1_DATA`` or
``../shared/data``) holds ``spider/dev.json`` and ``spider/database``; the databases are copied first.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sqlr1.agent.evaluation.scoring import Scorer, ScoreTask


def _cpu_s() -> float:
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def main() -> None:
    default = Path(os.environ.get("SQLR1_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    dev = json.loads((args.data / "spider" / "dev.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="sqlr1-evalcpu-") as tmp:
        root = Path(tmp)
        for db_id in sorted({d["db_id"] for d in dev}):  # never touch the shared copy
            shutil.copytree(args.data / "spider" / "database" / db_id, root / "db" / db_id)
        golds = [d["query"] for d in dev]
        places = [str(root / "db" / d["db_id"] / f"{d['db_id']}.sqlite") for d in dev]
        shuffled = golds[:]
        random.Random(0).shuffle(shuffled)
        out: dict[str, object] = {"checkout": os.environ.get("PYTHONPATH", sys.path[0])}
        for name, preds, cache in (
            ("self_cold", golds, "self"),
            ("self_warm", golds, "self"),
            ("shuffled_cold", shuffled, "shuffled"),
        ):
            tasks = [
                ScoreTask(idx=i, db_files=[places[i]], pred_sql=p, gold_sql=golds[i])
                for i, p in enumerate(preds)
            ]
            scorer = Scorer("bird", timeout_s=30, workers=args.workers, cache_path=root / f"{cache}.sqlite")
            cpu, t0 = _cpu_s(), time.perf_counter()
            correct = sum(r.correct for r in scorer.score(tasks))
            out[name] = {"wall_s": round(time.perf_counter() - t0, 3), "cpu_s": round(_cpu_s() - cpu, 3)}
            out[name + "_correct"] = correct
        out["load"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
