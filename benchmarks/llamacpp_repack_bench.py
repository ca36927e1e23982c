"""What loading without llama.cpp's extra buffer types costs (the AMX fix of issue 15): prefill and
decode tokens/s of the named GGUF models with ``use_extra_bufts`` on and off, side by side.

On a build with ggml's AMX kernels, ``use_extra_bufts`` on crashes (ggml-org/llama.cpp#20824); that
configuration is then reported as a crash (the child's signal), not run to the end. ``--site`` times
another build of llama-cpp-python (a folder made by ``pip install --target``), e.g. one compiled
without ``-march=native``. Each measurement runs in its own process, pinned to one thread.

    PYTHONPATH=. python benchmarks/llamacpp_repack_bench.py [--site DIR] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
PROMPT_TOKENS = 600
DECODE_STEPS = 64

CHILD = f"""
import sys, time
import llama_cpp as lib

path, extra = sys.argv[1], sys.argv[2] == "1"
lib.llama_backend_init()
mparams = lib.llama_model_default_params()
mparams.use_extra_bufts = extra
model = lib.llama_model_load_from_file(path.encode(), mparams)
cparams = lib.llama_context_default_params()
cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = 2048, 512, 512
cparams.n_threads = cparams.n_threads_batch = 1
ctx = lib.llama_init_from_model(model, cparams)
vocab = lib.llama_model_get_vocab(model)
text = ("CREATE TABLE t (a INT, b TEXT);\\n" * 60).encode()
tokens = (lib.llama_token * 2048)()
n = min(lib.llama_tokenize(vocab, text, len(text), tokens, 2048, True, False), {PROMPT_TOKENS})
start = time.perf_counter()
for pos in range(0, n, 512):
    chunk = (lib.llama_token * min(512, n - pos))(*tokens[pos : pos + 512][: n - pos])
    assert lib.llama_decode(ctx, lib.llama_batch_get_one(chunk, len(chunk))) == 0
prefilled = time.perf_counter()
for step in range({DECODE_STEPS}):
    one = (lib.llama_token * 1)(100 + step)
    assert lib.llama_decode(ctx, lib.llama_batch_get_one(one, 1)) == 0
done = time.perf_counter()
print(n / (prefilled - start), {DECODE_STEPS} / (done - prefilled))
"""


def measure(gguf: Path, extra: bool, site: Path | None) -> tuple[float, float] | str:
    """(prefill tok/s, decode tok/s), or why the child did not finish."""
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(gguf), "1" if extra else "0"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    if run.returncode != 0:
        return f"exit {run.returncode}" + (" (SIGSEGV)" if run.returncode == -11 else "")
    prefill, decode = map(float, run.stdout.split())
    return prefill, decode


def main() -> None:
    from sqlr1.mcp_server.backends.model_registry import gguf_path, is_installed, lookup

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, help="another llama-cpp-python build (pip install --target DIR)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(
        f"build: {args.site or 'this environment'}; {PROMPT_TOKENS}-token prompt, {DECODE_STEPS} decode steps, 1 thread"
    )
    print("| round | model | extra buffer types | prefill tok/s | decode tok/s |")
    print("|---|---|---|---|---|")
    for round_ in range(1, args.rounds + 1):
        for name in MODELS:
            model = lookup(name)
            if model is None or not is_installed(model):
                print(f"| {round_} | {name} | – | not installed | |")
                continue
            for extra in (True, False):
                got = measure(gguf_path(model), extra, args.site)
                cells = f"{got} | –" if isinstance(got, str) else f"{got[0]:.1f} | {got[1]:.1f}"
                print(f"| {round_} | {name} | {'on' if extra else 'off'} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
