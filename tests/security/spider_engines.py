"""Spider databases on every engine: the gold queries' harmless reads, checked by the engines themselves.

``load_postgres`` / ``load_mariadb`` copy Spider SQLite databases (schema and rows) into PostgreSQL schemas
and MariaDB databases named ``spider_<db_id>``, idempotently (a database whose row counts already match is
reused, under a server-side lock, so concurrent test sessions can share it). ``build_duckdb`` writes one
DuckDB file per database (tables only, unless asked for rows). ``gold_refusals`` runs gold queries, transpiled from SQLite by sqlglot, through
an engine and returns those refused by a ``function_not_allowed`` rule: the engines' own reading of a
statement must never refuse a call the guard allows in a real query (a name missing from
``dialects.ENGINE_FUNCTIONS``). Used by ``test_engine_calls.py`` and ``benchmarks/engine_calls_bench.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlglot
from sqlalchemy.engine import make_url

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.engines.base import DatabaseSpec, Engine
from sqlr1.mcp_server.sql import guard

__all__ = [
    "GoldRun",
    "build_duckdb",
    "gold_refusals",
    "load_mariadb",
    "load_postgres",
    "spec_for",
    "tables_of",
]

LOCK_ID = 7220412


def tables_of(path: Path) -> dict[str, tuple[list[tuple[str, str]], list[tuple[Any, ...]]]]:
    """table -> ([(column, declared type)], rows) of a SQLite file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    try:
        out = {}
        names = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        for (table,) in names.fetchall():
            cols = [(r[1], r[2] or "") for r in conn.execute(f'PRAGMA table_info("{table}")')]
            out[table] = (cols, conn.execute(f'SELECT * FROM "{table}"').fetchall())
        return out
    finally:
        conn.close()


