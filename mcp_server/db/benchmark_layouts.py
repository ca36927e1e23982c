"""The official Spider and BIRD layouts, read in one place for evaluation (``agent/evaluation``) and
training (``training/data.py``).

* Spider: ``train_spider.json`` (+ ``train_others.json``) or ``dev.json``; each row has ``db_id``,
  ``question`` and the gold ``query``; databases under ``database/<db_id>/<db_id>.sqlite`` (test-suite
  variants beside it).
* BIRD: ``<split>.json``; rows have ``question_id``, ``db_id``, ``question``, ``evidence``, the gold
  ``SQL`` and ``difficulty``; databases under ``<split>_databases/<db_id>/<db_id>.sqlite``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from sqlr1.mcp_server.core.errors import QueryFailed

__all__ = [
    "SPIDER_FILES",
    "Benchmark",
    "BenchmarkItem",
    "bird_databases",
    "database_file",
    "database_files",
    "read_items",
]

Benchmark = Literal["bird", "spider"]

SPIDER_FILES: dict[str, tuple[str, ...]] = {
    "train": ("train_spider.json", "train_others.json"),
    "dev": ("dev.json",),
}
"""Spider's question files per split (``train_others.json`` is optional)."""


class BenchmarkItem(BaseModel):
    """One question with its gold SQL, in either benchmark."""

    idx: int  # position in the data file: the key of prediction files
    question_id: int | str
    db_id: str
    question: str
    evidence: str = ""
    gold_sql: str
    difficulty: str = "all"


def read_items(benchmark: Benchmark, data: Path) -> list[BenchmarkItem]:
    """The rows of a BIRD or Spider data file, as they are (``not_found`` naming a missing file)."""
    if not data.is_file():
        raise QueryFailed.of("not_found", f"data file not found: {data}")
    raw = json.loads(data.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise QueryFailed.of("config", f"{data}: expected a JSON list of questions")
    items: list[BenchmarkItem] = []
    for i, row in enumerate(raw):
        bird = benchmark == "bird"
        items.append(
            BenchmarkItem(
                idx=i,
                question_id=row.get("question_id", i),
                db_id=row["db_id"],
                question=row["question"],
                evidence=(row.get("evidence") or "") if bird else "",
                gold_sql=(row.get("SQL") or row.get("sql") or "") if bird else row["query"],
                difficulty=(row.get("difficulty") or "unknown")
                if bird
                else (row.get("difficulty") or row.get("hardness") or "all"),
            )
        )
    return items


def database_file(db_root: Path, db_id: str) -> Path:
    """``<db_root>/<db_id>/<db_id>.sqlite`` (Spider's ``database/``, BIRD's ``<split>_databases/``)."""
    return db_root / db_id / f"{db_id}.sqlite"


def database_files(db_root: Path, db_id: str) -> list[Path]:
    """The database file(s) for ``db_id``: ``<db_id>.sqlite`` first, then any test-suite variants."""
    folder = db_root / db_id
    main = database_file(db_root, db_id)
    if not folder.is_dir():
        raise QueryFailed.of("not_found", f"database folder not found: {folder}")
    others = sorted(p for p in folder.glob("*.sqlite") if p != main)
    files = ([main] if main.is_file() else []) + others
    if not files:
        raise QueryFailed.of("not_found", f"no .sqlite file in {folder}")
    return files


def bird_databases(root: Path, split: str) -> Path:
    """BIRD's database folder of a split: ``<root>/<split>_databases``."""
    return root / f"{split}_databases"
