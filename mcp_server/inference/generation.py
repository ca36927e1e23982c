"""Self-consistency SQL generation: question in, N candidates, guarded execution, majority vote.

Owns the SQL-R1 inference loop: build the prompt (schema DDL, evidence, retrieved values, previous
turns), sample N candidates in ONE batched backend call (``n=1`` is greedy), run every candidate's SQL
through the guarded executor (with a cancel handle of the request's ``Cancellation``, so a cancel stops
a running candidate in the engine), group candidates by their whole result and pick the largest group
(ties: the highest log-likelihood, else the earliest candidate). A result within the row and character
caps is grouped by BIRD row-set equivalence (``compare.result_key``, as SQL-R1's voting); results cut by a
cap are grouped by a fingerprint of the whole result (``Executor.fingerprint``: streamed by the engine,
never held, equal for results equal as bags), so candidates that differ after the cap stay apart. The
preview shows the capped rows.
It never runs SQL without the guard, never parses SQL with regexes (``answer.py`` extracts it) and
never loads a model (the backend is handed in, loaded once per process by ``backends.factory``).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from sqlr1.mcp_server.backends.base import Backend, CodeBlock, Completion, PromptInput, SamplingParams
from sqlr1.mcp_server.catalog.linking import link_tables, subset
from sqlr1.mcp_server.core.config import GenerationConfig
from sqlr1.mcp_server.core.errors import QueryError, QueryFailed
from sqlr1.mcp_server.core.results import Column, JSONValue, QueryResult, safe_integers
from sqlr1.mcp_server.db.cancellation import Cancellation
from sqlr1.mcp_server.method.answer import parse_completion
from sqlr1.mcp_server.method.compare import result_key
from sqlr1.mcp_server.method.confidence import Confidence, assess
from sqlr1.mcp_server.method.grammar import sql_grammar
from sqlr1.mcp_server.method.prompt import PreviousTurn, build_prompt, prompt_spec, variant_for_version
from sqlr1.mcp_server.method.values import ValueHit
from sqlr1.mcp_server.sql.alias_scope import alias_scope
from sqlr1.mcp_server.sql.column_hint import missing_column
from sqlr1.mcp_server.sql.dialects import sqlglot_dialect
from sqlr1.mcp_server.sql.join_completion import complete_joins, foreign_key_links

if TYPE_CHECKING:
    from sqlr1.mcp_server.catalog.schema import DatabaseSchema, SchemaInspector
    from sqlr1.mcp_server.db.executor import Executor
    from sqlr1.mcp_server.db.registry import Registry
    from sqlr1.mcp_server.method.values import ValueIndex

__all__ = [
    "CPU_DEFAULTS",
    "CPU_REASONING_DEFAULTS",
    "GPU_DEFAULTS",
    "CandidateResult",
    "GenerationResult",
    "Generator",
    "ProgressCallback",
    "PromptTrace",
    "ResultPreview",
    "Timings",
    "vote",
]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, float, str], None]
"""(progress, total, message); called from the generating thread."""

CandidateStatus = Literal[
    "ok",
    "no_sql",
    "blocked",
    "syntax",
    "execution",
    "timeout",
    "not_found",
    "config",
    "invalid_arguments",  # every ErrorKind is a status (a candidate's error kind); this one never occurs
    "cancelled",
    "unfinished",  # stopped by the time budget before its answer was complete: not executed, no vote
]
GenerationStatus = Literal["ok", "no_executable_candidate", "cancelled"]

ENGINE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MySQL", "duckdb": "DuckDB"}
PREVIEW_ROWS = 10
MAX_VALUE_HITS = 8

# Defaults per device (``GenerationConfig.num_candidates``/``ModelConfig.max_new_tokens`` left unset),
# (candidates, max new tokens): SQL-R1's n=8 on a GPU. On a CPU, n=8 too where the answer is the query
# only (8 short candidates decode in one batched call, about 1.5 s more than one, and their vote is right
# far more often); one where the model reasons first, whose 8 long answers a CPU cannot afford
# (benchmarks/RESULTS.md, "Latency of the default model" and "Eight candidates by default on a CPU").
CPU_DEFAULTS = (8, 384)
CPU_REASONING_DEFAULTS = (1, 384)
GPU_DEFAULTS = (8, 1024)
RUNAWAY_FACTOR = 3.0
"""Sampled candidates: once half are done, one three times longer than the longest done one is ended
(benchmarks/RESULTS.md, "Eight candidates by default on a CPU")."""
EXEC_FLOOR_S = 2.0
"""Least time a done candidate's query gets once the time budget is spent (it is still voted on)."""
MAX_JOINS_COMPLETED = 3
"""Missing columns a query may have joined for it, one engine error at a time (``join_missing``)."""
WARM_QUESTION = "?"  # any question: only the schema prefix of the prompt is computed


