"""Our reward against SQL-R1's own reward code, case by case (``tests/data/parity/reward_cases.json``).

Each case's ``sqlr1`` components were written by SQL-R1's ``compute_score`` (run unmodified, see
``scripts/parity_originals.py``). Our score must equal them, or, for a deliberate deviation, the
case's ``ours`` value, which must then differ from SQL-R1's and carry a ``reason`` (docs/fidelity.md).
"""

from __future__ import annotations

from typing import Any

import pytest
from parity_corpus import build_databases, load

from sqlr1.training.pool import ExecutionPool
from sqlr1.training.rewards import REWARD_NAMES, SQLR1Reward

CASES = load("reward_cases.json")
PARTS = (*REWARD_NAMES, "total")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(build_databases(tmp_path_factory.mktemp("parity"))["parity"][0])


@pytest.fixture(scope="module")
def pool():
    # the GRPO defaults: SQL-R1's 30 s timeout, reward.max_rows
    with ExecutionPool(workers=2, timeout_s=30.0, max_rows=100_000) as p:
        yield p


def test_corpus_size_and_shape() -> None:
    assert len(CASES) >= 40
    assert len({c["id"] for c in CASES}) == len(CASES)
    for case in CASES:
        assert set(case["sqlr1"]) == set(PARTS), case["id"]
        if "ours" in case:
            assert case["ours"] != case["sqlr1"], f"{case['id']}: no longer a deviation, drop 'ours'"
            assert case.get("reason", "").strip(), f"{case['id']}: a deviation needs its reason"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_reward_matches_sqlr1(pool: ExecutionPool, db: str, case: dict[str, Any]) -> None:
    reward = SQLR1Reward(pool, **case.get("settings", {}))
    score = reward.score(case["completion"], db, case["gold"])
    got = {name: score.component(name) for name in REWARD_NAMES} | {"total": score.total}
    expected = case.get("ours", case["sqlr1"])
    assert got == pytest.approx(expected, abs=1e-9), f"{case['id']} ({case['note']}): {score}"
