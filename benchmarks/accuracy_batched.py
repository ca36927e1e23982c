"""Execution accuracy with batched generation across questions (for a GPU, or a patient CPU).

Same prompt (``Generator.build_prompt``: the schema DDL, the checkpoint's prompt variant), parser
(``mcp_server.method.answer``), guarded executor, vote (``mcp_server.inference.generation``) and comparison
(``agent.evaluation.scoring`` → ``mcp_server.method.compare``, Spider test-suite semantics) as serving and
``sqlr1 eval``; the only difference is that ``model.generate`` runs many questions per call, which is
what makes a 200-question run take seconds on a GPU instead of an hour on this CPU.

    python benchmarks/accuracy_batched.py --model bundled --n 1 --label base-greedy --out runs/acc/base.json
    python benchmarks/accuracy_batched.py --model models/sqlr1-smollm2-lora --n 8 --label lora-sc8
    python benchmarks/accuracy_batched.py --questions benchmarks/realistic_eval.json \
        --db-root ../shared/data/sample_dbs --model qwen2.5-coder-0.5b --n 1 --turns 3

Questions: the seeded Spider dev subset by default (``--subset`` ids into ``spider/dev.json``), or any
Spider-format list (``db_id``, ``question``, ``query``) with ``--questions`` and ``--db-root``. The
output lists every question's correctness at the first attempt and at the last, for paired tests
between checkpoints (``benchmarks/stage_report.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple, cast

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlr1.agent.evaluation.scoring import Scorer, ScoreTask  # noqa: E402
from sqlr1.agent.loop import AgentSettings  # noqa: E402
from sqlr1.mcp_server.backends.loading import load_model_and_tokenizer, resolve_model  # noqa: E402
from sqlr1.mcp_server.catalog.schema import SchemaInspector  # noqa: E402
from sqlr1.mcp_server.core.config import GenerationConfig, GuardSettings  # noqa: E402
from sqlr1.mcp_server.core.errors import QueryError, QueryFailed  # noqa: E402
from sqlr1.mcp_server.core.results import QueryResult  # noqa: E402
from sqlr1.mcp_server.db.executor import Executor  # noqa: E402
from sqlr1.mcp_server.db.registry import Registry  # noqa: E402
from sqlr1.mcp_server.inference.generation import CandidateResult, Generator, vote  # noqa: E402
from sqlr1.mcp_server.method.answer import format_ok, parse_answer  # noqa: E402
from sqlr1.mcp_server.method.feedback import review, shape_review, value_hints  # noqa: E402
from sqlr1.mcp_server.method.prompt import PreviousTurn, render_text  # noqa: E402
from sqlr1.mcp_server.method.values import ValueHit, ValueIndex  # noqa: E402


class Choice(NamedTuple):
    """The SQL a round settles on for one question, with its execution outcome."""

    sql: str
    result: QueryResult | None
    error: QueryError | None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model spec (default: bundled SmolLM2)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--subset", type=Path, default=REPO / "benchmarks" / "spider_dev_200.json")
    ap.add_argument("--questions", type=Path, default=None, help="a Spider-format question list instead")
    ap.add_argument("--db-root", type=Path, default=None, help="<db_id>/<db_id>.sqlite folders (--questions)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--batch", type=int, default=32, help="questions per generate call")
    ap.add_argument("--max-new-tokens", type=int, default=320)
    ap.add_argument("--values", action="store_true", help="value retrieval hits in the prompt")
    ap.add_argument("--turns", type=int, default=1, help="agent loop: attempts per question (1: single shot)")
    ap.add_argument(
        "--deadline-s",
        type=float,
        default=None,
        help="stop starting generate calls after this many seconds; score what was generated (partial)",
    )
    ap.add_argument("--label", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    t_start = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.questions is not None:
        if args.db_root is None:
            ap.error("--questions needs --db-root")
        listed = json.loads(args.questions.read_text(encoding="utf-8"))[: args.limit]
        items = [dict(q, id=q.get("question_id", i)) for i, q in enumerate(listed)]
        db_root = args.db_root
    else:
        dev = json.loads((args.data / "spider" / "dev.json").read_text(encoding="utf-8"))
        ids = json.loads(args.subset.read_text(encoding="utf-8"))["ids"][: args.limit]
        items = [dict(dev[i], id=i) for i in ids]
        db_root = args.data / "spider" / "database"

    tmp = Path(tempfile.mkdtemp(prefix="sqlr1-acc-"))
    for db in sorted({it["db_id"] for it in items}):  # never touch the shared copy
        shutil.copytree(db_root / db, tmp / db)
    registry = Registry.from_targets([str(tmp)])
    executor = Executor(registry, GuardSettings(timeout_s=30))
    resolved = resolve_model(args.model)
    prompt_version = resolved.prompt_version
    values = (
        ValueIndex(registry, executor, cache_dir=tmp / ".values") if args.values or args.turns > 1 else None
    )
    generator = Generator(
        registry,
        executor,
        SchemaInspector(registry),
        cast(Any, None),
        GenerationConfig(value_retrieval=args.values),
        value_index=values,
        prompt_version=prompt_version,
    )

    t0 = time.perf_counter()
    model, tok = load_model_and_tokenizer(
        resolved, dtype=torch.bfloat16 if device == "cuda" else None, convert_gguf=True
    )
    model.to(device)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    load_s = time.perf_counter() - t0

    hits: dict[int, list[ValueHit]] = {}
    if args.values:
        t_v = time.perf_counter()
        hits = {i: generator.retrieve_values(it["db_id"], it["question"]) for i, it in enumerate(items)}
        print(f"  value retrieval: {time.perf_counter() - t_v:.1f} s", file=sys.stderr, flush=True)

    def generate(indices: list[int], history: dict[int, list[PreviousTurn]]) -> dict[int, list[str]]:
        """One round: the prompts of ``indices`` (with their previous turns), sampled in batches."""
        prompts = {
            i: generator.build_prompt(
                items[i]["db_id"],
                items[i]["question"],
                values=hits.get(i, ()),
                previous_turns=history.get(i, ()),
            )
            for i in indices
        }
        texts = {i: render_text(p, tok) for i, p in prompts.items()}
        order = sorted(indices, key=lambda i: len(texts[i]))
        out_texts: dict[int, list[str]] = {}
        for start in range(0, len(order), args.batch):
            if deadline is not None and time.perf_counter() > deadline:
                print(f"  deadline: stopped after {start}/{len(order)}", file=sys.stderr, flush=True)
                break
            idx = order[start : start + args.batch]
            enc = tok(
                [texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
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
            counters["tokens"] += int((new != tok.pad_token_id).sum())
            decoded = tok.batch_decode(new, skip_special_tokens=True)
            for j, i in enumerate(idx):
                out_texts[i] = [
                    prompts[i].assistant_prefill + t for t in decoded[j * args.n : (j + 1) * args.n]
                ]
            print(
                f"  generated {min(start + args.batch, len(order))}/{len(order)}", file=sys.stderr, flush=True
            )
        return out_texts

    def choose(i: int, texts: list[str]) -> Choice:
        """Parse, execute (guarded), and vote, as ``Generator.generate_sql`` does."""
        cands: list[CandidateResult] = []
        results: list[QueryResult | None] = []
        for k, full in enumerate(texts):
            parsed = parse_answer(full)
            ok_format = format_ok(full)
            counters["format_ok"] += ok_format
            result, status, error = None, "no_sql", None
            if parsed.sql:
                try:
                    result = executor.run(items[i]["db_id"], parsed.sql)
                    status = "ok"
                    counters["executable"] += 1
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
        counters["candidates"] += len(texts)
        _, best = vote(cands, results)
        if best is not None:
            return Choice(cands[best].sql or "", results[best], None)
        fallback = next((c for c in cands if c.sql), None)
        return Choice(fallback.sql or "", None, fallback.error) if fallback else Choice("", None, None)

    # The agent's loop (agent.loop.Agent.ask), batched across questions: generate, execute, review with
    # agent.review, feed the verdict back as a previous turn; keep the latest executed attempt.
    counters = {"tokens": 0, "format_ok": 0, "executable": 0, "candidates": 0}
    history: dict[int, list[PreviousTurn]] = {}
    first: dict[int, Choice] = {}
    final: dict[int, Choice] = {}
    turns_used: dict[int, int] = {}
    accepted_at: dict[int, int] = {}
    shape_used: dict[int, int] = {}
    shape_retries = AgentSettings().shape_retries
    pending = list(range(len(items)))
    t1 = time.perf_counter()
    deadline = t_start + args.deadline_s if args.deadline_s else None
    for turn in range(1, args.turns + 1):
        if not pending:
            break
        completions = generate(pending, history)
        still = []
        skipped = [i for i in pending if i not in completions]  # past the deadline: keep what they have
        for i in pending:
            if i in skipped:
                continue
            choice = choose(i, completions[i])
            first.setdefault(i, choice)
            turns_used[i] = turn
            if choice.result is not None or i not in final or final[i].result is None:
                final[i] = choice
            dialect = registry.engine(items[i]["db_id"]).spec.kind
            verdict = review(
                items[i]["question"], choice.sql or None, choice.result, choice.error, dialect=dialect
            )
            if (
                verdict.accepted
                and choice.result is not None
                and shape_used.get(i, 0) < shape_retries
                and turn < args.turns
            ):
                # the agent's shape retry (AgentSettings.shape_retries): "each" answered with one row, ...
                shaped, issues = shape_review(
                    items[i]["question"], choice.sql, choice.result, dialect=dialect
                )
                if issues:
                    verdict = shaped
                    shape_used[i] = shape_used.get(i, 0) + 1
            if verdict.accepted:
                accepted_at[i] = turn
                continue
            feedback = verdict.feedback or ""
            if verdict.reason == "empty" and values is not None:
                found = values.search(items[i]["db_id"], items[i]["question"], limit=10)
                feedback += value_hints([(h.table, h.column, h.value) for h in found])
            history.setdefault(i, []).append(PreviousTurn(items[i]["question"], choice.sql, feedback))
            still.append(i)
        print(
            f"  turn {turn}: {len(pending) - len(still) - len(skipped)} accepted, {len(still)} to retry, "
            f"{len(skipped)} not generated (deadline)",
            file=sys.stderr,
        )
        pending = [] if skipped else still
    gen_s = time.perf_counter() - t1
    scorer = Scorer("spider", timeout_s=30)

    done = sorted(final)  # all of them unless the deadline stopped generation early

    def score(chosen: dict[int, Choice]) -> list[Any]:
        return scorer.score_inline(
            [
                ScoreTask(
                    idx=i,
                    db_files=[str(tmp / items[i]["db_id"] / f"{items[i]['db_id']}.sqlite")],
                    pred_sql=chosen[i].sql,
                    gold_sql=items[i]["query"],
                )
                for i in done
            ]
        )

    scored = score(final)
    single = score(first) if args.turns > 1 else scored
    correct = sum(r.correct for r in scored)
    summary = {
        "label": args.label or f"{args.model or 'bundled'} n={args.n}",
        "questions_file": str(args.questions or args.subset),
        "model": args.model or "bundled",
        "prompt_version": prompt_version,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "questions": len(done),
        "partial": len(done) < len(items),
        "n": args.n,
        "values": args.values,
        "max_turns": args.turns,
        "max_new_tokens": args.max_new_tokens,
        "ex": round(100 * correct / max(len(done), 1), 2),
        "correct": correct,
        "format_ok_rate": round(100 * counters["format_ok"] / max(counters["candidates"], 1), 1),
        "executable_rate": round(100 * counters["executable"] / max(counters["candidates"], 1), 1),
        "load_s": round(load_s, 1),
        "generate_s": round(gen_s, 1),
        "generated_tokens": counters["tokens"],
    }
    if args.turns > 1:
        summary["single_shot_ex"] = round(100 * sum(r.correct for r in single) / max(len(done), 1), 2)
        summary["turns_total"] = sum(turns_used.values())
        summary["turns_histogram"] = {
            t: sum(v == t for v in turns_used.values()) for t in range(1, args.turns + 1)
        }
        summary["accepted"] = len(accepted_at)
    print(json.dumps(summary))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "summary": summary,
                    "predictions": [
                        {
                            "id": items[i]["id"],
                            "sql": final[i].sql,
                            "first_sql": first[i].sql,
                            "turns": turns_used[i],
                            "correct": r.correct,
                            "first_correct": f.correct,
                        }
                        for i, r, f in zip(done, scored, single, strict=True)
                    ],
                },
                indent=1,
            ),
            encoding="utf-8",
        )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