def on_cpu(backend: Backend) -> bool:
    """True when ``backend`` runs on this machine's CPU (a remote server counts as an accelerator)."""
    return str(getattr(backend, "device", "")).startswith("cpu")


class CandidateResult(BaseModel):
    """One sampled candidate: what the model wrote, the SQL in it, and what running it did."""

    index: int
    text: str = Field(description="The completion (with any assistant pre-fill) as the model wrote it.")
    reasoning: str | None = Field(default=None, description="The <think> text.")
    sql: str | None = Field(default=None, description="The SQL extracted from the answer (None: none found).")
    format_ok: bool = Field(
        description="True when the completion follows the <think>/<answer> format exactly."
    )
    status: CandidateStatus
    error: QueryError | None = None
    row_count: int | None = None
    truncated: bool = False
    group: int | None = Field(
        default=None, description="Vote group (0 = the winning group); None if not executable."
    )
    votes: int = Field(default=0, description="Size of this candidate's vote group.")
    logprob: float | None = None
    num_tokens: int = 0
    finish_reason: str = "stop"
    rebound_from: str | None = Field(
        default=None,
        description="The first draft's SQL when it qualified a column by an alias whose table lacks it; "
        "the SQL above was decoded again with each alias bound to its table.",
    )
    joined_from: str | None = Field(
        default=None,
        description="The model's SQL when it named a column of a table it did not join; the SQL above "
        "joins that table along the foreign keys.",
    )
    joined: list[str] = Field(default_factory=list, description="The tables joined for it, in order.")


class ResultPreview(BaseModel):
    columns: list[Column]
    rows: list[list[JSONValue]]
    row_count: int = Field(description="Rows the chosen SQL returned (up to the guard's cap).")
    truncated: bool = Field(description="True when rows beyond the preview (or the guard's cap) exist.")


class PromptTrace(BaseModel):
    messages: list[dict[str, str]]
    assistant_prefill: str = ""
    variant: str
    version: str | None = None
    tables: list[str] | None = Field(
        default=None, description="The tables schema linking kept (None: the whole schema)."
    )


class Timings(BaseModel):
    retrieval_ms: float = 0.0
    prompt_ms: float = 0.0
    generation_ms: float = 0.0
    execution_ms: float = 0.0
    total_ms: float = 0.0


class GenerationResult(BaseModel):
    """The outcome of one ``generate_sql`` call.

    ``budget_exhausted``/``candidates_done``/``candidates_requested``/``time_budget_s`` say whether the time
    budget cut sampling short: then the vote is among the candidates that were done.
    """

    status: GenerationStatus
    message: str = Field(description="One line saying what happened.")
    database: str
    question: str
    sql: str | None = Field(default=None, description="The chosen SQL (None when no candidate executed).")
    reasoning: str | None = Field(default=None, description="The chosen candidate's <think> text.")
    chosen: int | None = Field(default=None, description="Index of the chosen candidate.")
    candidates: list[CandidateResult]
    vote_counts: list[int] = Field(description="Votes per group, group 0 first; they add up to `executable`.")
    executable: int = Field(description="How many candidates executed without error.")
    preview: ResultPreview | None = None
    errors: list[QueryError] = Field(
        default_factory=list, description="Distinct errors, when nothing executed."
    )
    values: list[ValueHit] = Field(default_factory=list, description="Retrieved values put into the prompt.")
    prompt: PromptTrace
    backend: str
    model: str
    timings: Timings
    budget_exhausted: bool = Field(
        default=False,
        description="True when the time budget ran out before every candidate was done: the vote is among "
        "the `candidates_done` that were.",
    )
    candidates_requested: int = Field(default=0, description="Candidates asked for (num_candidates).")
    candidates_done: int = Field(
        default=0, description="Candidates whose answer was complete (the others were stopped by the budget)."
    )
    time_budget_s: float | None = Field(
        default=None, description="The time budget this call ran under, in seconds (None: no budget)."
    )
    confidence: Confidence | None = Field(
        default=None,
        description="How sure the answer is: votes, whether the result's shape fits the question, attempts.",
    )


# One lock per in-process backend: requests on a local model are queued, never interleaved.
_backend_locks: weakref.WeakKeyDictionary[object, threading.Lock] = weakref.WeakKeyDictionary()
_backend_locks_guard = threading.Lock()


