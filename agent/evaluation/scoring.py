"""Parallel execution-accuracy scoring with engine-level timeouts and a gold cache.

Worker processes each keep one guarded executor per database file (connections
are reused), results of gold queries come from :class:`ResultCache` when warm,
and a runaway prediction is stopped inside the engine at the timeout (not merely
abandoned), so it never keeps burning a core. Verdicts come from
``mcp_server.compare``: BIRD's set-of-tuples and Spider's test-suite semantics.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from mcp_server import compare
from mcp_server.config import GuardSettings
from mcp_server.errors import QueryFailed
from mcp_server.executor import Executor
from mcp_server.registry import Registry

Status = Literal["ok", "error", "timeout", "blocked", "syntax", "empty"]

__all__ = ["PairResult", "ScoreTask", "Scorer", "ves_reward"]

# Official evaluators compare full results: no row cap that could hide a difference.
EVAL_MAX_ROWS = 1_000_000


class ScoreTask(BaseModel):
    idx: int
    db_files: list[str]
    pred_sql: str
    gold_sql: str


class PairResult(BaseModel):
    idx: int
    correct: bool
    pred_status: Status
    pred_error: str | None = None
    gold_error: str | None = None
    databases: int = 1  # how many databases the verdict covers (test-suite when > 1)
    pred_ms: float = 0.0
    gold_ms: float = 0.0
    gold_cached: bool = False
    ves_reward: float | None = None


@dataclass(frozen=True)
class _Options:
    benchmark: Literal["bird", "spider"]
    timeout_s: float
    keep_distinct: bool
    cache_path: str | None
    ves_iterations: int


_state: dict[str, Any] = {}


def _init_worker(options: _Options) -> None:
    """Per-process state: options, an executor per database file, the shared result cache."""
    from agent.evaluation.gold_cache import ResultCache

    _state["options"] = options
    _state["executors"] = {}
    _state["cache"] = ResultCache(Path(options.cache_path)) if options.cache_path else None
    _state["memo"] = {}


def _executor(db_file: str) -> tuple[Executor, str]:
    executors: dict[str, tuple[Executor, str]] = _state["executors"]
    if db_file not in executors:
        options: _Options = _state["options"]
        registry = Registry.from_targets([db_file])
        settings = GuardSettings(timeout_s=options.timeout_s, max_rows=EVAL_MAX_ROWS, max_chars=50_000_000)
        executors[db_file] = (Executor(registry, settings), registry.names()[0])
    return executors[db_file]


def _run(db_file: str, sql: str) -> tuple[Status, Any, float]:
    """Execute one statement; returns (status, rows or error message, elapsed ms)."""
    executor, name = _executor(db_file)
    options: _Options = _state["options"]
    start = time.perf_counter()
    try:
        result = executor.run_raw(name, sql, max_rows=EVAL_MAX_ROWS, timeout_s=options.timeout_s)
    except QueryFailed as exc:
        kind = exc.error.kind
        status: Status = kind if kind in ("timeout", "blocked", "syntax") else "error"  # type: ignore[assignment]
        return status, exc.error.message, (time.perf_counter() - start) * 1000
    return "ok", result.rows, (time.perf_counter() - start) * 1000


def _gold(db_file: str, sql: str) -> tuple[bool, Any, float, bool]:
    """Gold rows (or error) for one database, from the cache when warm."""
    cache = _state["cache"]
    key = cache.key(Path(db_file), sql) if cache is not None else None
    if key is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit[0], hit[1], 0.0, True
    status, payload, ms = _run(db_file, sql)
    # Timeouts are not cached: a longer timeout on a later run may succeed.
    if key is not None and status != "timeout":
        cache.put(key, status == "ok", payload)
    return status == "ok", payload, ms, False


def _prepare(sql: str, options: _Options) -> str:
    if options.benchmark == "spider" and not options.keep_distinct:
        try:
            return compare.strip_distinct(sql, "sqlite")
        except QueryFailed:
            return sql  # untokenizable: left as is, the executor reports the syntax error
    return sql


def _score_one(task: ScoreTask) -> PairResult:
    options: _Options = _state["options"]
    pred_sql = task.pred_sql.strip()
    if not pred_sql:
        return PairResult(idx=task.idx, correct=False, pred_status="empty", pred_error="no SQL predicted")
    gold_sql = _prepare(task.gold_sql, options)
    pred_sql = _prepare(pred_sql, options)
    # The test-suite scorer's rule: the text "order by" anywhere in the (DISTINCT-stripped) gold.
    order_matters = options.benchmark == "spider" and compare.order_matters_for(
        gold_sql, "sqlite", rule="official"
    )
    result = PairResult(idx=task.idx, correct=True, pred_status="ok", databases=len(task.db_files))
    for db_file in task.db_files:
        if pred_sql == gold_sql:
            # An identical statement on identical content gives identical rows: run it once.
            gold_ok, gold_rows, gold_ms, cached = _gold(db_file, gold_sql)
            status, pred_rows, pred_ms = ("ok", gold_rows, 0.0) if gold_ok else _run(db_file, pred_sql)
        else:
            # The prediction first, as the reference does: a failing prediction needs no gold.
            status, pred_rows, pred_ms = _run(db_file, pred_sql)
            gold_ok, gold_rows, gold_ms, cached = (
                _gold(db_file, gold_sql) if status == "ok" else (True, None, 0.0, False)
            )
        result.pred_ms += pred_ms
        result.gold_ms += gold_ms
        result.gold_cached = cached
        if status != "ok":
            return result.model_copy(
                update={"correct": False, "pred_status": status, "pred_error": str(pred_rows)}
            )
        if not gold_ok:
            # As in BIRD's reference a failing gold scores 0; unlike it, the gold's error is reported.
            return result.model_copy(update={"correct": False, "gold_error": str(gold_rows)})
        if options.benchmark == "bird":
            same = compare.bird_equal(pred_rows, gold_rows)
        else:
            same = compare.spider_equal(pred_rows, gold_rows, order_matters=order_matters)
        if not same:
            return result.model_copy(update={"correct": False})
    if options.ves_iterations > 0 and result.correct:
        result.ves_reward = _ves(task.db_files[0], pred_sql, gold_sql, options.ves_iterations)
    return result


def _score_chunk(tasks: list[ScoreTask]) -> list[PairResult]:
    try:
        return [_score_one(t) for t in tasks]
    finally:
        if _state["cache"] is not None:
            _state["cache"].flush()


def _timed_runs(db_file: str, sql: str, iterations: int) -> list[float]:
    times = []
    for _ in range(iterations):
        status, _, ms = _run(db_file, sql)
        if status != "ok":
            break
        times.append(ms)
    return times


def _clean(times: list[float]) -> list[float]:
    """BIRD's ``clean_abnormal``: keep times within three standard deviations of the mean."""
    if len(times) < 2:
        return times
    mean, std = statistics.fmean(times), statistics.pstdev(times)
    return [t for t in times if mean - 3 * std <= t <= mean + 3 * std] or times


