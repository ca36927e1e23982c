"""The chat with the REAL bundled model: once through Textual's pilot, once as a person would run
``sqlr1 chat`` in a terminal (tmux send-keys / capture-pane). Structure only, never correctness.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import unavailable
from model_fixtures import bundled_backend  # noqa: F401  (fixture)
from test_tui_chat import ask
from textual.widgets import Collapsible, Static

from sqlr1.agent import Agent, AgentSettings, embedded_server
from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig
from sqlr1.tui.app import ChatApp
from sqlr1.tui.history import InputHistory
from sqlr1.tui.widgets.result_table import ResultTable
from sqlr1.tui.widgets.sql_view import SqlView

pytestmark = pytest.mark.slow
MODEL_TIMEOUT_S = 1800.0  # a shared 2-core CPU under load: a 32-token answer can take minutes


async def test_pilot_with_the_bundled_model(chinook_copy: Path, tmp_path: Path, bundled_backend) -> None:  # noqa: F811
    config = AppConfig(databases=[DatabaseConfig(name="chinook", target=str(chinook_copy))])
    config.generation.num_candidates = 1
    config.model.max_new_tokens = 32
    server = embedded_server(config, backend=bundled_backend)
    app = ChatApp(
        lambda: Agent.connect(server, settings=AgentSettings(max_turns=1)),
        model_label="bundled",
        history=InputHistory(tmp_path / "history.json"),
        export_dir=tmp_path,
    )
    async with app.run_test(size=(100, 30)) as pilot:
        view = await ask(pilot, app, "How many artists are there?", timeout=MODEL_TIMEOUT_S)
        answer = view.answer
        assert answer is not None and answer.status in ("ok", "failed") and answer.turns == 1
        status = str(app.query_one("#status-text", Static).render())
        assert Path(bundled_backend.model_id).name in status and re.search(
            r"(ok|doubtful|failed|refused) in \d+\.\d s", status
        )
        assert bool(view.query(SqlView)) == bool(answer.sql)
        assert bool(view.query(ResultTable)) == (answer.result is not None)
        reasoning = view.query_one(".reasoning", Collapsible)
        assert reasoning.collapsed or not reasoning.display  # streamed while working, collapsed after
        if answer.result is not None:
            assert view.query_one(ResultTable).table.row_count == answer.result.row_count


def _pane(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=False
    ).stdout


def _wait_pane(session: str, predicate: Callable[[str], object], timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _pane(session)
        if predicate(screen):
            return screen
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")


def test_sqlr1_chat_in_tmux(chinook_copy: Path, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        unavailable("tmux is not installed (apt-get install -y tmux)")
    session = f"sqlr1-chat-test-{os.getpid()}"
    data_home = tmp_path / "data"
    command = (
        f"{shlex.quote(sys.executable)} -m sqlr1.mcp_server.cli.main --db chinook={shlex.quote(str(chinook_copy))} chat "
        f"--n 1 --max-new-tokens 32 --max-turns 1 --export-dir {shlex.quote(str(tmp_path))}; "
        "echo SQLR1-EXITED-$?; sleep 60"
    )
    env = {**os.environ, "XDG_DATA_HOME": str(data_home), "TERM": "xterm-256color"}
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command], check=True, env=env
    )
    try:
        _wait_pane(
            session, lambda s: "Ask a question" in s and "connecting" not in s, 600, "the chat to start"
        )
        subprocess.run(["tmux", "send-keys", "-t", session, "-l", "How many artists are there?"], check=True)
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)
        screen = _wait_pane(
            session,
            lambda s: re.search(r"(ok|doubtful|failed|refused) in \d+\.\d s", s),
            MODEL_TIMEOUT_S,
            "the answer",
        )
        assert "How many artists are there?" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "F1"], check=True)
        _wait_pane(session, lambda s: "sqlr1 chat: keys" in s, 30, "the help screen")
        subprocess.run(["tmux", "send-keys", "-t", session, "Escape"], check=True)
        _wait_pane(session, lambda s: "sqlr1 chat: keys" not in s, 30, "the help screen to close")
        subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], check=True)
        _wait_pane(session, lambda s: "SQLR1-EXITED-0" in s, 60, "a clean exit")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
    history = json.loads((data_home / "sqlr1" / "chat_history.json").read_text(encoding="utf-8"))
    assert history == ["How many artists are there?"]