def _acquire(lock: threading.Lock, stop: Callable[[], bool]) -> bool:
    """Wait for the backend's lock until it is free (True) or ``stop()`` says the call is over: cancelled
    or out of its time budget (False). A call queued behind a schema prefix being computed must not
    outlive its budget waiting."""
    while not lock.acquire(timeout=0.1):
        if stop():
            return False
    return True


def _lock_for(backend: Backend) -> threading.Lock | None:
    if backend.name == "openai":
        return None  # the remote server queues and batches itself
    with _backend_locks_guard:
        lock = _backend_locks.get(backend)
        if lock is None:
            lock = threading.Lock()
            _backend_locks[backend] = lock
        return lock


class Generator:
    """Self-consistency generation over the shared registry, guarded executor and one loaded backend."""

    def __init__(
        self,
        registry: Registry,
        executor: Executor,
        inspector: SchemaInspector,
        backend: Backend,
        config: GenerationConfig | None = None,
        value_index: ValueIndex | None = None,
        *,
        max_new_tokens: int | None = None,
        prompt_version: str | None = None,
    ) -> None:
        self.registry = registry
        self.executor = executor
        self.inspector = inspector
        self.backend = backend
        self.config = config or GenerationConfig()
        self.value_index = value_index
        # A training checkpoint's manifest names the prompt it learned; a named instruct model the
        # instruct prompt; other plain models get the inference one; the configuration's `prompt`
        # overrides them all.
        self.prompt_version = prompt_version or getattr(backend, "prompt_version", None)
        try:
            self.prompt = prompt_spec(self.config.prompt or variant_for_version(self.prompt_version))
        except ValueError as exc:
            raise QueryFailed.of("config", str(exc)) from exc
        self.variant = self.prompt.name
        manifest = getattr(getattr(backend, "resolved", None), "manifest", None)
        # The schema text as the checkpoint saw it in training (the example-values ablation).
        self.example_values: int = getattr(manifest, "schema_example_values", 2)
        # Reasoning before the SQL (instruct models): on a GPU; on a CPU the query only, the block
        # opened in the pre-fill (benchmarks/RESULTS.md: the same accuracy in a third of the time).
        self.reasoning = self.config.reasoning if self.config.reasoning is not None else not on_cpu(backend)
        # Schema linking: for the instruct prompt (untrained models, long CPU prefills); SQL-R1's
        # prompts keep the whole schema, the text a checkpoint was trained on (docs/fidelity.md).
        linking = self.config.schema_linking
        self.schema_linking = linking if linking is not None else self.variant == "instruct"
        sql_only = self.variant == "instruct" and not self.reasoning
        defaults = (CPU_DEFAULTS if sql_only else CPU_REASONING_DEFAULTS) if on_cpu(backend) else GPU_DEFAULTS
        self.num_candidates = self.config.num_candidates or defaults[0]
        self.max_new_tokens = max_new_tokens or defaults[1]
        self._grammars: dict[tuple[str, str, tuple[str, ...]], str] = {}

    # -- prompt -----------------------------------------------------------------
    def build_prompt(
        self,
        database: str,
        question: str,
        *,
        evidence: str | None = None,
        values: Sequence[ValueHit] = (),
        previous_turns: Sequence[PreviousTurn] = (),
        tables: Sequence[str] | None = None,
    ) -> PromptInput:
        """The prompt of this generator's variant; ``tables``: only those (schema linking)."""
        engine = self.registry.engine(database)
        return build_prompt(
            self.inspector.ddl(database, tables, example_values=self.example_values),
            question,
            variant=self.prompt.name,
            evidence=evidence,
            engine=ENGINE_NAMES.get(engine.spec.kind, engine.spec.kind),
            values=[(h.table, h.column, h.value) for h in values] if self.prompt.uses_values else (),
            previous_turns=previous_turns,
            reasoning=self.reasoning,
        )

    def retrieve_values(
        self,
        database: str,
        question: str,
        evidence: str | None = None,
        *,
        cancel: Cancellation | None = None,
    ) -> list[ValueHit]:
        if self.value_index is None or not self.config.value_retrieval or not self.prompt.uses_values:
            return []
        text = f"{evidence}\n{question}" if evidence else question
        try:
            return self.value_index.search(database, text, limit=MAX_VALUE_HITS, cancel=cancel)
        except QueryFailed as exc:
            if exc.error.kind == "not_found":
                raise
            if cancel is not None and cancel.cancelled:
                log.debug("value retrieval on %s cancelled", database)
            else:
                log.warning("value retrieval failed on %s, continuing without it: %s", database, exc)
            return []

    def linked_tables(
        self, database: str, question: str, evidence: str | None, values: Sequence[ValueHit]
    ) -> list[str] | None:
        """The tables to prompt when the schema is large enough to link (``None``: all of them)."""
        if not self.schema_linking or not self._large(database):
            return None
        schema = self.inspector.describe(database)
        linked = link_tables(schema, question, evidence=evidence, value_tables=[h.table for h in values])
        return None if len(linked.tables) == len(schema.tables) else linked.tables

    def _large(self, database: str) -> bool:
        return len(self.inspector.ddl(database)) > self.config.link_above_chars

    def code_block(self, database: str, tables: Sequence[str] | None = None) -> CodeBlock | None:
        """The SQL block an instruct answer ends with (the candidate stops where it closes), under a
        grammar of the prompted tables when ``config.grammar`` is on."""
        if self.variant != "instruct":
            return None  # SQL-R1's formats go on to </answer>
        opened = not self.reasoning  # the pre-fill holds the opener
        if not self.config.grammar:
            return CodeBlock(opened=opened)
        schema = self.inspector.describe(database)
        key = (database, schema.fingerprint, tuple(tables or ()))
        grammar = self._grammars.get(key)
        if grammar is None:
            grammar = sql_grammar(self._prompted_schema(database, tables))
            if len(self._grammars) >= 64:
                self._grammars.clear()
            self._grammars[key] = grammar
        return CodeBlock(grammar=grammar, opened=opened)

    def _prompted_schema(self, database: str, tables: Sequence[str] | None) -> DatabaseSchema:
        """The catalog of the tables the prompt shows (``None``: all of them)."""
        schema = self.inspector.describe(database)
        return subset(schema, tables) if tables else schema

    def warm(self, database: str, should_stop: Callable[[], bool] | None = None) -> None:
        """Compute ``database``'s schema prefix in the backend now (those that keep one: llama.cpp),
        so the first question does not wait for it. Safe to call from a background thread."""
        warm = getattr(self.backend, "warm", None)
        if warm is None or (self.schema_linking and self._large(database)):
            return  # a linked schema's prompt changes with the question: no prefix to compute
        prompt = self.build_prompt(database, WARM_QUESTION)
        lock = _lock_for(self.backend)
        with lock if lock is not None else nullcontext():
            warm(prompt, should_stop)

    # -- the loop -----------------------------------------------------------------
    def generate_sql(
        self,
        database: str,
        question: str,
        *,
        evidence: str | None = None,
        num_candidates: int | None = None,
        previous_turns: Sequence[PreviousTurn] = (),
        max_new_tokens: int | None = None,
        on_progress: ProgressCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
        cancel: Cancellation | None = None,
        deadline: float | None = None,
        join_missing: bool = False,
    ) -> GenerationResult:
        """Generate, execute and vote. Raises ``QueryFailed`` only for an unknown database or a
        backend that cannot be used; every candidate-level failure is reported in the result.

        ``should_stop`` (polled) or ``cancel`` ends the work early with status ``cancelled``;
        ``cancel.cancel()`` also stops, in the engine, a value-index or candidate query that is running.
        ``deadline`` (a ``time.monotonic()`` instant) is the time budget: sampling stops there, the
        candidates already complete are executed (each under what is left of the budget, at least
        ``EXEC_FLOOR_S``) and voted on, and the result says ``budget_exhausted``. ``join_missing``: when no
        candidate runs, join the tables of the columns they name without joining them (the client's last
        attempt: the agent asks for it on its last turn).
        """
        t0 = time.perf_counter()
        n = num_candidates or self.num_candidates
        new_tokens = max_new_tokens or self.max_new_tokens
        total = float(n + 3)
        progress = _Progress(on_progress, total)
        cancel = cancel or Cancellation()
        budget_s = None if deadline is None else max(0.0, deadline - time.monotonic())

        def stop() -> bool:
            return cancel.cancelled or (should_stop is not None and should_stop())

        def over_budget() -> bool:
            return deadline is not None and time.monotonic() >= deadline

        def model_stop() -> bool:
            return stop() or over_budget()

        def exec_timeout() -> float | None:
            if deadline is None:
                return None
            left = max(EXEC_FLOOR_S, deadline - time.monotonic())
            return min(self.executor.settings.timeout_s, left)

        self.registry.get(database)  # unknown database: not_found, before any model work
        values = self.retrieve_values(database, question, evidence, cancel=cancel)
        t1 = time.perf_counter()
        tables = self.linked_tables(database, question, evidence, values)
        prompt = self.build_prompt(
            database, question, evidence=evidence, values=values, previous_turns=previous_turns, tables=tables
        )
        t2 = time.perf_counter()
        progress.step(1, f"prompt ready ({len(values)} retrieved values); sampling {n} candidate(s)")

        params = SamplingParams(
            n=n,
            temperature=0.0 if n == 1 else self.config.temperature,
            top_p=1.0 if n == 1 else self.config.top_p,
            max_new_tokens=new_tokens,
            seed=self.config.seed,
            block=self.code_block(database, tables),
            runaway_factor=None if n == 1 else RUNAWAY_FACTOR,
        )
        budget = max(1, n * new_tokens)
        produced = [0]

        first: list[str] = []  # candidate 0's text so far: streamed after the status line (the chat shows it)

        def on_text(i: int, text: str) -> None:
            produced[0] += 1
            if i == 0:
                first.append(text)
            progress.tick(
                1 + min(0.99, produced[0] / budget), f"generating: {produced[0]} tokens\n{''.join(first)}"
            )

        # earlier turns about this same question: the client is retrying it
        attempts = 1 + sum(t.question == question for t in previous_turns)
        lock = _lock_for(self.backend)
        busy = False  # the budget ran out (or the call was cancelled) while the model served other work
        if lock is None or _acquire(lock, model_stop):
            try:
                completions = self.backend.generate(
                    prompt, params, on_text=on_text if on_progress else None, should_stop=model_stop
                )
                if attempts > 1:  # the model had its chance to act on the precise column hint
                    completions = self._rebind(
                        database, tables, prompt, params, completions, progress, model_stop
                    )
            finally:
                if lock is not None:
                    lock.release()
        else:
            completions, busy = [], True
        t3 = time.perf_counter()
        # A candidate the budget stopped is "unfinished"; one the client's cancel stopped is "cancelled".
        exhausted = not stop() and (
            len(completions) < n or any(c.finish_reason == "cancelled" for c in completions)
        )
        done = sum(1 for c in completions if c.finish_reason != "cancelled")
        progress.step(
            2,
            f"time budget ran out: {done} of {n} candidate(s) done; executing"
            if exhausted
            else f"sampled {len(completions)} candidate(s); executing",
        )

        candidates, results = self._execute(
            database, prompt, completions, progress, cancel, stop, exec_timeout, unfinished=exhausted
        )
        if join_missing and not any(r is not None for r in results) and not stop():
            self._complete_joins(database, candidates, results, progress, cancel, exec_timeout)
        keys = self._vote_keys(database, candidates, results, cancel, exec_timeout)
        t4 = time.perf_counter()

        cancelled = stop() or (not exhausted and any(c.finish_reason == "cancelled" for c in completions))
        vote_counts, chosen = vote(candidates, results, keys)
        progress.step(total, "done")

        timings = Timings(
            retrieval_ms=(t1 - t0) * 1000,
            prompt_ms=(t2 - t1) * 1000,
            generation_ms=(t3 - t2) * 1000,
            execution_ms=(t4 - t3) * 1000,
            total_ms=(time.perf_counter() - t0) * 1000,
        )
        trace = PromptTrace(
            messages=[{"role": m.role, "content": m.content} for m in prompt.messages],
            assistant_prefill=prompt.assistant_prefill,
            variant=self.prompt.name,
            version=self.prompt.version,
            tables=tables,
        )
        executable = sum(vote_counts)
        common: dict[str, Any] = {
            "database": database,
            "question": question,
            "candidates": candidates,
            "vote_counts": vote_counts,
            "executable": executable,
            "values": values,
            "prompt": trace,
            "backend": self.backend.name,
            "model": self.backend.model_id,
            "timings": timings,
            "budget_exhausted": exhausted,
            "candidates_requested": n,
            "candidates_done": done,
            "time_budget_s": None if budget_s is None else round(budget_s, 3),
        }
        if chosen is None:
            errors = _distinct_errors(candidates)
            status: GenerationStatus = "cancelled" if cancelled else "no_executable_candidate"
            reason = "cancelled" if cancelled else "none of the candidates executed"
            detail = "; ".join(str(e) for e in errors[:3]) or "no SQL found in any answer"
            if exhausted and not cancelled:
                reason = (
                    f"the time budget ({budget_s or 0:.0f} s) ran out with {done} of {n} candidate(s) done"
                )
                detail = (
                    "; ".join(str(e) for e in errors[:3])
                    or "raise time_budget_s, lower num_candidates or use a faster model"
                )
                if busy:
                    detail = (
                        "the model was busy all that time (computing this database's schema prefix, which "
                        "is kept for the next call, or answering another request); ask again in a moment"
                    )
            confidence = assess(
                question,
                result=None,
                error=errors[0] if errors else None,
                cancelled=cancelled,
                votes=0,
                executed=0,
                candidates=n,
                attempts=attempts,
            )
            return GenerationResult(
                status=status,
                message=f"{reason} ({n} sampled): {detail}",
                errors=errors,
                confidence=confidence,
                **common,
            )
        winner = candidates[chosen]
        result = results[chosen]
        assert result is not None  # the chosen candidate executed
        preview = ResultPreview(
            columns=result.columns,
            rows=safe_integers(result.rows[:PREVIEW_ROWS]),
            row_count=result.row_count,
            truncated=result.truncated or result.row_count > PREVIEW_ROWS,
        )
        status = "cancelled" if cancelled else "ok"
        message = (
            f"chose candidate {chosen} with {winner.votes} of {executable} executable vote(s) "
            f"({n} sampled, {len(vote_counts)} distinct result(s))"
        )
        if exhausted:
            message += (
                f"; the time budget ({budget_s or 0:.0f} s) ran out with {done} of {n} candidate(s) done"
            )
        confidence = assess(
            question,
            result=result,
            sql=winner.sql,
            cancelled=cancelled,
            votes=winner.votes,
            executed=executable,
            candidates=n,
            attempts=attempts,
            dialect=sqlglot_dialect(self.registry.engine(database).spec.kind),
            rebound=winner.rebound_from is not None,
            joined=winner.joined,
        )
        return GenerationResult(
            status=status,
            message=message,
            sql=winner.sql,
            reasoning=winner.reasoning,
            chosen=chosen,
            preview=preview,
            confidence=confidence,
            **common,
        )

    def _rebind(
        self,
        database: str,
        tables: Sequence[str] | None,
        prompt: PromptInput,
        params: SamplingParams,
        completions: list[Completion],
        progress: _Progress,
        should_stop: Callable[[], bool],
    ) -> list[Completion]:
        """On a retry of a question: when no candidate's qualified columns all belong to their
        qualifiers' tables, decode the first such draft's query again (greedy) under a grammar that
        binds its aliases to their tables, and put it in the draft's place if that one is sound.

        The catalog grammar cannot bind aliases (they are declared after the SELECT list):
        ``T1.SupportRepId`` where T1 is Employee is the commonest failure of the small models. A first
        attempt is left as the model wrote it: the precise hint of its error lets the model fix the
        binding itself, which it does better than a forced binding (benchmarks/RESULTS.md, "Binding
        aliases on a retry"). Only for backends that decode grammars."""
        block = params.block
        if block is None or block.grammar is None or not getattr(self.backend, "supports_grammar", False):
            return completions
        shown = self._prompted_schema(database, tables)
        catalog = {t.name: [c.name for c in t.columns] for t in shown.tables}
        dialect = sqlglot_dialect(self.registry.engine(database).spec.kind)
        draft = None
        for i, completion in enumerate(completions):
            sql = parse_completion(completion.text, prompt.assistant_prefill).sql
            scope = alias_scope(sql, dialect, catalog) if sql else None
            if completion.finish_reason == "cancelled" or scope is None:
                continue
            if not scope.misbound:
                return completions  # a sound candidate is there to be voted for
            if draft is None:
                draft = (i, sql, scope)
        if draft is None or should_stop():
            return completions
        i, sql, scope = draft
        progress.step(
            2, f"{', '.join(scope.misbound)}: not of its table; decoding again with the aliases bound"
        )
        grammar = sql_grammar(shown, aliases=scope)
        again = SamplingParams(
            n=1,
            temperature=0.0,
            max_new_tokens=params.max_new_tokens,
            seed=params.seed,
            stop=params.stop,
            block=CodeBlock(grammar=grammar, opened=block.opened),
        )
        (redone,) = self.backend.generate(prompt, again, should_stop=should_stop)
        new_sql = parse_completion(redone.text, prompt.assistant_prefill).sql
        new_scope = alias_scope(new_sql, dialect, catalog) if new_sql else None
        if redone.finish_reason != "stop" or new_scope is None or new_scope.misbound:
            log.info("re-decoding with bound aliases did not give a sound query: %s", new_sql)
            return completions
        redone.extra["rebound_from"] = sql
        return [*completions[:i], redone, *completions[i + 1 :]]

    def _execute(
        self,
        database: str,
        prompt: PromptInput,
        completions: Sequence[object],
        progress: _Progress,
        cancel: Cancellation,
        stop: Callable[[], bool],
        timeout: Callable[[], float | None] = lambda: None,
        *,
        unfinished: bool = False,
    ) -> tuple[list[CandidateResult], list[QueryResult | None]]:
        """Run each candidate's SQL (identical SQL once); ``unfinished``: the budget stopped the
        candidates whose finish reason is ``cancelled`` (they are not run)."""
        candidates: list[CandidateResult] = []
        results: list[QueryResult | None] = []
        seen: dict[str, QueryResult | QueryError] = {}  # identical SQL runs once
        for i, completion in enumerate(completions):
            raw = getattr(completion, "text", "")
            text = prompt.assistant_prefill + raw
            parsed = parse_completion(raw, prompt.assistant_prefill)
            reasoning = parsed.think
            if reasoning is None and self.variant == "instruct":
                reasoning = text.split("```", 1)[0].strip() or None  # the prose before the SQL block
            cand = CandidateResult(
                index=i,
                text=text,
                reasoning=reasoning,
                sql=parsed.sql,
                format_ok=parsed.format_ok,
                status="no_sql",
                logprob=getattr(completion, "logprob", None),
                num_tokens=getattr(completion, "num_tokens", 0),
                finish_reason=getattr(completion, "finish_reason", "stop"),
                rebound_from=getattr(completion, "extra", {}).get("rebound_from"),
            )
            result: QueryResult | None = None
            if unfinished and cand.finish_reason == "cancelled":
                cand.status = "unfinished"
            elif parsed.sql and stop():
                cand.status = "cancelled"
            elif parsed.sql:
                outcome = seen.get(parsed.sql)
                if outcome is None:
                    outcome = seen[parsed.sql] = self._run(database, parsed.sql, cancel, timeout)
                if isinstance(outcome, QueryError) and stop():
                    cand.status = "cancelled"  # stopped in the engine by the cancel, not by its own fault
                    cand.error = outcome
                elif isinstance(outcome, QueryError):
                    cand.status = outcome.kind
                    cand.error = outcome
                else:
                    result = outcome
                    cand.status = "ok"
                    cand.row_count = outcome.row_count
                    cand.truncated = outcome.truncated
            candidates.append(cand)
            results.append(result)
            progress.step(3 + i, f"executed candidate {i + 1}/{len(completions)}: {cand.status}")
        return candidates, results

    def _run(
        self, database: str, sql: str, cancel: Cancellation, timeout: Callable[[], float | None]
    ) -> QueryResult | QueryError:
        """Run ``sql`` through the guarded executor: its result, or its error."""
        try:
            with cancel.handle() as handle:
                return self.executor.run(database, sql, cancel=handle, timeout_s=timeout())
        except QueryFailed as exc:
            return exc.error

    def _complete_joins(
        self,
        database: str,
        candidates: list[CandidateResult],
        results: list[QueryResult | None],
        progress: _Progress,
        cancel: Cancellation,
        timeout: Callable[[], float | None],
    ) -> None:
        """When no candidate ran (and the client asked for it): join, along the foreign keys, the table of
        each column a candidate named without joining its table (``sql.join_completion``), and run the
        completed query in the candidate's place when it runs.

        ``CategoryName`` in a query over Products alone is the commonest failure the small models keep
        through all their attempts. A completed query runs but may not be what the question meant, and
        with the precise hint of its error a model often fixes the query better itself; so the agent asks
        for it only on its last attempt (benchmarks/RESULTS.md, "Joining the table a query forgot")."""
        schema = self.inspector.describe(database)
        tables = {t.name: [c.name for c in t.columns] for t in schema.tables}
        links = foreign_key_links(schema.tables)
        dialect = sqlglot_dialect(self.registry.engine(database).spec.kind)
        done: dict[str, tuple[str, list[str], QueryResult | QueryError]] = {}  # draft -> its completion
        joined: list[str]
        for i, cand in enumerate(candidates):
            if cand.sql is None or cand.error is None or cancel.cancelled:
                continue
            if cand.sql not in done:
                sql, joined = cand.sql, []
                outcome: QueryResult | QueryError = cand.error
                for _ in range(MAX_JOINS_COMPLETED):  # the engine names one missing column at a time
                    missing = missing_column(outcome.message) if isinstance(outcome, QueryError) else None
                    completion = (
                        complete_joins(sql, dialect, tables, links, missing[1])
                        if missing is not None and missing[0] is None
                        else None
                    )
                    if completion is None:
                        break
                    sql, joined = completion.sql, [*joined, *completion.joined]
                    outcome = self._run(database, sql, cancel, timeout)
                done[cand.sql] = (sql, joined, outcome)
            sql, joined, outcome = done[cand.sql]
            if isinstance(outcome, QueryError):
                continue
            progress.step(2, f"candidate {i + 1} did not join {', '.join(joined)}; joined it")
            cand.joined_from, cand.joined, cand.sql = cand.sql, joined, sql
            cand.status, cand.error = "ok", None
            cand.row_count, cand.truncated = outcome.row_count, outcome.truncated
            results[i] = outcome

    def _vote_keys(
        self,
        database: str,
        candidates: list[CandidateResult],
        results: list[QueryResult | None],
        cancel: Cancellation,
        timeout: Callable[[], float | None] = lambda: None,
    ) -> list[Hashable | None]:
        """Group keys for results cut by a cap: a fingerprint of the whole result, computed by a second,
        streamed run of each distinct SQL (only when two or more distinct SQLs were cut: one alone
        cannot be merged with anything); None (group by rows) for the others. A result that cannot be
        fingerprinted (timeout, error) keeps a group of its own SQL."""
        cut = {
            c.sql for c, r in zip(candidates, results, strict=True) if r is not None and r.truncated and c.sql
        }
        keys: list[Hashable | None] = [None] * len(candidates)
        if len(cut) < 2:
            for i, (c, r) in enumerate(zip(candidates, results, strict=True)):
                if r is not None and r.truncated:
                    keys[i] = ("sql", c.sql)
            return keys
        prints: dict[str, Hashable] = {}
        for sql in sorted(cut, key=str):
            assert sql is not None
            try:
                with cancel.handle() as handle:
                    prints[sql] = self.executor.fingerprint(database, sql, cancel=handle, timeout_s=timeout())
            except QueryFailed as exc:
                log.info("cannot fingerprint a capped result (%s); it votes alone", exc.error)
                prints[sql] = ("sql", sql)
        for i, (c, r) in enumerate(zip(candidates, results, strict=True)):
            if r is not None and r.truncated and c.sql:
                keys[i] = prints[c.sql]
        return keys


