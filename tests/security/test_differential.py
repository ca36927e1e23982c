"""The guard and each engine read generated statements the same way (see ``differential.py``).

A fixed-seed sample (reproducible) and a fresh-seed sample (new statements every run; the seed is in the
failure message) per engine; ``benchmarks/guard_differential.py`` runs 100,000+ per engine.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from security.differential import compare, generate
from sqlr1.mcp_server.db.engines.base import Engine
from sqlr1.mcp_server.db.registry import Registry

SAMPLE = 600
DIFF_DB = "sqlr1_diff"


def prepare_canary(kind: str, target: str) -> str:
    """A ``canary(id, v)`` table on the engine (idempotent); returns the target to register."""
    if kind == "sqlite":
        lite = sqlite3.connect(target)
        lite.execute("CREATE TABLE IF NOT EXISTS canary (id INTEGER PRIMARY KEY, v TEXT)")
        lite.commit()
        lite.close()
        return target
    if kind == "duckdb":
        import duckdb

        duck = duckdb.connect(target)
        duck.execute("CREATE TABLE IF NOT EXISTS canary (id INTEGER PRIMARY KEY, v TEXT)")
        duck.close()
        return target
    engine = sa.create_engine(target, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if kind == "postgresql":
            conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {DIFF_DB}"))
            conn.execute(
                sa.text(f"CREATE TABLE IF NOT EXISTS {DIFF_DB}.canary (id INTEGER PRIMARY KEY, v TEXT)")
            )
            engine.dispose()
            return f"{target}?options=-csearch_path%3D{DIFF_DB}"
        conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS {DIFF_DB}"))
        conn.execute(sa.text(f"CREATE TABLE IF NOT EXISTS {DIFF_DB}.canary (id INTEGER PRIMARY KEY, v TEXT)"))
    engine.dispose()
    return sa.engine.make_url(target).set(database=DIFF_DB).render_as_string(hide_password=False)


@pytest.fixture
def engines(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, Engine]]:
    targets = {
        "sqlite": prepare_canary("sqlite", str(tmp_path / "diff.sqlite")),
        "duckdb": prepare_canary("duckdb", str(tmp_path / "diff.duckdb")),
    }
    registry = Registry.from_targets([f"{name}={target}" for name, target in targets.items()])
    try:
        yield {name: registry.engine(name) for name in targets}
    finally:
        registry.close()


def _check(dialect: str, engine: Engine, seed: int) -> None:
    result = compare(dialect, generate(dialect, SAMPLE, seed=seed), engine.read_calls)
    print(f"\n{dialect} seed {seed}: {result.line()}")
    assert result.compared > SAMPLE // 6, "too few statements both could read: the comparison proves little"
    assert len(result.calls_seen) >= 6, result.calls_seen  # most of the vocabulary was exercised
    shown = "\n".join(
        f"{sql!r}: guard {ours}, engine {theirs}" for sql, ours, theirs in result.disagreements[:10]
    )
    assert not result.disagreements, f"{dialect}, seed {seed}: guard and engine disagree on\n{shown}"


FRESH = random.SystemRandom().randrange(1, 10**9)


@pytest.mark.parametrize("seed", [0, FRESH], ids=["fixed", "fresh"])
@pytest.mark.parametrize("dialect", ["sqlite", "duckdb"])
def test_guard_and_file_engines_read_calls_alike(engines: dict[str, Engine], dialect: str, seed: int) -> None:
    _check(dialect, engines[dialect], seed)


@pytest.mark.services
@pytest.mark.parametrize("seed", [0, FRESH], ids=["fixed", "fresh"])
@pytest.mark.parametrize(("dialect", "kind"), [("postgres", "postgresql"), ("mysql", "mysql")])
def test_guard_and_servers_read_calls_alike(
    postgres_url: str, mariadb_url: str, dialect: str, kind: str, seed: int
) -> None:
    target = prepare_canary(kind, postgres_url if kind == "postgresql" else mariadb_url)
    registry = Registry.from_targets([f"diff={target}"])
    try:
        _check(dialect, registry.engine("diff"), seed)
    finally:
        registry.close()


def test_the_comparison_catches_a_call_one_reader_misses(engines: dict[str, Engine]) -> None:
    """The test above could fail: an engine reading that drops one call is reported as a disagreement."""
    engine = engines["sqlite"]

    def forgetful(sql: str) -> list[str]:
        return [name for name in engine.read_calls(sql) if name != "load_extension"]

    result = compare("sqlite", generate("sqlite", 200, seed=1), forgetful)
    assert result.disagreements and all("load_extension" in ours for _, ours, _ in result.disagreements)
