"""Benchmark questions in the official BIRD and Spider layouts, and prediction files.

BIRD: ``dev.json`` items with ``question_id, db_id, question, evidence, SQL, difficulty``;
databases at ``<db_root>/<db_id>/<db_id>.sqlite``; predictions as
``{"<idx>": "<sql>\\t----- bird -----\\t<db_id>"}``.
Spider: ``dev.json`` items with ``db_id, question, query``; databases at
``<db_root>/<db_id>/*.sqlite`` (several files there = test-suite databases);
predictions as one SQL per line.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.benchmark_layouts import Benchmark, BenchmarkItem, database_files, read_items

BIRD_SEPARATOR = "\t----- bird -----\t"

__all__ = [
    "BIRD_SEPARATOR",
    "Benchmark",
    "EvalItem",
    "database_files",
    "load_items",
    "read_predictions",
    "write_predictions",
]


EvalItem = BenchmarkItem
"""One question with its gold SQL (the shared reading of the official layouts)."""


def load_items(benchmark: Benchmark, data: Path) -> list[EvalItem]:
    """Read a BIRD or Spider data file unchanged from its official layout."""
    return read_items(benchmark, data)


def read_predictions(benchmark: Benchmark, path: Path, items: list[EvalItem]) -> dict[int, str]:
    """Read an existing predictions file (BIRD JSON or Spider text) keyed by item index."""
    if not path.is_file():
        raise QueryFailed.of("not_found", f"predictions file not found: {path}")
    text = path.read_text(encoding="utf-8")
    preds: dict[int, str] = {}
    if benchmark == "bird":
        for key, value in json.loads(text).items():
            sql = value.split(BIRD_SEPARATOR)[0] if isinstance(value, str) else ""
            preds[int(key)] = sql.strip()
    else:
        lines = text.splitlines()
        # Spider prediction files may carry "\t<db_id>" after the SQL, like dev_gold.sql.
        for i, line in enumerate(lines[: len(items)]):
            preds[i] = line.split("\t")[0].strip()
    return preds


def write_predictions(benchmark: Benchmark, path: Path, items: list[EvalItem], preds: dict[int, str]) -> None:
    """Write predictions in the benchmark's official format (for its own scorer)."""
    if benchmark == "bird":
        out = {str(it.idx): f"{preds.get(it.idx, '')}{BIRD_SEPARATOR}{it.db_id}" for it in items}
        path.write_text(json.dumps(out, indent=2, ensure_ascii=False), encoding="utf-8")
    else:
        lines = [" ".join(preds.get(it.idx, "").split()) or "SELECT 1" for it in items]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
