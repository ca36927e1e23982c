"""One assistant answer as it happens: attempts, streamed reasoning, then SQL and the result.

Renders the agent's events (``agent.events``); it never calls the agent itself.
"""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Collapsible, Static

from agent.events import (
    AgentEvent,
    AnswerReady,
    AttemptFinished,
    AttemptStarted,
    ExecutionFinished,
    GenerationFinished,
    GenerationProgress,
)
from agent.trace import Answer, Attempt
from tui.widgets.result_table import ResultTable
from tui.widgets.spinner import Spinner
from tui.widgets.sql_view import SqlView

__all__ = ["AnswerView", "describe_attempt", "describe_retry", "visible_reasoning"]

_RETRY_WHY = {
    "no_sql": "asking for SQL again",
    "blocked": "rewriting as one read-only query",
    "syntax": "fixing a syntax error",
    "execution": "fixing the error",
    "not_found": "fixing a table or column name",
    "timeout": "simplifying a slow query",
    "empty": "rechecking values and joins after 0 rows",
    "implausible": "aggregating instead of listing rows",
}


def visible_reasoning(text: str) -> str:
    """The thinking part of streamed model text: without the tags, up to ``</think>``."""
    text = text.replace("<think>", "")
    return text.split("</think>", 1)[0].strip()


def describe_retry(attempt: Attempt) -> str:
    """Why the next attempt happens, in a few words ("fixing the error: no such column x")."""
    why = _RETRY_WHY.get(attempt.reason or "", "trying again")
    if attempt.error is not None:
        detail = attempt.error.message.split("\n", 1)[0]
        why += f": {detail[:70]}"
    return why


def describe_attempt(attempt: Attempt, accepted: bool) -> str:
    if attempt.error is not None:
        detail = attempt.error.message.split("\n", 1)[0].split(" (hint:", 1)[0]
        return f"failed ({attempt.error.kind}): {detail[:70]}"
    if attempt.row_count is None:
        return "no SQL"
    rows = f"{attempt.row_count} row{'s' if attempt.row_count != 1 else ''}"
    return rows if accepted else f"{rows}, looks wrong ({attempt.reason})"


class AnswerView(Vertical):
    """Follows one question from the first attempt to the final answer."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.answer: Answer | None = None
        self._lines: list[str] = []
        self._reasoning = ""
        self._retry_note: str | None = None

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
        if isinstance(event, AttemptStarted):
            self._attempt_started(event)
        elif isinstance(event, GenerationProgress):
            self._set_activity(event.status or "generating…")
            if event.text:
                self._set_reasoning(visible_reasoning(event.text))
        elif isinstance(event, GenerationFinished):
            if event.step.reasoning:
                self._set_reasoning(event.step.reasoning)
            self._set_activity("running the query…" if event.step.sql else "no SQL in the answer")
        elif isinstance(event, ExecutionFinished):
            self._set_activity("checking the result…")
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
            self._lines.append(f"attempt 1/{event.max_turns}: generating…")
        else:
            note = self._retry_note or "trying again"
            self._lines.append(f"attempt {event.turn}/{event.max_turns}: {note}")
        self._reasoning = ""
        self._set_reasoning("")
        self._render_lines()
        self._set_activity("generating…")

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
        else:
            reasoning.display = False
        if len(answer.attempts) <= 1 and answer.status == "ok":
            self.query_one(".attempts", Static).display = False
        outcome = self.query_one(".outcome", Vertical)
        if answer.sql:
            outcome.mount(SqlView(answer.sql))
        if answer.result is not None:
            outcome.mount(ResultTable(answer.result))
        if answer.status == "cancelled":
            outcome.mount(Static("cancelled", classes="notice cancelled"))
        elif answer.error is not None:
            outcome.mount(
                Static(f"[b]{answer.error.kind}[/b]: {escape(answer.error.message)}", classes="notice error")
            )
        if answer.warning:
            outcome.mount(Static(escape(answer.warning), classes="notice warning"))

    @property
    def result_table(self) -> ResultTable | None:
        tables = self.query(ResultTable)
        return tables.first() if tables else None
