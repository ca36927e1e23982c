"""Backend throughput: tokens/s for the bundled model, and 8 candidates in one call vs 8 calls.

Runs one SQL-R1 prompt (concert_singer, fixed DDL) through a backend chosen like the server
chooses it (``mcp_server.backends.factory.load_backend``) and prints one row per backend:

* greedy tokens/s of a single sequence (n=1);
* sampled n=8 in ONE ``generate`` call vs 8 sequential n=1 calls, same seeds and max_new_tokens;
  the ratio compares generated tokens per second (both sides may stop early at end-of-sequence).

    python benchmarks/backend_tokens_bench.py [--backend transformers|vllm|openai] [--max-new-tokens 48]

The prompt's schema prefix is warmed first, so both sides measure decoding plus the question
suffix, not the one-time schema prefill.
"""

from __future__ import annotations

import argparse
import time

DDL = """CREATE TABLE stadium (
    Stadium_ID number, -- example: [1, 2]
    Location text, -- example: ['Raith Rovers', 'Ayr United']
    Name text, -- example: ["Stark's Park", 'Somerset Park']
    Capacity number, -- example: [10104, 11998]
    PRIMARY KEY (Stadium_ID)
);

CREATE TABLE singer (
    Singer_ID number, -- example: [1, 2]
    Name text, -- example: ['Joe Sharp', 'Timbaland']
    Country text, -- example: ['Netherlands', 'United States']
    Age number, -- example: [52, 32]
    PRIMARY KEY (Singer_ID)
);"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="transformers", choices=["transformers", "vllm", "openai"])
    ap.add_argument("--model", default=None)
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()

    from sqlr1.mcp_server.backends.base import SamplingParams
    from sqlr1.mcp_server.backends.factory import load_backend
    from sqlr1.mcp_server.core.config import ModelConfig
    from sqlr1.mcp_server.method.prompt import build_prompt

    backend = load_backend(ModelConfig(backend=args.backend, model=args.model, base_url=args.base_url))
    prompt = build_prompt(DDL, "What are the names of singers older than 40, ordered by age?")
    m = args.max_new_tokens
    backend.generate(prompt, SamplingParams(n=1, max_new_tokens=2))  # warm up (schema prefix, kernels)

    t0 = time.perf_counter()
    single = backend.generate(prompt, SamplingParams(n=1, max_new_tokens=m))[0]
    single_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    batch = backend.generate(prompt, SamplingParams(n=args.n, temperature=0.8, max_new_tokens=m, seed=0))
    batch_s = time.perf_counter() - t0
    batch_tok = sum(c.num_tokens for c in batch)

    t0 = time.perf_counter()
    seq_tok = 0
    for k in range(args.n):
        seq_tok += backend.generate(prompt, SamplingParams(n=1, temperature=0.8, max_new_tokens=m, seed=k))[
            0
        ].num_tokens
    seq_s = time.perf_counter() - t0

    batch_tps, seq_tps = batch_tok / batch_s, seq_tok / seq_s
    print(f"# backend={backend.name} model={backend.model_id} max_new_tokens={m} n={args.n}")
    print(
        "| backend | greedy tok/s (n=1) | n=8 one call: tok, s, tok/s | 8 sequential calls: tok, s, tok/s | ratio |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {backend.name} | {single.num_tokens / single_s:.1f} | {batch_tok}, {batch_s:.1f}, {batch_tps:.1f} "
        f"| {seq_tok}, {seq_s:.1f}, {seq_tps:.1f} | {batch_tps / seq_tps:.1f}x (goal >= 4x) |"
    )


if __name__ == "__main__":
    main()
