"""stdio transport: the SDK's stdio server, plus an answer for every malformed request that carries an id.

The SDK drops a line that fails JSON-RPC validation without answering it, so a client that sent, say,
``"params": []`` with an id would wait forever. Such a line is rewritten into a request for a method that
does not exist, named after the problem, so the SDK itself answers it with a JSON-RPC error on that id.
Everything the server writes still goes through the SDK's writer (no interleaving on stdout).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import AsyncIterator
from typing import Any, cast

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

__all__ = ["INVALID_REQUEST_METHOD", "repair_line", "run_stdio"]

INVALID_REQUEST_METHOD = "sqlr1/invalid-request"


def _problem(obj: dict[str, Any]) -> str | None:
    """Why a request-shaped object is not a valid JSON-RPC request (None when it looks valid)."""
    if obj.get("jsonrpc") != "2.0":
        return "jsonrpc must be '2.0'"
    if not isinstance(obj.get("method"), str):
        return "method must be a string"
    if "params" in obj and not isinstance(obj["params"], dict):
        return "params must be an object"
    return None


def repair_line(line: str) -> str:
    """Pass valid lines through; turn an invalid request with a usable id into one the SDK will reject."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line  # not JSON: there is no id to answer
    if not isinstance(obj, dict) or "result" in obj or "error" in obj:
        return line
    ident = obj.get("id")
    if isinstance(ident, bool) or not isinstance(ident, str | int):
        return line  # a notification, or an id JSON-RPC does not allow: nothing can be answered
    problem = _problem(obj)
    if problem is None:
        return line
    method = f"{INVALID_REQUEST_METHOD} ({problem})"
    return json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": {}}) + "\n"


class _RepairedLines:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async for line in self._inner:
            yield repair_line(line)


async def run_stdio(server: MCPServer) -> None:
    """Serve ``server`` over this process's stdin/stdout until stdin closes."""
    raw = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    stdin = cast("anyio.AsyncFile[str]", _RepairedLines(anyio.wrap_file(raw)))
    # stdout is still claimed by the SDK (fd 1 diverted to stderr while serving: stray prints can't corrupt
    # the protocol). The low-level server is what MCPServer.run_stdio_async drives too.
    lowlevel = server._lowlevel_server
    async with stdio_server(stdin=stdin) as (read_stream, write_stream):
        await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
