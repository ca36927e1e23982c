"""One assistant answer as it happens: attempts, streamed reasoning, then SQL and the result.

Renders the agent's events (``agent.events``); it never calls the agent itself.
"""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Collapsible, Static

from sqlr1.agent.events import (
    AgentEvent,
    AnswerReady,
    AttemptFinished,
    AttemptStarted,
    GenerationFinished,
    GenerationProgress,
)
from sqlr1.agent.progress import ProgressNarrator, retry_reason, shorten
from sqlr1.agent.trace import Answer, Attempt
from sqlr1.mcp_server.method.confidence import Confidence
from sqlr1.tui.widgets.result_table import ResultTable
from sqlr1.tui.widgets.spinner import Spinner
from sqlr1.tui.widgets.sql_view import SqlView

__all__ = ["AnswerView", "confidence_line", "describe_attempt", "describe_retry", "visible_reasoning"]

_TAGS = ("<think>", "</think>")


def visible_reasoning(text: str) -> str:
    """The thinking part of streamed model text: without the tags, up to ``</think>``; a tag cut by
    the stream (``</thi`` at the end of a chunk) is not shown."""
    text = text.replace("<think>", "").split("</think>", 1)[0]
    for tag in _TAGS:  # the longest unfinished tag at the end
        for k in range(len(tag) - 1, 0, -1):
            if text.endswith(tag[:k]):
                text = text[:-k]
                break
    return text.strip()


def describe_retry(attempt: Attempt) -> str:
    """Why the next attempt happens, cut at a word ("trying again because the query failed: …")."""
    return f"trying again because {retry_reason(attempt)}"


def describe_attempt(attempt: Attempt, accepted: bool) -> str:
    if attempt.error is not None:
        detail = attempt.error.message.split("\n", 1)[0].split(" (hint:", 1)[0]
        if attempt.error.kind == "blocked":
            rule = f", rule {attempt.error.rule}" if attempt.error.rule else ""
            return shorten(f"refused (read-only guard{rule}): {detail}", 140)
        return shorten(f"failed ({attempt.error.kind}): {detail}", 140)
    if attempt.row_count is None:
        return "no SQL"
    rows = f"{attempt.row_count} row{'s' if attempt.row_count != 1 else ''}"
    if accepted and attempt.doubts:
        return f"{rows}, kept as doubtful"
    if accepted:
        return rows
    why = "; ".join(attempt.doubts) if attempt.doubts else attempt.reason
    return f"{rows}, looks wrong ({shorten(why or 'review', 120)})"


_LEVEL_MARK = {"ok": "✓", "doubtful": "?", "failed": "✗", "refused": "⊘", "cancelled": "–"}


def confidence_line(confidence: Confidence) -> str:
    """The answer's confidence as shown under it (markup): level, reasons, then what it rests on."""
    mark = _LEVEL_MARK.get(confidence.level, "")
    head = f"{mark} [b]{confidence.level}[/b]"
    if confidence.reasons:
        head += ": " + escape("; ".join(confidence.reasons))
    if confidence.level in ("ok", "doubtful"):
        head += f" [dim]· {escape(confidence.basis())}[/dim]"
    return head


class AnswerView(Vertical):
    """Follows one question from the first attempt to the final answer."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.answer: Answer | None = None
        self._lines: list[str] = []
        self._reasoning = ""
        self._retry_note: str | None = None
        self._narrator = ProgressNarrator()  # the phase in words (the status line has the timings)

    def compose(self) -> ComposeResult:
        yield Static("", classes="attempts")
        with Horizontal(classes="working"):
            yield Spinner()
            yield Static("thinking…", classes="activity")
        with Collapsible(title="Reasoning", collapsed=False, classes="reasoning"):
            yield Static("", classes="reasoning-text")
        yield Vertical(classes="outcome")

    # ---------------------------------------------------------------- events

    def apply(self, event: AgentEvent) -> None:
        """Show an agent event (the agent's ``on_event`` callback)."""
        if self._narrator.apply(event):
            self._set_activity(f"{self._narrator.phase}…")
        if isinstance(event, AttemptStarted):
            self._attempt_started(event)
        elif isinstance(event, GenerationProgress):
            if event.text:
                self._set_reasoning(visible_reasoning(event.text))
        elif isinstance(event, GenerationFinished):
            if event.step.reasoning:
                self._set_reasoning(event.step.reasoning)
        elif isinstance(event, AttemptFinished):
            line = f"attempt {event.attempt.turn}: {describe_attempt(event.attempt, event.accepted)}"
            if self._lines:
                self._lines[-1] = line
            else:
                self._lines.append(line)
            if not event.accepted and event.attempt.feedback:
                self._retry_note = describe_retry(event.attempt)
            self._render_lines()
        elif isinstance(event, AnswerReady):
            self.show_answer(event.answer)

    def _attempt_started(self, event: AttemptStarted) -> None:
        if event.turn == 1:
            self._lines.append(f"attempt 1/{event.max_turns}: thinking…")
        else:
            note = self._retry_note or "trying again"
            self._lines.append(f"attempt {event.turn}/{event.max_turns}: {note}")
        self._reasoning = ""
        self._set_reasoning("")
        self._render_lines()

    def _render_lines(self) -> None:
        if self.is_mounted:
            self.query_one(".attempts", Static).update("\n".join(escape(line) for line in self._lines))

    def _set_activity(self, text: str) -> None:
        if self.is_mounted:
            self.query_one(".activity", Static).update(escape(text))

    def _set_reasoning(self, text: str) -> None:
        self._reasoning = text
        if self.is_mounted:
            self.query_one(".reasoning-text", Static).update(escape(text.strip()) or "[dim]…[/dim]")

    # ---------------------------------------------------------------- final state

    def show_answer(self, answer: Answer) -> None:
        self.answer = answer
        self.add_class("done")
        self.query_one(".working").display = False
        reasoning = self.query_one(".reasoning", Collapsible)
        if answer.reasoning:
            self._set_reasoning(answer.reasoning)
            reasoning.title = f"Reasoning ({len(answer.reasoning.split())} words)"
            reasoning.collapsed = True
        elif answer.status == "cancelled" and self._reasoning.strip():
            # what the model wrote before the cancel stays readable
            reasoning.title = f"Reasoning so far ({len(self._reasoning.split())} words, cancelled)"
        else:
            reasoning.display = False
        confidence = answer.confidence
        if len(answer.attempts) <= 1 and answer.status == "ok" and not (confidence and confidence.reasons):
            self.query_one(".attempts", Static).display = False
        outcome = self.query_one(".outcome", Vertical)
        if answer.sql:
            outcome.mount(SqlView(answer.sql))
        if answer.result is not None:
            outcome.mount(ResultTable(answer.result))
        if answer.status == "cancelled":
            outcome.mount(Static("cancelled", classes="notice cancelled"))
        elif confidence is not None and confidence.level == "refused":
            outcome.mount(Static(confidence_line(confidence), classes="notice refused"))
        elif answer.error is not None:
            outcome.mount(
                Static(f"[b]{answer.error.kind}[/b]: {escape(answer.error.message)}", classes="notice error")
            )
        if confidence is not None and confidence.level in ("ok", "doubtful"):
            outcome.mount(
                Static(confidence_line(confidence), classes=f"notice confidence {confidence.level}")
            )
        elif answer.warning:
            outcome.mount(Static(escape(answer.warning), classes="notice warning"))

    @property
    def result_table(self) -> ResultTable | None:
        tables = self.query(ResultTable)
        return tables.first() if tables else None
