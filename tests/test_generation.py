"""Self-consistency generation: voting and control flow with a scripted model (fast), and the real
bundled model end to end on a copied Spider database (slow)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from model_fixtures import bundled_backend  # noqa: F401  (fixture)
from scripted_backend import ScriptedBackend, answer

from sqlr1.mcp_server.catalog.schema import SchemaInspector
from sqlr1.mcp_server.core.config import GenerationConfig, GuardSettings
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.executor import Executor
from sqlr1.mcp_server.db.registry import Registry
from sqlr1.mcp_server.inference.generation import Generator
from sqlr1.mcp_server.method.prompt import TRAIN_PROMPT_VERSION, PreviousTurn
from sqlr1.mcp_server.method.values import ValueIndex
from sqlr1.mcp_server.sql.guard import check


def _generator(
    db: Path, backend, *, values: bool = False, cache: Path | None = None, **cfg
) -> tuple[Generator, str]:
    registry = Registry.from_targets([str(db)])
    executor = Executor(registry, GuardSettings())
    index = ValueIndex(registry, executor, cache_dir=cache) if values else None
    gen = Generator(
        registry, executor, SchemaInspector(registry), backend, GenerationConfig(**cfg), value_index=index
    )
    return gen, registry.names()[0]


COUNT_A = answer("SELECT count(*) FROM singer")
COUNT_B = answer("SELECT COUNT(Singer_ID) FROM singer")  # different SQL, same result: same group
NAMES = answer("SELECT Name FROM singer")
BROKEN = answer("SELECT nope FROM singer")
BLOCKED = answer("DELETE FROM singer")
NO_SQL = "<think>I am not sure.</think>"


def test_majority_vote_groups_by_result(spider_copy) -> None:
    backend = ScriptedBackend([NAMES, COUNT_A, BROKEN, COUNT_B, BLOCKED, NO_SQL])
    gen, db = _generator(spider_copy("concert_singer"), backend)
    res = gen.generate_sql(db, "How many singers do we have?", num_candidates=6)

    assert res.status == "ok"
    assert len(backend.calls) == 1 and backend.calls[0][1].n == 6  # one batched call
    assert backend.calls[0][1].temperature == 0.8
    statuses = [c.status for c in res.candidates]
    assert statuses == ["ok", "ok", "execution", "ok", "blocked", "no_sql"]
    assert res.vote_counts == [2, 1] and res.executable == 3 == sum(res.vote_counts)
    assert res.chosen == 1 and res.candidates[1].group == 0 and res.candidates[3].group == 0
    assert res.sql == "SELECT count(*) FROM singer" and res.reasoning == "Reasoning."
    assert res.preview is not None and res.preview.rows == [[6]]
    assert res.candidates[4].error is not None and res.candidates[4].error.kind == "blocked"
    for cand in res.candidates:  # every executed SQL passed the guard
        if cand.status == "ok":
            check(cand.sql or "", "sqlite")
    assert "How many singers do we have?" in res.prompt.messages[0]["content"]


def test_ties_go_to_highest_logprob_else_first(spider_copy) -> None:
    db_path = spider_copy("concert_singer")
    with_lp = ScriptedBackend([NAMES, COUNT_A], logprobs=[-9.0, -1.0])
    gen, db = _generator(db_path, with_lp)
    assert gen.generate_sql(db, "q", num_candidates=2).chosen == 1
    without = ScriptedBackend([NAMES, COUNT_A])
    gen, db = _generator(db_path, without)
    res = gen.generate_sql(db, "q", num_candidates=2)
    assert res.chosen == 0 and res.vote_counts == [1, 1]


def test_no_executable_candidate_is_a_clear_outcome(spider_copy) -> None:
    gen, db = _generator(spider_copy("concert_singer"), ScriptedBackend([BROKEN, BLOCKED, NO_SQL]))
    res = gen.generate_sql(db, "q", num_candidates=3)
    assert res.status == "no_executable_candidate" and res.sql is None and res.chosen is None
    assert res.vote_counts == [] and res.executable == 0 and res.preview is None
    assert {e.kind for e in res.errors} == {"execution", "blocked"}
    assert "none of the candidates executed" in res.message


def test_single_candidate_is_greedy_and_unknown_db_fails_first(spider_copy) -> None:
    backend = ScriptedBackend([COUNT_A])
    gen, db = _generator(spider_copy("concert_singer"), backend, num_candidates=8)
    res = gen.generate_sql(db, "q", num_candidates=1)
    assert backend.calls[0][1].temperature == 0.0 and backend.calls[0][1].n == 1
    assert res.vote_counts == [1]
    with pytest.raises(QueryFailed) as err:
        gen.generate_sql("missing_db", "q")
    assert err.value.error.kind == "not_found" and len(backend.calls) == 1


def test_progress_and_cancellation(spider_copy) -> None:
    gen, db = _generator(spider_copy("concert_singer"), ScriptedBackend([COUNT_A, NAMES]))
    seen: list[tuple[float, float, str]] = []
    gen.generate_sql(db, "q", num_candidates=2, on_progress=lambda p, t, m: seen.append((p, t, m)))
    values = [p for p, _, _ in seen]
    assert values == sorted(values) and values[-1] == seen[-1][1] and len(seen) >= 4
    res = gen.generate_sql(db, "q", num_candidates=2, should_stop=lambda: True)
    assert res.status == "cancelled" and res.sql is None


def test_concurrent_requests_are_queued_on_one_model(spider_copy) -> None:
    backend = ScriptedBackend([COUNT_A], delay_s=0.05)
    gen, db = _generator(spider_copy("concert_singer"), backend)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(gen.generate_sql(db, "q", num_candidates=2)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 4 and all(r.status == "ok" for r in results)
    assert backend.max_active == 1 and len(backend.calls) == 4


def test_values_feedback_and_training_prompt(chinook_copy: Path, tmp_path: Path) -> None:
    backend = ScriptedBackend(
        ["x</think>\n<answer>\n```sql\nSELECT 1\n```\n</answer>"], prompt_version=TRAIN_PROMPT_VERSION
    )
    gen, db = _generator(chinook_copy, backend, values=True, cache=tmp_path / "cache")
    res = gen.generate_sql(db, "How many albums does AC/DC have?", num_candidates=1)
    prompt, _ = backend.calls[0]
    assert prompt.assistant_prefill == "<think>" and res.prompt.variant == "training"
    assert any(h.value == "AC/DC" for h in res.values)
    assert '"AC/DC"' in prompt.messages[0].content  # the hit is in the prompt, quoted
    assert res.candidates[0].format_ok and res.candidates[0].text.startswith("<think>x")

    inference = ScriptedBackend([COUNT_A])
    gen, db = _generator(chinook_copy, inference)
    gen.generate_sql(
        db,
        "How many albums does AC/DC have?",
        num_candidates=1,
        previous_turns=[PreviousTurn("How many albums does AC/DC have?", "SELECT 0", "this returned 0 rows")],
    )
    messages = inference.calls[0][0].messages
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert "this returned 0 rows" in messages[-1].content

    # a checkpoint trained on the training prompt (the shipped adapter) takes the agent's feedback too
    trained = ScriptedBackend([COUNT_A], prompt_version=TRAIN_PROMPT_VERSION)
    gen, db = _generator(chinook_copy, trained)
    res = gen.generate_sql(
        db,
        "How many albums does AC/DC have?",
        num_candidates=1,
        previous_turns=[PreviousTurn("How many albums does AC/DC have?", "SELECT 0", "this returned 0 rows")],
    )
    messages = trained.calls[0][0].messages
    assert res.prompt.variant == "training"
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert "this returned 0 rows" in messages[-1].content


@pytest.mark.slow
def test_bundled_model_end_to_end(spider_copy, bundled_backend) -> None:  # noqa: F811
    """Question in, real candidates out, executed, voted: a valid structured result."""
    gen, db = _generator(spider_copy("pets_1"), bundled_backend, seed=0)
    res = gen.generate_sql(db, "How many pets are there?", num_candidates=2, max_new_tokens=32)
    assert res.status in ("ok", "no_executable_candidate")
    assert len(res.candidates) == 2 and res.backend == bundled_backend.name
    assert all(c.text for c in res.candidates)
    executable = [c for c in res.candidates if c.status == "ok"]
    assert res.executable == len(executable) == sum(res.vote_counts)
    for cand in res.candidates:
        if cand.status == "ok":
            check(cand.sql or "", "sqlite")  # passed the guard
            assert cand.group is not None and cand.votes == res.vote_counts[cand.group]
        else:
            assert cand.group is None
    if res.status == "ok":
        assert res.chosen is not None and res.candidates[res.chosen].group == 0
        assert res.sql == res.candidates[res.chosen].sql and res.preview is not None
    else:
        assert res.sql is None and res.vote_counts == []
    assert res.timings.generation_ms > 0


def test_configured_prompt_variant_is_used_and_recorded(chinook_copy: Path, tmp_path: Path) -> None:
    from sqlr1.mcp_server.method.prompt import SQLR1_INFERENCE_VERSION

    backend = ScriptedBackend([COUNT_A], prompt_version=TRAIN_PROMPT_VERSION)
    gen, db = _generator(
        chinook_copy, backend, values=True, cache=tmp_path / "cache", prompt="sqlr1_inference"
    )
    res = gen.generate_sql(db, "How many albums does AC/DC have?", num_candidates=1)
    prompt, _ = backend.calls[0]
    # the configuration overrides the manifest's prompt; SQL-R1's exact prompt has no values block
    assert (res.prompt.variant, res.prompt.version) == ("sqlr1_inference", SQLR1_INFERENCE_VERSION)
    assert res.values == [] and '"AC/DC"' not in prompt.messages[0].content
    assert prompt.messages[0].content.startswith("Task Overview:\nYou are a data science expert.")
    with pytest.raises(QueryFailed, match="unknown prompt variant 'nope'"):
        _generator(chinook_copy, ScriptedBackend([COUNT_A]), prompt="nope")


def test_vote_groups_capped_results_by_the_whole_result(tmp_path: Path) -> None:
    """Issue 16, bug 2: candidates whose results differ only past the row cap are not merged; equal
    whole results (in another order) are; the preview stays capped."""
    import sqlite3
    from contextlib import closing

    db = tmp_path / "numbers.sqlite"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE t (n INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1, 101)])
        conn.commit()
    all_rows = answer("SELECT n FROM t")
    same_rows_reversed_tail = answer("SELECT n FROM t ORDER BY n < 6 DESC, n DESC")  # 1..5 first, then 100..6
    one_row_short = answer("SELECT n FROM t WHERE n < 100")
    backend = ScriptedBackend([one_row_short, all_rows, same_rows_reversed_tail])
    registry = Registry.from_targets([str(db)])
    executor = Executor(registry, GuardSettings(max_rows=5))
    gen = Generator(registry, executor, SchemaInspector(registry), backend, GenerationConfig())
    res = gen.generate_sql("numbers", "All numbers?", num_candidates=3)
    assert [c.truncated for c in res.candidates] == [True, True, True]
    # the capped previews are all 1..5: grouped by them, the three would be one group
    assert res.vote_counts == [2, 1] and res.chosen == 1
    assert res.candidates[0].group == 1 and res.candidates[1].group == res.candidates[2].group == 0
    assert res.preview is not None and res.preview.rows == [[1], [2], [3], [4], [5]] and res.preview.truncated


def test_result_fingerprint_semantics() -> None:
    from decimal import Decimal

    from sqlr1.mcp_server.db.engines.base import ResultFingerprint

    def key(rows):
        fp = ResultFingerprint()
        for row in rows:
            fp.add(row)
        return fp.key()

    assert key([(1, "a"), (2, None)]) == key([(2, None), (1, "a")])  # order-free
    assert (
        key([(1,), (2.5,)]) == key([(1.0,), (Decimal("2.5"),)]) == key([(True,), (2.5,)])
    )  # Python equality
    assert key([(1,)]) != key([("1",)]) and key([(-1,)]) != key([(-2,)])
    assert key([(1,), (1,)]) != key([(1,)])  # a bag: duplicates count
    assert key([([1, 2],)]) != key([((1, 2),)]) and key([(b"x",)]) == key([(bytearray(b"x"),)])
    part, other = ResultFingerprint(), ResultFingerprint()
    part.add((1,))
    other.add((2,))
    part.merge(other.state())
    assert part.key() == key([(2,), (1,)])
