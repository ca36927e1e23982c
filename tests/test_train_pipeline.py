"""The one-command GPU run (benchmarks/gpu/train_pipeline.py), end to end on a CPU with tiny limits:
the bundled model through SFT and multi-turn GRPO (one real step each), every stage evaluated with the
real executor and scorer, the report with paired tests, curves, and adapters whose manifests carry the
measured figures. What a lent GPU runs is this with the Qwen presets' real limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def test_tiny_pipeline_trains_evaluates_and_reports(shared_data: Path, tmp_path: Path) -> None:
    realistic = tmp_path / "realistic.json"  # a realistic-set stand-in on a small bundled database
    realistic.write_text(
        json.dumps([{"question_id": 7, "db_id": "concert_singer", "question": "How many singers are there?",
                     "query": "SELECT count(*) FROM singer"}]),
        encoding="utf-8",
    )  # fmt: skip
    out = tmp_path / "run"
    cmd = [
        sys.executable, str(REPO / "benchmarks" / "gpu" / "train_pipeline.py"), "--tiny", "--out", str(out),
        "--data", str(shared_data), "--stages", "mt", "--decodings", "greedy", "--eval-limit", "1",
        "--realistic", str(realistic), "--realistic-db-root", str(REPO / "tests" / "data" / "spider"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert report["stages"] == ["base", "sft", "mt"] and report["sets"] == ["spider200", "realistic"]
    for set_name in ("spider200", "realistic"):
        for stage in ("base", "sft", "mt"):
            row = report["table"][set_name][stage]
            assert row["greedy_n"] == 1 and 0.0 <= row["agent3"] <= 100.0
    assert {(t["from"], t["to"]) for t in report["tests"]} >= {("base", "sft"), ("sft", "mt"), ("base", "mt")}
    assert "mt_beats_base" in report["goals"] and "mt_agent_loop_gain" in report["goals"]
    assert "## Paired one-sided sign tests" in (out / "results.md").read_text(encoding="utf-8")
    assert (out / "curves" / "sft.png").is_file() and (out / "curves" / "mt.png").is_file()

    manifest = json.loads((out / "models" / "mt" / "sqlr1_manifest.json").read_text(encoding="utf-8"))
    assert manifest["stages"] == ["sft", "grpo_multiturn"] and manifest["base_model"] == "bundled"
    assert (
        manifest["reward_settings"]["multiturn"]["max_turns"] == 2
        and manifest["reward_weights"]["turns"] == 1.0
    )
    assert manifest["metrics"]["spider200_ex_agent3"] == report["table"]["spider200"]["mt"]["agent3"]
    timeline = json.loads((out / "timeline.json").read_text(encoding="utf-8"))
    assert timeline[-1]["event"].startswith("done")
