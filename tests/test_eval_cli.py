"""``sqlr1 eval``: scoring prediction files, resuming, reports, compare, and both modes with the real model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES

from sqlr1.agent.evaluation.datasets import BIRD_SEPARATOR, load_items, read_predictions, write_predictions

SQLR1 = [sys.executable, "-m", "sqlr1.mcp_server.cli.main"]


@pytest.fixture
def spider_root(tmp_path: Path) -> Path:
    root = tmp_path / "database"
    for db in ("concert_singer", "pets_1"):
        shutil.copytree(FIXTURES / "spider" / db, root / db)
    return root


@pytest.fixture
def spider_data(tmp_path: Path) -> Path:
    dev = json.loads((FIXTURES / "spider" / "dev.json").read_text(encoding="utf-8"))
    items = [d for d in dev if d["db_id"] in ("concert_singer", "pets_1")][:12]
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


@pytest.fixture
def bird_layout(tmp_path: Path) -> tuple[Path, Path]:
    """A BIRD-layout folder built from Spider databases, with evidence and difficulty labels."""
    root = tmp_path / "dev_databases"
    shutil.copytree(FIXTURES / "spider" / "concert_singer", root / "concert_singer")
    items = [
        {
            "question_id": 0,
            "db_id": "concert_singer",
            "question": "How many singers are there?",
            "evidence": "singers refers to rows of singer",
            "SQL": "SELECT count(*) FROM singer",
            "difficulty": "simple",
        },
        {
            "question_id": 1,
            "db_id": "concert_singer",
            "question": "Name of the oldest singer?",
            "evidence": "oldest refers to MAX(Age)",
            "SQL": "SELECT Name FROM singer ORDER BY Age DESC LIMIT 1",
            "difficulty": "moderate",
        },
        {
            "question_id": 2,
            "db_id": "concert_singer",
            "question": "Stadiums with capacity above 10000?",
            "evidence": "",
            "SQL": "SELECT Name FROM stadium WHERE Capacity > 10000",
            "difficulty": "challenging",
        },
    ]
    data = tmp_path / "dev.json"
    data.write_text(json.dumps(items), encoding="utf-8")
    return data, root


def _sqlr1(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SQLR1, *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_prediction_files_round_trip(bird_layout: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = bird_layout
    items = load_items("bird", data)
    preds = {0: "SELECT 1", 2: "SELECT Name FROM stadium"}
    path = tmp_path / "predict_dev.json"
    write_predictions("bird", path, items, preds)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["0"] == f"SELECT 1{BIRD_SEPARATOR}concert_singer"
    assert read_predictions("bird", path, items) == {0: "SELECT 1", 1: "", 2: "SELECT Name FROM stadium"}


def test_score_spider_predictions_file_and_resume(
    spider_data: Path, spider_root: Path, tmp_path: Path
) -> None:
    items = load_items("spider", spider_data)
    lines = [it.gold_sql if it.idx % 3 else "SELECT 1" for it in items]  # every third one wrong
    preds = tmp_path / "pred.txt"
    preds.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "runs" / "spider-score"
    proc = _sqlr1(
        "eval",
        "spider",
        "--data",
        str(spider_data),
        "--db-root",
        str(spider_root),
        "--predictions",
        str(preds),
        "--out",
        str(out),
        "--workers",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    expected_correct = sum(1 for it in items if it.idx % 3)
    assert report["metric"] == "spider_ex"
    assert report["prompt"] is None  # a predictions file says nothing of its prompt
    assert "test-suite" in report["scoring"]["semantics"] and report["scoring"]["keep_distinct"] is False
    assert report["accuracy"]["total"] == {
        "count": len(items),
        "correct": expected_correct,
        "accuracy": round(100 * expected_correct / len(items), 2),
    }
    assert (out / "summary.md").is_file() and (out / "chart.png").stat().st_size > 1000

    # Interrupted run: keep the first 5 verdicts, drop the rest and cut the last line in half.
    log = out / "predictions.jsonl"
    kept = log.read_text(encoding="utf-8").splitlines()[:5]
    log.write_text("\n".join(kept) + "\n" + kept[-1][:20], encoding="utf-8")
    proc = _sqlr1(
        "eval",
        "spider",
        "--data",
        str(spider_data),
        "--db-root",
        str(spider_root),
        "--predictions",
        str(preds),
        "--out",
        str(out),
        "--workers",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert "resuming: 5 of" in proc.stderr
    again = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert again["accuracy"]["total"]["correct"] == expected_correct

    cmp_out = tmp_path / "cmp"
    proc = _sqlr1("eval", "compare", str(out), str(out), "--out", str(cmp_out))
    assert proc.returncode == 0, proc.stderr
    assert "spider-score" in (cmp_out / "summary.md").read_text(encoding="utf-8")
    assert (cmp_out / "chart.png").is_file()


def test_bird_scoring_reports_difficulties(bird_layout: tuple[Path, Path], tmp_path: Path) -> None:
    data, root = bird_layout
    preds = tmp_path / "predict_dev.json"
    items = load_items("bird", data)
    write_predictions(
        "bird",
        preds,
        items,
        {0: "SELECT count(*) FROM singer", 1: "SELECT Name FROM singer", 2: "SELECT nope"},
    )
    out = tmp_path / "bird-run"
    proc = _sqlr1(
        "eval",
        "bird",
        "--data",
        str(data),
        "--db-root",
        str(root),
        "--predictions",
        str(preds),
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    acc = json.loads((out / "report.json").read_text(encoding="utf-8"))["accuracy"]
    assert list(acc) == ["simple", "moderate", "challenging", "total"]
    assert (
        acc["simple"]["correct"] == 1
        and acc["moderate"]["correct"] == 0
        and acc["challenging"]["correct"] == 0
    )
    assert "simple" in proc.stdout  # the Markdown summary is printed


def test_missing_db_root_is_a_clear_error(spider_data: Path, tmp_path: Path) -> None:
    proc = _sqlr1(
        "eval",
        "spider",
        "--data",
        str(spider_data),
        "--db-root",
        str(tmp_path / "nowhere"),
        "--predictions",
        str(spider_data),
        "--out",
        str(tmp_path / "o"),
    )
    assert proc.returncode != 0
    assert "nowhere" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["direct", "agent"])
def test_end_to_end_with_the_bundled_model(mode: str, bird_layout: tuple[Path, Path], tmp_path: Path) -> None:
    data, root = bird_layout
    out = tmp_path / f"bird-{mode}"
    proc = _sqlr1(
        "eval",
        "bird",
        "--data",
        str(data),
        "--db-root",
        str(root),
        "--mode",
        mode,
        "--limit",
        "2",
        "--n",
        "1",
        "--max-turns",
        "2",
        "--max-new-tokens",
        "48",
        "--out",
        str(out),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["accuracy"]["total"]["count"] == 2
    assert report["config"]["mode"] == mode
    for r in report["results"]:
        assert r["pred_status"] in ("ok", "error", "timeout", "blocked", "syntax", "empty")
        assert r["turns"] is not None and 1 <= r["turns"] <= (2 if mode == "agent" else 1)
        assert r["generation_s"] is not None and r["generation_s"] > 0
    log_lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(log_lines) == 2 and all("trace" in json.loads(line)["prediction"] for line in log_lines)


@pytest.mark.slow
def test_direct_mode_through_a_stdio_server(bird_layout: tuple[Path, Path], tmp_path: Path) -> None:
    """The harness drives a `sqlr1 serve` subprocess over stdio, the way it drives a remote server."""
    data, root = bird_layout
    out = tmp_path / "bird-stdio"
    proc = _sqlr1(
        "eval",
        "bird",
        "--data",
        str(data),
        "--db-root",
        str(root),
        "--server",
        "stdio",
        "--limit",
        "1",
        "--n",
        "1",
        "--prompt",
        "sqlr1_inference",
        "--out",
        str(out),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["accuracy"]["total"]["count"] == 1
    assert report["results"][0]["generation_s"] > 0
    # the prompt the server used is recorded (SQL-R1's own, as asked, over the manifest's)
    assert report["prompt"] == {
        "variants": ["sqlr1_inference"],
        "versions": ["sqlr1-paper-inference-v1"],
        "linked_prompts": 0,
    }
    assert "prompt" in (out / "summary.md").read_text(encoding="utf-8")


def test_unknown_server_is_a_clear_error(bird_layout: tuple[Path, Path], tmp_path: Path) -> None:
    data, root = bird_layout
    proc = _sqlr1(
        "eval",
        "bird",
        "--data",
        str(data),
        "--db-root",
        str(root),
        "--server",
        "ftp://x",
        "--limit",
        "1",
        "--out",
        str(tmp_path / "o"),
    )
    assert proc.returncode == 2
    assert "--server must be" in proc.stderr
