"""Test data on the real servers: Spider's concert_singer loaded into PostgreSQL and MariaDB, and DuckDB.

Loading is idempotent and serialized with a server-side lock (several test sessions may run at
once): a database that already holds the expected tables and row counts is reused as is.
Import the fixtures into a test module: ``from service_data import pg_concert_url``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

CONCERT = Path(__file__).parent / "data" / "spider" / "concert_singer" / "concert_singer.sqlite"
SCHEMA = "sqlr1_test"


def sqlite_tables(
    path: Path = CONCERT,
) -> dict[str, tuple[list[tuple[str, str, bool]], list[tuple[Any, ...]]]]:
    """table -> ([(column, declared type, is_pk)], rows) from a SQLite file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out = {}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"):
            cols = [(r[1], r[2], r[5] > 0) for r in conn.execute(f'PRAGMA table_info("{table}")')]
            out[table] = (cols, conn.execute(f'SELECT * FROM "{table}"').fetchall())
        return out
    finally:
        conn.close()


def _pg_type(decl: str) -> str:
    d = decl.upper()
    if "INT" in d:
        return "bigint"
    if d.startswith(("NUMERIC", "DECIMAL")):
        return "numeric"
    if any(x in d for x in ("REAL", "FLOA", "DOUB")):
        return "double precision"
    return "text"


def _my_type(decl: str, pk: bool) -> str:
    d = decl.upper()
    if "INT" in d:
        return "BIGINT"
    if d.startswith(("NUMERIC", "DECIMAL")) or any(x in d for x in ("REAL", "FLOA", "DOUB")):
        return "DOUBLE"
    return "VARCHAR(255)"


def load_postgres(url: str) -> str:
    """Load concert_singer into schema ``sqlr1_test``; returns a URL whose search_path is that schema."""
    import psycopg

    u = make_url(url)
    conninfo = f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
    if u.password:
        conninfo += f" password={u.password}"
    data = sqlite_tables()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(7220411)")
        try:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            present = {
                r[0]: r[1]
                for r in conn.execute(
                    "SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relkind = 'r'",
                    (SCHEMA,),
                )
            }
            ok = set(present) == set(data) and all(
                conn.execute(f'SELECT count(*) FROM {SCHEMA}."{t}"').fetchone()[0] == len(rows)  # type: ignore[index]
                for t, (_, rows) in data.items()
            )
            if not ok:
                with conn.transaction():
                    for t in present:
                        conn.execute(f'DROP TABLE IF EXISTS {SCHEMA}."{t}" CASCADE')
                    for t, (cols, rows) in data.items():
                        defs = ", ".join(f'"{c}" {_pg_type(d)}' for c, d, _ in cols)
                        pk = ", ".join(f'"{c}"' for c, _, is_pk in cols if is_pk)
                        conn.execute(f'CREATE TABLE {SCHEMA}."{t}" ({defs}, PRIMARY KEY ({pk}))')
                        marks = ", ".join(["%s"] * len(cols))
                        with conn.cursor() as cur:
                            cur.executemany(f'INSERT INTO {SCHEMA}."{t}" VALUES ({marks})', rows)
                    conn.execute(
                        f'ALTER TABLE {SCHEMA}."singer_in_concert" ADD FOREIGN KEY ("concert_ID") '
                        f'REFERENCES {SCHEMA}."concert" ("concert_ID")'
                    )
        finally:
            conn.execute("SELECT pg_advisory_unlock(7220411)")
    return f"{url}?options=-csearch_path%3D{SCHEMA}"


def load_mariadb(url: str) -> str:
    """Load concert_singer into database ``sqlr1_test``; returns its URL."""
    import pymysql

    u = make_url(url)
    data = sqlite_tables()
    conn = pymysql.connect(
        host=u.host, port=u.port or 3306, user=u.username, password=u.password or "", autocommit=True
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK('sqlr1_test_load', 60)")
            try:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {SCHEMA}")
                cur.execute(f"USE {SCHEMA}")
                cur.execute("SHOW TABLES")
                present = {r[0] for r in cur.fetchall()}
                ok = set(present) == set(data)
                for t, (_, rows) in data.items():
                    if ok:
                        cur.execute(f"SELECT count(*) FROM `{t}`")
                        ok = cur.fetchone()[0] == len(rows)  # type: ignore[index]
                if not ok:
                    cur.execute("SET FOREIGN_KEY_CHECKS = 0")
                    for t in present:
                        cur.execute(f"DROP TABLE IF EXISTS `{t}`")
                    for t, (cols, rows) in data.items():
                        defs = ", ".join(f"`{c}` {_my_type(d, pk)}" for c, d, pk in cols)
                        pk = ", ".join(f"`{c}`" for c, _, is_pk in cols if is_pk)
                        cur.execute(f"CREATE TABLE `{t}` ({defs}, PRIMARY KEY ({pk})) ENGINE=InnoDB")
                        marks = ", ".join(["%s"] * len(cols))
                        cur.executemany(f"INSERT INTO `{t}` VALUES ({marks})", rows)
                    cur.execute(
                        "ALTER TABLE `singer_in_concert` ADD FOREIGN KEY (`concert_ID`) "
                        "REFERENCES `concert` (`concert_ID`)"
                    )
                    cur.execute("SET FOREIGN_KEY_CHECKS = 1")
            finally:
                cur.execute("SELECT RELEASE_LOCK('sqlr1_test_load')")
    finally:
        conn.close()
    base = u.set(database=SCHEMA).render_as_string(hide_password=False)
    return base


def build_duckdb(path: Path) -> Path:
    """concert_singer as a DuckDB file (written once, then opened read-only by the engine)."""
    import duckdb

    data = sqlite_tables()
    conn = duckdb.connect(str(path))
    try:
        for t, (cols, rows) in data.items():
            defs = ", ".join(f'"{c}" {_pg_type(d).upper()}' for c, d, _ in cols)
            pk = ", ".join(f'"{c}"' for c, _, is_pk in cols if is_pk)
            fk = (
                ', FOREIGN KEY ("concert_ID") REFERENCES "concert" ("concert_ID")'
                if t == "singer_in_concert"
                else ""
            )
            conn.execute(f'CREATE TABLE "{t}" ({defs}, PRIMARY KEY ({pk}){fk})')
            marks = ", ".join(["?"] * len(cols))
            if rows:
                conn.executemany(f'INSERT INTO "{t}" VALUES ({marks})', [list(r) for r in rows])
        conn.execute("CREATE TABLE blobs (b BLOB, d DECIMAL(10, 2), day DATE, ts TIMESTAMP)")
        conn.execute(
            "INSERT INTO blobs VALUES ('\\x01\\x02'::BLOB, 1.25, DATE '2020-01-02', TIMESTAMP '2020-01-02 03:04:05')"
        )
    finally:
        conn.close()
    return path


@pytest.fixture(scope="session")
def pg_concert_url(postgres_url: str) -> str:
    return load_postgres(postgres_url)


@pytest.fixture(scope="session")
def mariadb_concert_url(mariadb_url: str) -> str:
    return load_mariadb(mariadb_url)


@pytest.fixture(scope="session")
def duckdb_concert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield build_duckdb(tmp_path_factory.mktemp("duck") / "concert_singer.duckdb")
