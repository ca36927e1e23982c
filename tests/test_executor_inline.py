"""``run_async``'s inline fast path on SQLite: same results as a worker thread, budget, timeout, cancel."""

from __future__ import annotations

import json
import pickle
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from jsonschema.validators import validator_for
from mcp import Client
from mcp_text import first_text
from pydantic import ValidationError

from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig, GuardSettings
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.core.results import QueryResult
from sqlr1.mcp_server.db.engines import sqlite as sqlite_engine
from sqlr1.mcp_server.db.engines.sqlite import SqliteEngine, inline_safe
from sqlr1.mcp_server.db.executor import INLINE_BUDGET_S, Executor
from sqlr1.mcp_server.protocol.server import build_server
from sqlr1.mcp_server.sql import guard

UNBOUNDED = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
# Tens of milliseconds of VM work: always outlasts a sub-millisecond budget.
LONG = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 300000) SELECT count(*) FROM r"
)
SAME_RESULTS = [
    "SELECT Name, Age, Country FROM singer ORDER BY Singer_ID",
    "SELECT s.Name, count(*) AS n FROM singer AS s JOIN singer_in_concert AS c "
    "ON s.Singer_ID = c.Singer_ID GROUP BY s.Name ORDER BY n DESC, s.Name",
    "SELECT X'68690a' AS b, X'FF00' AS nb, NULL AS z, 1.5 AS f, 1e300 * 1e300 AS inf, 'é' AS t",
    "SELECT upper(substr(Name, 1, 3)), length(Name), round(avg(Age), 2) FROM singer GROUP BY Name",
    "SELECT Name FROM singer WHERE Name LIKE '%o%' AND instr(Country, 'a') > 0",
]


@pytest.fixture
def db(spider_copy: Any) -> Path:
    return spider_copy("concert_singer")


def make(db: Path, budget_s: float, **settings: Any) -> Executor:
    return Executor(
        Executor.from_targets([str(db)]).registry, GuardSettings(**settings), inline_budget_s=budget_s
    )


def verdict(ex: Executor, sql: str) -> list[int] | None:
    """What the engine remembers of ``sql``: [calls left to skip the inline attempt (-1 never), last skip]."""
    engine = ex.registry.engine("concert_singer")
    assert isinstance(engine, SqliteEngine)
    return engine._inline_verdicts.get(sql)


@pytest.mark.parametrize("sql", SAME_RESULTS)
@pytest.mark.parametrize("caps", [{}, {"max_rows": 2}, {"max_chars": 30}])
async def test_inline_gives_what_a_worker_thread_gives(db: Path, sql: str, caps: dict[str, int]) -> None:
    inline, worker = make(db, 5.0, **caps), make(db, 0.0, **caps)
    fast, slow = await inline.run_async("concert_singer", sql), await worker.run_async("concert_singer", sql)
    assert verdict(inline, sql) == [0, 0]  # it ran inline, within the budget
    assert verdict(worker, sql) is None  # never tried inline
    drop = {"elapsed_ms"}
    assert fast.model_dump(exclude=drop) == slow.model_dump(exclude=drop)
    assert fast.raw_rows == slow.raw_rows
    assert fast.model_dump(exclude=drop) == inline.run("concert_singer", sql).model_dump(exclude=drop)
    assert fast.to_json_dict() == fast.model_dump(mode="json", by_alias=True)
    for ex in (inline, worker):  # the execute_sql tool's form, inline and from a worker thread
        assert without_elapsed(await ex.run_json_async("concert_singer", sql)) == without_elapsed(
            fast.to_json_dict()
        )


def without_elapsed(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "elapsed_ms"}


async def test_a_large_inline_result_is_capped_like_a_worker_s(chinook_copy: Path) -> None:
    sql = "SELECT * FROM Track ORDER BY TrackId"
    inline = Executor(Executor.from_targets([str(chinook_copy)]).registry, inline_budget_s=5.0)
    worker = Executor(inline.registry, inline_budget_s=0.0)
    fast = await inline.run_async("chinook", sql, max_rows=900)
    slow = await worker.run_async("chinook", sql, max_rows=900)
    assert fast.row_count == 900 and fast.truncated
    assert fast.model_dump(exclude={"elapsed_ms"}) == slow.model_dump(exclude={"elapsed_ms"})
    for ex in (inline, worker):  # over _INLINE_MAX_CELLS: shaped in a worker thread either way
        got = await ex.run_json_async("chinook", sql, max_rows=900)
        assert without_elapsed(got) == without_elapsed(fast.to_json_dict())


