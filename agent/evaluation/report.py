"""Evaluation reports: per-difficulty accuracy, a JSON report, a Markdown summary and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["Bucket", "EvalReport", "QuestionResult", "accuracy_by_difficulty", "plot_reports", "to_markdown"]

DIFFICULTY_ORDER = ["simple", "moderate", "challenging", "easy", "medium", "hard", "extra", "all", "unknown"]


class QuestionResult(BaseModel):
    idx: int
    question_id: int | str
    db_id: str
    difficulty: str
    question: str
    pred_sql: str
    gold_sql: str
    correct: bool
    pred_status: str
    pred_error: str | None = None
    gold_error: str | None = None
    databases: int = 1
    turns: int | None = None
    generation_s: float | None = None
    ves_reward: float | None = None


class Bucket(BaseModel):
    count: int
    correct: int
    accuracy: float  # percent


class EvalReport(BaseModel):
    benchmark: str
    metric: str = Field(description="bird_ex, spider_test_suite_ex or spider_ex (single database)")
    config: dict[str, Any]
    manifest: dict[str, Any] | None = None
    prompt: dict[str, Any] | None = Field(
        default=None,
        description="The prompt variant(s) and version(s) the predictions were made with (None: scored a file).",
    )
    scoring: dict[str, Any] = Field(
        default_factory=dict,
        description="How verdicts were reached: the official semantics and their options.",
    )
    accuracy: dict[str, Bucket]
    r_ves: float | None = None
    timing: dict[str, float]
    turns: dict[str, float] | None = None
    results: list[QuestionResult]

    def save(self, folder: Path) -> dict[str, Path]:
        """Write report.json and summary.md (and chart.png) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": folder / "report.json",
            "markdown": folder / "summary.md",
            "chart": folder / "chart.png",
        }
        paths["json"].write_text(self.model_dump_json(indent=2), encoding="utf-8")
        paths["markdown"].write_text(to_markdown([self], [folder.name]), encoding="utf-8")
        plot_reports([self], [folder.name], paths["chart"])
        return paths

    @classmethod
    def load(cls, path: Path) -> EvalReport:
        if path.is_dir():
            path = path / "report.json"
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))


def accuracy_by_difficulty(results: list[QuestionResult]) -> dict[str, Bucket]:
    """Counts and accuracy per difficulty, plus ``total`` (BIRD's simple/moderate/challenging/total)."""
    groups: dict[str, list[bool]] = {}
    for r in results:
        groups.setdefault(r.difficulty, []).append(r.correct)
    ordered = sorted(groups, key=lambda d: (DIFFICULTY_ORDER.index(d) if d in DIFFICULTY_ORDER else 99, d))
    out = {d: _bucket(groups[d]) for d in ordered}
    out["total"] = _bucket([r.correct for r in results])
    return out


def _bucket(flags: list[bool]) -> Bucket:
    n, c = len(flags), sum(flags)
    return Bucket(count=n, correct=c, accuracy=round(100.0 * c / n, 2) if n else 0.0)


def to_markdown(reports: list[EvalReport], names: list[str]) -> str:
    """One table: a row per run, a column per difficulty (accuracy % and count)."""
    columns: list[str] = []
    for rep in reports:
        for key in rep.accuracy:
            if key not in columns:
                columns.append(key)
    lines = [
        f"# Evaluation: {reports[0].benchmark} ({reports[0].metric})",
        "",
        "| run | mode | model | prompt | " + " | ".join(columns) + " |",
        "|---|---|---|---|" + "---|" * len(columns),
    ]
    for name, rep in zip(names, reports, strict=True):
        cells = []
        for key in columns:
            b = rep.accuracy.get(key)
            cells.append(f"{b.accuracy:.1f} ({b.correct}/{b.count})" if b else "–")
        lines.append(
            f"| {name} | {rep.config.get('mode', 'score')} | {rep.config.get('model') or '–'} | "
            f"{', '.join((rep.prompt or {}).get('variants', [])) or '–'} | " + " | ".join(cells) + " |"
        )
    for name, rep in zip(names, reports, strict=True):
        extra = [f"{k} {v:.1f} s" for k, v in rep.timing.items()]
        if rep.turns:
            extra.append("turns " + ", ".join(f"{k} {v:.2f}" for k, v in rep.turns.items()))
        if rep.r_ves is not None:
            extra.append(f"R-VES {rep.r_ves:.2f}")
        lines.append(f"\n- **{name}**: " + "; ".join(extra))
    return "\n".join(lines) + "\n"


def plot_reports(reports: list[EvalReport], names: list[str], path: Path) -> None:
    """Grouped bar chart of accuracy by difficulty, one bar group per difficulty, one bar per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys: list[str] = []
    for rep in reports:
        keys += [k for k in rep.accuracy if k not in keys]
    width = 0.8 / max(1, len(reports))
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(keys) + 2), 3.6), dpi=120)
    for i, (name, rep) in enumerate(zip(names, reports, strict=True)):
        xs = [k + i * width for k in range(len(keys))]
        ys = [rep.accuracy[k].accuracy if k in rep.accuracy else 0.0 for k in keys]
        bars = ax.bar(xs, ys, width=width, label=f"{name} ({rep.config.get('mode', 'score')})")
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks([k + width * (len(reports) - 1) / 2 for k in range(len(keys))], keys)
    ax.set_ylabel("execution accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"{reports[0].benchmark}: {reports[0].metric}")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
