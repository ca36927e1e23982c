"""Guarded execution: guard first, engine second, JSON-safe capped results, async and cancellation."""

from __future__ import annotations

import json
import pickle
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import anyio
import pytest

from sqlr1.mcp_server.core.config import GuardSettings
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.engines.sqlite import SqliteEngine
from sqlr1.mcp_server.db.executor import Executor, cap_result, cap_rows

UNBOUNDED = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"


@pytest.fixture
def db(spider_copy) -> Path:
    return spider_copy("concert_singer")


def make(db: Path, **settings) -> Executor:
    return Executor.from_targets([str(db)], GuardSettings(**settings))


def test_run_returns_capped_json_safe_rows(db: Path) -> None:
    ex = make(db)
    result = ex.run("concert_singer", "SELECT Name, Age FROM singer ORDER BY Singer_ID", max_rows=4)
    assert [c.name for c in result.columns] == ["Name", "Age"]
    assert result.rows[0] == ["Joe Sharp", 52] and result.row_count == 4 and result.truncated is True
    assert result.raw_rows == [tuple(r) for r in result.rows]
    dumped = result.model_dump()
    assert "raw_rows" not in dumped
    json.dumps(dumped)


def test_settings_give_the_defaults(db: Path) -> None:
    ex = make(db, max_rows=2)
    result = ex.run("concert_singer", "SELECT * FROM singer")
    assert result.row_count == 2 and result.truncated is True


def test_character_cap(db: Path) -> None:
    ex = make(db, max_chars=40)
    result = ex.run("concert_singer", "SELECT Name, Country FROM singer")
    assert result.truncated is True and 1 <= result.row_count < 6
    assert sum(len(str(v)) for row in result.rows for v in row) <= 40
    long = ex.run("concert_singer", "SELECT '" + "x" * 500 + "' AS s")
    cell = long.rows[0][0]
    assert long.truncated is True and long.row_count == 1 and isinstance(cell, str) and cell.endswith("…")
    assert len(cell) <= 40


# Rows of every SQLite storage class, with ints of every width and NULLs, to test the fetch's bound.
MIXED = (
    "SELECT Name, Age, NULL AS n, -9223372036854775808 AS lo, 9223372036854775807 AS hi FROM singer "
    "ORDER BY Singer_ID"
)


@pytest.mark.parametrize(
    ("sql", "plain"),
    [
        (MIXED, True),
        ("SELECT -9223372036854775808 AS lo, -9223372036854775807 AS lo2", True),  # the widest ints
        ("SELECT Name, X'68690a' AS b FROM singer", False),
        ("SELECT Name, 1.5 AS f FROM singer", False),
        ("SELECT 9e999 AS inf", False),
    ],
)
@pytest.mark.parametrize("max_chars", [1, 12, 40, 95, 96, 97, 200, 10_000])
def test_fetch_bound_gives_what_cap_rows_gives(db: Path, sql: str, plain: bool, max_chars: int) -> None:
    """SQLite's fetch bounds the characters cap_rows counts; the fast path it allows changes nothing."""
    engine = make(db).registry.engine("concert_singer")
    raw = engine.execute(sql, max_rows=100, timeout_s=5.0)
    assert (raw.plain_chars_bound is not None) is plain
    rows, _ = cap_rows(raw.rows, 10**9)
    if plain:
        counted = sum(len(v) if type(v) is str else 4 if v is None else len(str(v)) for r in rows for v in r)
        assert raw.plain_chars_bound is not None and counted <= raw.plain_chars_bound
    fast, slow = cap_result(raw, max_chars), cap_result(replace(raw, plain_chars_bound=None), max_chars)
    assert fast.model_dump() == slow.model_dump() and fast.raw_rows == slow.raw_rows
    assert all(type(r) is list for r in fast.rows)


def test_bytes_become_text_or_base64(db: Path) -> None:
    result = make(db).run("concert_singer", "SELECT X'68690a' AS b, X'FF00' AS nb")
    assert result.rows == [["hi\n", "base64:/wA="]]


def test_guard_runs_before_the_engine(db: Path) -> None:
    ex = make(db)
    with pytest.raises(QueryFailed) as info:
        ex.run("concert_singer", "DELETE FROM singer")
    assert info.value.error.kind == "blocked" and info.value.error.rule != "engine_read_only"
    with pytest.raises(QueryFailed) as info:
        ex.run("concert_singer", "SELECT FROM WHERE")
    assert info.value.error.kind in ("syntax", "blocked")


def test_unknown_database(db: Path) -> None:
    with pytest.raises(QueryFailed) as info:
        make(db).run("nope", "SELECT 1")
    assert info.value.error.kind == "not_found" and "concert_singer" in info.value.error.message


def test_engine_errors_come_back_structured(db: Path) -> None:
    with pytest.raises(QueryFailed) as info:
        make(db).run("concert_singer", "SELECT nme FROM singer")
    assert info.value.error.kind == "execution" and "nme" in info.value.error.message


