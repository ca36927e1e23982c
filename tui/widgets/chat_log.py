"""The conversation: each question followed by its answer, scrolled to the newest."""

from __future__ import annotations

from rich.markup import escape
from textual.containers import VerticalScroll
from textual.widgets import Static

from sqlr1.tui.widgets.answer_view import AnswerView

__all__ = ["ChatLog", "QuestionView"]

WELCOME = (
    "[b]Ask a question about the data[/b] in plain words, e.g. "
    "[i]How many tracks does each genre have?[/i]\n"
    "The model writes SQL, the server runs it read-only, and failed attempts are corrected. "
    "Follow-ups see the conversation. [dim]F1 shows every key.[/dim]"
)


class QuestionView(Static):
    """What the user asked (or the SQL they ran)."""


class ChatLog(VerticalScroll):
    def __init__(self, *, note: str | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.note = note  # a line under the welcome text (the model and how to choose another)

    def on_mount(self) -> None:
        self.anchor()  # follow new content (streamed reasoning, results) until the user scrolls up
        welcome = f"{WELCOME}\n[dim]{self.note}[/dim]" if self.note else WELCOME
        self.mount(Static(welcome, classes="welcome"))

    def add_exchange(self, question: str) -> AnswerView:
        """Append the question and an empty answer that will follow the agent's events."""
        self.query(".welcome").remove()
        answer = AnswerView()
        self.mount(QuestionView(f"[b]›[/b] {escape(question)}"))
        self.mount(answer)
        self.anchor()  # a new question always brings the view back to the bottom
        return answer

    def clear_conversation(self) -> None:
        self.remove_children()
        self.mount(Static("[dim]New conversation: earlier questions are forgotten.[/dim]", classes="welcome"))

    @property
    def last_answer_view(self) -> AnswerView | None:
        views = self.query(AnswerView)
        return views.last() if views else None
