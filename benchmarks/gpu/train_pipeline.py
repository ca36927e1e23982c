"""One command for one model: SFT cold start → GRPO (SQL-R1 reward) and multi-turn GRPO (execution
feedback) → evaluation of every stage → paired tests, curves, adapters, in one small results folder.

Made for one lent GPU run (``benchmarks/gpu/train_suite.sh`` unpacks the staged files and calls it);
``--tiny`` runs the same pipeline on a CPU with tiny limits (``tests/test_train_pipeline.py``).

    python benchmarks/gpu/train_pipeline.py --model qwen2.5-coder-0.5b --presets qwen05b --out /tmp/out/run
    python benchmarks/gpu/train_pipeline.py --tiny --out runs/tiny           # CPU: bundled SmolLM2, 1 step each

What runs when (a 0.5B model leaves an H100 mostly idle, so separate processes share it; with
``--serial``, the CPU default, one at a time):

* start: the base model converted once (GGUF → cached safetensors); base evaluations begin;
* SFT (``sft_<presets>_gpu.toml``, time-capped), exported as a bf16 adapter; its evaluations begin;
* GRPO and multi-turn GRPO from the SFT export, in parallel, time-capped so that their evaluations fit
  the deadline; each exported; their evaluations begin;
* end: evaluations finish (each stops starting generate calls at the deadline and scores what it has),
  ``benchmarks/stage_report.py`` writes results.md/json, the trained adapters are exported again with
  their measured figures in the manifest.

Evaluations (``benchmarks/accuracy_batched.py``): per stage and set (the Spider dev 200 subset, the
realistic Chinook/Northwind set), greedy with the agent loop (3 attempts; the first attempt is the
single-shot figure) and n=8 self-consistency. Output under ``--out``: ``results.md``, ``results.json``,
``acc/<stage>_<set>_<decoding>.json``, ``curves/<stage>.png``, ``models/<stage>/`` (adapter +
manifest), ``runs/<stage>/`` (run records), ``logs/*.log``, ``timeline.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

# CPU tiny limits: one optimizer step per stage on two questions, short completions
TINY_SFT = ["--max-steps", "1", "--limit", "2", "--set", "train.per_device_train_batch_size=1",
            "--set", "train.gradient_accumulation_steps=1", "--set", "sft.max_length=1024",
            "--set", "train.cpu_threads=1", "--set", "train.dataloader_num_workers=0"]  # fmt: skip
TINY_GRPO = ["--max-steps", "1", "--limit", "2", "--set", "grpo.num_generations=2", "--set", "grpo.prompts_per_step=1",
             "--set", "train.per_device_train_batch_size=2", "--set", "grpo.steps_per_generation=1",
             "--set", "grpo.max_completion_length=24", "--set", "grpo.max_prompt_length=1024",
             "--set", "grpo.use_vllm=\"off\"", "--set", "reward.workers=1", "--set", "train.cpu_threads=1",
             "--set", "multiturn.max_turns=2"]  # fmt: skip


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    started: float
    out: Path | None = None


@dataclass
class Pipeline:
    args: argparse.Namespace
    out: Path
    t0: float = field(default_factory=time.monotonic)
    running: list[Proc] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    # -- bookkeeping ---------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.args.deadline_s - self.elapsed()

    def say(self, message: str) -> None:
        line = f"[{self.elapsed():6.0f}s] {message}"
        print(line, flush=True)
        self.timeline.append({"t": round(self.elapsed(), 1), "event": message})

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        env.update(PYTHONUNBUFFERED="1", TRL_EXPERIMENTAL_SILENCE="1", TOKENIZERS_PARALLELISM="false")
        if self.args.tiny:
            env["OMP_NUM_THREADS"] = "1"
        return env

    def start(self, name: str, cmd: list[str], out: Path | None = None) -> Proc:
        log = self.out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.say(f"{name}: start")
        with log.open("wb") as f:
            f.write((" ".join(cmd) + "\n").encode())
            f.flush()
            popen = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=self.env(), cwd=REPO)
        proc = Proc(name, popen, log, time.monotonic(), out)
        self.running.append(proc)
        if self.args.serial:
            self.wait([proc])
        return proc

    def wait(self, procs: list[Proc], *, until: float | None = None) -> bool:
        """Wait for ``procs`` (until ``until`` seconds into the run); kill those still running then.
        True when all ended with status 0."""
        ok = True
        for p in procs:
            timeout = None if until is None else max(1.0, until - self.elapsed())
            try:
                rc = p.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                rc = p.popen.wait()
                self.say(f"{p.name}: stopped at the deadline")
            if p in self.running:
                self.running.remove(p)
                self.say(f"{p.name}: exit {rc} after {time.monotonic() - p.started:.0f}s")
            ok = ok and rc == 0
        return ok

    # -- steps -----------------------------------------------------------------------------------

    def python(self, *args: str) -> list[str]:
        return [sys.executable, *args]

    def prepare_base(self) -> None:
        """Convert a GGUF base once, before several processes would each convert it."""
        code = (
            "from sqlr1.mcp_server.backends.loading import converted_gguf, resolve_model\n"
            f"r = resolve_model({self.args.model!r})\n"
            "print(converted_gguf(r.source) if r.kind == 'gguf' else r.source)\n"
        )
        proc = self.start("convert", self.python("-c", code))
        if not self.wait([proc]):
            raise SystemExit(f"could not load the base model {self.args.model}: see {proc.log}")

    def evaluate(self, stage: str, model: str) -> list[Proc]:
        procs = []
        for set_name in self.args.sets:
            for decoding in self.args.decodings:
                label = f"{stage}_{set_name}_{decoding}"
                out = self.out / "acc" / f"{label}.json"
                cmd = self.python(
                    str(REPO / "benchmarks" / "accuracy_batched.py"), "--model", model, "--data", str(self.args.data),
                    "--label", label, "--out", str(out), "--max-new-tokens", str(self.args.max_new_tokens),
                    "--deadline-s", str(max(10, int(self.left() - self.args.report_reserve_s))),
                )  # fmt: skip
                if decoding == "greedy":
                    cmd += ["--n", "1", "--turns", "3", "--batch", str(self.args.batch_greedy)]
                else:
                    cmd += ["--n", "8", "--batch", str(self.args.batch_n8)]
                if set_name == "realistic":
                    cmd += [
                        "--questions",
                        str(self.args.realistic),
                        "--db-root",
                        str(self.args.realistic_db_root),
                    ]
                if self.args.eval_limit:
                    cmd += ["--limit", str(self.args.eval_limit)]
                procs.append(self.start(f"eval-{label}", cmd, out))
        return procs

    def train(self, stage: str, preset: str, extra: list[str], minutes: float | None) -> Proc:
        kind = "sft" if stage == "sft" else "grpo"
        cmd = self.python(
            "-m", "sqlr1.training.cli", kind, "--config", preset, "--output-dir", str(self.out / "runs" / stage),
            "--no-resume", "--base", self.args.model, *extra,
        )  # fmt: skip
        if minutes is not None:
            cmd += ["--max-minutes", f"{minutes:.2f}"]
        if self.args.tiny:
            cmd += TINY_SFT if kind == "sft" else TINY_GRPO
        return self.start(f"train-{stage}", cmd)

    def export(self, stage: str, metrics: dict[str, float] | None = None) -> Path:
        folder = self.out / "models" / stage
        cmd = self.python(
            "-m", "sqlr1.training.cli", "export", str(self.out / "runs" / stage), "--out", str(folder), "--dtype", "bf16",
            "--notes", f"{stage} stage of benchmarks/gpu/train_pipeline.py ({self.args.presets}, base {self.args.model})",
        )  # fmt: skip
        for k, v in (metrics or {}).items():
            cmd += ["--metric", f"{k}={v}"]
        proc = self.start(f"export-{stage}{'-figures' if metrics else ''}", cmd)
        if not self.wait([proc]):
            raise SystemExit(f"export of {stage} failed: see {proc.log}")
        curves = self.out / "runs" / stage / "training_curves.png"
        if curves.is_file():
            (self.out / "curves").mkdir(exist_ok=True)
            (self.out / "curves" / f"{stage}.png").write_bytes(curves.read_bytes())
        return folder

    def minutes_for(self, preset_minutes: float | None, reserve_s: float) -> float:
        """Training minutes: the preset's cap, or less so that ``reserve_s`` is left for what follows."""
        budget = (self.left() - reserve_s) / 60
        if budget < 0.5:
            raise SystemExit(f"not enough time left for training ({self.left():.0f}s before the deadline)")
        return min(preset_minutes or budget, budget)

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> int:
        from sqlr1.training.config import CONFIGS_DIR, load_grpo_config, load_sft_config

        a = self.args
        presets = {
            "sft": CONFIGS_DIR / f"sft_{a.presets}_gpu.toml",
            "grpo": CONFIGS_DIR / f"grpo_{a.presets}_gpu.toml",
            "mt": CONFIGS_DIR / f"grpo_mt_{a.presets}_gpu.toml",
        }
        stages = [s for s in ("grpo", "mt") if s in a.stages]
        self.say(
            f"model {a.model}, presets {a.presets}, stages sft+{'+'.join(stages)}, deadline {a.deadline_s}s"
        )
        self.prepare_base()
        evals = self.evaluate("base", a.model)
        sft_minutes = self.minutes_for(load_sft_config(presets["sft"]).train.max_minutes, a.grpo_reserve_s)
        if not self.wait([self.train("sft", str(presets["sft"]), [], None if a.tiny else sft_minutes)]):
            raise SystemExit("SFT failed: see logs/train-sft.log")
        sft = self.export("sft")
        evals += self.evaluate("sft", str(sft))
        grpo_minutes = min(
            self.minutes_for(load_grpo_config(presets[s]).train.max_minutes, a.eval_reserve_s) for s in stages
        )
        runs = [
            self.train(s, str(presets[s]), ["--init-from", str(sft)], None if a.tiny else grpo_minutes)
            for s in stages
        ]
        finished = [s for s, p in zip(stages, runs, strict=True) if self.wait([p])]
        for s in finished:
            evals += self.evaluate(s, str(self.export(s)))
        self.wait(evals, until=a.deadline_s - a.report_reserve_s)
        from stage_report import write  # benchmarks/stage_report.py

        report = write(self.out)
        for s in finished:  # the measured figures go into the manifest
            self.export(s, _figures(report, s))
        self.say(f"done: {self.out / 'results.md'}")
        (self.out / "timeline.json").write_text(json.dumps(self.timeline, indent=1) + "\n", encoding="utf-8")
        return 0 if len(finished) == len(stages) else 1


