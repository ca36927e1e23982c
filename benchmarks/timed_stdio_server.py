"""``sqlr1 serve`` (stdio) with each tool call timed inside the server process, for stdio_roundtrip.py.

Measures what the goal "server-side cost of execute_sql" names, where it happens: from the moment the
MCP session hands the call to ``MCPServer.call_tool`` (arguments validated, guard, engine, result model)
to the result serialized as JSON, in a real stdio server that has just read the request. The transport
(reading stdin, JSON-RPC parsing, writing stdout) is not counted. Each timing is appended to the file
named by ``SQLR1_CALL_TIMES`` as ``<seconds>\\t<sql>`` after the call; the extra serialization and the
write make this process's own round trips a little slower, so the benchmark uses another server process
for the round-trip figures.

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

if __name__ == "__main__":
    sys.exit(cli.main())
