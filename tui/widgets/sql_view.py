"""The SQL of an answer, syntax-highlighted, with a copy action."""

from __future__ import annotations

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

__all__ = ["SqlView"]


class SqlView(Horizontal):
    def __init__(self, sql: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.sql = sql

    def compose(self) -> ComposeResult:
        yield Static(self._syntax(), classes="sql-code")
        yield Button("Copy", classes="sql-copy", compact=True, tooltip="Copy the SQL (ctrl+o)")

    def _syntax(self) -> Syntax:
        theme = "ansi_light" if not self.app.current_theme.dark else "monokai"
        return Syntax(self.sql, "sql", theme=theme, word_wrap=True, background_color="default")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.app.copy_to_clipboard(self.sql)
        self.app.notify("SQL copied to the clipboard", timeout=2)
