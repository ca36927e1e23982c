"""The status line: model, database, timing of the last answer, and a spinner while working."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static

from sqlr1.tui.widgets.spinner import Spinner

__all__ = ["StatusBar"]


class StatusBar(Horizontal):
    model: reactive[str] = reactive("model: …")
    database: reactive[str] = reactive("…")
    timing: reactive[str] = reactive("")
    activity: reactive[str] = reactive("")
    busy: reactive[bool] = reactive(False)

    def compose(self) -> ComposeResult:
        yield Spinner(id="spinner")
        yield Static(id="status-text")

    def _refresh_text(self) -> None:
        if not self.is_mounted:
            return
        parts = [f"[b]{self.database}[/b]", self.model]
        if self.activity:
            parts.append(self.activity)
        elif self.timing:
            parts.append(self.timing)
        self.query_one("#status-text", Static).update(" · ".join(parts))

    def on_mount(self) -> None:
        self.query_one("#spinner").display = self.busy
        self._refresh_text()

    def watch_model(self) -> None:
        self._refresh_text()

    def watch_database(self) -> None:
        self._refresh_text()

    def watch_timing(self) -> None:
        self._refresh_text()

    def watch_activity(self) -> None:
        self._refresh_text()

    def watch_busy(self, busy: bool) -> None:
        if self.is_mounted:
            self.query_one("#spinner").display = busy
