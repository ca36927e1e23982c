"""The SQL-R1 reward: a hand-scored parity corpus, batch sharing, and the execution pool under runaways.

Every expected score below is written out by hand from the SQL-R1 rules (format ±1; execution ±2
only with a good format; result ±3 only when executed; length 0.5·min(L/2048, 1) + len(sql)/len(answer)
only when correct), with the character counts spelled out, on a copy of Spider's concert_singer
(6 singers: 1 from the Netherlands, 1 from the United States, 4 from France; ages 52, 32, 29, 41, 43, 25).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from sqlr1.training.gold import GoldCache, GoldResolver
from sqlr1.training.pool import ExecJob, ExecutionPool
from sqlr1.training.rewards import REWARD_NAMES, SQLR1Reward

RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def answer(think: str, sql: str) -> str:
    """A well-formed completion after the pre-filled ``<think>``."""
    return f"\n{think}\n</think>\n<answer>\n```sql\n{sql}\n```\n</answer>"


# think "I count the singers." = 20 chars; sql "SELECT count(*) FROM singer" = 27 chars;
# answer text "```sql\n" + sql + "\n```" = 7 + 27 + 4 = 38 chars; L = 20 + 38 = 58.
COUNT_SQL = "SELECT count(*) FROM singer"
GOOD = answer("I count the singers.", COUNT_SQL)
GOOD_LENGTH = 0.5 * 58 / 2048 + 27 / 38

LONG_THINK = "x" * 3000  # L = 3000 + 38 > 2048: the first term is capped at 0.5

# (name, completion, gold, expected (format, execution, result, length))
CORPUS: list[tuple[str, str, str, tuple[float, float, float, float]]] = [
    ("good answer", GOOD, COUNT_SQL, (1, 2, 3, GOOD_LENGTH)),
    (
        "missing </think>",
        f"\nI count the singers.\n<answer>\n```sql\n{COUNT_SQL}\n```\n</answer>",
        COUNT_SQL,
        (-1, 0, 0, 0),
    ),
    (
        "two <answer>s",
        GOOD + f"\n<answer>\n```sql\n{COUNT_SQL}\n```\n</answer>",
        COUNT_SQL,
        (-1, 0, 0, 0),
    ),
    (
        "wrong order (answer inside think)",
        f"\nI count.\n<answer>\n```sql\n{COUNT_SQL}\n```\n</answer>\n</think>",
        COUNT_SQL,
        (-1, 0, 0, 0),
    ),
    (
        "no sql block",
        f"\nI count the singers.\n</think>\n<answer>\n{COUNT_SQL}\n</answer>",
        COUNT_SQL,
        (-1, 0, 0, 0),
    ),
    ("repeated <think> (the pre-fill already opened it)", "<think>" + GOOD, COUNT_SQL, (-1, 0, 0, 0)),
    ("unexecutable SQL", answer("x", "SELECT nope FROM singer"), COUNT_SQL, (1, -2, 0, 0)),
    # SQL-R1: an empty block fails the format (same total as execution -2 after format +1)
    ("empty sql block", "\nx\n</think>\n<answer>\n```sql\n```\n</answer>", COUNT_SQL, (-1, 0, 0, 0)),
    ("blocked statement (a write)", answer("x", "DELETE FROM singer"), COUNT_SQL, (1, -2, 0, 0)),
    # 3 singers are over 40, the gold says 6
    ("wrong result", answer("x", "SELECT count(*) FROM singer WHERE age > 40"), COUNT_SQL, (1, 2, -3, 0)),
    # gold without ORDER BY: any row order matches. think "x" = 1; sql = 42 chars; answer = 53; L = 54
    (
        "right rows, other order, gold unordered",
        answer("x", "SELECT name FROM singer ORDER BY name DESC"),
        "SELECT name FROM singer",
        (1, 2, 3, 0.5 * 54 / 2048 + 42 / 53),
    ),
    # gold with ORDER BY age DESC: the ascending order is a different result
    (
        "gold ORDER BY, prediction reversed",
        answer("x", "SELECT name FROM singer ORDER BY age ASC"),
        "SELECT name FROM singer ORDER BY age DESC",
        (1, 2, -3, 0),
    ),
    # sql "SELECT name FROM singer ORDER BY age DESC" = 41 chars; answer = 52; L = 53
    (
        "gold ORDER BY, same order",
        answer("x", "SELECT name FROM singer ORDER BY age DESC"),
        "SELECT name FROM singer ORDER BY age DESC",
        (1, 2, 3, 0.5 * 53 / 2048 + 41 / 52),
    ),
    # sql "SELECT age, name FROM singer" = 28 chars; answer = 39; L = 40
    (
        "column permutation",
        answer("x", "SELECT age, name FROM singer"),
        "SELECT name, age FROM singer",
        (1, 2, 3, 0.5 * 40 / 2048 + 28 / 39),
    ),
    # sql "SELECT name FROM singer WHERE age < 0" = 37 chars; answer = 48; L = 49
    (
        "empty vs empty",
        answer("x", "SELECT name FROM singer WHERE age < 0"),
        "SELECT name FROM singer WHERE age > 1000",
        (1, 2, 3, 0.5 * 49 / 2048 + 37 / 48),
    ),
    (
        "empty vs rows",
        answer("x", "SELECT name FROM singer WHERE age < 0"),
        "SELECT name FROM singer",
        (1, 2, -3, 0),
    ),
    # test-suite semantics strip DISTINCT from both: 6 rows each. sql "SELECT country FROM singer" = 26; answer 37; L 38
    (
        "DISTINCT stripped",
        answer("x", "SELECT country FROM singer"),
        "SELECT DISTINCT country FROM singer",
        (1, 2, 3, 0.5 * 38 / 2048 + 26 / 37),
    ),
    ("over-long think", answer(LONG_THINK, COUNT_SQL), COUNT_SQL, (1, 2, 3, 0.5 + 27 / 38)),
    # the documented deviation: an erroring gold never makes a match (the reference code scores +3)
    ("gold errors", GOOD, "SELECT nope FROM singer", (1, 2, 0, 0)),
]


@pytest.fixture(scope="module")
def pool():
    with ExecutionPool(workers=2, timeout_s=2.0, margin_s=3.0) as p:
        yield p


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> str:
    src = Path(__file__).parent / "data" / "spider" / "concert_singer" / "concert_singer.sqlite"
    dst = tmp_path_factory.mktemp("reward") / "concert_singer.sqlite"
    dst.write_bytes(src.read_bytes())
    return str(dst)


@pytest.mark.parametrize(("name", "completion", "gold", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_parity_corpus(pool, db, name, completion, gold, expected):
    score = SQLR1Reward(pool).score(completion, db, gold)
    got = (score.format, score.execution, score.result, score.length)
    assert got == pytest.approx(expected, abs=1e-9), f"{name}: {score}"


def test_totals_match_sql_r1_ranges(pool, db):
    reward = SQLR1Reward(pool)
    totals = {name: reward.score(c, db, g).total for name, c, g, _ in CORPUS}
    assert totals["missing </think>"] == -1  # bad format
    assert totals["unexecutable SQL"] == -1  # not executable
    assert totals["wrong result"] == 0
    assert 6.0 <= totals["good answer"] <= 7.5
    assert totals["over-long think"] == pytest.approx(6.0 + 0.5 + 27 / 38)


def test_trl_callables_share_one_execution_per_completion(pool, db):
    reward = SQLR1Reward(pool)
    funcs = reward.funcs
    assert [f.__name__ for f in funcs] == [f"{n}_reward" for n in REWARD_NAMES]
    completions = [GOOD, GOOD, answer("x", "SELECT nope FROM singer"), "no tags at all"]
    columns = {"db_path": [db] * 4, "gold_sql": [COUNT_SQL] * 4, "db_id": ["concert_singer"] * 4}
    prompts = ["p"] * 4
    scores = {f.__name__: f(prompts, completions, **columns) for f in funcs}
    assert scores["format_reward"] == [1, 1, 1, -1]
    assert scores["execution_reward"] == [2, 2, -2, 0]
    assert scores["result_reward"] == [3, 3, 0, 0]
    assert scores["length_reward"] == pytest.approx([GOOD_LENGTH, GOOD_LENGTH, 0, 0])
    # two distinct statements, each executed once across the four callables
    assert reward.executions == 2
    assert all(f.calls == [("db_id", "db_path", "gold_sql")] for f in funcs)
    # conversational completions (a list of messages) score the same
    conv = [[{"role": "assistant", "content": c}] for c in completions]
    assert funcs[0](prompts, conv, **columns) == [1, 1, 1, -1]


def test_reward_names_the_missing_column(pool):
    with pytest.raises(KeyError, match="db_path"):
        SQLR1Reward(pool).funcs[0](["p"], [GOOD], gold_sql=[COUNT_SQL])


def test_runaway_prediction_and_gold_finish_within_the_timeout(pool, db):
    reward = SQLR1Reward(pool)
    start = time.monotonic()
    pred = reward.score(answer("x", RUNAWAY), db, COUNT_SQL)
    gold = reward.score(GOOD, db, RUNAWAY)
    elapsed = time.monotonic() - start
    assert (pred.format, pred.execution, pred.result) == (1, -2, 0)
    assert "timeout" in (pred.error or "")
    assert (gold.format, gold.execution, gold.result, gold.length) == (1, 2, 0, 0)
    assert "timeout" in (gold.error or "")
    # two runaways, each stopped by the engine at 2 s: well inside 2 × (timeout + margin)
    assert elapsed < 2 * (pool.timeout_s + pool.margin_s)


def test_hung_worker_is_killed_and_replaced(db):
    # The hard deadline (1 s) is shorter than the engine timeout (60 s): the parent must kill the worker.
    with ExecutionPool(workers=1, timeout_s=60.0, deadline_s=1.0) as p:
        start = time.monotonic()
        out = p.run([ExecJob(db, RUNAWAY), ExecJob(db, COUNT_SQL)])
        elapsed = time.monotonic() - start
        assert out[0].ok is False and out[0].error_kind == "timeout"
        assert "killed" in (out[0].error_message or "")
        assert out[1].ok and out[1].rows == [(6,)]  # the replacement worker serves the next job
        assert p.killed == 1
        assert elapsed < 30  # nowhere near the 60 s engine timeout


def test_pool_runs_read_only(pool, db):
    out = pool.run([ExecJob(db, "DROP TABLE singer"), ExecJob(db, "SELECT count(*) FROM singer")])
    assert out[0].ok is False and out[0].error_kind in ("blocked", "execution")
    assert out[1].rows == [(6,)]


def test_gold_cache_on_disk_keyed_by_content(pool, db, tmp_path):
    cache_file = tmp_path / "gold.sqlite"
    r1 = GoldResolver(pool, GoldCache(cache_file))
    first = r1.resolve([(db, COUNT_SQL), (db, COUNT_SQL), (db, "SELECT nope FROM singer")])
    assert r1.executed == 2
    assert first[0].rows == [(6,)] and first[2].ok is False
    # a new process-level resolver on the same file runs nothing
    r2 = GoldResolver(pool, GoldCache(cache_file))
    again = r2.resolve([(db, COUNT_SQL), (db, "SELECT nope FROM singer")])
    assert r2.executed == 0
    assert again[0].rows == [(6,)] and again[1].error_kind == first[2].error_kind
    # changing the database's content changes the key
    copy = tmp_path / "changed.sqlite"
    copy.write_bytes(Path(db).read_bytes())
    with sqlite3.connect(copy) as conn:
        conn.execute("DELETE FROM singer WHERE singer_id = 1")
    changed = r2.resolve([(str(copy), COUNT_SQL)])
    assert r2.executed == 1 and changed[0].rows == [(5,)]


def test_gold_cache_round_trips_values(pool, tmp_path):
    dbf = tmp_path / "vals.sqlite"
    with sqlite3.connect(dbf) as conn:
        conn.execute("CREATE TABLE t (a INTEGER, b REAL, c TEXT, d BLOB)")
        conn.execute("INSERT INTO t VALUES (1, 2.5, 'x', x'00ff'), (NULL, NULL, NULL, NULL)")
    cache = GoldCache(tmp_path / "g.sqlite")
    GoldResolver(pool, cache).resolve([(str(dbf), "SELECT a, b, c, d FROM t")])
    stored = GoldResolver(pool, GoldCache(tmp_path / "g.sqlite")).resolve(
        [(str(dbf), "SELECT a, b, c, d FROM t")]
    )
    assert stored[0].rows == [(1, 2.5, "x", b"\x00\xff"), (None, None, None, None)]