def ves_reward(time_ratio: float) -> float:
    """BIRD R-VES buckets of gold_time / pred_time."""
    if time_ratio >= 2:
        return 1.25
    if time_ratio >= 1:
        return 1.0
    if time_ratio >= 0.5:
        return 0.75
    if time_ratio >= 0.25:
        return 0.5
    return 0.25


def _ves(db_file: str, pred_sql: str, gold_sql: str, iterations: int) -> float:
    pred = _clean(_timed_runs(db_file, pred_sql, iterations))
    gold = _clean(_timed_runs(db_file, gold_sql, iterations))
    if not pred or not gold:
        return 0.0
    ratio = statistics.fmean(gold) / max(statistics.fmean(pred), 1e-6)
    return ves_reward(ratio)


def _start_method() -> str:
    """fork when this process is single-threaded (cheap, like the reference); spawn otherwise.

    A parent holding a model or other threads (the agent, a trainer) must not be forked.
    """
    torch_loaded = "torch" in sys.modules
    return "fork" if threading.active_count() == 1 and not torch_loaded else "spawn"


class Scorer:
    """Scores prediction/gold pairs in worker processes.

    Pairs are grouped by database and sent in chunks, so each worker reuses its
    connections; ``on_result`` is called in the parent as verdicts arrive.
    """

    def __init__(
        self,
        benchmark: Literal["bird", "spider"],
        *,
        timeout_s: float = 30.0,
        workers: int | None = None,
        cache_path: Path | None = None,
        keep_distinct: bool = False,
        ves_iterations: int = 0,
    ) -> None:
        self.options = _Options(
            benchmark=benchmark,
            timeout_s=timeout_s,
            keep_distinct=keep_distinct,
            cache_path=str(cache_path) if cache_path else None,
            ves_iterations=ves_iterations,
        )
        self.workers = max(1, workers or os.cpu_count() or 1)

    def score(
        self, tasks: Iterable[ScoreTask], on_result: Callable[[PairResult], None] | None = None
    ) -> list[PairResult]:
        todo = sorted(tasks, key=lambda t: (t.db_files[0], t.idx))
        if not todo:
            return []
        chunk = max(1, min(32, math.ceil(len(todo) / (self.workers * 8))))
        chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
        results: list[PairResult] = []
        ctx = mp.get_context(_start_method())
        with ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init_worker, initargs=(self.options,)
        ) as pool:
            pending: set[Future[list[PairResult]]] = {pool.submit(_score_chunk, c) for c in chunks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    for res in fut.result():
                        results.append(res)
                        if on_result is not None:
                            on_result(res)
        results.sort(key=lambda r: r.idx)
        return results

    def score_inline(self, tasks: Iterable[ScoreTask]) -> list[PairResult]:
        """Score in this process (small runs and tests of the logic)."""
        _init_worker(self.options)
        return _score_chunk(list(tasks))
