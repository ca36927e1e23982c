"""Run the ORIGINAL scorers on the parity corpus and write the values they give into its JSON files.

Not part of the test suite and never imported by it: it needs local checkouts of the originals, run
unmodified (nothing of theirs is copied into this repository):

* SQL-R1 (IDEA-FinAI/SQL-R1): ``verl/utils/reward_score/{synsql,exec_eval,parse}.py``, imported as the
  package ``reward_score`` from ``<sqlr1>/verl/utils``; ``compute_score`` is called on
  ``<|im_start|>assistant\\n<think>`` + completion, as verl's RewardManager decodes prompt + response,
  and its printed component scores are read from its own output;
* the Spider test-suite (taoyds/test-suite-sql-eval): ``exec_eval.eval_exec_match(db, p_str, g_str,
  plug_value=False, keep_distinct=False, progress_bar_for_each_datapoint=False)`` with ``p_str`` after
  ``evaluation.py``'s own ``p_str.replace("value", "1")`` (its line 569, the one line restated here);
* BIRD (AlibabaResearch/DAMO-ConvAI): ``bird/llm/src/evaluation.py``'s ``execute_model(pred, gold,
  db_path, idx, meta_time_out=30.0)``.

Usage (a Python with ``sqlparse`` and ``func_timeout``, e.g. a scratch venv)::

    python scripts/parity_originals.py --sqlr1 ~/src/SQL-R1 --test-suite ~/src/test-suite-sql-eval \\
        --bird ~/src/DAMO-ConvAI

It rewrites ``tests/data/parity/reward_cases.json`` (key ``sqlr1``) and ``metric_pairs.json`` (keys
``bird`` and ``spider``), keeping every other key (``ours``, ``reason``) as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

PARITY = Path(__file__).resolve().parent.parent / "tests" / "data" / "parity"
HEADER = "<|im_start|>user\nQ\n<|im_end|>\n<|im_start|>assistant\n<think>"
_SCORE_LINE = re.compile(r"-- (Format|Exec|Result|Length|Total) Score: (\S+)")


def build_databases(root: Path) -> dict[str, Path]:
    """The parity databases in the layouts the originals expect; returns db_id -> main file."""
    schema = (PARITY / "parity.sql").read_text(encoding="utf-8")
    variant = (PARITY / "parity_variant.sql").read_text(encoding="utf-8")

    def make(path: Path, *scripts: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            for script in scripts:
                conn.executescript(script)
            conn.commit()
        return path

    make(root / "data/NL2SQL/SynSQL-2.5M/databases/parity/parity.sqlite", schema)
    out = {"parity": make(root / "spider/parity/parity.sqlite", schema)}
    out["parity_ts"] = make(root / "spider/parity_ts/parity_ts.sqlite", schema)
    make(root / "spider/parity_ts/parity_ts_variant.sqlite", schema, variant)
    return out


def sqlr1_scores(sqlr1: Path, cases: list[dict[str, Any]], root: Path) -> None:
    sys.path.insert(0, str(sqlr1 / "verl" / "utils"))
    from reward_score import synsql  # type: ignore[import-not-found]

    here = os.getcwd()
    os.chdir(root)  # compute_score opens data/NL2SQL/SynSQL-2.5M/databases/<db_id>/<db_id>.sqlite
    try:
        for case in cases:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                total = synsql.compute_score(
                    HEADER + case["completion"], {"db_id": "parity", "sql": case["gold"]}
                )
            parts = {name.lower(): float(value) for name, value in _SCORE_LINE.findall(printed.getvalue())}
            assert parts["total"] == float(total), case["id"]
            case["sqlr1"] = {
                "format": parts["format"],
                "execution": parts["exec"],
                "result": parts["result"],
                "length": parts["length"],
                "total": float(total),
            }
    finally:
        os.chdir(here)


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def metric_verdicts(test_suite: Path, bird: Path, pairs: list[dict[str, Any]], dbs: dict[str, Path]) -> None:
    sys.path.insert(0, str(test_suite))
    exec_eval = _load("exec_eval", test_suite / "exec_eval.py")
    bird_eval = _load("bird_evaluation", bird / "bird" / "llm" / "src" / "evaluation.py")
    for i, pair in enumerate(pairs):
        db = str(dbs[pair["db_id"]])
        p_str = pair["pred"].replace(
            "value", "1"
        )  # evaluation.py, evaluate(): p_str = p_str.replace("value", "1")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                spider: int | None = int(
                    exec_eval.eval_exec_match(
                        db=db,
                        p_str=p_str,
                        g_str=pair["gold"],
                        plug_value=False,
                        keep_distinct=False,
                        progress_bar_for_each_datapoint=False,
                    )
                )
        except AssertionError:  # "gold query ... has error": the official scorer stops
            spider = None
        pair["spider"] = spider
        pair["bird"] = int(bird_eval.execute_model(pair["pred"], pair["gold"], db, i, 30.0)["res"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sqlr1", type=Path, required=True, help="a checkout of IDEA-FinAI/SQL-R1")
    ap.add_argument("--test-suite", type=Path, required=True, help="a checkout of taoyds/test-suite-sql-eval")
    ap.add_argument("--bird", type=Path, required=True, help="a checkout of AlibabaResearch/DAMO-ConvAI")
    args = ap.parse_args()
    reward_file, metric_file = PARITY / "reward_cases.json", PARITY / "metric_pairs.json"
    cases = json.loads(reward_file.read_text(encoding="utf-8"))
    pairs = json.loads(metric_file.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        dbs = build_databases(Path(tmp))
        sqlr1_scores(args.sqlr1.resolve(), cases, Path(tmp))
        metric_verdicts(args.test_suite.resolve(), args.bird.resolve(), pairs, dbs)
    for path, data in ((reward_file, cases), (metric_file, pairs)):
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} reward cases and {len(pairs)} metric pairs")


if __name__ == "__main__":
    main()
