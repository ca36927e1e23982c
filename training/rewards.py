"""SQL-R1's reward as four TRL reward callables: format, execution, result and length.

Each callable has TRL's signature ``(prompts, completions, **columns) -> list[float]`` and reads the
dataset columns ``db_path`` and ``gold_sql``; TRL combines them with ``reward_weights`` and logs each
under its ``__name__``. The scores (SQL-R1, exactly, but for one documented deviation):

* format: +1 when :func:`mcp_server.answer.format_ok` holds for the completion with the prompt's
  pre-filled ``<think>`` (``prefilled_think=True``), else -1;
* execution: only when the format holds: +2 if the predicted SQL executes within the timeout,
  -2 if it fails, is blocked or times out; 0 when the format failed;
* result: only when it executed: +3 if the rows match the gold's under Spider test-suite semantics
  (:func:`mcp_server.compare.spider_equal`, DISTINCT stripped from both queries, order only when
  the gold has a top-level ORDER BY), -3 otherwise; 0 when it did not execute;
* length: only for a correct result: ``0.5 * min(L / 2048, 1) + len(sql) / len(answer_text)``, with
  ``L`` the characters of think text plus answer text.

Deviation: in the reference code a gold query that errors makes every executable prediction a
match; here such samples are dropped at data preparation (``training.data``) and, if met at run
time, score 0 result (and 0 length) reward.

SQL runs only in :class:`training.pool.ExecutionPool` workers, never in the trainer. The four
callables share one scoring pass per batch: each completion's SQL executes once per step, and gold
results come from :class:`training.gold.GoldResolver` (disk-cached).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mcp_server.answer import parse_answer
from mcp_server.compare import order_matters_for, spider_equal, strip_distinct
from mcp_server.errors import QueryFailed
from mcp_server.exec_pool import execute_job
from training.gold import GoldResolver
from training.pool import ExecJob, ExecOutcome, ExecutionPool, InProcessExecutor

__all__ = [
    "REWARD_NAMES",
    "RewardBreakdown",
    "SQLR1Reward",
    "completion_text",
    "reward_sql",
]

log = logging.getLogger(__name__)

REWARD_NAMES = ("format", "execution", "result", "length")
FORMAT_OK, FORMAT_BAD = 1.0, -1.0
EXEC_OK, EXEC_BAD = 2.0, -2.0
RESULT_OK, RESULT_BAD = 3.0, -3.0


@dataclass(frozen=True)
class RewardBreakdown:
    """The four components for one completion, plus what led to them."""

    format: float
    execution: float
    result: float
    length: float
    sql: str | None = None
    error: str | None = None

    @property
    def total(self) -> float:
        return self.format + self.execution + self.result + self.length

    def component(self, name: str) -> float:
        return float(getattr(self, name))


def completion_text(completion: Any) -> str:
    """TRL passes strings (standard format) or a list of messages (conversational format)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return "".join(str(m.get("content", "")) for m in completion if m.get("role") == "assistant")
    return str(completion)


@functools.lru_cache(maxsize=8192)
def reward_sql(sql: str) -> str:
    """The statement the reward runs: the test-suite's DISTINCT stripping (``mcp_server.compare``);
    unparseable SQL is run as written (and fails there)."""
    try:
        return strip_distinct(sql, "sqlite")
    except QueryFailed:
        return sql


@functools.lru_cache(maxsize=8192)
def _gold_order_matters(gold_sql: str) -> bool:
    """Whether row order counts for this gold (parsed once per gold, not once per completion)."""
    try:
        return order_matters_for(gold_sql, "sqlite")
    except QueryFailed:
        return "order by" in gold_sql.lower()


class _RewardFunc:
    """One TRL reward callable (a named object: TRL logs it under ``__name__``)."""

    def __init__(self, owner: SQLR1Reward, component: str) -> None:
        self.owner = owner
        self.component = component
        self.__name__ = f"{component}_reward"
        self.calls: list[tuple[str, ...]] = []  # the column names each call received, for inspection

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
        self.calls.append(tuple(sorted(columns)))
        scores = self.owner.score_batch(completions, columns)
        return [s.component(self.component) for s in scores]


