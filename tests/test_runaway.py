"""Runaway queries on every engine, through the guarded executor: the ENGINE stops them.

Each runaway is stopped within timeout + 1 s and the database is usable right after; cancelling
``run_async`` stops the query in the engine, not just the awaiting task.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
import sqlglot
from service_data import duckdb_concert, mariadb_concert_url, pg_concert_url  # noqa: F401  (fixtures)

from sqlr1.mcp_server.core.config import GuardSettings
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.executor import Executor

TIMEOUT = 1.5
UNBOUNDED = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
# MariaDB/MySQL cap recursion at 1000 steps, so the runaway there is a 10^12-row cross join.
CROSS_JOIN = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) "
    "SELECT count(*) FROM r AS a, r AS b, r AS c, r AS d"
)
# A LIKE pattern evaluated on every row of a 10^9-row join (written in SQLite, transpiled per engine).
LIKE_BLOWUP = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) "
    "SELECT count(*) FROM r AS a, r AS b, r AS c "
    "WHERE CAST(a.n AS TEXT) || '-' || CAST(b.n AS TEXT) || '-' || CAST(c.n AS TEXT) LIKE '%1%2%3%4%5%6%7%8%9%0%'"
)
KINDS = ["sqlite", "postgresql", "mysql", "duckdb"]


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest, spider_copy) -> tuple[str, str]:
    """(kind, target) for concert_singer on each engine."""
    kind = request.param
    if kind == "sqlite":
        return kind, str(spider_copy("concert_singer"))
    if kind == "postgresql":
        return kind, "concert_singer=" + request.getfixturevalue("pg_concert_url")
    if kind == "mysql":
        return kind, "concert_singer=" + request.getfixturevalue("mariadb_concert_url")
    path: Path = request.getfixturevalue("duckdb_concert")
    return kind, f"concert_singer={path}"


def _executor(target: str, timeout_s: float) -> Executor:
    return Executor.from_targets([target], GuardSettings(timeout_s=timeout_s))


def _stopped_in_time(ex: Executor, sql: str) -> None:
    started = time.monotonic()
    with pytest.raises(QueryFailed) as info:
        ex.run("concert_singer", sql)
    elapsed = time.monotonic() - started
    assert info.value.error.kind == "timeout", info.value.error
    assert f"{TIMEOUT:.1f} s" in info.value.error.message
    assert elapsed < TIMEOUT + 1.0
    assert ex.run("concert_singer", "SELECT count(*) FROM singer").rows[0][0] == 6  # still usable


def test_unbounded_recursion_or_cross_join(target: tuple[str, str]) -> None:
    kind, spec = target
    ex = _executor(spec, TIMEOUT)
    try:
        _stopped_in_time(ex, CROSS_JOIN if kind == "mysql" else UNBOUNDED)
    finally:
        ex.registry.close()


def test_huge_cross_join(target: tuple[str, str]) -> None:
    ex = _executor(target[1], TIMEOUT)
    try:
        _stopped_in_time(ex, CROSS_JOIN)
    finally:
        ex.registry.close()


def test_like_blowup(target: tuple[str, str]) -> None:
    ex = _executor(target[1], TIMEOUT)
    try:
        dialect = ex.registry.engine("concert_singer").dialect
        _stopped_in_time(ex, sqlglot.transpile(LIKE_BLOWUP, read="sqlite", write=dialect)[0])
    finally:
        ex.registry.close()


async def test_cancelled_run_async_stops_the_engine(target: tuple[str, str]) -> None:
    _, spec = target
    ex = _executor(spec, 60)
    try:
        engine = ex.registry.engine("concert_singer")
        started = time.monotonic()
        with anyio.move_on_after(0.5) as scope:
            await ex.run_async("concert_singer", CROSS_JOIN)
        assert scope.cancelled_caught
        assert time.monotonic() - started < 0.5 + 3.0
        assert engine._active == set()  # type: ignore[attr-defined]  # no statement left running
        result = await ex.run_async("concert_singer", "SELECT count(*) FROM singer")
        assert result.rows[0][0] == 6
    finally:
        ex.registry.close()
