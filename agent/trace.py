"""The record of one question: every prompt, candidate, vote, execution and piece of feedback.

Owns the pydantic models of a trace (savable as JSON, loadable back) and of the :class:`Answer` the
agent returns. It records what happened and decides nothing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from sqlr1.mcp_server.core.errors import QueryError
from sqlr1.mcp_server.core.results import QueryResult
from sqlr1.mcp_server.method.confidence import Confidence
from sqlr1.mcp_server.method.feedback import FeedbackReason  # the reasons its review gives

__all__ = [
    "Answer",
    "Attempt",
    "ExecutionStep",
    "FeedbackReason",
    "FeedbackStep",
    "GenerationStep",
    "Trace",
    "TraceStep",
]


class GenerationStep(BaseModel):
    """One ``generate_sql`` call: what was asked, what the model wrote, how the candidates voted."""

    kind: Literal["generation"] = "generation"
    turn: int
    request: dict[str, Any] = Field(
        description="The arguments sent to generate_sql (question, feedback, history)."
    )
    prompt: str | None = Field(default=None, description="The rendered prompt, when the server returned it.")
    reasoning: str = ""
    sql: str | None = None
    candidates: list[dict[str, Any]] = Field(
        default_factory=list, description="Candidates with votes and status."
    )
    votes: list[int] = Field(default_factory=list, description="Vote counts per result group, winner first.")
    message: str = Field(default="", description="The server's one-line summary of the vote.")
    model: str | None = Field(default=None, description="The model that generated (as the server names it).")
    backend: str | None = Field(
        default=None, description="The runtime that ran it (llamacpp, transformers, …)."
    )
    confidence: Confidence | None = Field(default=None, description="The server's confidence in its choice.")
    elapsed_ms: float = 0.0
    error: QueryError | None = None


class ExecutionStep(BaseModel):
    """One ``execute_sql`` call on the chosen (or user-edited) SQL."""

    kind: Literal["execution"] = "execution"
    turn: int
    sql: str
    columns: list[str] = Field(default_factory=list)
    row_count: int | None = None
    truncated: bool = False
    elapsed_ms: float = 0.0
    error: QueryError | None = None


class FeedbackStep(BaseModel):
    """What the agent told the model before the next turn, and why."""

    kind: Literal["feedback"] = "feedback"
    turn: int
    reason: FeedbackReason
    text: str


TraceStep = Annotated[GenerationStep | ExecutionStep | FeedbackStep, Field(discriminator="kind")]


class Trace(BaseModel):
    question: str
    database: str
    started_at: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    settings: dict[str, Any] = Field(default_factory=dict)
    steps: list[TraceStep] = Field(default_factory=list)
    status: Literal["ok", "failed", "cancelled", "running"] = "running"
    elapsed_ms: float = 0.0

    def save(self, path: str | Path) -> Path:
        """Write the trace as indented JSON; returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


class Attempt(BaseModel):
    """One turn of the loop as a person sees it ("attempt 2: fixed a column name")."""

    turn: int
    sql: str | None = None
    reasoning: str = ""
    error: QueryError | None = None
    row_count: int | None = None
    feedback: str | None = Field(
        default=None, description="Feedback given after this attempt; None if accepted."
    )
    reason: FeedbackReason | None = None
    doubts: list[str] = Field(
        default_factory=list, description="How the result's shape does not fit the question, in plain words."
    )


class Answer(BaseModel):
    """What :meth:`agent.Agent.ask` returns."""

    question: str
    database: str
    status: Literal["ok", "failed", "cancelled"]
    sql: str | None = None
    reasoning: str = ""
    result: QueryResult | None = None
    error: QueryError | None = None
    warning: str | None = Field(default=None, description="Why the final result may still be wrong.")
    attempts: list[Attempt] = Field(default_factory=list)
    trace: Trace
    elapsed_ms: float = 0.0
    confidence: Confidence | None = Field(
        default=None,
        description="How sure the answer is (ok, doubtful, failed, refused, cancelled) and what it rests on: "
        "votes, whether the result's shape fits the question, retries.",
    )

    @property
    def turns(self) -> int:
        return len(self.attempts)

    @property
    def ok(self) -> bool:
        return self.status == "ok"