async def test_a_statement_outlasting_the_budget_finishes_in_a_worker(db: Path) -> None:
    ex = make(db, 0.0005)
    assert (await ex.run_async("concert_singer", LONG)).rows == [[300000]]
    assert verdict(ex, LONG) == [1, 1]  # stopped at the budget, then run again in a worker
    assert (await ex.run_async("concert_singer", LONG)).rows == [[300000]]
    assert verdict(ex, LONG) == [0, 1]  # this call went straight to a worker
    assert (await ex.run_async("concert_singer", LONG)).rows == [[300000]]
    assert verdict(ex, LONG) == [2, 2]  # tried inline again, outlasted it again: skips twice as long
    engine = ex.registry.engine("concert_singer")
    assert isinstance(engine, SqliteEngine) and engine._active == set()


async def test_the_tool_form_outlasting_the_budget_finishes_in_a_worker(db: Path) -> None:
    ex = make(db, 0.0005)
    assert (await ex.run_json_async("concert_singer", LONG))["rows"] == [[300000]]
    assert verdict(ex, LONG) == [1, 1]  # stopped at the budget, then run again in a worker


async def test_outlasting_the_budget_still_obeys_the_timeout(db: Path) -> None:
    ex = make(db, 0.001, timeout_s=0.5)
    with pytest.raises(QueryFailed) as info:
        await ex.run_async("concert_singer", UNBOUNDED)
    assert info.value.error.kind == "timeout" and "0.5 s" in info.value.error.message
    assert verdict(ex, UNBOUNDED) == [1, 1]
    assert (await ex.run_async("concert_singer", "SELECT 1")).rows == [[1]]


async def test_a_timeout_within_the_budget_is_a_timeout(db: Path) -> None:
    ex = make(db, 5.0, timeout_s=0.2)
    with pytest.raises(QueryFailed) as info:
        await ex.run_async("concert_singer", UNBOUNDED)
    assert info.value.error.kind == "timeout" and "0.2 s" in info.value.error.message
    assert verdict(ex, UNBOUNDED) == [0, 0]  # not an over-budget run: tried inline next time too


async def test_cancel_after_the_inline_attempt_stops_the_engine(db: Path) -> None:
    ex = make(db, 0.001, timeout_s=60)
    engine = ex.registry.engine("concert_singer")
    started = time.monotonic()
    with anyio.move_on_after(0.3):
        await ex.run_async("concert_singer", UNBOUNDED)
    assert time.monotonic() - started < 5
    assert verdict(ex, UNBOUNDED) == [1, 1]  # it went through the inline attempt first
    assert isinstance(engine, SqliteEngine) and engine._active == set()  # the worker's query was stopped
    assert (await ex.run_async("concert_singer", "SELECT 1")).rows == [[1]]


