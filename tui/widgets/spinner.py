"""A one-cell spinner: cheap enough to leave running while the model uses the CPU.

Textual's ``LoadingIndicator`` repaints a gradient many times a second; on a busy CPU that steals time
from the model, so the chat uses this instead (one character, ten frames a second, idle when hidden).
"""

from __future__ import annotations

from textual.widgets import Static

__all__ = ["Spinner"]

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Spinner(Static):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(FRAMES[0], **kwargs)  # type: ignore[arg-type]
        self._frame = 0

    def on_mount(self) -> None:
        self.set_interval(0.1, self._tick)

    def _tick(self) -> None:
        if not self.display or not self.parent or not self.parent.display:
            return  # hidden: no repaint
        self._frame = (self._frame + 1) % len(FRAMES)
        self.update(FRAMES[self._frame])
