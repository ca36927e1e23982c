"""SQL-R1's reward as four TRL reward callables: format, execution, result and length.

Each callable has TRL's signature ``(prompts, completions, **columns) -> list[float]`` and reads the
dataset columns ``db_path`` and ``gold_sql``; TRL combines them with ``reward_weights`` and logs each
under its ``__name__``. The scores are SQL-R1's (``verl/utils/reward_score/synsql.py``), checked
against that code on the parity corpus (``tests/data/parity/reward_cases.json``):

* format: +1 when :func:`mcp_server.method.answer.format_ok` holds for the completion with the prompt's
  pre-filled ``<think>`` (SQL-R1's check, exactly: an empty ```` ```sql ```` block fails it), else -1;
* execution: only when the format holds: +2 if the answer's SQL executes within the timeout,
  -2 if it fails, is blocked or times out; 0 when the format failed;
* result: only when it executed: +3 if the rows match the gold's under Spider test-suite semantics
  (:func:`mcp_server.method.compare.spider_equal`, DISTINCT stripped from both queries, row order per
  :class:`OrderRule`), -3 otherwise; 0 when it did not execute;
* length: only for a correct result: ``0.5 * min(L / 2048, 1) + len(sql) / len(answer_text)``, with
  ``L`` the characters of think text plus answer text and ``sql`` whitespace-collapsed, as SQL-R1.

Deliberate differences (each with its reason and parity case in ``docs/fidelity.md``): the SQL runs
as written (SQL-R1 collapses whitespace first, which breaks ``--`` comments and changes literals,
and rewrites ``> =``); writes and second statements are refused by the guard (-2; SQL-R1 runs them);
a gold query that errors, or returns more than ``max_rows`` rows, scores 0 result and 0 length (SQL-R1
scores an erroring gold as a match, a ``==`` typo); row order follows ``order_by`` (default
``top_level``; ``anywhere`` is SQL-R1's rule).

SQL runs only in :class:`training.pool.ExecutionPool` workers, never in the trainer. The four
callables share one scoring pass per batch: each completion's SQL executes once per step, and gold
results come from :class:`training.gold.GoldResolver` (disk-cached).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.exec_pool import execute_job
from sqlr1.mcp_server.method.answer import StrictAnswer, strict_answer
from sqlr1.mcp_server.method.compare import order_matters_for, spider_equal, strip_distinct
from sqlr1.training.gold import GoldResolver
from sqlr1.training.pool import ExecJob, ExecOutcome, ExecutionPool, InProcessExecutor

__all__ = [
    "ORDER_RULES",
    "REWARD_NAMES",
    "OrderRule",
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

OrderRule = Literal["top_level", "anywhere"]
"""When row order counts: ``top_level`` when the gold's outermost query has an ORDER BY;
``anywhere`` when the text ``order by`` appears anywhere in the whitespace-collapsed gold (SQL-R1's
and the Spider test-suite's rule: a window's or subquery's ORDER BY, or a string literal, counts)."""
ORDER_RULES: tuple[str, ...] = get_args(OrderRule)


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
    """The statement the reward runs: the test-suite's DISTINCT stripping (``mcp_server.method.compare``);
    unparseable SQL is run as written (and fails there)."""
    try:
        return strip_distinct(sql, "sqlite")
    except QueryFailed:
        return sql


def _collapse(sql: str) -> str:
    """SQL-R1's ``re.sub(r'\\s+', ' ', sql)``."""
    return re.sub(r"\s+", " ", sql)


@functools.lru_cache(maxsize=8192)
def _gold_order_matters(gold_sql: str, rule: OrderRule) -> bool:
    """Whether row order counts for this gold (parsed once per gold, not once per completion)."""
    if rule == "anywhere":
        return order_matters_for(_collapse(gold_sql), rule="official")
    try:
        return order_matters_for(gold_sql, "sqlite")
    except QueryFailed:
        return "order by" in _collapse(gold_sql).lower()


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
        order_by: OrderRule = "top_level",
        db_column: str = "db_path",
        gold_column: str = "gold_sql",
    ) -> None:
        self.pool = pool
        self.gold = gold if gold is not None else GoldResolver(pool)
        self.prefilled_think = prefilled_think
        self.length_norm_chars = length_norm_chars
        self.strip_distinct = strip_distinct
        if order_by not in ORDER_RULES:
            raise ValueError(f"order_by must be one of {', '.join(ORDER_RULES)}, not {order_by!r}")
        self.order_by: OrderRule = order_by
        self.db_column = db_column
        self.gold_column = gold_column
        self.funcs: list[_RewardFunc] = [_RewardFunc(self, c) for c in REWARD_NAMES]
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
        parsed: list[StrictAnswer] = []
        jobs: dict[tuple[str, str], int] = {}
        with self.pool.submit(execute_job) as run:
            for text, db in zip(texts, dbs, strict=True):
                p = strict_answer(text, prefilled_think=self.prefilled_think)
                parsed.append(p)
                key = (db, self._run_sql(p.sql)) if p.ok and p.sql else None
                if key is not None and key not in jobs:
                    jobs[key] = run.add(ExecJob(db_path=key[0], sql=key[1]))
            outcomes = run.outcomes()
        self.executions += len(jobs)
        need_gold = sorted(
            {
                (db, self._run_sql(g))
                for p, db, g in zip(parsed, dbs, golds, strict=True)
                if p.ok and p.sql and outcomes[jobs[(db, self._run_sql(p.sql))]].ok
            }
        )
        gold_out = dict(zip(need_gold, self.gold.resolve(need_gold), strict=True)) if need_gold else {}

        scores: list[RewardBreakdown] = []
        for p, db, gold_sql in zip(parsed, dbs, golds, strict=True):
            if not p.ok or not p.sql:  # SQL-R1: no non-empty ```sql block in the answer fails the format
                scores.append(RewardBreakdown(FORMAT_BAD, 0.0, 0.0, 0.0, sql=p.sql, error="format"))
                continue
            pred = outcomes[jobs[(db, self._run_sql(p.sql))]]
            if not pred.ok:
                error = f"{pred.error_kind}: {pred.error_message}"
                scores.append(RewardBreakdown(FORMAT_OK, EXEC_BAD, 0.0, 0.0, sql=p.sql, error=error))
                continue
            gold = gold_out[(db, self._run_sql(gold_sql))]
            if not gold.ok or gold.truncated:
                # Deliberate deviation: an erroring gold never makes a match, and a gold past max_rows
                # cannot be compared whole; data preparation drops both.
                error = (
                    f"gold {gold.error_kind}: {gold.error_message}" if not gold.ok else "gold over max_rows"
                )
                scores.append(RewardBreakdown(FORMAT_OK, EXEC_OK, 0.0, 0.0, sql=p.sql, error=error))
                continue
            if not self._match(pred, gold, gold_sql):
                scores.append(RewardBreakdown(FORMAT_OK, EXEC_OK, RESULT_BAD, 0.0, sql=p.sql))
                continue
            scores.append(RewardBreakdown(FORMAT_OK, EXEC_OK, RESULT_OK, self._length(p), sql=p.sql))
        return scores

    # -- pieces ----------------------------------------------------------------------------------

    def _run_sql(self, sql: str) -> str:
        return reward_sql(sql) if self.strip_distinct else sql

    def _match(self, pred: ExecOutcome, gold: ExecOutcome, gold_sql: str) -> bool:
        if pred.truncated:
            return False  # more rows than the gold, which is within max_rows
        order = _gold_order_matters(gold_sql, self.order_by)
        return spider_equal(pred.rows or [], gold.rows or [], order_matters=order)

    def _length(self, p: StrictAnswer) -> float:
        """SQL-R1's length term: the reasoning-plus-answer length (capped) and the SQL's share of the
        answer, the SQL whitespace-collapsed as there."""
        think, answer = p.think or "", p.answer or ""
        total = len(think) + len(answer)
        ratio = len(_collapse(p.sql or "")) / len(answer) if answer else 0.0
        return 0.5 * min(total / self.length_norm_chars, 1.0) + ratio

    def settings(self) -> dict[str, Any]:
        """The settings that decide scores, for run records and checkpoint manifests."""
        return {
            "order_by": self.order_by,
            "strip_distinct": self.strip_distinct,
            "length_norm_chars": self.length_norm_chars,
            "prefilled_think": self.prefilled_think,
        }
