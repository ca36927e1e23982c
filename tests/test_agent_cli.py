"""``sqlr1 ask`` / ``sqlr1 chat`` registration and their error paths (the loop itself: test_agent_loop)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _sqlr1(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sqlr1.mcp_server.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ask_and_chat_are_registered() -> None:
    for command, flag in (("ask", "--max-turns"), ("chat", "--export-dir")):
        done = _sqlr1(command, "--help")
        assert done.returncode == 0, done.stderr
        assert flag in done.stdout and "--server" in done.stdout and "--stdio" in done.stdout


def test_ask_names_the_server_it_cannot_reach(chinook_copy: Path) -> None:
    done = _sqlr1("--db", str(chinook_copy), "ask", "How many artists?", "--server", "http://127.0.0.1:9/mcp")
    assert done.returncode == 2
    assert "cannot connect to the sqlr1 server at http://127.0.0.1:9/mcp" in done.stderr


def test_ask_unknown_database_is_a_usage_error(chinook_copy: Path) -> None:
    done = _sqlr1(
        "--db",
        str(chinook_copy),
        "ask",
        "How many artists?",
        "--stdio",
        "--db",
        "nope=/does/not/exist.sqlite",
    )
    assert done.returncode == 2
    assert "exist.sqlite" in done.stderr
