"""Parallel execution-accuracy scoring with engine-level timeouts and a gold cache.

Pairs are scored in the workers of :class:`mcp_server.db.exec_pool.ExecutionPool` (one guarded
executor per database file, connections reused; a worker hung past every engine timeout is
replaced and its pair scores 0 as a timeout), results of gold queries come from
:class:`mcp_server.db.result_cache.ResultCache` when warm, and a runaway prediction is stopped inside
the engine at the timeout (not merely abandoned), so it never keeps burning a core. Verdicts come
from ``mcp_server.method.compare``: BIRD's set-of-tuples and Spider's test-suite semantics.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from sqlr1.mcp_server.db.exec_pool import ExecOutcome, ExecutionPool, SerialPool, TaskFailed, WorkerContext
from sqlr1.mcp_server.db.result_cache import ResultCache
from sqlr1.mcp_server.method import compare

Status = Literal["ok", "error", "timeout", "blocked", "syntax", "empty"]

__all__ = ["PairResult", "ScoreTask", "Scorer", "ves_reward"]

# Official evaluators compare full results: no row cap that could hide a difference.
EVAL_MAX_ROWS = 1_000_000
_MARGIN_S = 5.0  # per statement, on top of the engine timeout, before a worker counts as hung


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


def _payload(out: ExecOutcome) -> Any:
    return out.rows if out.ok else out.error_message


def _run(ctx: WorkerContext, db_file: str, sql: str) -> tuple[Status, Any, float]:
    """Execute one statement; returns (status, rows or error message, elapsed ms)."""
    out = ctx.run(db_file, sql)
    kind = "ok" if out.ok else out.error_kind
    status: Status = kind if kind in ("ok", "timeout", "blocked", "syntax") else "error"  # type: ignore[assignment]
    return status, _payload(out), out.elapsed_ms


def _gold(ctx: WorkerContext, options: _Options, db_file: str, sql: str) -> tuple[bool, Any, float, bool]:
    """Gold rows (or error) for one database, from the worker's result cache when warm."""
    path = options.cache_path
    if path is None:
        out = ctx.run(db_file, sql)
        return out.ok, _payload(out), out.elapsed_ms, False
    cache = ctx.resource(f"result-cache:{path}", lambda: ResultCache(path))
    key = cache.key(db_file, sql)
    hit = cache.get(key)
    if hit is not None:
        return hit.ok, _payload(hit), 0.0, True
    out = ctx.run(db_file, sql)
    cache.put(key, out)  # timeouts are not kept: a longer timeout on a later run may succeed
    return out.ok, _payload(out), out.elapsed_ms, False


def _prepare(sql: str, options: _Options, *, prediction: bool) -> str:
    """BIRD runs both queries as written; Spider runs what the official test-suite scorer runs."""
    if options.benchmark == "spider":
        return compare.spider_official_sql(sql, prediction=prediction, keep_distinct=options.keep_distinct)
    return sql


def _score_one(options: _Options, ctx: WorkerContext, task: ScoreTask) -> PairResult:
    """Score one pair in a pool worker (or inline): the prediction first, the gold when needed."""
    pred_sql = task.pred_sql.strip()
    if not pred_sql:
        return PairResult(idx=task.idx, correct=False, pred_status="empty", pred_error="no SQL predicted")
    gold_sql = _prepare(task.gold_sql, options, prediction=False)
    pred_sql = _prepare(pred_sql, options, prediction=True)
    # The test-suite scorer's rule: the text "order by" anywhere in the (rewritten) gold.
    order_matters = options.benchmark == "spider" and compare.order_matters_for(
        gold_sql, "sqlite", rule="official"
    )
    result = PairResult(idx=task.idx, correct=True, pred_status="ok", databases=len(task.db_files))
    for db_file in task.db_files:
        if pred_sql == gold_sql:
            # An identical statement on identical content gives identical rows: run it once.
            gold_ok, gold_rows, gold_ms, cached = _gold(ctx, options, db_file, gold_sql)
            status, pred_rows, pred_ms = ("ok", gold_rows, 0.0) if gold_ok else _run(ctx, db_file, pred_sql)
        else:
            # The prediction first, as the reference does: a failing prediction needs no gold.
            status, pred_rows, pred_ms = _run(ctx, db_file, pred_sql)
            gold_ok, gold_rows, gold_ms, cached = (
                _gold(ctx, options, db_file, gold_sql) if status == "ok" else (True, None, 0.0, False)
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
        result.ves_reward = _ves(ctx, task.db_files[0], pred_sql, gold_sql, options.ves_iterations)
    return result


def _timed_runs(ctx: WorkerContext, db_file: str, sql: str, iterations: int) -> list[float]:
    times = []
    for _ in range(iterations):
        status, _, ms = _run(ctx, db_file, sql)
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


def _ves(ctx: WorkerContext, db_file: str, pred_sql: str, gold_sql: str, iterations: int) -> float:
    pred = _clean(_timed_runs(ctx, db_file, pred_sql, iterations))
    gold = _clean(_timed_runs(ctx, db_file, gold_sql, iterations))
    if not pred or not gold:
        return 0.0
    ratio = statistics.fmean(gold) / max(statistics.fmean(pred), 1e-6)
    return ves_reward(ratio)


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
        self._inline: SerialPool | None = None

    def _pool_args(self) -> dict[str, Any]:
        return {"timeout_s": self.options.timeout_s, "max_rows": EVAL_MAX_ROWS}

    def _deadline(self, task: ScoreTask) -> float:
        """The hard limit of one pair: every statement it may run, each at the engine timeout."""
        statements = 2 * len(task.db_files) + 2 * self.options.ves_iterations
        return statements * (self.options.timeout_s + _MARGIN_S)

    def _verdict(self, task: ScoreTask, res: PairResult | TaskFailed) -> PairResult:
        if isinstance(res, PairResult):
            return res
        # the worker hung past every engine timeout, or died: it was replaced, the pair scores 0
        status: Status = "timeout" if res.kind == "timeout" else "error"
        return PairResult(
            idx=task.idx,
            correct=False,
            pred_status=status,
            pred_error=res.message,
            databases=len(task.db_files),
        )

    def score(
        self, tasks: Iterable[ScoreTask], on_result: Callable[[PairResult], None] | None = None
    ) -> list[PairResult]:
        # grouped by database, so a worker's chunk reuses its connections
        todo = sorted(tasks, key=lambda t: (t.db_files[0], t.idx))
        if not todo:
            return []
        results: list[PairResult] = []

        def collect(i: int, res: PairResult | TaskFailed) -> None:
            results.append(self._verdict(todo[i], res))
            if on_result is not None:
                on_result(results[-1])

        with ExecutionPool(self.workers, **self._pool_args()) as pool:
            pool.map(partial(_score_one, self.options), todo, deadline_s=self._deadline, on_result=collect)
        results.sort(key=lambda r: r.idx)
        return results

    def score_inline(self, tasks: Iterable[ScoreTask]) -> list[PairResult]:
        """Score in this process (small runs and tests of the logic); connections are kept."""
        if self._inline is None:
            self._inline = SerialPool(**self._pool_args())
        todo = list(tasks)
        done = self._inline.map(partial(_score_one, self.options), todo)
        return [self._verdict(t, r) for t, r in zip(todo, done, strict=True)]
