"""Events the agent emits while it works, for a UI to show progress as it happens.

Owns the event types only; the loop (``agent.loop``) emits them and the chat renders them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlr1.agent.trace import Answer, Attempt, ExecutionStep, GenerationStep

__all__ = [
    "AgentEvent",
    "AnswerReady",
    "AttemptFinished",
    "AttemptStarted",
    "EventHandler",
    "ExecutionFinished",
    "GenerationFinished",
    "GenerationProgress",
]


@dataclass(frozen=True)
class AttemptStarted:
    turn: int
    max_turns: int
    feedback: str | None  # what the model is told before this turn (None on the first)


@dataclass(frozen=True)
class GenerationProgress:
    """An MCP progress notification of ``generate_sql``.

    ``status`` is the server's one-line message; ``text`` is the model's output so far (the
    reasoning), when the server streams it (lines after the first of the progress message).
    """

    turn: int
    progress: float
    total: float | None
    status: str
    text: str = ""


@dataclass(frozen=True)
class GenerationFinished:
    step: GenerationStep


@dataclass(frozen=True)
class ExecutionFinished:
    step: ExecutionStep


@dataclass(frozen=True)
class AttemptFinished:
    attempt: Attempt
    accepted: bool


@dataclass(frozen=True)
class AnswerReady:
    answer: Answer


AgentEvent = (
    AttemptStarted
    | GenerationProgress
    | GenerationFinished
    | ExecutionFinished
    | AttemptFinished
    | AnswerReady
)
EventHandler = Callable[[AgentEvent], Awaitable[None] | None]
