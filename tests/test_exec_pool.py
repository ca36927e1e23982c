"""The shared SQL process pool and result cache (``mcp_server.db.exec_pool``, ``mcp_server.db.result_cache``)
on a real SQLite copy of Spider's concert_singer (6 singers): the task that hangs or crashes a worker is
the one reported and the others go on, submissions, and the on-disk cache."""

from __future__ import annotations

import datetime as dt
import decimal
import fractions
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sqlr1.mcp_server.db.exec_pool import (
    ExecJob,
    ExecOutcome,
    ExecutionPool,
    SerialPool,
    TaskFailed,
    WorkerContext,
)
from sqlr1.mcp_server.db.result_cache import ResultCache

RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
COUNT = "SELECT count(*) FROM singer"


@pytest.fixture
def db(spider_copy) -> str:
    return str(spider_copy("concert_singer"))


def count_or_die(ctx: WorkerContext, item: tuple[str, bool]) -> int:
    """A task for ``map``: the singer count, or the worker process dies at once (a crashed engine)."""
    db, die = item
    if die:
        os._exit(3)
    out = ctx.run(db, COUNT)
    assert out.rows is not None
    return int(out.rows[0][0])


def summary(ctx: WorkerContext, job: ExecJob) -> tuple[str, object]:
    """A picklable summary of one execution (elapsed times differ between runs)."""
    out = ctx.run(job.db_path, job.sql)
    return ("ok", out.rows) if out.ok else (out.error_kind or "", out.error_message)


def rows_of(out: ExecOutcome | TaskFailed) -> object:
    return out.rows if isinstance(out, ExecOutcome) else out


def test_the_task_that_hangs_is_the_one_timed_out(db):
    # One worker, the runaway between tasks that finish: the hard deadline (1 s, shorter than the
    # engine's 60 s) must blame the runaway, and its replacement must serve the tasks after it.
    jobs = [ExecJob(db, COUNT), ExecJob(db, COUNT), ExecJob(db, RUNAWAY), ExecJob(db, COUNT)]
    with ExecutionPool(workers=1, timeout_s=60.0, deadline_s=1.0) as pool:
        out = pool.run(jobs)
        assert [o.ok for o in out] == [True, True, False, True]
        assert out[2].error_kind == "timeout" and "killed" in (out[2].error_message or "")
        assert [rows_of(out[i]) for i in (0, 1, 3)] == [[(6,)]] * 3
        assert pool.killed == 1
        assert pool.run([ExecJob(db, COUNT)])[0].rows == [(6,)]  # the replacement serves


def test_a_crashed_worker_fails_only_its_task(db):
    items = [(db, False), (db, False), (db, True), (db, False), (db, False)]
    with ExecutionPool(workers=2, timeout_s=5.0) as pool:
        out = pool.map(count_or_die, items)
        died = out[2]
        assert isinstance(died, TaskFailed) and died.kind == "execution" and "died" in died.message
        assert [out[i] for i in (0, 1, 3, 4)] == [6, 6, 6, 6]
        assert pool.killed == 1


def test_submission_matches_serial_and_reports_each_result(db):
    jobs = [ExecJob(db, f"SELECT count(*) FROM singer WHERE age > {a}") for a in range(20, 60, 2)]
    jobs.append(ExecJob(db, "SELECT nope FROM singer"))
    seen: list[int] = []
    with ExecutionPool(workers=2, timeout_s=5.0) as pool:
        with pool.submit(summary, on_result=lambda i, _r: seen.append(i)) as sub:
            indices = [sub.add(j) for j in jobs]
            pooled = sub.results()
        with SerialPool(timeout_s=5.0) as serial:
            assert pooled == serial.map(summary, jobs)
    assert indices == list(range(len(jobs))) and sorted(seen) == indices
    last = pooled[-1]
    assert not isinstance(last, TaskFailed) and last[0] != "ok" and "nope" in str(last[1])


def test_an_abandoned_submission_frees_the_pool(db):
    with ExecutionPool(workers=1, timeout_s=5.0) as pool:
        with pytest.raises(ValueError, match="caller"), pool.submit(summary) as sub:
            for _ in range(8):
                sub.add(ExecJob(db, COUNT))
            raise ValueError("the caller failed half-way")
        # no stale answer of the abandoned tasks reaches the next batch
        assert [o.rows for o in pool.run([ExecJob(db, "SELECT 7"), ExecJob(db, COUNT)])] == [[(7,)], [(6,)]]
        assert pool.killed == 0


def test_pool_is_read_only(db):
    with SerialPool() as serial:
        out = serial.run([ExecJob(db, "DELETE FROM singer"), ExecJob(db, COUNT)])
    assert not out[0].ok and out[0].error_kind == "blocked"
    assert out[1].rows == [(6,)]


def test_result_cache_round_trips_and_skips_timeouts_and_cut_results(db, tmp_path: Path):
    path = tmp_path / "cache.sqlite"
    cache = ResultCache(path)
    rows: list[tuple[Any, ...]] = [
        (1, 2.5, "x", b"\x00\xff", None, decimal.Decimal("1.10"), dt.date(2024, 2, 29))
    ]
    rows.append(
        (dt.datetime(2024, 1, 2, 3, 4, 5), dt.time(6, 7), dt.timedelta(seconds=90), {"k": [1]}, 2**70)
    )
    key, bad, slow, cut = (cache.key(db, sql) for sql in ("a", "b", "c", "e"))
    cache.put(key, ExecOutcome(ok=True, rows=rows))
    # a result cut at the caller's max_rows is not the gold for a caller with another cap
    cache.put(cut, ExecOutcome(ok=True, rows=rows[:1], truncated=True))
    cache.put(bad, ExecOutcome(ok=False, error_kind="execution", error_message="no such column"))
    cache.put(slow, ExecOutcome(ok=False, error_kind="timeout", error_message="too slow"))
    assert cache.get(key) is not None  # buffered writes are visible before the flush
    cache.close()
    again = ResultCache(path)
    hit = again.get(key)
    assert hit is not None and hit.rows == rows and not hit.truncated
    assert [type(v) for v in hit.rows[0]] == [type(v) for v in rows[0]]
    miss = again.get(bad)
    assert miss is not None and (miss.ok, miss.error_kind, miss.error_message) == (
        False,
        "execution",
        "no such column",
    )
    assert again.get(slow) is None and again.get(cut) is None and len(again) == 2
    # a value of another type (here a Fraction) is never unpickled: the entry reads as a miss
    odd = again.key(db, "d")
    again.put(odd, ExecOutcome(ok=True, rows=[(fractions.Fraction(1, 3),)]))
    again.flush()
    assert ResultCache(path).get(odd) is None
    # another database content is another key
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM singer WHERE singer_id = 1")
    assert again.key(db, "a") != key
