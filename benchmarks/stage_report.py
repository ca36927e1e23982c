"""Stage comparison of a training run (issue 18): base → SFT → GRPO (and multi-turn GRPO), each set,
greedy single shot, greedy agent loop and n=8, with paired one-sided sign tests between stages and
between the agent loop and single shot, and the issue's goals checked.

Reads ``RUN/acc/<stage>_<set>_<decoding>.json`` (``benchmarks/accuracy_batched.py`` outputs;
``decoding`` is ``greedy``, run with ``--turns 3`` so that it holds both the first attempt and the
agent loop's last, or ``n8``) and writes ``RUN/results.json`` and ``RUN/results.md``. Questions are
paired by id; a run cut by its deadline is compared on the questions both runs answered.

    python benchmarks/stage_report.py runs/qwen05b
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlr1.agent.evaluation.significance import sign_test  # noqa: E402

STAGES = ("base", "sft", "grpo", "mt")
STAGE_NAMES = {
    "base": "base Instruct",
    "sft": "SFT",
    "grpo": "SFT + GRPO",
    "mt": "SFT + multi-turn GRPO",
}
SET_NAMES = {"spider200": "Spider dev subset (200)", "realistic": "realistic (Chinook/Northwind)"}
# (decoding column, file, which correctness field)
COLUMNS = (("greedy", "greedy", "first_correct"), ("agent3", "greedy", "correct"), ("n8", "n8", "correct"))
PAIRS = (("base", "sft"), ("sft", "grpo"), ("sft", "mt"), ("base", "grpo"), ("base", "mt"), ("grpo", "mt"))


def _load(run: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    runs = {}
    for f in sorted((run / "acc").glob("*.json")):
        parts = f.stem.split("_")
        if len(parts) == 3 and parts[0] in STAGES:
            runs[(parts[0], parts[1], parts[2])] = json.loads(f.read_text(encoding="utf-8"))
    return runs


def _outcomes(data: dict[str, Any], field: str) -> dict[Any, bool]:
    return {p["id"]: bool(p.get(field, p["correct"])) for p in data["predictions"]}


def _pair(a: dict[Any, bool], b: dict[Any, bool]) -> tuple[list[bool], list[bool]]:
    common = [k for k in a if k in b]
    return [a[k] for k in common], [b[k] for k in common]


def build(run: Path) -> dict[str, Any]:
    """The report's data (also written to ``results.json``)."""
    runs = _load(run)
    sets = [s for s in SET_NAMES if any(k[1] == s for k in runs)]
    stages = [s for s in STAGES if any(k[0] == s for k in runs)]
    table: dict[str, dict[str, dict[str, Any]]] = {}
    outcomes: dict[tuple[str, str, str], dict[Any, bool]] = {}
    for set_name in sets:
        for stage in stages:
            row: dict[str, Any] = {}
            for column, decoding, field in COLUMNS:
                data = runs.get((stage, set_name, decoding))
                if data is None:
                    continue
                got = _outcomes(data, field)
                outcomes[(stage, set_name, column)] = got
                row[column] = round(100 * sum(got.values()) / max(len(got), 1), 1)
                row[f"{column}_n"] = len(got)
                row["partial"] = row.get("partial", False) or bool(data["summary"].get("partial"))
            if row:
                table.setdefault(set_name, {})[stage] = row
    tests = []
    for set_name in sets:
        for column, _, _ in COLUMNS:
            for first, second in PAIRS:
                a, b = outcomes.get((first, set_name, column)), outcomes.get((second, set_name, column))
                if a is None or b is None:
                    continue
                t = sign_test(*_pair(a, b))
                tests.append(
                    {"set": set_name, "decoding": column, "from": first, "to": second, "questions": t.questions,
                     "gained": t.gained, "lost": t.lost, "delta_points": round(t.delta_points, 1), "p": t.p}
                )  # fmt: skip
    agent = []
    for set_name in sets:
        for stage in stages:
            a, b = outcomes.get((stage, set_name, "greedy")), outcomes.get((stage, set_name, "agent3"))
            if a is None or b is None:
                continue
            t = sign_test(*_pair(a, b))
            agent.append(
                {"set": set_name, "stage": stage, "questions": t.questions, "gained": t.gained, "lost": t.lost,
                 "delta_points": round(t.delta_points, 1), "p": t.p}
            )  # fmt: skip
    return {"sets": sets, "stages": stages, "table": table, "tests": tests, "agent_vs_single": agent,
            "goals": _goals(table, tests, agent)}  # fmt: skip


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _goals(table: dict[str, Any], tests: list[dict[str, Any]], agent: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's goals, each with the figures that decide it (``None``: not measured)."""
    goals: dict[str, Any] = {}
    for stage in ("grpo", "mt"):
        beats = [
            t for t in tests if t["from"] == "sft" and t["to"] == stage and t["decoding"] in ("greedy", "n8")
        ]
        if beats:
            best = min(beats, key=lambda t: t["p"])
            goals[f"{stage}_beats_sft_p<0.05"] = {"met": best["p"] < 0.05, "best": best}
    trained = [s for s in ("mt", "grpo") if any(s in rows for rows in table.values())]
    for stage in trained:
        spider = _find(tests, set="spider200", decoding="greedy", **{"from": "base", "to": stage})
        real = _find(tests, set="realistic", decoding="greedy", **{"from": "base", "to": stage})
        goals[f"{stage}_beats_base"] = {
            "spider200_points": spider["delta_points"] if spider else None,
            "spider200_met": bool(spider and spider["delta_points"] >= 10),
            "realistic_points": real["delta_points"] if real else None,
            "realistic_p": real["p"] if real else None,
            "realistic_met": bool(real and real["delta_points"] > 0 and real["p"] < 0.05),
        }
    for stage in ("grpo", "mt"):
        loop = _find(agent, set="spider200", stage=stage)
        if loop:
            goals[f"{stage}_agent_loop_gain"] = {
                "points": loop["delta_points"],
                "met": loop["delta_points"] >= 5,
            }
    return goals


def _fmt_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def to_markdown(report: dict[str, Any]) -> str:
    lines = ["## Stages: execution accuracy (%)", ""]
    for set_name in report["sets"]:
        lines += [
            f"### {SET_NAMES[set_name]}",
            "",
            "| stage | greedy | agent loop (3) | n=8 | questions |",
            "|---|---:|---:|---:|---:|",
        ]
        for stage, row in report["table"].get(set_name, {}).items():
            cells = [f"{row[c]:.1f}" if c in row else "–" for c in ("greedy", "agent3", "n8")]
            n = row.get("greedy_n", row.get("n8_n", 0))
            lines.append(
                f"| {STAGE_NAMES[stage]} | {' | '.join(cells)} | {n}{' (partial)' if row.get('partial') else ''} |"
            )
        lines.append("")
    lines += ["## Paired one-sided sign tests between stages", "",
              "| set | decoding | from → to | gained | lost | Δ points | p |", "|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for t in report["tests"]:
        lines.append(
            f"| {t['set']} | {t['decoding']} | {t['from']} → {t['to']} | {t['gained']} | {t['lost']} | "
            f"{t['delta_points']:+.1f} | {_fmt_p(t['p'])} |"
        )
    lines += ["", "## Agent loop (3 attempts) vs single shot, greedy", "",
              "| set | stage | gained | lost | Δ points | p |", "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for t in report["agent_vs_single"]:
        lines.append(
            f"| {t['set']} | {t['stage']} | {t['gained']} | {t['lost']} | {t['delta_points']:+.1f} | {_fmt_p(t['p'])} |"
        )
    lines += ["", "## Goals", "", "```json", json.dumps(report["goals"], indent=1), "```", ""]
    return "\n".join(lines)


def write(run: Path) -> dict[str, Any]:
    report = build(run)
    (run / "results.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (run / "results.md").write_text(to_markdown(report), encoding="utf-8")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    args = ap.parse_args()
    write(args.run)
    print((args.run / "results.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
