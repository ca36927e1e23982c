"""benchmarks/stage_report.py: the stage table, the paired tests and the issue's goals, from the
per-question files benchmarks/accuracy_batched.py writes (synthetic outcomes with known answers)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("stage_report", REPO / "benchmarks" / "stage_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(run: Path, label: str, first: list[bool], last: list[bool], *, partial: bool = False) -> None:
    preds = [
        {"id": i, "sql": "SELECT 1", "first_correct": f, "correct": c}
        for i, (f, c) in enumerate(zip(first, last, strict=True))
    ]
    (run / "acc").mkdir(parents=True, exist_ok=True)
    data = {"summary": {"label": label, "partial": partial}, "predictions": preds}
    (run / "acc" / f"{label}.json").write_text(json.dumps(data), encoding="utf-8")


def test_stage_table_paired_tests_and_goals(tmp_path: Path) -> None:
    n = 200
    base = [i < 20 for i in range(n)]  # 10 %
    sft = [i < 50 for i in range(n)]  # 25 %
    grpo = [i < 70 for i in range(n)]  # 35 %: +20 questions over SFT, none lost
    mt_first = [i < 66 for i in range(n)]
    mt_agent = [i < 80 for i in range(n)]  # the loop fixes 14 questions
    for set_name in ("spider200", "realistic"):
        _write(tmp_path, f"base_{set_name}_greedy", base, base)
        _write(tmp_path, f"sft_{set_name}_greedy", sft, sft)
        _write(tmp_path, f"grpo_{set_name}_greedy", grpo, grpo)
        _write(tmp_path, f"mt_{set_name}_greedy", mt_first, mt_agent)
        _write(tmp_path, f"grpo_{set_name}_n8", grpo, grpo, partial=True)
    report = _module().write(tmp_path)

    row = report["table"]["spider200"]["mt"]
    assert (row["greedy"], row["agent3"]) == (33.0, 40.0) and "n8" not in row
    assert report["table"]["realistic"]["grpo"]["partial"] is True
    t = next(
        t
        for t in report["tests"]
        if (t["set"], t["decoding"], t["from"], t["to"]) == ("spider200", "greedy", "sft", "grpo")
    )
    assert (t["gained"], t["lost"], t["delta_points"]) == (20, 0, 10.0) and t["p"] < 1e-5
    loop = next(a for a in report["agent_vs_single"] if a["set"] == "spider200" and a["stage"] == "mt")
    assert (loop["gained"], loop["delta_points"]) == (14, 7.0)
    goals = report["goals"]
    assert goals["grpo_beats_sft_p<0.05"]["met"] and goals["mt_agent_loop_gain"]["met"]
    assert goals["grpo_beats_base"]["spider200_points"] == 25.0 and goals["grpo_beats_base"]["realistic_met"]
    assert not goals["grpo_agent_loop_gain"]["met"]  # the single-turn checkpoint's loop gains nothing here
    md = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "| SFT + multi-turn GRPO | 33.0 | 40.0 | – | 200 |" in md and "sft → grpo" in md


def test_runs_cut_by_a_deadline_are_paired_on_common_questions(tmp_path: Path) -> None:
    _write(tmp_path, "sft_spider200_greedy", [False] * 10, [False] * 10)
    _write(tmp_path, "grpo_spider200_greedy", [True] * 4, [True] * 4, partial=True)
    report = _module().build(tmp_path)
    t = report["tests"][0]
    assert (t["questions"], t["gained"], t["lost"]) == (4, 4, 0)
    assert report["table"]["spider200"]["grpo"]["greedy_n"] == 4
