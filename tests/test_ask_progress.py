"""``sqlr1 ask`` with its output piped (not a terminal): plain progress lines on stderr, the answer and
its confidence on stdout (and in ``--json``). The real command runs as a subprocess with its embedded
server; its model is the OpenAI backend talking over loopback HTTP to the test's OpenAI-compatible
server, behind which the per-turn scripted stand-in answers (control flow only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agent_scripted import TurnScriptedBackend, sql_answer
from openai_compat_server import build_app, serve

REPO = Path(__file__).resolve().parent.parent
EACH = "How many tracks does each genre have?"


def _ask(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "sqlr1.mcp_server.cli.main", "--config", str(config), "ask", EACH, *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
        cwd=REPO,
    )


def test_piped_ask_reports_progress_on_stderr_and_confidence_on_stdout(
    chinook_copy: Path, tmp_path: Path
) -> None:
    backend = TurnScriptedBackend([sql_answer("SELECT count(*) FROM Track")])
    with serve(build_app(backend)) as url:  # type: ignore[arg-type]
        config = tmp_path / "sqlr1.toml"
        config.write_text(
            f'[model]\nbackend = "openai"\nmodel = "scripted-stand-in"\nbase_url = "{url}"\n\n'
            "[generation]\nnum_candidates = 1\n\n"
            f'[[databases]]\nname = "chinook"\ntarget = "{chinook_copy}"\n',
            encoding="utf-8",
        )
        text = _ask(config)
        as_json = _ask(config, "--json")

    assert text.returncode == 0, text.stderr
    progress = [line for line in text.stderr.splitlines() if line.startswith("sqlr1: ")]
    assert progress[0].startswith("sqlr1: thinking · ")
    assert any(line.startswith("sqlr1: running the query · ") for line in progress), progress
    assert any(
        line.startswith("sqlr1: trying again because the question asks for a value per group")
        for line in progress
    ), progress
    assert "sqlr1:" not in text.stdout  # stdout stays the answer
    assert "SELECT count(*) FROM Track" in text.stdout
    assert "doubtful: the question asks for a value per group, but the result has one row" in text.stdout
    assert "1 of 1 candidate(s) agree" in text.stdout

    assert as_json.returncode == 0, as_json.stderr
    answer = json.loads(as_json.stdout)
    assert answer["confidence"]["level"] == "doubtful"
    assert answer["confidence"]["shape"] == ["one_row_per_group"]
    assert answer["confidence"]["attempts"] == 2 and answer["confidence"]["retried_because"] == ["shape"]
    assert as_json.stderr.count("sqlr1: thinking") >= 1
