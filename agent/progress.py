"""What the agent is doing, in plain words, for a status line: "thinking", "running the query",
"trying again because …", with the elapsed time, the model's measured speed and an estimate.

Owns :class:`ProgressNarrator` (fed the agent's events, read by the chat's status line and by
``sqlr1 ask``'s progress on stderr) and :func:`retry_reason`, the few words saying why an attempt is
retried. It reads events only and decides nothing.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable

from sqlr1.agent.events import (
    AgentEvent,
    AnswerReady,
    AttemptFinished,
    AttemptStarted,
    ExecutionFinished,
    GenerationFinished,
    GenerationProgress,
)
from sqlr1.agent.trace import Attempt

__all__ = ["ProgressNarrator", "retry_reason", "shorten"]

_TOKENS = re.compile(r"(\d+) tokens?\b")
_MIN_RATE_S = 1.0  # measure the speed over at least this long

_RETRY_BECAUSE = {
    "no_sql": "the answer had no SQL",
    "blocked": "the read-only guard refused the query",
    "syntax": "the query had a syntax error",
    "execution": "the query failed",
    "not_found": "a table or column does not exist",
    "config": "the query failed",
    "timeout": "the query was too slow",
    "empty": "the query returned 0 rows",
    "implausible": "the question asks for one number, the query listed rows",
    "shape": "the result does not fit the question",
}


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters at a word boundary, with "…" when cut (never mid-word)."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    space = cut.rfind(" ")
    if space > width // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + "…"


def retry_reason(attempt: Attempt, width: int = 120) -> str:
    """Why the attempt after ``attempt`` happens ("the query failed: no such column: Nme")."""
    why = _RETRY_BECAUSE.get(attempt.reason or "", "the result looked wrong")
    detail = ""
    if attempt.error is not None:
        detail = attempt.error.message.split("\n", 1)[0].split(" (hint:", 1)[0]
    elif attempt.doubts:
        why, detail = "", "; ".join(attempt.doubts)
    text = f"{why}: {detail}" if why and detail else why or detail
    return shorten(text, width)


class ProgressNarrator:
    """Follows one question's events and says, in one line, what is happening and how long it takes.

    Keep one per chat (or command): the token counts of earlier answers make the estimate of the
    next one; call :meth:`start` when a question is asked.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._answer_tokens: list[int] = []  # tokens of earlier answers (candidate 0), for the estimate
        self.start()

    def start(self) -> None:
        """A new question: reset the phase and the clock."""
        self.started = self._clock()
        self.phase = "thinking"
        self.turn = 1
        self.max_turns = 1
        self._retry: str | None = None
        self._start_generation()

    def _start_generation(self) -> None:
        self.tokens = 0
        self._budget: int | None = None
        self._first: tuple[float, int] | None = None  # (time, tokens) when tokens were first seen
        self._rate: float | None = None

    # ------------------------------------------------------------------ events

    def apply(self, event: AgentEvent) -> bool:
        """Take an event; True when the phase (the words, not the numbers) changed."""
        before = self.phase
        if isinstance(event, AttemptStarted):
            self.turn, self.max_turns = event.turn, event.max_turns
            self._start_generation()
            if event.turn > 1:
                why = f" because {self._retry}" if self._retry else ""
                self.phase = f"trying again{why} (attempt {event.turn} of {event.max_turns})"
            else:
                self.phase = "thinking"
        elif isinstance(event, GenerationProgress):
            self._progress(event)
        elif isinstance(event, GenerationFinished):
            tokens = [int(c.get("num_tokens") or 0) for c in event.step.candidates[:1]]
            if tokens and tokens[0] > 0:
                self._answer_tokens = [*self._answer_tokens[-19:], tokens[0]]
            step = event.step
            if step.sql is None:
                self.phase = "no SQL in the model's answer"
            else:
                self.phase = "running the query" if step.error is None else "the query failed"
        elif isinstance(event, ExecutionFinished):
            self.phase = "checking the result"
        elif isinstance(event, AttemptFinished):
            if not event.accepted:
                self._retry = retry_reason(event.attempt, 80)
        elif isinstance(event, AnswerReady):
            self.phase = "done"
        return self.phase != before

    def _progress(self, event: GenerationProgress) -> None:
        if event.progress >= 2:
            self.phase = "running the query"
            return
        if self.phase.startswith("trying again") and event.progress < 1:
            return  # keep saying why, until the model writes
        match = _TOKENS.search(event.status or "")
        if event.progress < 1 or match is None:
            if not self.phase.startswith("trying again"):
                self.phase = "thinking"
            return
        now = self._clock()
        self.tokens = int(match.group(1))
        if event.progress > 1 and self.tokens:
            self._budget = round(self.tokens / (event.progress - 1))
        if self._first is None:
            self._first = (now, self.tokens)
        elif now - self._first[0] >= _MIN_RATE_S and self.tokens > self._first[1]:
            self._rate = (self.tokens - self._first[1]) / (now - self._first[0])
        if not self.phase.startswith("trying again"):
            self.phase = "thinking"

    # ------------------------------------------------------------------ text

    @property
    def rate(self) -> float | None:
        """Tokens per second measured in this generation (None until a second of tokens was seen)."""
        return self._rate

    def estimate_s(self) -> tuple[float, bool] | None:
        """(seconds left, whether it is only an upper bound) for the running generation, or None.

        From the measured speed and the typical length of earlier answers; with none yet, the upper
        bound of the token budget.
        """
        if not self._rate or self.phase == "running the query":
            return None
        typical = statistics.median(self._answer_tokens) if self._answer_tokens else None
        if typical is not None and typical > self.tokens:
            return (typical - self.tokens) / self._rate, False
        if self._budget and self._budget > self.tokens:
            return (self._budget - self.tokens) / self._rate, True
        return None

    def line(self, *, timings: bool = True) -> str:
        """``thinking · 12 s · 40 tokens at 8.5 tok/s · about 5 s left`` (words only without timings)."""
        parts = [self.phase]
        if not timings:
            return parts[0]
        parts.append(f"{self._clock() - self.started:.0f} s")
        if self.tokens and self.phase not in ("running the query", "checking the result", "done"):
            speed = f" at {self._rate:.1f} tok/s" if self._rate else ""
            parts.append(f"{self.tokens} tokens{speed}")
            left = self.estimate_s()
            if left is not None:
                seconds, bound = left
                parts.append(f"{'at most' if bound else 'about'} {max(1.0, seconds):.0f} s left")
        return " · ".join(parts)
