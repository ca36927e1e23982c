"""Edit SQL and run it directly: the statement goes through the server's guard via ``execute_sql``."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TextArea

__all__ = ["SqlEditor", "SqlEditorScreen"]


class SqlEditor(TextArea):
    """The SQL text area, with ctrl+a selecting everything (as in other editors) rather than going
    to the start of the line (``home`` still does)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+a", "select_all", "Select all", show=False)]


class SqlEditorScreen(ModalScreen[str | None]):
    """Dismisses with the SQL to run, or ``None``."""

    CSS_PATH = "sql_editor.tcss"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "run", "Run", priority=True),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, sql: str) -> None:
        super().__init__()
        self.sql = sql

    def compose(self) -> ComposeResult:
        with Vertical(id="editor-box"):
            yield Static(
                "[b]Run SQL[/b] [dim](read-only guard applies · ctrl+r run · ctrl+a select all · escape close)[/dim]"
            )
            yield SqlEditor(self.sql, id="sql-editor", show_line_numbers=True, tab_behavior="indent")
            with Horizontal(id="editor-buttons"):
                yield Button("Run", id="run", variant="primary", compact=True)
                yield Button("Close", id="close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#sql-editor", TextArea).focus()

    def action_run(self) -> None:
        sql = self.query_one("#sql-editor", TextArea).text.strip()
        self.dismiss(sql or None)

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "run":
            self.action_run()
        else:
            self.action_close()
