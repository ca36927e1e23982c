"""The ``execute_sql`` result: ``run_async`` and the tool's JSON give what ``run`` gives, the text is the
structured content, the published schema, and the engine's bounds under it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from jsonschema.validators import validator_for
from mcp import Client
from mcp_text import first_text
from pydantic import ValidationError

from mcp_server.config import AppConfig, DatabaseConfig, GuardSettings
from mcp_server.engines.sqlite import SqliteEngine
from mcp_server.errors import QueryFailed
from mcp_server.executor import Executor
from mcp_server.results import QueryResult
from mcp_server.server import build_server

UNBOUNDED = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
SAME_RESULTS = [
    "SELECT Name, Age, Country FROM singer ORDER BY Singer_ID",
    "SELECT s.Name, count(*) AS n FROM singer AS s JOIN singer_in_concert AS c "
    "ON s.Singer_ID = c.Singer_ID GROUP BY s.Name ORDER BY n DESC, s.Name",
    "SELECT X'68690a' AS b, X'FF00' AS nb, NULL AS z, 1.5 AS f, 1e300 * 1e300 AS inf, 'é' AS t",
    "SELECT upper(substr(Name, 1, 3)), length(Name), round(avg(Age), 2) FROM singer GROUP BY Name",
    "SELECT Name FROM singer WHERE Name LIKE '%o%' AND instr(Country, 'a') > 0",
    "SELECT Name || Country, replace(Name, 'a', 'aa'), printf('%5s', Age) FROM singer",
]


@pytest.fixture
def db(spider_copy: Any) -> Path:
    return spider_copy("concert_singer")


def make(db: Path, **settings: Any) -> Executor:
    return Executor.from_targets([str(db)], GuardSettings(**settings))


def without_elapsed(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "elapsed_ms"}


@pytest.mark.parametrize("sql", SAME_RESULTS)
@pytest.mark.parametrize("caps", [{}, {"max_rows": 2}, {"max_chars": 30}])
async def test_async_and_tool_forms_give_what_run_gives(db: Path, sql: str, caps: dict[str, int]) -> None:
    ex = make(db, **caps)
    sync, from_thread = ex.run("concert_singer", sql), await ex.run_async("concert_singer", sql)
    drop = {"elapsed_ms"}
    assert from_thread.model_dump(exclude=drop) == sync.model_dump(exclude=drop)
    assert from_thread.raw_rows == sync.raw_rows
    tool = await ex.run_json_async("concert_singer", sql)
    assert without_elapsed(tool) == without_elapsed(sync.to_json_dict())
    assert set(tool) == {"columns", "rows", "row_count", "truncated", "elapsed_ms"}
    json.dumps(tool, allow_nan=False)  # JSON-safe: inf, blobs and the like were converted
    assert QueryResult.model_validate(tool).rows == sync.rows


async def test_a_large_result_is_capped_alike(chinook_copy: Path) -> None:
    sql = "SELECT * FROM Track ORDER BY TrackId"
    ex = Executor.from_targets([str(chinook_copy)])
    result = await ex.run_async("chinook", sql, max_rows=900)
    assert result.row_count == 900 and result.truncated
    sync = ex.run("chinook", sql, max_rows=900)
    assert result.model_dump(exclude={"elapsed_ms"}) == sync.model_dump(exclude={"elapsed_ms"})
    got = await ex.run_json_async("chinook", sql, max_rows=900)
    assert without_elapsed(got) == without_elapsed(sync.to_json_dict())


@pytest.mark.parametrize("form", ["run_async", "run_json_async"])
async def test_timeout_through_both_async_forms(db: Path, form: str) -> None:
    ex = make(db, timeout_s=0.5)
    with pytest.raises(QueryFailed) as info:
        await getattr(ex, form)("concert_singer", UNBOUNDED)
    assert info.value.error.kind == "timeout" and "0.5 s" in info.value.error.message
    assert (await ex.run_async("concert_singer", "SELECT 1")).rows == [[1]]


async def test_cancelling_the_tool_form_stops_the_engine(db: Path) -> None:
    ex = make(db, timeout_s=60)
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
    ex = make(db)
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
    engine = make(db).registry.engine("concert_singer")
    sql = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) "
        "SELECT printf('%.*c', 10000000, 'x') FROM r"
    )
    result = engine.execute(sql, max_rows=100, timeout_s=60)
    assert result.truncated and len(result.rows) == 7  # 70 MB read: over the 64 MiB bound