def _figures(report: dict[str, Any], stage: str) -> dict[str, float]:
    out = {}
    for set_name, rows in report["table"].items():
        for column, value in rows.get(stage, {}).items():
            if column in ("greedy", "agent3", "n8"):
                out[f"{set_name}_ex_{column}"] = float(value)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="base model (a name, a .gguf path, ...); --tiny: bundled")
    ap.add_argument(
        "--presets",
        default="qwen05b",
        help="preset family: training/configs/{sft,grpo,grpo_mt}_<this>_gpu.toml",
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=None, help="shared data folder (spider/, sample_dbs/)")
    ap.add_argument("--realistic", type=Path, default=REPO / "benchmarks" / "realistic_eval.json")
    ap.add_argument(
        "--realistic-db-root", type=Path, default=None, help="its databases (default: DATA/sample_dbs)"
    )
    ap.add_argument("--sets", default="spider200,realistic")
    ap.add_argument("--decodings", default="greedy,n8", help="greedy (with the agent loop) and/or n8")
    ap.add_argument(
        "--stages", default="grpo,mt", help="GRPO stages after SFT: grpo, mt (multi-turn) or both"
    )
    ap.add_argument("--deadline-s", type=float, default=560.0, help="the whole run, start to report")
    ap.add_argument(
        "--grpo-reserve-s", type=float, default=330.0, help="left after SFT for GRPO and its evaluation"
    )
    ap.add_argument(
        "--eval-reserve-s", type=float, default=190.0, help="left after GRPO for evaluation and report"
    )
    ap.add_argument(
        "--report-reserve-s", type=float, default=40.0, help="left after evaluation for the report"
    )
    ap.add_argument("--max-new-tokens", type=int, default=384)
    ap.add_argument("--batch-greedy", type=int, default=64)
    ap.add_argument("--batch-n8", type=int, default=16)
    ap.add_argument("--eval-limit", type=int, default=None, help="questions per set (default: all)")
    ap.add_argument(
        "--tiny", action="store_true", help="CPU smoke run: bundled model, 1 step per stage, 2 questions"
    )
    ap.add_argument("--serial", action="store_true", help="one process at a time (default with --tiny)")
    args = ap.parse_args(argv)
    if args.tiny:
        args.model = args.model or "bundled"
        args.serial = True
        args.eval_limit = args.eval_limit or 2
        args.max_new_tokens = min(args.max_new_tokens, 32)
        args.deadline_s = max(args.deadline_s, 3600.0)
    if not args.model:
        ap.error("--model is required (or --tiny)")
    if args.data is None:
        from sqlr1.training.config import resolve_path

        args.data = Path(resolve_path("${SQLR1_DATA}"))
    args.realistic_db_root = args.realistic_db_root or args.data / "sample_dbs"
    args.sets = [s for s in args.sets.split(",") if s]
    args.decodings = [d for d in args.decodings.split(",") if d in ("greedy", "n8")]
    args.stages = [s for s in args.stages.split(",") if s]
    if "realistic" in args.sets and not args.realistic.is_file():
        ap.error(f"the realistic set {args.realistic} is missing: pass --realistic FILE or --sets spider200")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    return Pipeline(args, args.out).run()


if __name__ == "__main__":
    sys.exit(main())
