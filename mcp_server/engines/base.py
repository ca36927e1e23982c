"""The narrow engine protocol every database kind implements.

An engine owns connections, engine-enforced read-only mode, engine-level
timeouts and cancellation, and the raw catalog. It never decides whether a
statement is allowed: that is the guard's job (``mcp_server.guard``), and the
engine's read-only settings are defence in depth on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from mcp_server.results import Column

EngineKind = Literal["sqlite", "postgresql", "mysql", "duckdb"]

__all__ = [
    "CatalogColumn",
    "CatalogForeignKey",
    "CatalogTable",
    "DatabaseSpec",
    "Engine",
    "EngineKind",
    "RawResult",
]


@dataclass(frozen=True)
class DatabaseSpec:
    """A named database the registry knows."""

    name: str
    kind: EngineKind
    url: str  # SQLAlchemy-style URL (sqlite:///abs/path.sqlite for files)
    path: Path | None = None  # the file, for SQLite / DuckDB
    description_dir: Path | None = None  # BIRD database_description/ folder, if any
    tables_json: Path | None = None  # Spider/BIRD tables.json next to the folder, if any


@dataclass
class RawResult:
    """Rows as the engine returned them (before JSON conversion and character capping)."""

    columns: list[Column]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows existed than max_rows (one extra row was fetched to know)
    elapsed_ms: float


@dataclass
class CatalogColumn:
    name: str
    type: str
    nullable: bool = True
    primary_key: bool = False


@dataclass
class CatalogForeignKey:
    columns: list[str]
    ref_table: str
    ref_columns: list[str]


@dataclass
class CatalogTable:
    name: str
    columns: list[CatalogColumn] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    foreign_keys: list[CatalogForeignKey] = field(default_factory=list)
    schema: str | None = None  # e.g. "public"; None for SQLite main


class Engine(Protocol):
    """What the executor, schema inspector and value index need from a database."""

    spec: DatabaseSpec

    @property
    def dialect(self) -> str:
        """The sqlglot dialect name ("sqlite", "postgres", "mysql", "duckdb")."""
        ...

    def execute(self, sql: str, *, max_rows: int, timeout_s: float) -> RawResult:
        """Run one already-guarded read statement read-only; the engine stops it at ``timeout_s``.

        Raises ``QueryFailed`` (kind ``timeout`` or ``execution``). Thread-safe: each call
        uses its own connection or a pooled one.
        """
        ...

    def explain(self, sql: str, *, timeout_s: float) -> None:
        """Engine-level dry run (EXPLAIN) without returning data; raises ``QueryFailed``."""
        ...

    def interrupt(self) -> None:
        """Stop every statement this engine is running now (used for cancellation)."""
        ...

    def catalog(self) -> list[CatalogTable]:
        """Tables with columns, types, primary and foreign keys (user tables only)."""
        ...

    def fingerprint(self) -> str:
        """Changes whenever the schema (or, for files, the content) changes; keys caches."""
        ...

    def close(self) -> None: ...
