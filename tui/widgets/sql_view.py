"""The SQL of an answer, syntax-highlighted in the current theme's colours, with a copy action."""

from __future__ import annotations

import os

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static

__all__ = ["SqlView", "copy_notice"]


def copy_notice(what: str) -> str:
    """What to say after a copy. The chat copies with the OSC 52 escape sequence, which has no reply:
    it cannot know whether the terminal took it, so it says what it did and what the terminal needs."""
    tmux = " (in tmux: set -g set-clipboard on)" if os.environ.get("TMUX") else ""
    return f"{what} sent to the clipboard by OSC 52; your terminal must allow it{tmux}."


class SqlView(Horizontal):
    def __init__(self, sql: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.sql = sql

    def compose(self) -> ComposeResult:
        yield Static(self._syntax(), classes="sql-code")
        yield Button("Copy", classes="sql-copy", compact=True, tooltip="Copy the SQL (ctrl+o)")

    def on_mount(self) -> None:
        # F2 (or the command palette) switches the theme: recolour, or light text stays on a light background
        self.watch(self.app, "theme", self._retheme, init=False)

    def _retheme(self) -> None:
        self.query_one(".sql-code", Static).update(self._syntax())

    @property
    def dark(self) -> bool:
        return self.app.current_theme.dark

    def _syntax(self) -> Syntax:
        theme = "monokai" if self.dark else "ansi_light"
        return Syntax(self.sql, "sql", theme=theme, word_wrap=True, background_color="default")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.app.copy_to_clipboard(self.sql)
        self.app.notify(copy_notice("SQL"), timeout=4)
