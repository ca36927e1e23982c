"""The question box: enter sends, ctrl+j / shift+enter breaks the line, up/down recall history."""

from __future__ import annotations

from textual import events
from textual.widgets import TextArea

from sqlr1.tui.history import InputHistory
from sqlr1.tui.messages import QuestionSubmitted

__all__ = ["PLACEHOLDER", "PromptInput"]

# Fits the prompt at 80 columns (the box's border, padding and margin take 6).
PLACEHOLDER = "Ask about the data… (enter: send · ctrl+j: new line · F1: help)"


class PromptInput(TextArea):
    """A multi-line prompt that posts :class:`QuestionSubmitted` on enter."""

    def __init__(self, history: InputHistory, **kwargs: object) -> None:
        super().__init__(
            soft_wrap=True,
            show_line_numbers=False,
            tab_behavior="focus",
            compact=True,
            **kwargs,  # type: ignore[arg-type]
        )
        self.input_history = history
        self.placeholder = PLACEHOLDER

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.submit()
            return
        if event.key in ("ctrl+j", "shift+enter"):
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        if event.key == "up" and self.cursor_location[0] == 0:
            entry = self.input_history.previous(self.text)
            if entry is not None:
                event.stop()
                event.prevent_default()
                self._show(entry)
            return
        if event.key == "down" and self.cursor_location[0] == self.document.line_count - 1:
            entry = self.input_history.next()
            if entry is not None:
                event.stop()
                event.prevent_default()
                self._show(entry)
            return
        await super()._on_key(event)

    def _show(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)

    def submit(self) -> None:
        text = self.text.strip()
        if not text:
            return
        self.input_history.append(text)
        self.load_text("")
        self.post_message(QuestionSubmitted(text))
