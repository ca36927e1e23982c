"""The parity corpus (``tests/data/parity``): its databases and cases, shared by the parity tests.

Every ``sqlr1`` / ``bird`` / ``spider`` value in the JSON files was written by the ORIGINAL code
(SQL-R1's reward, BIRD's ``evaluation.py``, the Spider test-suite's ``exec_eval.py``), run unmodified by
``scripts/parity_originals.py``; nothing here computes them. A case where we differ on purpose also
holds ``ours`` (our value) and ``reason``.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

PARITY = Path(__file__).parent / "data" / "parity"


def load(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((PARITY / name).read_text(encoding="utf-8"))
    return data


def build_databases(root: Path) -> dict[str, list[Path]]:
    """The parity databases in the Spider layout under ``root``: db_id -> its files (main first)."""

    def make(path: Path, *scripts: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as conn:
            for script in scripts:
                conn.executescript((PARITY / script).read_text(encoding="utf-8"))
            conn.commit()
        return path

    return {
        "parity": [make(root / "parity" / "parity.sqlite", "parity.sql")],
        "parity_ts": [
            make(root / "parity_ts" / "parity_ts.sqlite", "parity.sql"),
            make(root / "parity_ts" / "parity_ts_variant.sqlite", "parity.sql", "parity_variant.sql"),
        ],
    }
