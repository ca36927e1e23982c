"""Multi-turn GRPO rollouts with execution feedback: the agent loop, inside GRPO (beyond SQL-R1).

SQL-R1 scores one answer per rollout. Here each rollout runs the loop ``sqlr1 ask`` runs when
serving: the model answers; its SQL is executed as ``execute_sql`` would (guarded, read-only, the
server's row cap) in a :class:`training.pool.ExecutionPool` worker; :func:`mcp_server.method.feedback.review`
judges the outcome, and when it is not acceptable and attempts are left, the feedback becomes a turn
of the prompt (:class:`mcp_server.method.prompt.PreviousTurn` through the run's prompt variant: the prompt
the agent's ``generate_sql(feedback=...)`` call renders, character for character) and the model
answers again.

GRPO trains on each rollout's last attempt: its prompt (question, earlier SQL, feedback) and its
completion, scored by the SQL-R1 reward on that final answer plus the ``turns`` reward,
``-turn_cost × (attempts - 1)``. Right the first time keeps the full reward; right after feedback
earns a little less; never right earns SQL-R1's penalty. Earlier attempts are context, not trained
tokens: the agent shows the model its earlier SQL and the feedback, not its earlier reasoning, so
what the model continues at serving time is the last attempt's prompt, not the first attempt's
continuation.

Plugs into TRL as ``GRPOTrainer(rollout_func=...)``. Generation is the trainer's own
(``GRPOTrainer._generate_single_turn``: ``generate``, or vLLM when the trainer uses it) with its
sampling settings, so rollouts and the policy's log-probabilities stay consistent. This module never
scores (``training.rewards`` does) and never runs SQL in the trainer process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlr1.mcp_server.core.errors import QueryError, QueryFailed
from sqlr1.mcp_server.db.exec_pool import TaskFailed, WorkerContext
from sqlr1.mcp_server.method.answer import parse_completion
from sqlr1.mcp_server.method.feedback import Verdict, review, shape_review, value_hints
from sqlr1.mcp_server.method.prompt import PreviousTurn, prompt_spec
from sqlr1.mcp_server.sql.dialects import sqlglot_dialect
from sqlr1.training.config import MultiTurnSection
from sqlr1.training.data import Example, prompt_text
from sqlr1.training.pool import ExecutionPool, InProcessExecutor

__all__ = ["AttemptJob", "FeedbackRollout", "review_attempt", "turns_reward_for"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttemptJob:
    """One attempt to review in a worker: the question, the SQL the model gave (None: none found)."""

    db_path: str
    question: str
    sql: str | None
    max_rows: int
    value_hints: bool
    shape_check: bool = False  # review the result's shape too (while the rollout has shape retries left)


def review_attempt(ctx: WorkerContext, job: AttemptJob) -> Verdict:
    """In a pool worker: run the attempt's SQL as ``execute_sql`` does and review it as the agent does
    (on an empty result with ``value_hints``, the stored values matching the question are added)."""
    if not job.sql:
        return review(job.question, None, None, None)
    executor, name = ctx.executor(job.db_path)
    dialect = sqlglot_dialect(executor.registry.get(name).kind)  # what list_databases tells the agent
    try:
        result, error = executor.run(name, job.sql, max_rows=job.max_rows, timeout_s=ctx.timeout_s), None
    except QueryFailed as exc:
        result, error = None, exc.error
    verdict = review(job.question, job.sql, result, error, dialect=dialect)
    if verdict.reason == "empty" and job.value_hints:
        from sqlr1.mcp_server.method.values import ValueIndex

        index = ctx.resource(f"values:{job.db_path}", lambda: ValueIndex(executor.registry, executor))
        try:
            hits = index.search(name, job.question, limit=10)
        except QueryFailed:
            hits = []
        hints = value_hints([(h.table, h.column, h.value) for h in hits])
        verdict = Verdict(False, verdict.reason, f"{verdict.feedback}{hints}")
    if verdict.accepted and job.shape_check and result is not None:
        shaped, issues = shape_review(job.question, job.sql, result, dialect=dialect)
        if issues:  # as the agent: retry on a shape mismatch while shape retries are left
            verdict = shaped
    return verdict


def turns_reward_for(turn_cost: float) -> Callable[..., list[float]]:
    """The ``turns`` reward callable: ``-turn_cost`` per attempt after the first (read from the
    ``turns`` field the rollout adds to every sample)."""

    def turns_reward(prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
        turns = columns.get("turns")
        if turns is None:
            raise KeyError("the turns reward needs the 'turns' field of FeedbackRollout's samples")
        return [-turn_cost * (int(t) - 1) for t in turns]

    turns_reward.__name__ = "turns_reward"
    return turns_reward


class FeedbackRollout:
    """TRL's ``rollout_func``: up to ``max_turns`` attempts per rollout, feedback between them.

    ``records`` are the run's GRPO records (:func:`training.data.grpo_records`): a rollout's prompt
    text finds its question, database and evidence there, to build later attempts with ``ddl`` (the
    run's schema text) and the ``variant`` prompt. ``stats`` counts what happened (attempts, accepted
    at the first attempt, accepted after feedback) over the run.
    """

    def __init__(
        self,
        records: Sequence[dict[str, Any]],
        pool: ExecutionPool | InProcessExecutor,
        settings: MultiTurnSection,
        *,
        ddl: Callable[[str], str],
        variant: str,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.ddl = ddl
        self.variant = variant
        self.prefill = prompt_spec(variant).build("", "").assistant_prefill
        self.examples = {
            str(r["prompt"]): Example(
                source=str(r.get("source", "")),
                db_id=str(r.get("db_id", "")),
                db_path=str(r["db_path"]),
                question=str(r["question"]),
                gold_sql=str(r.get("gold_sql", "")),
                evidence=str(r.get("evidence") or ""),
                complexity=str(r.get("complexity") or ""),
            )
            for r in records
        }
        # accepted_*: judged acceptable by the review before the last attempt (the last is not reviewed)
        self.stats = {"rollouts": 0, "attempts": 0, "accepted_first": 0, "accepted_after_feedback": 0}

    # -- TRL's entry point ---------------------------------------------------------------------

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, Any]:
        tokenizer = trainer.processing_class
        examples = [self._example(p) for p in prompts]
        n = len(examples)
        prompt_ids: list[list[int]] = [
            list(ids) for ids in tokenizer(text=[str(p) for p in prompts])["input_ids"]
        ]
        completion_ids: list[list[int]] = [[] for _ in range(n)]
        logprobs: list[Any] = [None] * n
        turns = [0] * n
        history: list[list[PreviousTurn]] = [[] for _ in range(n)]
        accepted: list[int] = [0] * n  # the attempt that was accepted (0: none)
        shape_used = [0] * n  # shape retries taken (the agent's shape_retries)
        pending = list(range(n))
        for turn in range(1, self.settings.max_turns + 1):
            ids, lps = self._generate(trainer, [prompt_ids[i] for i in pending], fallback=prompt_ids[0])
            for j, i in enumerate(pending):
                completion_ids[i], turns[i] = ids[j], turn
                logprobs[i] = lps[j] if lps is not None else None
            if turn == self.settings.max_turns:
                break
            texts = tokenizer.batch_decode([completion_ids[i] for i in pending], skip_special_tokens=True)
            sqls = [parse_completion(t, self.prefill).sql for t in texts]
            checks = [shape_used[i] < self.settings.shape_retries for i in pending]
            verdicts = self._review([examples[i] for i in pending], sqls, checks)
            still = []
            for i, sql, verdict in zip(pending, sqls, verdicts, strict=True):
                if verdict.accepted:
                    accepted[i] = turn
                    continue
                if verdict.reason == "shape":
                    shape_used[i] += 1
                ex = examples[i]
                history[i].append(PreviousTurn(ex.question, sql or "", verdict.feedback or ""))
                text = prompt_text(ex, self.ddl, tokenizer, self.variant, history[i])
                prompt_ids[i] = list(tokenizer(text=[text])["input_ids"][0])
                still.append(i)
            if not self._any_left(trainer, len(still)):
                break
            pending = still
        self._log(trainer, turns, accepted)
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": completion_ids,
            "logprobs": None if any(lp is None for lp in logprobs) else logprobs,
            "turns": turns,
            "feedback": [[t.feedback for t in h] for h in history],
        }

    # -- pieces ----------------------------------------------------------------------------------

    def _example(self, prompt: Any) -> Example:
        ex = self.examples.get(str(prompt))
        if ex is None:
            raise KeyError(
                "a rollout prompt that is not among the run's GRPO records (FeedbackRollout(records=...))"
            )
        return ex

    @staticmethod
    def _generate(
        trainer: Any, batch: list[list[int]], *, fallback: list[int]
    ) -> tuple[list[list[int]], list[Any] | None]:
        """One sampled completion per prompt, by the trainer's own generation path. A process with
        nothing left still generates once (for ``fallback``, discarded) while others go on: under
        DeepSpeed ZeRO-3 or a vLLM server every process must take part in each generation."""
        ids, lps = trainer._generate_single_turn(batch or [fallback], None, {}, 1)
        if not batch:
            return [], None
        return [list(x) for x in ids], (list(lps) if lps is not None else None)

    @staticmethod
    def _any_left(trainer: Any, local: int) -> bool:
        """Whether any process still has rollouts to continue (all processes take the same turns)."""
        accelerator = getattr(trainer, "accelerator", None)
        if accelerator is None or accelerator.num_processes == 1:
            return local > 0
        import torch

        total = accelerator.gather(torch.tensor([local], device=accelerator.device)).sum()
        return bool(int(total) > 0)

    def _review(
        self, examples: list[Example], sqls: list[str | None], shape_checks: list[bool]
    ) -> list[Verdict]:
        settings = self.settings
        jobs = [
            AttemptJob(ex.db_path, ex.question, sql, settings.max_rows, settings.value_hints, check)
            for ex, sql, check in zip(examples, sqls, shape_checks, strict=True)
        ]
        out: list[Verdict] = []
        for job, result in zip(jobs, self.pool.map(review_attempt, jobs), strict=True):
            if isinstance(result, TaskFailed):  # the worker missed its deadline or died
                error = QueryError(
                    kind="timeout" if result.kind == "timeout" else "execution", message=result.message
                )
                result = review(job.question, job.sql, None, error)
            out.append(result)
        return out

    def _log(self, trainer: Any, turns: list[int], accepted: list[int]) -> None:
        n = max(len(turns), 1)
        first = sum(a == 1 for a in accepted)
        later = sum(a > 1 for a in accepted)
        self.stats["rollouts"] += len(turns)
        self.stats["attempts"] += sum(turns)
        self.stats["accepted_first"] += first
        self.stats["accepted_after_feedback"] += later
        metrics = getattr(trainer, "_metrics", None)
        if metrics is None:
            return
        mode = "train" if getattr(trainer.model, "training", True) else "eval"
        metrics[mode]["multiturn/attempts_mean"].append(sum(turns) / n)
        metrics[mode]["multiturn/retried"].append(sum(t > 1 for t in turns) / n)
        metrics[mode]["multiturn/accepted_first"].append(first / n)
        metrics[mode]["multiturn/accepted_after_feedback"].append(later / n)
