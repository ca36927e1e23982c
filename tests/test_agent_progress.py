"""The plain-words progress line (``agent.progress``): phases, elapsed time, speed and estimate,
and retry reasons cut at a word. The agent's real events are fed by hand here, with a fake clock;
the chat and ``sqlr1 ask`` tests show the same line from the real loop."""

from __future__ import annotations

from sqlr1.agent.events import (
    AnswerReady,
    AttemptFinished,
    AttemptStarted,
    ExecutionFinished,
    GenerationFinished,
    GenerationProgress,
)
from sqlr1.agent.progress import ProgressNarrator, retry_reason, shorten
from sqlr1.agent.trace import Answer, Attempt, ExecutionStep, GenerationStep, Trace
from sqlr1.mcp_server.core.errors import QueryError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def tokens(turn: int, n: int, budget: int = 384) -> GenerationProgress:
    return GenerationProgress(turn, 1 + n / budget, 4.0, f"generating: {n} tokens", "SELECT")


def test_phases_elapsed_speed_and_estimate() -> None:
    clock = Clock()
    story = ProgressNarrator(clock)
    assert story.line() == "thinking · 0 s"
    assert not story.apply(AttemptStarted(1, 3, None))
    assert not story.apply(GenerationProgress(1, 1.0, 4.0, "prompt ready (0 retrieved values); sampling 1"))
    clock.now += 40  # a long prompt: the line still says what happens, and the clock runs
    assert story.line() == "thinking · 40 s"
    story.apply(tokens(1, 10))
    clock.now += 2
    story.apply(tokens(1, 30))
    assert story.rate == 10.0
    # no earlier answer: only the upper bound of the budget (384 tokens) is known
    assert story.line() == "thinking · 42 s · 30 tokens at 10.0 tok/s · at most 35 s left"
    step = GenerationStep(turn=1, request={}, sql="SELECT 1", candidates=[{"num_tokens": 50}])
    assert story.apply(GenerationFinished(step))
    assert story.line() == "running the query · 42 s"
    assert story.apply(ExecutionFinished(ExecutionStep(turn=1, sql="SELECT 1")))
    assert story.phase == "checking the result"

    # the next question: earlier answers (50 tokens) make the estimate
    story.start()
    story.apply(AttemptStarted(1, 3, None))
    story.apply(tokens(1, 10))
    clock.now += 1
    story.apply(tokens(1, 20))
    assert story.line().endswith("20 tokens at 10.0 tok/s · about 3 s left")
    assert story.line(timings=False) == "thinking"


def test_retry_says_why() -> None:
    story = ProgressNarrator(Clock())
    failed = Attempt(
        turn=1,
        sql="SELECT Nme FROM Artist",
        error=QueryError(kind="execution", message="no such column: Nme"),
        reason="execution",
        feedback="Your query failed with: no such column: Nme.",
    )
    story.apply(AttemptFinished(failed, False))
    assert story.apply(AttemptStarted(2, 3, failed.feedback))
    assert story.phase == "trying again because the query failed: no such column: Nme (attempt 2 of 3)"
    story.apply(tokens(2, 12))
    assert story.phase.startswith("trying again because")  # says why until the query runs
    story.apply(GenerationProgress(2, 2.0, 4.0, "sampled 1 candidate(s); executing"))
    assert story.phase == "running the query"
    story.apply(
        AnswerReady(Answer(question="q", database="d", status="ok", trace=Trace(question="q", database="d")))
    )
    assert story.phase == "done"


def test_shape_retry_reason_and_word_boundaries() -> None:
    shaped = Attempt(
        turn=1,
        sql="SELECT count(*) FROM Track",
        row_count=1,
        reason="shape",
        doubts=["the question asks for a value per group, but the result has one row"],
    )
    assert retry_reason(shaped) == "the question asks for a value per group, but the result has one row"
    long = Attempt(
        turn=1,
        error=QueryError(kind="syntax", message="near " + "supercalifragilistic " * 20),
        reason="syntax",
    )
    text = retry_reason(long, 60)
    assert len(text) <= 60 and text.endswith("…")
    assert text[:-1].split()[-1] in {"near", "supercalifragilistic"}  # a whole word before the "…"
    assert shorten("short enough", 40) == "short enough"
