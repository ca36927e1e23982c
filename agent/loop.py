"""The agent: a multi-turn, self-correcting loop over the sqlr1 MCP server's tools.

Owns :class:`Agent` (``ask`` a question, ``run_sql`` an edited statement, ``cancel``, start a
``new_conversation``, switch database) and its settings. Per turn it calls ``generate_sql`` (the
server does self-consistency), runs the chosen SQL with ``execute_sql``, has ``agent.review`` judge
the outcome and, when it is wrong, feeds that back to the model as a new turn. It never touches a
database or a model directly: everything goes through the MCP tools in ``agent.tools``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from pydantic import BaseModel, Field

from sqlr1.agent.events import (
    AgentEvent,
    AnswerReady,
    AttemptFinished,
    AttemptStarted,
    EventHandler,
    ExecutionFinished,
    GenerationFinished,
    GenerationProgress,
)
from sqlr1.agent.memory import Conversation, Exchange
from sqlr1.agent.review import review, shape_review, value_hints
from sqlr1.agent.tools import ServerTarget, SqlTools, ToolResultInvalid, connect
from sqlr1.agent.trace import Answer, Attempt, ExecutionStep, FeedbackStep, GenerationStep, Trace
from sqlr1.mcp_server.catalog.schema import DatabaseSchema
from sqlr1.mcp_server.core.errors import QueryError, QueryFailed
from sqlr1.mcp_server.core.results import QueryResult
from sqlr1.mcp_server.inference.generation import GenerationResult
from sqlr1.mcp_server.method.confidence import assess
from sqlr1.mcp_server.method.shape import ShapeIssue

__all__ = ["Agent", "AgentSettings"]


class AgentSettings(BaseModel):
    max_turns: int = Field(default=3, ge=1, le=10, description="Attempts per question, the first included.")
    num_candidates: int | None = Field(
        default=None, ge=1, le=64, description="Self-consistency N (server default if unset)."
    )
    max_rows: int | None = Field(default=None, ge=1, description="Row cap for results (server cap if unset).")
    memory_turns: int = Field(default=3, ge=0, description="Previous exchanges a follow-up question sees.")
    value_hints: bool = Field(default=True, description="On an empty result, look up the question's values.")
    shape_retries: int = Field(
        default=1,
        ge=0,
        description="Retries when the result's shape does not fit the question (one row for 'each', 100 rows "
        "for 'top 5'); after them the answer is kept and shown as doubtful.",
    )
    tool_timeout_s: float | None = Field(default=None, gt=0, description="Per tool call read timeout.")


class Agent:
    """Answers questions about one database (switchable) through an entered MCP client.

    Open one with ``async with Agent.connect(target, database=...) as agent``. ``ask`` never raises
    for a failed query: the :class:`Answer` carries the status and the error.
    """

    def __init__(self, tools: SqlTools, database: str, settings: AgentSettings | None = None) -> None:
        self.tools = tools
        self.database = database
        self.settings = settings or AgentSettings()
        self.conversation = Conversation(max_turns=self.settings.memory_turns)
        self._scope: anyio.CancelScope | None = None
        self._dialects: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, target: ServerTarget, *, database: str | None = None, settings: AgentSettings | None = None
    ) -> AsyncIterator[Agent]:
        settings = settings or AgentSettings()
        problem: QueryFailed | None = None
        async with connect(target, timeout_s=settings.tool_timeout_s) as client:
            tools = SqlTools(client)
            try:
                dbs = await tools.list_databases()
            except QueryFailed as exc:  # e.g. ToolResultInvalid: a server this agent cannot read
                problem = exc
            else:
                problem = _database_problem([d.name for d in dbs], database)
                if problem is None:
                    agent = cls(tools, database or dbs[0].name, settings)
                    agent._dialects = {d.name: d.dialect for d in dbs}
                    yield agent
        # Raised outside the client's task group, so callers get the error itself, not a group.
        if problem is not None:
            raise problem

    async def databases(self) -> list[dict[str, Any]]:
        """``list_databases`` as dicts (name, kind, dialect, warnings)."""
        dbs = await self.tools.list_databases()
        self._dialects = {d.name: d.dialect for d in dbs}
        return [d.model_dump() for d in dbs]

    def use_database(self, name: str) -> None:
        """Switch database; a conversation about another database does not carry over."""
        if name != self.database:
            self.database = name
            self.conversation.clear()

    async def schema(self) -> DatabaseSchema:
        """``describe_schema`` of the current database, as the server's structured schema."""
        return (await self.tools.describe_schema(self.database)).schema_

    def new_conversation(self) -> None:
        self.conversation.clear()

    def cancel(self) -> None:
        """Stop the running ``ask``/``run_sql``: generation and the running query (MCP cancellation)."""
        if self._scope is not None:
            self._scope.cancel()

    @property
    def busy(self) -> bool:
        return self._scope is not None

    # ------------------------------------------------------------------ the loop

    async def ask(
        self, question: str, *, evidence: str | None = None, on_event: EventHandler | None = None
    ) -> Answer:
        """Answer ``question``: generate, execute, review, and retry with feedback up to ``max_turns``.

        ``evidence`` (BIRD-style hints) goes to ``generate_sql`` with the question. Never raises for
        a failed query: the answer's ``status`` is ``ok``, ``failed`` or ``cancelled``.
        """
        question = question.strip()
        started = time.perf_counter()
        trace = Trace(question=question, database=self.database, settings=self.settings.model_dump())
        attempts: list[Attempt] = []
        best: tuple[Attempt, QueryResult | None] | None = None
        # An attempt whose result ran and passed the review but whose shape does not fit the question:
        # kept as the (doubtful) answer if no later attempt does better.
        doubtful: tuple[Attempt, QueryResult, list[ShapeIssue]] | None = None
        issues: list[ShapeIssue] = []
        shape_retries = 0
        feedback_turns: list[dict[str, str]] = []
        status = "cancelled"
        dialect = self._dialects.get(self.database) or None
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                for turn in range(1, self.settings.max_turns + 1):
                    last_feedback = feedback_turns[-1]["feedback"] if feedback_turns else None
                    await _emit(on_event, AttemptStarted(turn, self.settings.max_turns, last_feedback))
                    gen = await self._generate(question, evidence, turn, feedback_turns, on_event)
                    trace.steps.append(gen)
                    await _emit(on_event, GenerationFinished(gen))
                    result, error = None, gen.error
                    if gen.sql and error is None:
                        result, error, ex = await self._execute(gen.sql, turn)
                        trace.steps.append(ex)
                        await _emit(on_event, ExecutionFinished(ex))
                    verdict = review(question, gen.sql, result, error, dialect=dialect)
                    if not verdict.accepted and verdict.reason == "empty" and self.settings.value_hints:
                        hints = await self._value_hints(question)
                        verdict = type(verdict)(False, verdict.reason, f"{verdict.feedback}{hints}")
                    issues = []
                    if verdict.accepted and result is not None:
                        shaped, issues = shape_review(question, gen.sql, result, dialect=dialect)
                        # retry on a shape mismatch while retries are left; then keep it, as doubtful
                        if (
                            issues
                            and shape_retries < self.settings.shape_retries
                            and turn < self.settings.max_turns
                        ):
                            shape_retries += 1
                            verdict = shaped
                    attempt = Attempt(
                        turn=turn,
                        sql=gen.sql,
                        reasoning=gen.reasoning,
                        error=error,
                        row_count=result.row_count if result else None,
                        feedback=None if verdict.accepted else verdict.feedback,
                        reason=verdict.reason,
                        doubts=[issue.note for issue in issues],
                    )
                    attempts.append(attempt)
                    # Keep the latest executed attempt; an attempt that never ran is only a fallback.
                    if result is not None or best is None or best[1] is None:
                        best = (attempt, result)
                    if verdict.reason == "shape" and result is not None:
                        doubtful = (attempt, result, issues)
                    await _emit(on_event, AttemptFinished(attempt, verdict.accepted))
                    if verdict.accepted:
                        status = "ok"
                        break
                    assert verdict.reason is not None and verdict.feedback is not None
                    if turn < self.settings.max_turns:
                        trace.steps.append(
                            FeedbackStep(turn=turn, reason=verdict.reason, text=verdict.feedback)
                        )
                    feedback_turns.append(
                        {"question": question, "sql": gen.sql or "", "feedback": verdict.feedback}
                    )
                else:
                    if doubtful is not None:  # a result that only looked off beats none or a rejected one
                        best, issues, status = (doubtful[0], doubtful[1]), doubtful[2], "ok"
                    else:
                        status = "failed"
            finally:
                self._scope = None
        elapsed = (time.perf_counter() - started) * 1000
        trace.status = status  # type: ignore[assignment]
        trace.elapsed_ms = elapsed
        answer = self._answer(question, status, attempts, best, trace, elapsed, issues, dialect)
        if status != "cancelled":
            self.conversation.add(answer)
        await _emit(on_event, AnswerReady(answer))
        return answer

    async def run_sql(self, sql: str, *, question: str | None = None) -> Answer:
        """Run a statement the user wrote or edited, through the same guard (``execute_sql``)."""
        started = time.perf_counter()
        label = question or "(edited SQL)"
        trace = Trace(question=label, database=self.database, settings=self.settings.model_dump())
        result: QueryResult | None = None
        error: QueryError | None = None
        status = "cancelled"
        with anyio.CancelScope() as scope:
            self._scope = scope
            try:
                result, error, ex = await self._execute(sql, 1)
                trace.steps.append(ex)
                status = "ok" if error is None else "failed"
            finally:
                self._scope = None
        elapsed = (time.perf_counter() - started) * 1000
        trace.status = status  # type: ignore[assignment]
        trace.elapsed_ms = elapsed
        attempt = Attempt(turn=1, sql=sql, error=error, row_count=result.row_count if result else None)
        confidence = assess(
            label, result=result, sql=sql, error=error, cancelled=status == "cancelled", shape_issues=[]
        )
        answer = Answer(
            question=label,
            database=self.database,
            status=status,  # type: ignore[arg-type]
            sql=sql,
            result=result,
            error=error,
            attempts=[attempt],
            trace=trace,
            elapsed_ms=elapsed,
            confidence=confidence,
        )
        if status != "cancelled":
            self.conversation.add_exchange(Exchange.from_answer(answer))
        return answer

    # ------------------------------------------------------------------ steps

    def _generate_arguments(
        self, question: str, evidence: str | None, feedback_turns: list[dict[str, str]], *, last: bool
    ) -> dict[str, Any]:
        """``generate_sql``'s arguments; on the ``last`` attempt, a column of a table the query did not
        join gets that table joined (``join_missing``): no later turn is left for the model to do it."""
        history = [
            {"question": e.question, "sql": e.sql, "feedback": e.shape()}
            for e in self.conversation.recent()
            if e.sql
        ]
        return {
            "database": self.database,
            "question": question,
            "evidence": evidence,
            "num_candidates": self.settings.num_candidates,
            "feedback": [*history, *feedback_turns] or None,
            "join_missing": last,
        }

    async def _generate(
        self,
        question: str,
        evidence: str | None,
        turn: int,
        feedback_turns: list[dict[str, str]],
        on_event: EventHandler | None,
    ) -> GenerationStep:
        args = self._generate_arguments(
            question, evidence, feedback_turns, last=turn == self.settings.max_turns
        )
        step = GenerationStep(turn=turn, request={k: v for k, v in args.items() if v is not None})

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            # The first line is the status; any further lines are the model's text so far.
            status, _, text = (message or "").partition("\n")
            await _emit(on_event, GenerationProgress(turn, progress, total, status, text))

        t0 = time.perf_counter()
        try:
            result = await self.tools.generate_sql(args, progress=on_progress)
        except ToolResultInvalid:
            raise  # a server this agent cannot read: no retry fixes it
        except QueryFailed as exc:
            step.error = exc.error
        else:
            _read_generation(step, result)
        step.elapsed_ms = (time.perf_counter() - t0) * 1000
        return step

    async def _execute(
        self, sql: str, turn: int
    ) -> tuple[QueryResult | None, QueryError | None, ExecutionStep]:
        t0 = time.perf_counter()
        try:
            result = await self.tools.execute_sql(self.database, sql, max_rows=self.settings.max_rows)
        except ToolResultInvalid:
            raise
        except QueryFailed as exc:
            step = ExecutionStep(
                turn=turn, sql=sql, error=exc.error, elapsed_ms=(time.perf_counter() - t0) * 1000
            )
            return None, exc.error, step
        step = ExecutionStep(
            turn=turn,
            sql=sql,
            columns=[c.name for c in result.columns],
            row_count=result.row_count,
            truncated=result.truncated,
            elapsed_ms=result.elapsed_ms,
        )
        return result, None, step

    async def _value_hints(self, question: str) -> str:
        try:
            found = await self.tools.search_values(self.database, question)
        except ToolResultInvalid:
            raise
        except QueryFailed:
            return ""
        hits = found.hits if found is not None else []
        return value_hints([(hit.table, hit.column, hit.value) for hit in hits])

    def _answer(
        self,
        question: str,
        status: str,
        attempts: list[Attempt],
        best: tuple[Attempt, QueryResult | None] | None,
        trace: Trace,
        elapsed: float,
        issues: list[ShapeIssue],
        dialect: str | None,
    ) -> Answer:
        chosen, result = best if best is not None else (attempts[-1] if attempts else None, None)
        error = None if result is not None else (chosen.error if chosen else None)
        unresolved = None
        if status == "failed" and chosen is not None and result is not None:
            unresolved = _UNRESOLVED.get(chosen.reason or "", "the review still rejects the result")
        picked = _chosen_candidate(trace, chosen)
        confidence = assess(
            question,
            result=result,
            sql=chosen.sql if chosen else None,
            error=error,
            cancelled=status == "cancelled",
            attempts=len(attempts),
            retried_because=[a.reason for a in attempts if chosen and a.turn < chosen.turn and a.reason],
            unresolved=unresolved,
            dialect=dialect,
            shape_issues=issues if status == "ok" else None,
            rebound=bool(picked.get("rebound_from")),
            joined=picked.get("joined") or (),
            **_votes(trace, chosen.turn if chosen else None),
        )
        warning = None
        if status == "failed" and chosen is not None and result is not None:
            warning = f"after {len(attempts)} attempt(s) the result still looks wrong: {chosen.feedback}"
        elif confidence.level == "doubtful":
            warning = f"doubtful: {'; '.join(confidence.reasons)}"
        return Answer(
            question=question,
            database=self.database,
            status=status,  # type: ignore[arg-type]
            sql=chosen.sql if chosen else None,
            reasoning=chosen.reasoning if chosen else "",
            result=result,
            error=error,
            warning=warning,
            attempts=attempts,
            trace=trace,
            elapsed_ms=elapsed,
            confidence=confidence,
        )


