"""The layer contract: tui -> agent -> mcp_server, training -> mcp_server; nothing imports tui.

Runs import-linter with the contracts in pyproject.toml, plus an AST check of our own so the test can
fail with the offending file and line even where import-linter is not installed.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "mcp_server": {"agent", "tui", "training"},
    "agent": {"tui", "training"},
    "training": {"agent", "tui"},
}


def _part(module: str) -> str:
    """The part of the project a module belongs to (``sqlr1.agent.tools`` -> ``agent``), else its root."""
    parts = module.split(".")
    return parts[1] if parts[0] == "sqlr1" and len(parts) > 1 else parts[0]


def _imported_roots(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, _part(alias.name)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, _part(node.module)))
    return found


def violations(repo: Path) -> list[str]:
    out: list[str] = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((repo / package).rglob("*.py")):
            for line, root in _imported_roots(path):
                if root in forbidden:
                    out.append(f"{path.relative_to(repo)}:{line} imports {root}")
    return out


def test_ast_contract() -> None:
    assert violations(REPO) == []


def test_ast_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "mcp_server").mkdir()
    (tmp_path / "mcp_server" / "bad.py").write_text(
        "from sqlr1.agent.tools import x\nimport tui\n", encoding="utf-8"
    )
    assert violations(tmp_path) == ["mcp_server/bad.py:1 imports agent", "mcp_server/bad.py:2 imports tui"]


def test_import_linter_contracts() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports (import-linter) is not installed; it is part of the dev extra")
    res = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
