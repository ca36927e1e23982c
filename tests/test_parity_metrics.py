"""Our BIRD and Spider scorers against the official ones, pair by pair (``metric_pairs.json``).

Each pair's ``bird`` and ``spider`` verdicts were written by BIRD's ``evaluation.py`` and the Spider
test-suite's ``exec_eval.py`` (run unmodified, see ``scripts/parity_originals.py``; ``spider`` is
null where the official scorer stops with an assertion). Ours must equal them, or a pair's
``ours`` (with its ``reason``) for a deliberate deviation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from parity_corpus import build_databases, load

from sqlr1.agent.evaluation.scoring import Scorer, ScoreTask

PAIRS = load("metric_pairs.json")


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    return build_databases(tmp_path_factory.mktemp("parity"))


def test_corpus_size_and_shape() -> None:
    assert len(PAIRS) >= 30
    assert len({p["id"] for p in PAIRS}) == len(PAIRS)
    for pair in PAIRS:
        assert pair["bird"] in (0, 1) and pair["spider"] in (0, 1, None), pair["id"]
        for metric, value in pair.get("ours", {}).items():
            assert value != pair[metric], f"{pair['id']}: {metric} no longer a deviation"
            assert pair.get("reason", "").strip(), f"{pair['id']}: a deviation needs its reason"


@pytest.mark.parametrize("benchmark", ["bird", "spider"])
@pytest.mark.parametrize("pair", PAIRS, ids=[p["id"] for p in PAIRS])
def test_verdict_matches_the_official_scorer(
    dbs: dict[str, list[Path]], pair: dict[str, Any], benchmark: str
) -> None:
    files = dbs[pair["db_id"]] if benchmark == "spider" else dbs[pair["db_id"]][:1]
    task = ScoreTask(idx=0, db_files=[str(f) for f in files], pred_sql=pair["pred"], gold_sql=pair["gold"])
    result = Scorer(benchmark, timeout_s=30.0).score_inline([task])[0]  # type: ignore[arg-type]
    expected = pair.get("ours", {}).get(benchmark, pair[benchmark])
    assert int(result.correct) == expected, f"{pair['id']} ({pair['note']}): {result}"