async def test_the_backstop_stops_one_long_vm_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading and scanning a 4 MB value is one VM step per function: too few steps for the progress
    handler to look at the clock, so only the backstop interrupts the statement at its inline budget."""
    path = tmp_path / "big.sqlite"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (v TEXT)")
        setup.execute(
            "INSERT INTO t SELECT printf('%.*c', 4000000, 'a') FROM (VALUES (1), (2), (3), (4), (5), (6))"
        )
    monkeypatch.setattr(sqlite_engine, "_INLINE_WATCH_S", 0.001)
    ex = Executor.from_targets([f"big={path}"])
    engine = ex.registry.engine("big")
    assert isinstance(engine, SqliteEngine)
    sql = "SELECT count(*) FROM t WHERE upper(v) = 'x' OR lower(v) = 'x' OR length(trim(v)) = 3"
    expression = guard.check(sql, "sqlite").expression
    assert inline_safe(expression)
    assert engine.execute_inline(sql, expression, max_rows=10, timeout_s=30, budget_s=0.0005) is None
    assert engine._inline_verdicts[sql] == [1, 1]
    assert (await ex.run_async("big", sql)).rows == [[0]]  # in a worker thread, to the end


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT printf('%.*c', 5, 'x')",
        "SELECT replace(Name, 'a', 'aa') FROM singer",
        "SELECT Name || Country FROM singer",
        "SELECT group_concat(Name) FROM singer",
        "SELECT hex(Name) FROM singer",
        "SELECT quote(Name) FROM singer",
        "SELECT json_array(Name) FROM singer",
        "WITH t AS (SELECT Name || Name AS x FROM singer) SELECT max(length(x)) FROM t",
        "SELECT char(74, 111) FROM singer",
    ],
)
async def test_value_building_statements_never_run_inline(db: Path, sql: str) -> None:
    assert not inline_safe(guard.check(sql, "sqlite").expression)
    ex = make(db, 5.0)
    result = await ex.run_async("concert_singer", sql)
    assert verdict(ex, sql) == [-1, 0]
    assert result.rows == ex.run("concert_singer", sql).rows


@pytest.mark.parametrize("form", ["run_async", "run_json_async"])
async def test_timeout_through_both_async_forms(db: Path, form: str) -> None:
    ex = make(db, INLINE_BUDGET_S, timeout_s=0.5)
    with pytest.raises(QueryFailed) as info:
        await getattr(ex, form)("concert_singer", UNBOUNDED)
    assert info.value.error.kind == "timeout" and "0.5 s" in info.value.error.message
    assert (await ex.run_async("concert_singer", "SELECT 1")).rows == [[1]]


async def test_cancelling_the_tool_form_stops_the_engine(db: Path) -> None:
    ex = make(db, INLINE_BUDGET_S, timeout_s=60)
    engine = ex.registry.engine("concert_singer")
    assert isinstance(engine, SqliteEngine)
    with anyio.move_on_after(0.3) as scope:
        await ex.run_json_async("concert_singer", UNBOUNDED)
    assert scope.cancelled_caught
    with anyio.fail_after(5):  # the worker thread's statement was interrupted, not left running
        while engine._active:
            await anyio.sleep(0.01)
    assert (await ex.run_json_async("concert_singer", "SELECT 1"))["rows"] == [[1]]


def test_a_late_stop_does_not_hit_the_next_statement(db: Path) -> None:
    """A cancel or watchdog firing just after its statement ended must not stop the connection's next one."""
    ex = make(db, 0.0)
    engine = ex.registry.engine("concert_singer")
    assert isinstance(engine, SqliteEngine)
    conn = engine._acquire()
    stale = conn.run_id
    conn.finish()
    engine._release(conn)
    conn.stop(stale, cancel=True)  # too late: its statement is over
    # The next statement gets that connection back and runs long enough for the progress handler to look.
    sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5000) SELECT count(*) FROM r"
    assert ex.run("concert_singer", sql).rows == [[5000]]
    assert engine._pool.idle()[-1] is conn  # back among the idle connections, reused next


def test_pickling_keeps_the_budget(db: Path) -> None:
    clone = pickle.loads(pickle.dumps(make(db, 0.0125)))
    assert clone.inline_budget_s == 0.0125


async def test_execute_sql_text_is_its_structured_content(db: Path) -> None:
    config = AppConfig(databases=[DatabaseConfig(name="concert_singer", target=str(db))])
    async with Client(build_server(config)) as client:
        for sql in SAME_RESULTS:
            with anyio.fail_after(30):
                res = await client.call_tool("execute_sql", {"database": "concert_singer", "sql": sql})
            assert not res.is_error
            assert json.loads(first_text(res)) == res.structured_content
            assert set(res.structured_content) == {"columns", "rows", "row_count", "truncated", "elapsed_ms"}


async def test_execute_sql_output_schema_is_cheap_to_validate(db: Path) -> None:
    """Rows are arrays in the published schema (a validating client checks no cell, each would cost it
    ~10 µs); the server itself still validates cells as JSON scalars. ``raw_rows`` is not advertised."""
    config = AppConfig(databases=[DatabaseConfig(name="concert_singer", target=str(db))])
    async with Client(build_server(config)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    schema = tools["execute_sql"].output_schema
    assert schema is not None and "raw_rows" not in schema["properties"]
    assert schema["properties"]["rows"]["items"] == {"type": "array"}
    assert "JSON scalar" in schema["properties"]["rows"]["description"]
    validator = validator_for(schema)(schema)
    good = {"columns": [{"name": "a", "type": None}], "rows": [[1, "x", None, 1.5, True]], "row_count": 1}
    good |= {"truncated": False, "elapsed_ms": 0.1}
    assert not list(validator.iter_errors(good))
    assert list(validator.iter_errors(good | {"rows": ["not a row"]}))
    QueryResult.model_validate(good)
    with pytest.raises(ValidationError):
        QueryResult.model_validate(good | {"rows": [[{"nested": 1}]]})


def test_sqlite_rows_stop_at_the_result_memory_bound(db: Path) -> None:
    """The row cap alone does not bound memory: fetching stops once text passes MAX_RESULT_BYTES."""
    engine = make(db, 0.0).registry.engine("concert_singer")
    sql = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) "
        "SELECT printf('%.*c', 10000000, 'x') FROM r"
    )
    result = engine.execute(sql, max_rows=100, timeout_s=60)
    assert result.truncated and len(result.rows) == 7  # 70 MB read: over the 64 MiB bound
