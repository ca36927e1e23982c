"""The help screen: every key binding of the chat, read from ``tui.bindings``."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from sqlr1.tui.bindings import APP_BINDINGS, PROMPT_KEYS

__all__ = ["HelpScreen"]


def _keys(binding: Binding) -> str:
    return " / ".join(k.strip() for k in binding.key.split(","))


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
        table.add_column(style="bold")
        table.add_column()
        for key, what in PROMPT_KEYS:
            table.add_row(key, what)
        for binding in APP_BINDINGS:
            table.add_row(_keys(binding), binding.tooltip or binding.description)
        table.add_row("ctrl+r (editor)", "run the edited SQL through the same read-only guard")
        table.add_row("ctrl+a (editor)", "select all the SQL")
        table.add_row("ctrl+p", "command palette (themes, quit, …)")
        with VerticalScroll(id="help-box"):
            # the close hint comes first: on a short terminal the end of the list is below the fold
            yield Static(
                "[b]sqlr1 chat: keys[/b]  [dim](escape, F1 or q closes this help)[/dim]", id="help-title"
            )
            yield Static(table)