# What a person reads when the loop ran out of attempts with a result the review still rejects.
_UNRESOLVED = {
    "empty": "the query returned 0 rows",
    "implausible": "the question asks for one number, the result lists rows",
}


def _database_problem(names: list[str], database: str | None) -> QueryFailed | None:
    if not names:
        return QueryFailed.of("config", "the server has no databases configured")
    if database is not None and database not in names:
        return QueryFailed.of("not_found", f"database {database!r} not found; known: {', '.join(names)}")
    return None


def _read_generation(step: GenerationStep, result: GenerationResult) -> None:
    """Fill ``step`` from a ``generate_sql`` result; with no executed candidate, the first one that
    parsed (and its error) is shown to the model instead."""
    step.sql = (result.sql or "").strip() or None
    step.reasoning = result.reasoning or ""
    messages = result.prompt.messages
    step.prompt = "\n\n".join(f"[{m.get('role')}]\n{m.get('content')}" for m in messages) or None
    step.candidates = [c.model_dump(mode="json") for c in result.candidates]
    step.votes = list(result.vote_counts)
    step.message = result.message
    step.model = result.model
    step.backend = result.backend
    step.confidence = result.confidence
    if result.status == "cancelled" and step.sql is None:
        step.error = QueryError(kind="execution", message="generation was cancelled on the server")
    if step.sql is None:
        failed = next((c for c in result.candidates if c.sql), None)
        if failed is not None:
            step.sql = failed.sql
            step.reasoning = failed.reasoning or ""
            if failed.error is not None:
                step.error = failed.error
        elif result.errors:
            step.error = result.errors[0]


def _chosen_candidate(trace: Trace, chosen: Attempt | None) -> dict[str, Any]:
    """The candidate, as its generation step recorded it, whose SQL the chosen attempt ran ({}: none):
    it says whether the grammar bound a column (``rebound_from``) or a join was added (``joined``)."""
    if chosen is None:
        return {}
    sql = (chosen.sql or "").strip()
    for step in trace.steps:
        if isinstance(step, GenerationStep) and step.turn == chosen.turn:
            return next((c for c in step.candidates if (c.get("sql") or "").strip() == sql), {})
    return {}


def _votes(trace: Trace, turn: int | None) -> dict[str, int | None]:
    """votes / executed / candidates of the generation step of ``turn`` (the chosen attempt)."""
    for step in trace.steps:
        if isinstance(step, GenerationStep) and step.turn == turn:
            executed = sum(step.votes)
            return {
                "votes": step.votes[0] if step.votes else 0,
                "executed": executed,
                "candidates": len(step.candidates) or None,
            }
    return {"votes": None, "executed": None, "candidates": None}


async def _emit(handler: EventHandler | None, event: AgentEvent) -> None:
    if handler is None:
        return
    out = handler(event)
    if inspect.isawaitable(out):
        await out
