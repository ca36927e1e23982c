"""The evaluation sets written for issue 15 (benchmarks/realistic_eval.json, latency_questions.json):
Spider layout, labelled, and every gold query runs through the guard on its database with rows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from sqlr1.mcp_server.core.config import GuardSettings
from sqlr1.mcp_server.db.executor import Executor
from sqlr1.mcp_server.db.registry import Registry

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def executor(shared_data: Path) -> Executor:
    return Executor(Registry.from_targets([str(shared_data / "sample_dbs")]), GuardSettings())


@pytest.mark.parametrize("name", ["realistic_eval.json", "latency_questions.json"])
def test_every_gold_query_runs_and_returns_rows(name: str, executor: Executor) -> None:
    items = json.loads((BENCH / name).read_text(encoding="utf-8"))
    assert [it["question_id"] for it in items] == list(range(len(items)))
    for it in items:
        assert set(it) == {"question_id", "db_id", "difficulty", "question", "query"}
        result = executor.run(it["db_id"], it["query"])
        assert result.row_count > 0, it["question"]


def test_the_sets_cover_what_the_issue_asks() -> None:
    realistic = json.loads((BENCH / "realistic_eval.json").read_text(encoding="utf-8"))
    assert len(realistic) >= 40
    by = Counter((it["db_id"], it["difficulty"]) for it in realistic)
    for db in ("chinook", "northwind"):
        for level in ("simple", "moderate", "challenging"):
            assert by[(db, level)] >= 5, (db, level)
    latency = json.loads((BENCH / "latency_questions.json").read_text(encoding="utf-8"))
    assert len(latency) == 20 and {it["db_id"] for it in latency} == {"chinook"}
    assert len({it["question"] for it in latency + realistic}) == len(latency) + len(realistic)
