"""Column descriptions: BIRD ``database_description/<table>.csv`` files, Spider/BIRD ``tables.json``,
and comments in a table's CREATE statement (SynSQL-2.5M's ``"col" TYPE /* description */``).

Owns reading those (tolerating their real-world quirks: BOMs, latin-1 files, stray spaces in names,
extra empty CSV columns) and matching them to tables and columns case-insensitively. It never touches
a database (the engine's catalog hands the CREATE text in); :mod:`mcp_server.catalog.schema` merges the notes
into the inspected schema, for serving and training alike.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sqlr1.mcp_server.db.engines.base import DatabaseSpec

__all__ = [
    "ColumnNote",
    "TableNotes",
    "ddl_column_comments",
    "load_descriptions",
    "read_bird_descriptions",
    "read_tables_json",
]


@dataclass(frozen=True)
class ColumnNote:
    """What the description files say about one column."""

    name: str | None = None  # natural-language name (tables.json ``column_names`` or CSV ``column_name``)
    description: str | None = None  # CSV ``column_description``
    value_description: str | None = None  # CSV ``value_description``
    data_format: str | None = None  # CSV ``data_format``


@dataclass(frozen=True)
class TableNotes:
    name: str | None = None  # natural-language table name (tables.json ``table_names``)
    columns: dict[str, ColumnNote] = field(default_factory=dict)  # key: column name, casefolded

    def column(self, name: str) -> ColumnNote | None:
        return self.columns.get(name.strip().casefold())


def _clean(text: str | None) -> str | None:
    """Collapse whitespace (descriptions end up in one-line ``--`` comments); empty becomes None."""
    if text is None:
        return None
    text = " ".join(text.split())
    return text or None


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


_tables_json_cache: dict[tuple[Path, int, int], dict[str, dict[str, Any]]] = {}
_tables_json_lock = threading.Lock()


def read_tables_json(path: Path) -> dict[str, dict[str, Any]]:
    """Entries of a Spider/BIRD ``tables.json`` by ``db_id`` (parsed once per file version)."""
    st = path.stat()
    key = (path.resolve(), st.st_mtime_ns, st.st_size)
    with _tables_json_lock:
        cached = _tables_json_cache.get(key)
        if cached is not None:
            return cached
    with path.open(encoding="utf-8") as fh:
        entries = json.load(fh)
    by_id = {e["db_id"]: e for e in entries if isinstance(e, dict) and "db_id" in e}
    with _tables_json_lock:
        _tables_json_cache[key] = by_id
    return by_id


def _notes_from_tables_json(entry: dict[str, Any]) -> dict[str, TableNotes]:
    originals: list[str] = entry.get("table_names_original") or entry.get("table_names") or []
    naturals: list[str] = entry.get("table_names") or originals
    col_originals: list[list[Any]] = entry.get("column_names_original") or entry.get("column_names") or []
    col_naturals: list[list[Any]] = entry.get("column_names") or col_originals
    columns: dict[int, dict[str, ColumnNote]] = {i: {} for i in range(len(originals))}
    for (table_idx, original), (_, natural) in zip(col_originals, col_naturals, strict=False):
        if table_idx < 0 or table_idx not in columns:  # the "*" pseudo-column
            continue
        columns[table_idx][str(original).strip().casefold()] = ColumnNote(name=_clean(str(natural)))
    return {
        str(t).strip().casefold(): TableNotes(name=_clean(str(n)), columns=columns[i])
        for i, (t, n) in enumerate(zip(originals, naturals, strict=False))
    }


def read_bird_descriptions(directory: Path) -> dict[str, TableNotes]:
    """Notes from a BIRD ``database_description`` folder (one ``<table>.csv`` per table)."""
    notes: dict[str, TableNotes] = {}
    for csv_path in sorted(directory.glob("*.csv")):
        reader = csv.DictReader(io.StringIO(_read_text(csv_path)))
        cols: dict[str, ColumnNote] = {}
        for row in reader:
            original = (row.get("original_column_name") or "").strip()
            if not original:
                continue
            cols[original.casefold()] = ColumnNote(
                name=_clean(row.get("column_name")),
                description=_clean(row.get("column_description")),
                value_description=_clean(row.get("value_description")),
                data_format=_clean(row.get("data_format")),
            )
        notes[csv_path.stem.strip().casefold()] = TableNotes(columns=cols)
    return notes


def _merge(primary: TableNotes, extra: TableNotes) -> TableNotes:
    """tables.json (``primary``) names first; the CSV fills in descriptions and anything missing."""
    cols = dict(extra.columns)
    for key, note in primary.columns.items():
        other = cols.get(key)
        if other is None:
            cols[key] = note
        else:
            cols[key] = ColumnNote(
                name=note.name or other.name,
                description=other.description,
                value_description=other.value_description,
                data_format=other.data_format,
            )
    return TableNotes(name=primary.name or extra.name, columns=cols)


def load_descriptions(spec: DatabaseSpec) -> dict[str, TableNotes]:
    """All notes for one database, keyed by casefolded table name, in tables.json order (empty if none).

    The ``tables.json`` entry is looked up by the database name, then by the file's stem (a Spider
    ``<db_id>/<db_id>.sqlite`` registered under another name still finds its entry).
    """
    from_json: dict[str, TableNotes] = {}
    if spec.tables_json is not None and spec.tables_json.is_file():
        entries = read_tables_json(spec.tables_json)
        entry = entries.get(spec.name)
        if entry is None and spec.path is not None:
            entry = entries.get(spec.path.stem)
        if entry is not None:
            from_json = _notes_from_tables_json(entry)
    from_csv: dict[str, TableNotes] = {}
    if spec.description_dir is not None and spec.description_dir.is_dir():
        from_csv = read_bird_descriptions(spec.description_dir)
    # tables.json order first (the order Spider/BIRD prompts list tables in), then CSV-only tables.
    merged = {
        key: _merge(notes, from_csv[key]) if key in from_csv else notes for key, notes in from_json.items()
    }
    for key, notes in from_csv.items():
        merged.setdefault(key, notes)
    return merged


def ddl_column_comments(ddl: str, dialect: str = "sqlite") -> dict[str, str]:
    """Column comments of a CREATE TABLE statement, by casefolded column name (empty when it has none
    or does not parse): ``"name" TEXT /* Name of the university */`` gives ``{"name": "Name of the
    university"}``, as SynSQL-2.5M writes its descriptions."""
    try:
        tree = sqlglot.parse_one(ddl, read=dialect)
    except (SqlglotError, RecursionError):
        return {}
    out: dict[str, str] = {}
    for column in tree.find_all(exp.ColumnDef):
        text = _clean(" ".join(column.comments or []))
        if text:
            out[column.name.strip().casefold()] = text
    return out
