"""The schema prefix is computed in the background when the server starts (backends that keep one):
the embedded server of chat/ask warms its database; backends without ``warm`` load nothing early."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from scripted_backend import ScriptedBackend

from sqlr1.agent.targets import embedded_server
from sqlr1.mcp_server.backends.base import PromptInput
from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig
from sqlr1.mcp_server.method.prompt import INSTRUCT_PROMPT_VERSION


class WarmingBackend(ScriptedBackend):
    def __init__(self) -> None:
        super().__init__(["SELECT 1\n```"], prompt_version=INSTRUCT_PROMPT_VERSION)
        self.device = "cpu"
        self.warmed: list[PromptInput] = []
        self.done = threading.Event()

    def warm(self, prompt: PromptInput, should_stop=None) -> int:
        self.warmed.append(prompt)
        self.done.set()
        return 1


def _config(db: Path, **generation) -> AppConfig:
    config = AppConfig(databases=[DatabaseConfig(name="chinook", target=str(db))])
    for key, value in generation.items():
        setattr(config.generation, key, value)
    return config


def test_the_server_warms_its_database_at_start(chinook_copy: Path) -> None:
    backend = WarmingBackend()
    embedded_server(_config(chinook_copy), backend=backend, warm=["chinook"])
    assert backend.done.wait(30), "the warm-up thread did not run"
    (prompt,) = backend.warmed
    assert "CREATE TABLE Album" in (prompt.cache_prefix_text or "")  # the schema prefix of the database
    assert backend.calls == []  # warming generates nothing


def test_a_linked_schema_has_no_prefix_to_warm(chinook_copy: Path) -> None:
    backend = WarmingBackend()
    embedded_server(_config(chinook_copy, link_above_chars=1000), backend=backend, warm=["chinook"])
    time.sleep(1.0)
    assert backend.warmed == []  # its prompt changes with the question


def test_backends_without_warm_are_not_loaded_early(chinook_copy: Path) -> None:
    loaded = threading.Event()

    def provider():
        loaded.set()
        return ScriptedBackend(["x"])

    embedded_server(_config(chinook_copy), backend=provider, warm=["chinook"])
    time.sleep(1.0)
    assert not loaded.is_set()
