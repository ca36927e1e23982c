"""Run a Python snippet in a fresh interpreter (its own memory, SQLite heap limit, peak RSS) and read its
JSON answer: the last line it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_json_child(code: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """``python -c code *args`` in the repository root; fails the test on a non-zero exit (with stderr)."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=str(REPO), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out
