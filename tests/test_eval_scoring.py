"""The evaluation scorer on real SQLite databases: verdicts, timeouts, the gold cache, test suites."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from sqlr1.agent.evaluation.scoring import Scorer, ScoreTask, ves_reward

RUNAWAY = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT max(i) FROM r"


@pytest.fixture
def tiny_db(tmp_path: Path) -> Path:
    """t(a INT, b TEXT) with a duplicate row, a NULL and mixed numeric affinity."""
    path = tmp_path / "tiny" / "tiny.sqlite"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE t (a INTEGER, b TEXT, c REAL);
        INSERT INTO t VALUES (1, 'x', 1.0), (2, 'y', 2.5), (2, 'y', 2.5), (3, NULL, NULL);
        """
    )
    conn.commit()
    conn.close()
    return path


# (pred, gold, BIRD verdict, Spider test-suite verdict, why)
PAIRS = [
    ("SELECT a FROM t", "SELECT a FROM t", True, True, "identical"),
    (
        "SELECT a FROM t ORDER BY a DESC",
        "SELECT a FROM t",
        True,
        True,
        "order ignored without ORDER BY in gold",
    ),
    (
        "SELECT a FROM t ORDER BY a DESC",
        "SELECT a FROM t ORDER BY a",
        True,
        False,
        "Spider: gold ORDER BY makes order matter; BIRD: sets",
    ),
    (
        "SELECT DISTINCT a FROM t",
        "SELECT a FROM t",
        True,
        True,
        "BIRD: sets; Spider strips DISTINCT by default",
    ),
    (
        "SELECT a FROM t WHERE a > 1",
        "SELECT DISTINCT a FROM t WHERE a > 1",
        True,
        True,
        "duplicates: set / stripped DISTINCT",
    ),
    ("SELECT b, a FROM t", "SELECT a, b FROM t", False, True, "column permutation: BIRD no, Spider yes"),
    ("SELECT c FROM t WHERE a = 1", "SELECT a FROM t WHERE a = 1", True, True, "1.0 == 1 in Python equality"),
    ("SELECT '1'", "SELECT 1", False, False, "text '1' is not integer 1"),
    ("SELECT a FROM t WHERE a > 9", "SELECT a FROM t WHERE a < 0", True, True, "empty equals empty"),
    (
        "SELECT a FROM t WHERE a = 2",
        "SELECT a FROM t WHERE a = 2 LIMIT 1",
        True,
        False,
        "BIRD sets hide the duplicate; Spider counts rows",
    ),
    ("SELECT b FROM t WHERE a = 3", "SELECT NULL", True, True, "NULL equals NULL in result comparison"),
    ("SELECT count(*) FROM t", "SELECT count(*) FROM t WHERE b IS NOT NULL", False, False, "4 vs 3"),
]


@pytest.mark.parametrize("benchmark", ["bird", "spider"])
def test_verdicts_on_tricky_pairs(tiny_db: Path, benchmark: str) -> None:
    tasks = [
        ScoreTask(idx=i, db_files=[str(tiny_db)], pred_sql=p, gold_sql=g)
        for i, (p, g, *_rest) in enumerate(PAIRS)
    ]
    results = Scorer(benchmark, timeout_s=5).score_inline(tasks)  # type: ignore[arg-type]
    for res, (pred, gold, bird, spider, why) in zip(results, PAIRS, strict=True):
        expected = bird if benchmark == "bird" else spider
        assert res.correct is expected, f"{benchmark}: {pred!r} vs {gold!r}: {why}"


