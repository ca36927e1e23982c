"""DuckDB engine on a concert_singer DuckDB file: read-only, locked configuration, interrupt."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_contract import EngineContract
from service_data import duckdb_concert  # noqa: F401  (fixture)

from mcp_server.engines.base import DatabaseSpec
from mcp_server.engines.duckdb import DuckdbEngine
from mcp_server.errors import QueryFailed


@pytest.fixture
def engine(duckdb_concert: Path) -> Iterator[DuckdbEngine]:  # noqa: F811
    eng = DuckdbEngine(
        DatabaseSpec(
            name="concert_singer", kind="duckdb", url=f"duckdb:///{duckdb_concert}", path=duckdb_concert
        )
    )
    yield eng
    eng.close()


class TestDuckdbEngine(EngineContract):
    write_attempts = (
        "INSERT INTO singer (Singer_ID, Name) VALUES (99, 'x')",
        "UPDATE singer SET Age = 0",
        "DELETE FROM singer",
        "CREATE TABLE evil (a INTEGER)",
        "CREATE TEMP TABLE evil (a INTEGER)",
        "DROP TABLE singer",
        "ATTACH 'evil.duckdb' AS evil",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "PRAGMA threads = 1",
        "COPY singer TO 'evil.csv'",
        "EXPORT DATABASE 'evil_dir'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CHECKPOINT",
        "SELECT 1; DELETE FROM singer",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
    )
    json_sql = "SELECT b, d, day, ts FROM blobs"
    json_expected = ("\x01\x02", 1.25, "2020-01-02", "2020-01-02T03:04:05")


def test_file_unchanged_and_nothing_written(engine: DuckdbEngine, duckdb_concert: Path) -> None:  # noqa: F811
    before = hashlib.sha256(duckdb_concert.read_bytes()).hexdigest()
    for sql in TestDuckdbEngine.write_attempts:
        with pytest.raises(QueryFailed):
            engine.execute(sql, max_rows=5, timeout_s=5)
    assert hashlib.sha256(duckdb_concert.read_bytes()).hexdigest() == before
    assert not Path("evil.csv").exists() and not Path("evil_dir").exists()


def test_file_readers_refused_by_the_engine(engine: DuckdbEngine) -> None:
    with pytest.raises(QueryFailed) as info:
        engine.execute("SELECT * FROM read_csv('/etc/passwd')", max_rows=1, timeout_s=5)
    assert info.value.error.kind == "blocked" and info.value.error.rule == "engine_read_only"
