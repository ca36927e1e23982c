"""benchmarks/model_accuracy_bench.py: its table and per-question rows, read from run folders holding real
evaluation reports (``EvalReport`` as ``sqlr1 eval`` saves it) with known outcomes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from sqlr1.agent.evaluation.report import EvalReport, QuestionResult, accuracy_by_difficulty

REPO = Path(__file__).resolve().parent.parent


def _module() -> Any:
    path = REPO / "benchmarks" / "model_accuracy_bench.py"
    spec = importlib.util.spec_from_file_location("model_accuracy_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _save_run(folder: Path, outcomes: list[tuple[bool, str]], seconds: list[float]) -> None:
    results = []
    for i, ((correct, status), s) in enumerate(zip(outcomes, seconds, strict=True)):
        error = None if status == "ok" else "no such column: x"
        result = QuestionResult(
            idx=i, question_id=i, db_id="chinook", difficulty="simple" if i % 2 else "moderate",
            question=f"question {i}", pred_sql="SELECT 1", gold_sql="SELECT 1", correct=correct,
            pred_status=status, pred_error=error, generation_s=s, turns=1,
        )  # fmt: skip
        results.append(result)
    report = EvalReport(
        benchmark="spider", metric="spider_ex", config={}, manifest={"runtime": "llamacpp", "prompt_version": "instruct-v1"},
        accuracy=accuracy_by_difficulty(results), timing={}, results=results,
    )  # fmt: skip
    folder.mkdir(parents=True)
    report.save(folder)


def test_table_and_rows_from_run_folders(tmp_path: Path) -> None:
    bench = _module()
    runs = tmp_path / "runs"
    # 4 questions: 2 right (both moderate: even ids), 3 executable, median of the sorted seconds [1, 2, 3, 9] at index 2 = 3.0
    _save_run(
        runs / "realistic_qwen2.5-coder-0.5b_1_nogrammar_agent",
        [(True, "ok"), (False, "ok"), (True, "ok"), (False, "error")],
        [9.0, 1.0, 3.0, 2.0],
    )
    _save_run(runs / "spider200_smollm2-135m_8", [(False, "error"), (True, "ok")], [5.0, 7.0])

    text = bench.table(runs)
    rows = [
        line for line in text.splitlines() if line.startswith("| realistic") or line.startswith("| spider200")
    ]
    assert rows[0] == (
        "| realistic | qwen2.5-coder-0.5b | llamacpp | agent | 1 | off | no | 4 | **50.0 %** | 0/2 / 2/2 | "
        "75.0 % | 3.0 |"
    )
    assert rows[1].startswith(
        "| spider200 | smollm2-135m | llamacpp | direct | 8 | on | no | 2 | **50.0 %** |"
    )

    out = tmp_path / "rows.jsonl"
    assert bench.write_rows(runs, out) == 6
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {line["setting"] for line in lines} == {
        "realistic:qwen2.5-coder-0.5b:1:nogrammar:agent",
        "spider200:smollm2-135m:8",
    }
    wrong = [line for line in lines if line["pred_status"] != "ok"]
    assert [(w["question_id"], w["pred_error"]) for w in wrong] == [
        (3, "no such column: x"),
        (0, "no such column: x"),
    ]
    assert set(lines[0]) == {"runs", "setting", *bench.ROW_FIELDS} and lines[0]["runs"] == "runs"