def vote(
    candidates: list[CandidateResult],
    results: list[QueryResult | None],
    keys: Sequence[Hashable | None] | None = None,
) -> tuple[list[int], int | None]:
    """Group executable candidates by result; returns (votes per group, chosen index).

    A candidate's group key is ``keys[i]`` when given (not None), else its rows' ``result_key``.
    Groups are ordered by size, then by their best log-likelihood (when every candidate has one),
    then by their earliest candidate; group 0 wins. Within it the most likely (else first) candidate
    is chosen. Sets each candidate's ``group`` and ``votes``.
    """
    groups: dict[Hashable, list[int]] = {}
    for i, (cand, result) in enumerate(zip(candidates, results, strict=True)):
        if result is None:
            continue
        key = keys[i] if keys is not None else None
        if key is None:
            rows = result.raw_rows if result.raw_rows is not None else [tuple(r) for r in result.rows]
            key = ("rows", result_key(rows))
        groups.setdefault(key, []).append(cand.index)
    if not groups:
        return [], None
    use_logprob = all(candidates[i].logprob is not None for members in groups.values() for i in members)

    def best_logprob(members: list[int]) -> float:
        return max(float(candidates[i].logprob or 0.0) for i in members) if use_logprob else 0.0

    ordered = sorted(groups.values(), key=lambda m: (-len(m), -best_logprob(m), m[0]))
    for gid, members in enumerate(ordered):
        for i in members:
            candidates[i].group = gid
            candidates[i].votes = len(members)
    winners = ordered[0]
    chosen = (
        max(winners, key=lambda i: (float(candidates[i].logprob or 0.0), -i)) if use_logprob else winners[0]
    )
    return [len(m) for m in ordered], chosen


def _distinct_errors(candidates: list[CandidateResult]) -> list[QueryError]:
    out: list[QueryError] = []
    for cand in candidates:
        if cand.error is not None and cand.error not in out:
            out.append(cand.error)
    return out


class _Progress:
    """Monotonic, throttled progress reports (token ticks at most every 0.5 s)."""

    def __init__(self, callback: ProgressCallback | None, total: float) -> None:
        self._callback = callback
        self._total = total
        self._last = 0.0
        self._last_tick = 0.0

    def step(self, value: float, message: str) -> None:
        if self._callback is None:
            return
        self._last = max(self._last, value)
        self._callback(self._last, self._total, message)

    def tick(self, value: float, message: str) -> None:
        now = time.monotonic()
        if self._callback is None or now - self._last_tick < 0.5:
            return
        self._last_tick = now
        self.step(value, message)