class SQLR1Reward:
    """The reward, bound to an execution pool and a gold resolver.

    ``funcs`` is the list to hand to ``GRPOTrainer(reward_funcs=...)``, in the order of
    :data:`REWARD_NAMES` (match ``reward_weights`` to it). ``score`` scores one completion.
    """

    def __init__(
        self,
        pool: ExecutionPool | InProcessExecutor,
        gold: GoldResolver | None = None,
        *,
        prefilled_think: bool = True,
        length_norm_chars: int = 2048,
        strip_distinct: bool = True,
        db_column: str = "db_path",
        gold_column: str = "gold_sql",
    ) -> None:
        self.pool = pool
        self.gold = gold if gold is not None else GoldResolver(pool)
        self.prefilled_think = prefilled_think
        self.length_norm_chars = length_norm_chars
        self.strip_distinct = strip_distinct
        self.db_column = db_column
        self.gold_column = gold_column
        self.funcs: list[Callable[..., list[float]]] = [_RewardFunc(self, c) for c in REWARD_NAMES]
        self._lock = threading.Lock()
        self._last_key: tuple[Any, ...] | None = None
        self._last_scores: list[RewardBreakdown] = []
        self.executions = 0  # predicted statements actually sent to the pool

    # -- batch scoring (shared by the four callables) ------------------------------------------

    def score_batch(self, completions: Sequence[Any], columns: dict[str, Any]) -> list[RewardBreakdown]:
        try:
            dbs = [str(d) for d in columns[self.db_column]]
            golds = [str(g) for g in columns[self.gold_column]]
        except KeyError as exc:
            raise KeyError(
                f"the reward needs the dataset columns {self.db_column!r} and {self.gold_column!r}; "
                f"got {sorted(columns)}"
            ) from exc
        texts = [completion_text(c) for c in completions]
        key = (tuple(texts), tuple(dbs), tuple(golds))
        with self._lock:
            if key != self._last_key:
                self._last_scores = self._score(texts, dbs, golds)
                self._last_key = key
            return list(self._last_scores)

    def score(self, completion: str, db_path: str, gold_sql: str) -> RewardBreakdown:
        return self._score([completion], [db_path], [gold_sql])[0]

    def _score(self, texts: list[str], dbs: list[str], golds: list[str]) -> list[RewardBreakdown]:
        # parse, and hand each distinct (db, sql) to the pool at once: it executes while the rest parse
        parsed = []
        jobs: dict[tuple[str, str], int] = {}
        with self.pool.submit(execute_job) as run:
            for text, db in zip(texts, dbs, strict=True):
                p = parse_answer(text, prefilled_think=self.prefilled_think)
                parsed.append(p)
                key = (db, self._run_sql(p.sql)) if p.format_ok and p.sql else None
                if key is not None and key not in jobs:
                    jobs[key] = run.add(ExecJob(db_path=key[0], sql=key[1]))
            outcomes = run.outcomes()
        self.executions += len(jobs)
        formats = [p.format_ok for p in parsed]
        need_gold = sorted(
            {
                (db, self._run_sql(g))
                for ok, p, db, g in zip(formats, parsed, dbs, golds, strict=True)
                if ok and p.sql and outcomes[jobs[(db, self._run_sql(p.sql))]].ok
            }
        )
        gold_out = dict(zip(need_gold, self.gold.resolve(need_gold), strict=True)) if need_gold else {}

        scores: list[RewardBreakdown] = []
        for ok, p, db, gold_sql in zip(formats, parsed, dbs, golds, strict=True):
            if not ok:
                scores.append(RewardBreakdown(FORMAT_BAD, 0.0, 0.0, 0.0, sql=p.sql, error="format"))
                continue
            if not p.sql:  # a well-formed answer with an empty sql block: nothing to execute
                scores.append(RewardBreakdown(FORMAT_OK, EXEC_BAD, 0.0, 0.0, error="execution: empty SQL"))
                continue
            pred = outcomes[jobs[(db, self._run_sql(p.sql))]]
            if not pred.ok:
                scores.append(
                    RewardBreakdown(
                        FORMAT_OK,
                        EXEC_BAD,
                        0.0,
                        0.0,
                        sql=p.sql,
                        error=f"{pred.error_kind}: {pred.error_message}",
                    )
                )
                continue
            gold = gold_out[(db, self._run_sql(gold_sql))]
            if not gold.ok:  # deliberate deviation: an erroring gold never makes a match
                scores.append(
                    RewardBreakdown(
                        FORMAT_OK,
                        EXEC_OK,
                        0.0,
                        0.0,
                        sql=p.sql,
                        error=f"gold {gold.error_kind}: {gold.error_message}",
                    )
                )
                continue
            if not self._match(pred, gold, gold_sql):
                scores.append(RewardBreakdown(FORMAT_OK, EXEC_OK, RESULT_BAD, 0.0, sql=p.sql))
                continue
            scores.append(RewardBreakdown(FORMAT_OK, EXEC_OK, RESULT_OK, self._length(p), sql=p.sql))
        return scores

    # -- pieces ----------------------------------------------------------------------------------

    def _run_sql(self, sql: str) -> str:
        return reward_sql(sql) if self.strip_distinct else sql

    @staticmethod
    def _match(pred: ExecOutcome, gold: ExecOutcome, gold_sql: str) -> bool:
        if pred.truncated != gold.truncated:
            return False  # a capped result cannot be compared as a bag with an uncapped one
        return spider_equal(pred.rows or [], gold.rows or [], order_matters=_gold_order_matters(gold_sql))

    def _length(self, p: Any) -> float:
        think = p.think or ""
        answer = p.answer or ""
        total = len(think) + len(answer)
        ratio = len(p.sql or "") / len(answer) if answer else 0.0
        return 0.5 * min(total / self.length_norm_chars, 1.0) + ratio
