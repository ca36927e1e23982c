"""The codebase stays ruff-clean, ruff-formatted and mypy-clean: every package and the tests, strict on
mcp_server (config in pyproject.toml)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        ["bash", "scripts/typecheck.sh"],  # mypy, the packages under their import names
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_passes(command: list[str]) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_no_private_name_of_the_mcp_sdk_is_used() -> None:
    """Only the MCP SDK's public API: no private module (``mcp.x._y``) and no private attribute of its
    objects (``._tool_manager`` and the like); where the public API lacks something, the code says so."""
    private_module = re.compile(r"^\s*(from|import)\s+mcp(_types)?(\.\w+)*\._\w+", re.M)
    private_attr = re.compile(
        r"\._(tool_manager|resource_manager|prompt_manager|mcp_server|session|handlers)\b"
    )
    found = []
    for package in ("mcp_server", "agent", "tui", "training"):
        for path in sorted((REPO / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for pattern in (private_module, private_attr):
                found += [f"{path.relative_to(REPO)}: {m.group(0).strip()}" for m in pattern.finditer(text)]
    assert not found, found
