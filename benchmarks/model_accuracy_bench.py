"""Accuracy of the named models side by side (issue 15, item 5): EX, executable rate, seconds per question.

Runs ``sqlr1 eval spider`` (direct mode, the default runtime of each model, default settings per
device) for every requested setting, one at a time, each in its own run folder under ``--runs``
(an interrupted run resumes), then writes one table from the run reports. Sets:

* ``realistic``: ``benchmarks/realistic_eval.json``, questions a user would ask over Chinook and
  Northwind (``shared/data/sample_dbs``), gold verified by execution (tests/test_eval_sets.py);
* ``spider200``: the seeded 200-question Spider dev subset of ``benchmarks/spider_dev_200.json``.

A setting is ``SET:MODEL:N[:FLAG…]``, e.g. ``realistic:qwen2.5-coder-0.5b:1``; flags: ``nogrammar``
(SQL decoded without the catalog grammar), ``reasoning`` (instruct models reason before the SQL,
the GPU default; on this CPU the default is the SQL only), ``agent`` (the agent loop of ``sqlr1 ask``
and the chat: up to 3 attempts, each failed or doubtful one fed back; default: direct, one generation).

    PYTHONPATH=. python benchmarks/model_accuracy_bench.py --runs /tmp/runs SETTING... [--write]
    PYTHONPATH=. python benchmarks/model_accuracy_bench.py --runs /tmp/runs --table-only --write

``--rows FILE`` also writes every finished run's per-question rows (the ``--runs`` folder's name, setting,
question, verdict, the chosen SQL and its error, seconds) as JSON lines, so that a table can be checked and re-read later
(``benchmarks/model_accuracy_rows.jsonl`` is the committed copy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO.parent / "shared" / "data"
SECTION = "## Accuracy of the named models (issue 15)"


def set_files(name: str, runs: Path) -> tuple[Path, Path]:
    """(questions file, database root) of a set."""
    if name == "realistic":
        return HERE / "realistic_eval.json", DATA / "sample_dbs"
    if name == "spider200":
        subset = json.loads((HERE / "spider_dev_200.json").read_text(encoding="utf-8"))
        dev = json.loads((DATA / "spider" / "dev.json").read_text(encoding="utf-8"))
        path = runs / "spider_dev_200.questions.json"
        path.write_text(json.dumps([dev[i] for i in subset["ids"]]), encoding="utf-8")
        return path, DATA / "spider" / "database"
    raise SystemExit(f"unknown set {name!r}: realistic or spider200")


def run_setting(setting: str, runs: Path) -> Path:
    parts = setting.split(":")
    set_name, model, n = parts[0], parts[1], int(parts[2])
    flags = parts[3:]
    data, db_root = set_files(set_name, runs)
    out = runs / setting.replace(":", "_")
    cmd = [
        sys.executable, "-m", "sqlr1.mcp_server.cli.main", "--model", model, "eval", "spider",
        "--data", str(data), "--db-root", str(db_root), "--n", str(n), "--out", str(out), "--workers", "1",
    ]  # fmt: skip
    if "nogrammar" in flags:
        cmd.append("--no-grammar")
    if "reasoning" in flags:
        cmd += ["--reasoning", "on"]
    if "agent" in flags:
        cmd += ["--mode", "agent"]
    print("running", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return out


def row(setting: str, report: dict) -> str:
    results = report["results"]
    n = len(results)
    correct = sum(r["correct"] for r in results)
    executable = sum(r["pred_status"] == "ok" for r in results)
    by = report["accuracy"]
    diffs = " / ".join(
        f"{by[d]['correct']}/{by[d]['count']}" for d in ("simple", "moderate", "challenging") if d in by
    )
    per_question = sorted(r.get("generation_s") or 0.0 for r in results)
    seconds = per_question[n // 2] if per_question else 0.0  # the median: robust to a paused run
    runtime = (report.get("manifest") or {}).get("runtime", "?")
    set_name, model, k, *flags = setting.split(":")
    trained = (report.get("manifest") or {}).get("prompt_version", "").startswith("sqlr1-train")
    reasoning = "yes" if "reasoning" in flags or trained else "no"
    # the catalog grammar applies to the instruct prompt's SQL block only
    grammar = "–" if trained else ("off" if "nogrammar" in flags else "on")
    mode = "agent" if "agent" in flags else "direct"
    return (
        f"| {set_name} | {model} | {runtime} | {mode} | {k} | {grammar} | {reasoning} | {n} | "
        f"**{100 * correct / n:.1f} %** | {diffs or '–'} | {100 * executable / n:.1f} % | {seconds:.1f} |"
    )


def table(runs: Path) -> str:
    lines = [
        SECTION,
        "",
        "`PYTHONPATH=. python benchmarks/model_accuracy_bench.py --runs DIR SETTING... --write` (each setting "
        "is one `sqlr1 eval spider` run: direct mode (one generation) or agent mode (the loop of `sqlr1 ask`: "
        "up to 3 attempts with feedback), greedy for n=1, default settings of the CPU: schema "
        "linking for large schemas, the catalog grammar on the SQL block where the runtime has grammars). "
        "EX with Spider's test-suite semantics on the single database; *executable*: the chosen query ran; "
        "*s/question*: median generation time per question on this shared 2-core machine (load noted below).",
        "",
        "| set | model | runtime | mode | n | grammar | reasoning | questions | EX | "
        "simple / moderate / challenging | executable | s/question |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for folder in sorted(runs.iterdir()):
        report_file = folder / "report.json"
        if folder.is_dir() and report_file.is_file():
            report = json.loads(report_file.read_text(encoding="utf-8"))
            lines.append(row(_setting_of(folder.name), report))
    return "\n".join(lines) + "\n"


ROW_FIELDS = (
    "question_id", "db_id", "difficulty", "question", "correct", "pred_status", "pred_error",
    "pred_sql", "turns", "generation_s",
)  # fmt: skip


def write_rows(runs: Path, out: Path) -> int:
    """Write the per-question rows of every finished run to ``out`` (JSON lines); return their count."""
    lines = []
    for folder in sorted(runs.iterdir()):
        report_file = folder / "report.json"
        if not (folder.is_dir() and report_file.is_file()):
            continue
        report = json.loads(report_file.read_text(encoding="utf-8"))
        for r in report["results"]:
            row = {"runs": runs.name, "setting": _setting_of(folder.name)}
            row.update({k: r.get(k) for k in ROW_FIELDS})
            lines.append(json.dumps(row, ensure_ascii=False))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def _setting_of(folder: str) -> str:
    """``realistic_qwen2.5-coder-0.5b_1_nogrammar`` -> ``realistic:qwen2.5-coder-0.5b:1:nogrammar``."""
    set_name, rest = folder.split("_", 1)
    flags: list[str] = []
    while True:
        head, _, tail = rest.rpartition("_")
        if tail.isdigit():
            return ":".join([set_name, head, tail, *reversed(flags)])
        flags.append(tail)
        rest = head


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("settings", nargs="*", help="SET:MODEL:N[:nogrammar][:reasoning][:agent]")
    parser.add_argument("--runs", type=Path, required=True, help="folder of run folders")
    parser.add_argument("--table-only", action="store_true", help="only write the table from finished runs")
    parser.add_argument("--write", action="store_true", help="record the table in benchmarks/RESULTS.md")
    parser.add_argument(
        "--rows", type=Path, help="also write every run's per-question rows here (JSON lines)"
    )
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        for setting in args.settings:
            run_setting(setting, args.runs)
    text = table(args.runs)
    print(text)
    if args.rows:
        print(f"{write_rows(args.runs, args.rows)} rows -> {args.rows}")
    if args.write:
        sys.path.insert(0, str(HERE))
        from results_md import write_section

        write_section(SECTION, text)


if __name__ == "__main__":
    main()
