"""Execution accuracy of a model on a fixed, seeded 200-question subset of Spider dev.

Four settings, same model and questions: greedy (n=1) and self-consistency (n=N, temperature 0.8),
each with and without value retrieval. Every question goes through ``Generator.generate_sql`` (the
guarded executor, the vote) exactly as ``generate_sql`` serves it; the chosen SQL's result is
compared with the gold result by the one comparison module (``compare.spider_equal`` with
``order_matters_for(gold)``: Spider's test-suite metric; ``bird_equal`` is reported too).

The subset: ``random.Random(0).sample`` of 200 dev indexes, sorted, written once to
``benchmarks/spider_dev_200.json`` so every issue (training, evaluation) reuses exactly these ids.
``--limit K`` runs the first K of them (the databases are copied to a temp folder first; the
shared data is never touched). On CPU the bundled 135M model is slow: a small ``--limit`` and
``--max-new-tokens`` keep a run practical; say which sizes ran when recording figures.

    python benchmarks/accuracy_bench.py [--limit 20] [--n 8] [--max-new-tokens 256] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SUBSET_FILE = REPO / "benchmarks" / "spider_dev_200.json"
SUBSET_SIZE = 200
SEED = 0


def _data_dir(arg: str | None) -> Path:
    for c in [Path(arg)] if arg else [REPO.parent / "shared" / "data", REPO / "shared" / "data"]:
        if (c / "spider" / "dev.json").is_file():
            return c
    sys.exit("shared data not found: pass --data DIR (the folder holding spider/dev.json)")


def load_subset(data: Path) -> list[dict[str, Any]]:
    """The fixed subset (created on first use): [{id, db_id, question, query}], in id order."""
    dev = json.loads((data / "spider" / "dev.json").read_text(encoding="utf-8"))
    if SUBSET_FILE.is_file():
        ids = json.loads(SUBSET_FILE.read_text(encoding="utf-8"))["ids"]
    else:
        ids = sorted(random.Random(SEED).sample(range(len(dev)), SUBSET_SIZE))
        payload = {
            "source": "spider/dev.json",
            "seed": SEED,
            "how": f"sorted(random.Random({SEED}).sample(range(len(dev)), {SUBSET_SIZE}))",
            "ids": ids,
            "items": [{"id": i, "db_id": dev[i]["db_id"], "question": dev[i]["question"]} for i in ids],
        }
        SUBSET_FILE.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return [
        {"id": i, "db_id": dev[i]["db_id"], "question": dev[i]["question"], "query": dev[i]["query"]}
        for i in ids
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="shared data folder (with spider/)")
    ap.add_argument("--limit", type=int, default=SUBSET_SIZE, help="first K questions of the subset")
    ap.add_argument("--n", type=int, default=8, help="self-consistency candidates (default 8)")
    ap.add_argument("--max-new-tokens", type=int, default=512, help="per candidate (default 512)")
    ap.add_argument("--model", help="model spec (default: bundled SmolLM2-135M)")
    ap.add_argument(
        "--settings",
        default="greedy,greedy+values,sc,sc+values",
        help="comma-separated subset of: greedy, greedy+values, sc, sc+values",
    )
    ap.add_argument("--json", help="write per-question results here")
    args = ap.parse_args()

    from sqlr1.mcp_server.backends.factory import load_backend
    from sqlr1.mcp_server.catalog.schema import SchemaInspector
    from sqlr1.mcp_server.core.config import GenerationConfig, GuardSettings, ModelConfig
    from sqlr1.mcp_server.core.errors import QueryFailed
    from sqlr1.mcp_server.db.executor import Executor
    from sqlr1.mcp_server.db.registry import Registry
    from sqlr1.mcp_server.inference.generation import Generator
    from sqlr1.mcp_server.method.compare import bird_equal, order_matters_for, spider_equal
    from sqlr1.mcp_server.method.values import ValueIndex

    data = _data_dir(args.data)
    items = load_subset(data)[: args.limit]
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="sqlr1-acc-"))
    try:
        for db_id in sorted({it["db_id"] for it in items}):
            src = data / "spider" / "database" / db_id / f"{db_id}.sqlite"
            (tmp / db_id).mkdir()
            shutil.copyfile(src, tmp / db_id / f"{db_id}.sqlite")
        registry = Registry.from_targets(
            [str(tmp / db / f"{db}.sqlite") for db in sorted({it["db_id"] for it in items})]
        )
        executor = Executor(registry, GuardSettings(timeout_s=30.0, max_rows=100_000, max_chars=50_000_000))
        inspector = SchemaInspector(registry)
        values = ValueIndex(registry, executor, cache_dir=tmp / "values")
        t0 = time.perf_counter()
        backend = load_backend(ModelConfig(model=args.model))
        print(
            f"model {backend.model_id} ({backend.name}) loaded in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )

        gold: dict[int, Any] = {}
        for it in items:
            try:
                gold[it["id"]] = executor.run(it["db_id"], it["query"]).raw_rows
            except QueryFailed as exc:
                print(f"gold {it['id']} failed, question skipped: {exc}", flush=True)

        records: list[dict[str, Any]] = []
        # Questions of one database back to back: the backend reuses that schema's prefix cache. Every
        # setting runs on a question before the next one, so a run cut short still compares them fairly.
        ordered = sorted((it for it in items if it["id"] in gold), key=lambda it: (it["db_id"], it["id"]))
        gens: dict[str, Generator] = {}
        for setting in settings:
            n = args.n if setting.startswith("sc") else 1
            cfg = GenerationConfig(num_candidates=n, value_retrieval=setting.endswith("+values"), seed=SEED)
            gens[setting] = Generator(
                registry,
                executor,
                inspector,
                backend,
                cfg,
                value_index=values,
                max_new_tokens=args.max_new_tokens,
            )
        for k, it in enumerate(ordered, 1):
            for setting, gen in gens.items():
                res = gen.generate_sql(it["db_id"], it["question"])
                ok = bird_ok = False
                if res.status == "ok" and res.chosen is not None:
                    pred = executor.run(it["db_id"], res.sql or "").raw_rows or []
                    g = gold[it["id"]] or []
                    ok = spider_equal(pred, g, order_matters=order_matters_for(it["query"]))
                    bird_ok = bird_equal(pred, g)
                records.append(
                    {
                        "setting": setting,
                        "n": gen.config.num_candidates,
                        "id": it["id"],
                        "db_id": it["db_id"],
                        "sql": res.sql,
                        "correct": ok,
                        "bird_correct": bird_ok,
                        "executable": res.status == "ok",
                        "format_ok": sum(c.format_ok for c in res.candidates) / max(1, len(res.candidates)),
                        "status": res.status,
                        "votes": res.vote_counts,
                        "values": len(res.values),
                        "s": res.timings.total_ms / 1000,
                    }
                )
                print(
                    f"[{setting}] {k}/{len(ordered)} id={it['id']} ok={ok} status={res.status} "
                    f"votes={res.vote_counts} values={len(res.values)} {res.timings.total_ms / 1000:.1f}s",
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(
        f"model: {backend.model_id}; questions: {len(ordered)} of the seeded Spider dev 200 "
        f"(benchmarks/spider_dev_200.json, first {args.limit}); max_new_tokens={args.max_new_tokens}"
    )
    summary = summarize(records)
    print(table(summary))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"summary": summary, "records": records}, indent=1), encoding="utf-8"
        )


def summarize(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per setting: EX (Spider test-suite and BIRD set equality), executable and format rates, time."""
    out: dict[str, dict[str, float]] = {}
    for setting in dict.fromkeys(r["setting"] for r in records):
        rs = [r for r in records if r["setting"] == setting]
        total = len(rs)
        out[setting] = {
            "questions": total,
            "n": rs[0]["n"],
            "ex": sum(r["correct"] for r in rs) / total,
            "bird_ex": sum(r["bird_correct"] for r in rs) / total,
            "executable": sum(r["executable"] for r in rs) / total,
            "format_ok": sum(r["format_ok"] for r in rs) / total,
            "s_per_question": sum(r["s"] for r in rs) / total,
        }
    return out


def table(summary: dict[str, dict[str, float]]) -> str:
    lines = [
        "| setting | n | questions | EX (Spider test-suite) | EX (BIRD set) | chosen SQL executable "
        "| format ok | s/question |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for setting, s in summary.items():
        lines.append(
            f"| {setting} | {s['n']:.0f} | {s['questions']:.0f} | {s['ex']:.1%} | {s['bird_ex']:.1%} | "
            f"{s['executable']:.1%} | {s['format_ok']:.1%} | {s['s_per_question']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
