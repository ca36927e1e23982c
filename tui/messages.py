"""Textual messages the chat's widgets post to the app."""

from __future__ import annotations

from textual.message import Message

__all__ = ["QuestionSubmitted", "SqlRunRequested"]


class QuestionSubmitted(Message):
    """The user pressed send in the prompt."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class SqlRunRequested(Message):
    """The user asked to run (edited) SQL directly, through the server's guard."""

    def __init__(self, sql: str) -> None:
        super().__init__()
        self.sql = sql
