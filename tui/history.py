"""Input history of the chat: recalled with up/down and persisted across runs.

Owns the history file (JSON list of strings in the user's data directory, via platformdirs) and the
up/down cursor over it. It never stores answers or results, only what the user typed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from platformdirs import user_data_path

__all__ = ["InputHistory", "default_history_path"]

log = logging.getLogger(__name__)


def default_history_path() -> Path:
    return user_data_path("sqlr1", appauthor=False) / "chat_history.json"


class InputHistory:
    """Entries oldest first; ``previous``/``next`` walk them like a shell does."""

    def __init__(self, path: Path | None = None, *, limit: int = 500) -> None:
        self.path = path
        self.limit = limit
        self.entries: list[str] = []
        self._cursor: int | None = None
        self._draft = ""
        if path is not None:
            self.entries = self._load(path)

    @staticmethod
    def _load(path: Path) -> list[str]:
        if not path.is_file():
            return []
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("ignoring unreadable chat history %s: %s", path, exc)
            return []
        return [e for e in data if isinstance(e, str)] if isinstance(data, list) else []

    def append(self, text: str) -> None:
        text = text.strip()
        self._cursor = None
        if not text or (self.entries and self.entries[-1] == text):
            return
        self.entries.append(text)
        del self.entries[: -self.limit]
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.entries, ensure_ascii=False, indent=0), encoding="utf-8")
        except OSError as exc:
            log.warning("cannot save chat history to %s: %s", self.path, exc)

    def previous(self, draft: str) -> str | None:
        """The entry before the cursor (starting from the newest); ``None`` at the oldest."""
        if not self.entries:
            return None
        if self._cursor is None:
            self._draft = draft
            self._cursor = len(self.entries)
        if self._cursor == 0:
            return None
        self._cursor -= 1
        return self.entries[self._cursor]

    def next(self) -> str | None:
        """The entry after the cursor; past the newest, the draft typed before browsing."""
        if self._cursor is None:
            return None
        self._cursor += 1
        if self._cursor >= len(self.entries):
            self._cursor = None
            return self._draft
        return self.entries[self._cursor]