def _kind(decl: str) -> str:
    d = decl.upper()
    if "INT" in d:
        return "int"
    if any(x in d for x in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
        return "real"
    return "text"


def _clean(value: Any, kind: str) -> Any:
    """A SQLite value as the typed column takes it (Spider's files hold '' and text in numeric columns)."""
    if value is None or kind == "text":
        return None if value is None else str(value)
    try:
        return int(value) if kind == "int" and float(value).is_integer() else float(value)
    except (TypeError, ValueError):
        return None


def load_postgres(url: str, db_path: Path) -> str:
    """Copy one Spider database into schema ``spider_<db_id>``; returns a URL whose search_path is it."""
    import psycopg

    schema = f"spider_{db_path.stem}".lower()
    u = make_url(url)
    conninfo = f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
    if u.password:
        conninfo += f" password={u.password}"
    data = tables_of(db_path)
    types = {"int": "bigint", "real": "double precision", "text": "text"}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
        try:
            counts = {
                t: n
                for t, n in conn.execute(
                    "SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relkind = 'r'",
                    (schema,),
                )
            }
            # Lower-case names, as PostgreSQL folds the gold queries' unquoted ones.
            if set(counts) != {t.lower() for t in data}:
                with conn.transaction():
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                    conn.execute(f'CREATE SCHEMA "{schema}"')
                    for table, (cols, rows) in data.items():
                        kinds = [_kind(d) for _, d in cols]
                        defs = ", ".join(
                            f'"{c.lower()}" {types[k]}' for (c, _), k in zip(cols, kinds, strict=True)
                        )
                        conn.execute(f'CREATE TABLE "{schema}"."{table.lower()}" ({defs})')
                        marks = ", ".join(["%s"] * len(cols))
                        with conn.cursor() as cur:
                            cur.executemany(
                                f'INSERT INTO "{schema}"."{table.lower()}" VALUES ({marks})',
                                [[_clean(v, k) for v, k in zip(row, kinds, strict=True)] for row in rows],
                            )
                    conn.execute(f'ANALYZE "{schema}"."{next(iter(data)).lower()}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    return f"{url}?options=-csearch_path%3D{schema}"


def load_mariadb(url: str, db_path: Path) -> str:
    """Copy one Spider database into MariaDB database ``spider_<db_id>``; returns its URL."""
    import pymysql

    database = f"spider_{db_path.stem}".lower()
    u = make_url(url)
    data = tables_of(db_path)
    types = {"int": "BIGINT", "real": "DOUBLE", "text": "TEXT"}
    conn = pymysql.connect(
        host=u.host, port=u.port or 3306, user=u.username, password=u.password or "", autocommit=True
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK('sqlr1_spider_load', 120)")
            try:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
                cur.execute(f"USE `{database}`")
                cur.execute("SHOW TABLES")
                present = {r[0] for r in cur.fetchall()}
                if present != set(data):
                    for table in present:
                        cur.execute(f"DROP TABLE IF EXISTS `{table}`")
                    for table, (cols, rows) in data.items():
                        kinds = [_kind(d) for _, d in cols]
                        defs = ", ".join(f"`{c}` {types[k]}" for (c, _), k in zip(cols, kinds, strict=True))
                        cur.execute(f"CREATE TABLE `{table}` ({defs}) ENGINE=InnoDB")
                        marks = ", ".join(["%s"] * len(cols))
                        cur.executemany(
                            f"INSERT INTO `{table}` VALUES ({marks})",
                            [[_clean(v, k) for v, k in zip(row, kinds, strict=True)] for row in rows],
                        )
            finally:
                cur.execute("SELECT RELEASE_LOCK('sqlr1_spider_load')")
    finally:
        conn.close()
    return u.set(database=database).render_as_string(hide_password=False)


def build_duckdb(folder: Path, db_path: Path, *, with_rows: bool = False) -> Path:
    """One Spider database as a DuckDB file in ``folder``: its tables, and their rows if ``with_rows``
    (DuckDB's own reading of a statement, the call check, depends on the text alone; inserting row by row
    is slow)."""
    import duckdb

    path = folder / f"{db_path.stem}.duckdb"
    if path.exists():
        return path
    types = {"int": "BIGINT", "real": "DOUBLE", "text": "VARCHAR"}
    conn = duckdb.connect(str(path))
    try:
        for table, (cols, rows) in tables_of(db_path).items():
            kinds = [_kind(d) for _, d in cols]
            defs = ", ".join(f'"{c}" {types[k]}' for (c, _), k in zip(cols, kinds, strict=True))
            conn.execute(f'CREATE TABLE "{table}" ({defs})')
            if rows and with_rows:
                marks = ", ".join(["?"] * len(cols))
                conn.executemany(
                    f'INSERT INTO "{table}" VALUES ({marks})',
                    [[_clean(v, k) for v, k in zip(row, kinds, strict=True)] for row in rows],
                )
    finally:
        conn.close()
    return path


@dataclass
class GoldRun:
    """What the gold queries met on one engine."""

    queries: int = 0  # transpiled and accepted by the guard
    ran: int = 0  # returned rows (or an error unrelated to the call check)
    refused: list[str] | None = None  # refused by the engine's call check: false refusals

    def __post_init__(self) -> None:
        self.refused = self.refused or []


def gold_refusals(engine: Engine, queries: Iterable[str], run: GoldRun) -> GoldRun:
    """Run ``queries`` (SQLite gold) on ``engine`` in its dialect; record what its call check refused."""
    assert run.refused is not None
    for sqlite_sql in queries:
        try:
            sql = sqlglot.transpile(sqlite_sql, read="sqlite", write=engine.dialect)[0]
            guard.check(sql, engine.dialect)
        except (QueryFailed, sqlglot.errors.SqlglotError):
            continue  # not this test's concern: the guard's own false rejects are tested on the gold text
        run.queries += 1
        try:
            engine.execute(sql, max_rows=1, timeout_s=10)
        except QueryFailed as exc:
            if exc.error.rule == "function_not_allowed":
                run.refused.append(f"{exc.error.message[:120]} | {sql}")
                continue
        run.ran += 1
    return run


def spec_for(kind: str, name: str, target: str | Path) -> DatabaseSpec:
    """A DatabaseSpec for a URL (PostgreSQL, MariaDB) or a file (DuckDB, SQLite)."""
    if isinstance(target, Path):
        return DatabaseSpec(name=name, kind=kind, url=f"{kind}:///{target}", path=target)  # type: ignore[arg-type]
    return DatabaseSpec(name=name, kind=kind, url=target)  # type: ignore[arg-type]
