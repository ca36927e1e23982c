"""``sqlr1 serve`` (stdio) with each tool call timed inside the server process, for stdio_roundtrip.py.

Measures what the goal "server-side cost of execute_sql" names, where it happens: from the moment the
MCP session hands the call to ``MCPServer.call_tool`` (arguments validated, guard, engine, result model)
to the result serialized as JSON, in a real stdio server that has just read the request. The transport
(reading stdin, JSON-RPC parsing, writing stdout) is not counted. Each timing is appended to the file
named by ``SQLR1_CALL_TIMES`` as ``<seconds>\\t<sql>`` after the call; the extra serialization and the
write make this process's own round trips a little slower, so the benchmark uses another server process
for the round-trip figures.

With ``SQLR1_FLOOR=1`` the server is the cost floor, not sqlr1: ``Executor.run_json_async`` is replaced by the
least any server must do (the guard's cached verdict, then ``execute`` + ``fetchmany`` on one open
``sqlite3`` connection, no timeout, interrupt, memory or character bounds), keeping the SDK's dispatch and
the result model and JSON, so the benchmark can show how much of the server-side cost is sqlr1's own.

Usage: ``SQLR1_CALL_TIMES=times.tsv python benchmarks/timed_stdio_server.py --db chinook=... serve``
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mcp_server import cli  # noqa: E402
from mcp_server.executor import Executor  # noqa: E402
from mcp_server.results import column, result_json  # noqa: E402

_call_tool = MCPServer.call_tool
_out = open(os.environ["SQLR1_CALL_TIMES"], "a", encoding="utf-8", buffering=1)  # noqa: SIM115


async def timed_call_tool(self: MCPServer, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
    t0 = time.perf_counter()
    result = await _call_tool(self, name, arguments, context)
    result.model_dump_json(by_alias=True, exclude_none=True)
    elapsed = time.perf_counter() - t0
    sql = str(arguments.get("sql", "")).replace("\t", " ").replace("\n", " ")
    _out.write(f"{elapsed:.9f}\t{sql}\n")
    return result


MCPServer.call_tool = timed_call_tool  # type: ignore[method-assign]


async def floor_run_json_async(
    self: Executor, database: str, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None
) -> dict[str, Any]:
    """The floor: guard (cached), then one open connection's execute + fetchmany; no limits, no timeout."""
    statement = self.check(database, sql)
    engine = self.registry.engine(database)
    conn = FLOOR_CONNECTIONS.get(database)
    if conn is None:
        conn = FLOOR_CONNECTIONS[database] = engine._open()  # type: ignore[attr-defined]
    cur = conn.execute(statement.sql)
    rows = cur.fetchmany((max_rows or self.settings.max_rows) + 1)
    columns = [column(d[0], None) for d in cur.description]
    return result_json(columns, list(map(list, rows)), False, 0.0)


FLOOR_CONNECTIONS: dict[str, Any] = {}
if os.environ.get("SQLR1_FLOOR") == "1":
    Executor.run_json_async = floor_run_json_async  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(cli.main())