def test_validate(db: Path) -> None:
    ex = make(db)
    statement = ex.validate("concert_singer", "SELECT Name FROM singer")
    assert statement.tables == ("singer",)
    with pytest.raises(QueryFailed) as info:
        ex.validate("concert_singer", "SELECT nme FROM singer")
    assert info.value.error.kind == "execution"
    with pytest.raises(QueryFailed) as info:
        ex.validate("concert_singer", "DROP TABLE singer")
    assert info.value.error.kind == "blocked"


def test_extra_functions_reach_guard_and_engine(db: Path) -> None:
    with pytest.raises(QueryFailed):
        make(db).run("concert_singer", "SELECT sqlite_source_id()")
    result = make(db, extra_functions=["sqlite_source_id"]).run("concert_singer", "SELECT sqlite_source_id()")
    assert isinstance(result.rows[0][0], str) and len(result.rows[0][0]) > 20


def test_timeout_through_the_executor(db: Path) -> None:
    ex = make(db, timeout_s=1.0)
    with pytest.raises(QueryFailed) as info:
        ex.run("concert_singer", UNBOUNDED)
    assert info.value.error.kind == "timeout"
    assert ex.run("concert_singer", "SELECT 1").rows == [[1]]


def test_thread_safe(db: Path) -> None:
    ex = make(db)
    sql = "SELECT count(*) FROM singer AS s JOIN singer_in_concert AS c ON s.Singer_ID = c.Singer_ID"
    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(lambda _: ex.run("concert_singer", sql).rows[0][0], range(80)))
    assert len(set(counts)) == 1


def _count_in_worker(ex: Executor) -> int:
    count = ex.run("concert_singer", "SELECT count(*) FROM singer").rows[0][0]
    assert isinstance(count, int)
    return count


def test_picklable_for_worker_processes(db: Path) -> None:
    ex = make(db, max_rows=7)
    clone = pickle.loads(pickle.dumps(ex))
    assert clone.settings.max_rows == 7 and clone.registry.names() == ["concert_singer"]
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        assert pool.submit(_count_in_worker, ex).result(timeout=60) == 6


async def test_run_async_and_validate_async(db: Path) -> None:
    ex = make(db)
    result = await ex.run_async("concert_singer", "SELECT count(*) FROM concert")
    assert result.rows == [[6]]
    assert (await ex.validate_async("concert_singer", "SELECT 1")).sql == "SELECT 1"


async def test_cancelling_run_async_stops_the_engine_query(db: Path) -> None:
    ex = make(db, timeout_s=60)
    engine = ex.registry.engine("concert_singer")
    started = time.monotonic()
    with anyio.move_on_after(0.3):
        await ex.run_async("concert_singer", UNBOUNDED)
    assert time.monotonic() - started < 5
    assert isinstance(engine, SqliteEngine) and engine._active == set()  # idle again: the query was stopped
    assert (await ex.run_async("concert_singer", "SELECT 1")).rows == [[1]]


async def test_run_async_does_not_block_the_event_loop(db: Path) -> None:
    ex = make(db, timeout_s=1.0)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(tick)
        with pytest.raises(QueryFailed):
            await ex.run_async("concert_singer", UNBOUNDED)
        tg.cancel_scope.cancel()
    assert ticks > 10


async def test_a_missing_column_gets_the_catalogs_precise_hint_on_every_path(db: Path) -> None:
    """An alias bound to the wrong table: run, run_async (inline), fingerprint and validate all say which
    table the alias is and where the column lives, in place of the engine's generic hint."""
    ex = make(db)
    bad = "SELECT T1.Capacity FROM concert AS T1 JOIN stadium AS T2 ON T1.Stadium_ID = T2.Stadium_ID"
    want = (
        "no such column: T1.Capacity (hint: T1 is concert, which has no column Capacity; "
        "Capacity is a column of stadium (T2).)"
    )
    calls = [
        lambda: ex.run("concert_singer", bad),
        lambda: ex.fingerprint("concert_singer", bad),
        lambda: ex.validate("concert_singer", bad),
    ]
    for call in calls:
        with pytest.raises(QueryFailed) as failed:
            call()
        assert failed.value.error.kind == "execution" and failed.value.error.message == want
    # run_async's inline path: the same hint, its catalog read in a worker thread, not on the event loop
    engine = ex.registry.engine("concert_singer")
    read_on: list[int] = []
    real_catalog = engine.catalog

    def catalog():  # type: ignore[no-untyped-def]
        read_on.append(threading.get_ident())
        return real_catalog()

    engine.catalog = catalog  # type: ignore[method-assign]
    with pytest.raises(QueryFailed) as failed:
        await ex.run_async("concert_singer", bad)
    assert failed.value.error.message == want
    assert read_on and threading.get_ident() not in read_on
    # A qualifier the statement never defines: the engine's message and generic hint stay as they are.
    with pytest.raises(QueryFailed) as failed:
        ex.run("concert_singer", "SELECT X9.Capacity FROM stadium")
    assert failed.value.error.message.startswith("no such column: X9.Capacity (hint: check the column name")