def test_errors_blocked_and_empty_predictions_score_zero(tiny_db: Path) -> None:
    tasks = [
        ScoreTask(idx=0, db_files=[str(tiny_db)], pred_sql="SELECT nope FROM t", gold_sql="SELECT a FROM t"),
        ScoreTask(idx=1, db_files=[str(tiny_db)], pred_sql="DELETE FROM t", gold_sql="SELECT a FROM t"),
        ScoreTask(idx=2, db_files=[str(tiny_db)], pred_sql="", gold_sql="SELECT a FROM t"),
        ScoreTask(
            idx=3, db_files=[str(tiny_db)], pred_sql="SELECT a FROM t", gold_sql="SELECT broken FROM t"
        ),
    ]
    before = tiny_db.read_bytes()
    r = Scorer("bird", timeout_s=5).score_inline(tasks)
    assert [x.pred_status for x in r] == ["error", "blocked", "empty", "ok"]
    assert not any(x.correct for x in r)
    assert r[3].gold_error and "broken" in r[3].gold_error
    assert tiny_db.read_bytes() == before


def test_runaway_prediction_is_stopped_in_the_engine(tiny_db: Path) -> None:
    tasks = [
        ScoreTask(idx=0, db_files=[str(tiny_db)], pred_sql=RUNAWAY, gold_sql="SELECT 1"),
        ScoreTask(idx=1, db_files=[str(tiny_db)], pred_sql="SELECT a FROM t", gold_sql="SELECT a FROM t"),
    ]
    t0 = time.perf_counter()
    r = Scorer("bird", timeout_s=1.0, workers=2).score(tasks)
    elapsed = time.perf_counter() - t0
    assert r[0].pred_status == "timeout" and not r[0].correct
    assert r[0].pred_ms < 1000 * (1.0 + 1.0)
    assert r[1].correct
    assert elapsed < 30  # generous bound: the process pool must not hang on the runaway


def test_gold_cache_is_reused_across_runs(tiny_db: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.sqlite"
    tasks = [
        ScoreTask(idx=0, db_files=[str(tiny_db)], pred_sql="SELECT a FROM t", gold_sql="SELECT a, 1 FROM t")
    ]
    first = Scorer("bird", cache_path=cache).score_inline(tasks)[0]
    second = Scorer("bird", cache_path=cache).score_inline(tasks)[0]
    assert not first.gold_cached and second.gold_cached
    assert first.correct is second.correct is False
    # A changed database is a different cache key: the gold is executed again.
    conn = sqlite3.connect(tiny_db)
    conn.execute("INSERT INTO t VALUES (4, 'z', 4.0)")
    conn.commit()
    conn.close()
    third = Scorer("bird", cache_path=cache).score_inline(tasks)[0]
    assert not third.gold_cached


def test_spider_test_suite_needs_a_match_on_every_database(tiny_db: Path) -> None:
    variant = tiny_db.parent / "tiny_variant.sqlite"
    shutil.copyfile(tiny_db, variant)
    conn = sqlite3.connect(variant)
    conn.execute("UPDATE t SET a = 7 WHERE a = 3")
    conn.commit()
    conn.close()
    files = [str(tiny_db), str(variant)]
    # Equal on the original database, but not on the variant: a test suite catches it.
    task = ScoreTask(
        idx=0, db_files=files, pred_sql="SELECT a FROM t WHERE a <= 3", gold_sql="SELECT a FROM t"
    )
    only_first = Scorer("spider").score_inline(
        [task.model_copy(update={"db_files": files[:1], "gold_sql": "SELECT a FROM t"})]
    )[0]
    suite = Scorer("spider").score_inline([task])[0]
    assert only_first.correct and only_first.databases == 1
    assert not suite.correct and suite.databases == 2


def test_ves_buckets() -> None:
    assert [ves_reward(r) for r in (3, 2, 1.5, 1, 0.6, 0.3, 0.1)] == [1.25, 1.25, 1, 1, 0.75, 0.5, 0.25]


def test_untokenizable_prediction_scores_zero_with_a_syntax_status(tiny_db: Path) -> None:
    task = ScoreTask(
        idx=0,
        db_files=[str(tiny_db)],
        pred_sql="SELECT CASE WHEN a = 'N THEN 1 END FROM t",
        gold_sql="SELECT a FROM t",
    )
    res = Scorer("spider").score_inline([task])[0]
    assert not res.correct and res.pred_status in ("syntax", "error")
