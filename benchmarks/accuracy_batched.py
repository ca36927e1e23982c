"""Execution accuracy with batched generation across questions (for a GPU, or a patient CPU).

Same prompt (``Generator.build_prompt``: the schema DDL, the checkpoint's prompt variant), parser
(``mcp_server.answer``), guarded executor, vote (``mcp_server.generation``) and comparison
(``agent.evaluation.scoring`` → ``mcp_server.compare``, Spider test-suite semantics) as serving and
``sqlr1 eval``; the only difference is that ``model.generate`` runs many questions per call, which is
what makes a 200-question run take seconds on a GPU instead of an hour on this CPU.

    python benchmarks/accuracy_batched.py --model bundled --n 1 --label base-greedy --out runs/acc/base.json
    python benchmarks/accuracy_batched.py --model models/sqlr1-smollm2-lora --n 8 --label lora-sc8
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.evaluation.scoring import Scorer, ScoreTask  # noqa: E402
from mcp_server.answer import format_ok, parse_answer  # noqa: E402
from mcp_server.backends.loading import load_model_and_tokenizer, resolve_model  # noqa: E402
from mcp_server.config import GuardSettings  # noqa: E402
from mcp_server.errors import QueryFailed  # noqa: E402
from mcp_server.executor import Executor  # noqa: E402
from mcp_server.generation import CandidateResult, Generator, vote  # noqa: E402
from mcp_server.prompt import render_text  # noqa: E402
from mcp_server.registry import Registry  # noqa: E402
from mcp_server.schema import SchemaInspector  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model spec (default: bundled SmolLM2)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--subset", type=Path, default=REPO / "benchmarks" / "spider_dev_200.json")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--batch", type=int, default=32, help="questions per generate call")
    ap.add_argument("--max-new-tokens", type=int, default=320)
    ap.add_argument("--label", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = json.loads((args.data / "spider" / "dev.json").read_text(encoding="utf-8"))
    ids = json.loads(args.subset.read_text(encoding="utf-8"))["ids"][: args.limit]
    items = [dict(dev[i], id=i) for i in ids]

    tmp = Path(tempfile.mkdtemp(prefix="sqlr1-acc-"))
    for db in sorted({it["db_id"] for it in items}):  # never touch the shared copy
        shutil.copytree(args.data / "spider" / "database" / db, tmp / db)
    registry = Registry.from_targets([str(tmp)])
    executor = Executor(registry, GuardSettings(timeout_s=30))
    resolved = resolve_model(args.model)
    prompt_version = resolved.manifest.prompt_version if resolved.manifest else None
    generator = Generator(
        registry, executor, SchemaInspector(registry), cast(Any, None), prompt_version=prompt_version
    )

    t0 = time.perf_counter()
    model, tok = load_model_and_tokenizer(resolved, dtype=torch.bfloat16 if device == "cuda" else None)
    model.to(device)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    load_s = time.perf_counter() - t0

    prompts = [generator.build_prompt(it["db_id"], it["question"]) for it in items]
    texts = [render_text(p, tok) for p in prompts]
    prefilled = [p.assistant_prefill for p in prompts]
    order = sorted(range(len(items)), key=lambda i: len(texts[i]))
    completions: dict[int, list[str]] = {}
    t1 = time.perf_counter()
    gen_tokens = 0
    for start in range(0, len(order), args.batch):
        idx = order[start : start + args.batch]
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False).to(
            device
        )
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=args.max_new_tokens,
                do_sample=args.n > 1,
                temperature=args.temperature if args.n > 1 else None,
                top_p=0.95 if args.n > 1 else None,
                num_return_sequences=args.n,
                pad_token_id=tok.pad_token_id,
                stop_strings=["</answer>"],
                tokenizer=tok,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        gen_tokens += int((new != tok.pad_token_id).sum())
        decoded = tok.batch_decode(new, skip_special_tokens=True)
        for j, i in enumerate(idx):
            completions[i] = decoded[j * args.n : (j + 1) * args.n]
        print(f"  generated {min(start + args.batch, len(order))}/{len(order)}", file=sys.stderr, flush=True)
    gen_s = time.perf_counter() - t1

    chosen: dict[int, str] = {}
    fmt = execd = 0
    for i, it in enumerate(items):
        cands: list[CandidateResult] = []
        results = []
        for k, text in enumerate(completions[i]):
            full = prefilled[i] + text
            parsed = parse_answer(full)
            ok_format = format_ok(full)
            fmt += ok_format
            result, status, error = None, "no_sql", None
            if parsed.sql:
                try:
                    result = executor.run(it["db_id"], parsed.sql)
                    status = "ok"
                    execd += 1
                except QueryFailed as exc:
                    status, error = exc.error.kind, exc.error
            cands.append(
                CandidateResult(
                    index=k,
                    text=full,
                    sql=parsed.sql,
                    format_ok=ok_format,
                    status=cast(Any, status),
                    error=error,
                )
            )
            results.append(result)
        _, best = vote(cands, results)
        chosen[i] = (cands[best].sql if best is not None else next((c.sql for c in cands if c.sql), "")) or ""

    scored = Scorer("spider", timeout_s=30).score_inline(
        [
            ScoreTask(
                idx=i,
                db_files=[str(tmp / it["db_id"] / f"{it['db_id']}.sqlite")],
                pred_sql=chosen[i],
                gold_sql=it["query"],
            )
            for i, it in enumerate(items)
        ]
    )
    correct = sum(r.correct for r in scored)
    total_cands = len(items) * args.n
    summary = {
        "label": args.label or f"{args.model or 'bundled'} n={args.n}",
        "model": args.model or "bundled",
        "prompt_version": prompt_version,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "questions": len(items),
        "n": args.n,
        "max_new_tokens": args.max_new_tokens,
        "ex": round(100 * correct / len(items), 2),
        "correct": correct,
        "format_ok_rate": round(100 * fmt / total_cands, 1),
        "executable_rate": round(100 * execd / total_cands, 1),
        "load_s": round(load_s, 1),
        "generate_s": round(gen_s, 1),
        "generated_tokens": gen_tokens,
    }
    print(json.dumps(summary))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "summary": summary,
                    "predictions": [
                        {"id": it["id"], "sql": chosen[i], "correct": scored[i].correct}
                        for i, it in enumerate(items)
                    ],
                },
                indent=1,
            ),
            encoding="utf-8",
        )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
