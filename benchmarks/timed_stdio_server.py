"""``sqlr1 serve`` (stdio) with each tool call timed inside the server process, for stdio_roundtrip.py.

Measures what the goal "server-side cost of execute_sql" names, where it happens: from the moment the
MCP session hands the call to ``MCPServer.call_tool`` (arguments validated, guard, engine, result JSON)
to the result serialized as JSON, in a real stdio server that has just read the request. The transport
(reading stdin, JSON-RPC parsing, writing stdout) is not counted. Each timing is appended to the file
named by ``SQLR1_CALL_TIMES`` as ``<seconds>\\t<sql>`` after the call; the extra serialization and the
write make this process's own round trips a little slower, so the benchmark uses another server process
for the round-trip figures.

With ``SQLR1_FLOOR=1`` the server is the cost floor, not sqlr1: ``Executor.run_json_async`` is replaced by the
least any server must do (the guard's cached verdict, then ``execute`` + fetch on one open connection
of the engine's SQLite (APSW), no timeout, interrupt, memory or character bounds), keeping the SDK's dispatch, the
result's JSON and ``CallToolResult``, so the benchmark can show how much of the server-side cost is sqlr1's own.

With ``SQLR1_STAGES=stages.jsonl`` each call also records when it entered and left the steps it goes
through (argument validation, the executor, taking a connection, the fetch, shaping the result, the tool
result; the floor marks its execute and fetch), one JSON line per call: where the time goes in a cold
server (``stdio_roundtrip.py --stages``). Each mark costs a little, so these runs are not the figures.

Usage: ``SQLR1_CALL_TIMES=times.tsv python benchmarks/timed_stdio_server.py --db chinook=... serve``
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from functools import wraps
from itertools import islice
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlr1.mcp_server.cli import main as cli  # noqa: E402
from sqlr1.mcp_server.core.results import QueryResult  # noqa: E402
from sqlr1.mcp_server.db import executor  # noqa: E402
from sqlr1.mcp_server.db.engines import sqlite  # noqa: E402
from sqlr1.mcp_server.db.executor import Executor  # noqa: E402
from sqlr1.mcp_server.protocol import server  # noqa: E402

_call_tool = MCPServer.call_tool
_out = open(os.environ["SQLR1_CALL_TIMES"], "a", encoding="utf-8", buffering=1)  # noqa: SIM115
_stages_path = os.environ.get("SQLR1_STAGES")
_stages = open(_stages_path, "a", encoding="utf-8", buffering=1) if _stages_path else None  # noqa: SIM115
FLOOR = os.environ.get("SQLR1_FLOOR") == "1"
MARKS: list[tuple[str, float]] = []


async def timed_call_tool(self: MCPServer, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
    MARKS.clear()
    t0 = time.perf_counter()
    result = await _call_tool(self, name, arguments, context)
    t1 = time.perf_counter()
    result.model_dump_json(by_alias=True, exclude_none=True)
    t2 = time.perf_counter()
    sql = str(arguments.get("sql", "")).replace("\t", " ").replace("\n", " ")
    _out.write(f"{t2 - t0:.9f}\t{sql}\n")
    if _stages is not None:
        marks = [("call_tool>", t0), *MARKS, ("call_tool<", t1), ("json<", t2)]
        _stages.write(json.dumps({"sql": sql, "marks": marks}) + "\n")
    return result


def _staged(owner: Any, name: str, label: str) -> None:
    """Mark entering (``label>``) and leaving (``label<``) ``owner.name`` in each call's stages."""
    fn = getattr(owner, name)
    if inspect.iscoroutinefunction(fn):

        @wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            MARKS.append((label + ">", time.perf_counter()))
            try:
                return await fn(*args, **kwargs)
            finally:
                MARKS.append((label + "<", time.perf_counter()))

    else:

        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            MARKS.append((label + ">", time.perf_counter()))
            try:
                return fn(*args, **kwargs)
            finally:
                MARKS.append((label + "<", time.perf_counter()))

    setattr(owner, name, wrapper)


MCPServer.call_tool = timed_call_tool  # type: ignore[method-assign]


async def floor_run_json_async(
    self: Executor, database: str, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None
) -> dict[str, Any]:
    """The floor: guard (cached), then one open connection's execute + fetch; no limits, no timeout."""
    statement = self.check(database, sql)
    engine = self.registry.engine(database)
    conn = FLOOR_CONNECTIONS.get(database)
    if conn is None:
        conn = FLOOR_CONNECTIONS[database] = engine._open()  # type: ignore[attr-defined]
    if _stages is not None:
        MARKS.append(("execute>", time.perf_counter()))
    cur = conn.execute(statement.sql)
    names = [d[0] for d in cur.get_description()]  # the benchmark's statements return rows
    if _stages is not None:
        MARKS.append(("fetch>", time.perf_counter()))
    rows = list(islice(cur, (max_rows or self.settings.max_rows) + 1))
    if _stages is not None:
        MARKS.append(("fetch<", time.perf_counter()))
    columns = [{"name": name, "type": None} for name in names]
    return {
        "columns": columns,
        "rows": list(map(list, rows)),
        "row_count": len(rows),
        "truncated": False,
        "elapsed_ms": 0.0,
    }


FLOOR_CONNECTIONS: dict[str, Any] = {}
if FLOOR:
    Executor.run_json_async = floor_run_json_async  # type: ignore[method-assign]
if _stages is not None:
    _staged(FuncMetadata, "validate_arguments", "validate")
    _staged(Executor, "run_json_async", "executor")
    _staged(server, "structured_result", "tool_result")
    if not FLOOR:
        _staged(sqlite.SqliteEngine, "_acquire", "acquire")
        _staged(sqlite, "_fetch_bounded", "fetch")
        _staged(executor, "cap_result", "shape")
        _staged(QueryResult, "to_json_dict", "dump")

if __name__ == "__main__":
    sys.exit(cli.main())
