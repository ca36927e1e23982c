"""Textual messages the chat's widgets post to the app."""

from __future__ import annotations

from textual.message import Message

__all__ = ["QuestionSubmitted"]


class QuestionSubmitted(Message):
    """The user pressed send in the prompt."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
