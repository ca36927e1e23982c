"""Prompt-prefix KV reuse: our transformers backend vs plain ``generate(num_return_sequences=N)``.

For Q questions on one shared Spider dev database (default: student_transcripts_tracking, the
largest dev schema) with its full SQL-R1 schema prompt, both sides sample N candidates per question
with the same model (the bundled SmolLM2-135M), the same prompt tokens and max_new_tokens:

* ours: ``TransformersBackend.generate`` (schema prefix KV cached per database, prompt KV computed
  once and expanded to the N candidates);
* plain: ``model.generate(ids, do_sample=True, num_return_sequences=N)`` (prefills N copies).

It also checks, per question, that greedy output (n=1) is token-identical to plain greedy
``generate``. Prints per-question times and the ratio. Prompt processing dominates on CPU, so a
small ``--max-new-tokens`` keeps the run short without changing what is measured.

    python benchmarks/prefix_reuse_bench.py [--questions 20] [--n 8] [--max-new-tokens 8]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _data_dir(arg: str | None) -> Path:
    for c in [Path(arg)] if arg else [REPO.parent / "shared" / "data", REPO / "shared" / "data"]:
        if (c / "spider" / "dev.json").is_file():
            return c
    sys.exit("shared data not found: pass --data DIR (the folder holding spider/dev.json)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="shared data folder (with spider/)")
    ap.add_argument("--db", default="student_transcripts_tracking")
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--model", default=None, help="model spec (default: the bundled SmolLM2)")
    ap.add_argument(
        "--plain-questions",
        type=int,
        default=None,
        help="run the plain generate baseline on only the first K questions (default: all); the ratio "
        "then compares mean seconds per question",
    )
    ap.add_argument(
        "--greedy-check",
        type=int,
        default=None,
        help="check greedy identity on the first K questions (default: all)",
    )
    args = ap.parse_args()

    import torch

    from sqlr1.mcp_server.backends.base import SamplingParams
    from sqlr1.mcp_server.backends.transformers_backend import TransformersBackend
    from sqlr1.mcp_server.catalog.schema import SchemaInspector
    from sqlr1.mcp_server.db.registry import Registry
    from sqlr1.mcp_server.method.prompt import build_prompt

    data = _data_dir(args.data)
    questions = [
        q["question"]
        for q in json.loads((data / "spider" / "dev.json").read_text(encoding="utf-8"))
        if q["db_id"] == args.db
    ][: args.questions]
    with tempfile.TemporaryDirectory() as tmp:
        src = data / "spider" / "database" / args.db / f"{args.db}.sqlite"
        dst = Path(tmp) / args.db / f"{args.db}.sqlite"
        dst.parent.mkdir(parents=True)
        shutil.copyfile(src, dst)  # the shared data is read-only: work on a copy
        registry = Registry.from_targets([f"{args.db}={dst}"])
        ddl = SchemaInspector(registry).ddl(args.db)

    backend = TransformersBackend(args.model)
    model = backend.model
    prompts = [build_prompt(ddl, q) for q in questions]
    print(
        f"# prefix reuse: db={args.db} questions={len(prompts)} n={args.n} "
        f"max_new_tokens={args.max_new_tokens} model={backend.model_id} torch_threads={torch.get_num_threads()}"
    )
    ours_s = plain_s = 0.0
    ours_tokens = plain_tokens = 0
    identical = checked = plain_done = 0
    plain_k = len(prompts) if args.plain_questions is None else args.plain_questions
    greedy_k = len(prompts) if args.greedy_check is None else args.greedy_check
    for i, prompt in enumerate(prompts):
        ids = backend.encode(backend.render(prompt))
        params = SamplingParams(n=args.n, temperature=0.8, max_new_tokens=args.max_new_tokens, seed=i)
        t0 = time.perf_counter()
        ours = backend.generate(prompt, params)
        t1 = time.perf_counter()
        ours_s += t1 - t0
        ours_tokens += sum(c.num_tokens for c in ours)
        plain_txt = "(skipped)"
        if i < plain_k:
            with torch.inference_mode():
                torch.manual_seed(i)
                out = model.generate(
                    torch.tensor([ids], device=backend.device),
                    do_sample=True,
                    temperature=0.8,
                    top_p=1.0,
                    top_k=0,
                    num_return_sequences=args.n,
                    max_new_tokens=args.max_new_tokens,
                )
            t2 = time.perf_counter()
            plain_s += t2 - t1
            plain_done += 1
            plain_tokens += int((out[:, len(ids) :] != (model.generation_config.pad_token_id or -1)).sum())
            plain_txt = f"{t2 - t1:6.2f}s"
        same = "-"
        if i < greedy_k:
            greedy = backend.generate(prompt, SamplingParams(n=1, max_new_tokens=args.max_new_tokens))[0]
            with torch.inference_mode():
                ref = model.generate(
                    torch.tensor([ids], device=backend.device),
                    do_sample=False,
                    max_new_tokens=args.max_new_tokens,
                )
            ref_ids = [t for t in ref[0, len(ids) :].tolist() if t not in backend.eos_token_ids]
            same = "yes" if ref_ids == greedy.extra["token_ids"] else "NO"
            identical += same == "yes"
            checked += 1
        print(
            f"q{i:02d} prompt={len(ids)} tok (prefix {ours[0].extra['prefix_tokens']}): "
            f"ours {t1 - t0:6.2f}s  plain {plain_txt}  greedy identical: {same}",
            flush=True,
        )
    ours_mean = ours_s / len(prompts)
    print(f"ours: {len(prompts)} questions, {ours_s:.1f}s ({ours_mean:.2f}s/question, {ours_tokens} tokens)")
    if plain_done:
        plain_mean = plain_s / plain_done
        print(
            f"plain: {plain_done} questions, {plain_s:.1f}s ({plain_mean:.2f}s/question, {plain_tokens} tokens)"
        )
        print(f"speed-up (mean s/question): {plain_mean / ours_mean:.1f}x (goal >= 5x)")
    print(f"greedy token-identical: {identical}/{checked}")


if __name__ == "__main__":
    main()
