"""The default model as a user meets it: ``sqlr1 ask`` on the bundled Chinook with no model flag runs
the registry's default on llama.cpp and answers a simple question correctly (slow: a real 0.5B)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sqlr1.mcp_server.backends.model_registry import DEFAULT_MODEL

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp", reason="llama-cpp-python (the llamacpp extra)")


def test_ask_answers_with_the_default_model_on_llamacpp() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SQLR1_DEFAULT_MODEL"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqlr1.mcp_server.cli.main",
            "ask",
            "How many albums are there in total?",
            "--max-turns",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "347" in proc.stdout  # SELECT COUNT(*) FROM Album
    assert f"{DEFAULT_MODEL} · llama.cpp" in proc.stdout
