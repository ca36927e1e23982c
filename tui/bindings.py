"""The chat's key bindings, in one place: the footer, the help screen and the tests read them here."""

from __future__ import annotations

from textual.binding import Binding

__all__ = ["APP_BINDINGS", "PROMPT_KEYS"]

APP_BINDINGS: list[Binding] = [
    Binding("escape", "cancel", "Cancel", tooltip="Stop the model and the running query"),
    Binding("ctrl+n", "new_conversation", "New", tooltip="New conversation", priority=True),
    Binding("ctrl+b", "toggle_schema", "Schema", priority=True),
    Binding("ctrl+t", "focus_result", "Result", show=False, priority=True),
    Binding("ctrl+s", "export_csv", "CSV", tooltip="Export the result to CSV", priority=True),
    Binding("ctrl+o", "copy_sql", "Copy SQL", show=False, priority=True),
    Binding("ctrl+r", "edit_sql", "Run SQL", priority=True),
    Binding("f1", "help", "Help", priority=True),
    Binding("f2", "toggle_theme", "Light/dark", show=False, priority=True),
    Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
]

# Handled inside the prompt (shown on the help screen, not in the footer).
PROMPT_KEYS: list[tuple[str, str]] = [
    ("enter", "send the question"),
    ("ctrl+j / shift+enter", "new line"),
    ("up / down", "previous / next question from the history (on the first / last line)"),
]
