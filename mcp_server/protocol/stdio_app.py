"""stdio transport: the SDK's stdio server, plus the answers JSON-RPC 2.0 requires for malformed lines,
which the SDK drops silently (a client that sent, say, ``"params": []`` with an id would wait forever).

* A line that is not JSON at all gets a ``-32700`` Parse error with ``id: null`` (blank lines are skipped).
* Valid JSON that is not a valid message (``[]``, ``{"method": 5}``, ``"params": []``) gets a ``-32600``
  Invalid Request naming the problem, on the request's id when it has a usable one, else ``id: null``.
  :func:`repair_line` marks such a line (it becomes a line the SDK cannot parse, carrying the id and the
  problem) and :func:`parse_error_reply` answers it.

Everything the server writes still goes through the SDK's writer (no interleaving on stdout).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Protocol, Self, cast

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

__all__ = ["INVALID_REQUEST", "PARSE_ERROR", "parse_error_reply", "repair_line", "run_stdio"]

PARSE_ERROR = -32700  # JSON-RPC 2.0: invalid JSON was received
INVALID_REQUEST = -32600  # JSON-RPC 2.0: the JSON sent is not a valid Request object
_MARK = "\x00sqlr1-invalid-request "  # starts a line no JSON parser accepts; the rest is {"id", "problem"}


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
    """Pass lines through, except valid JSON that is not a message: that is marked for a ``-32600`` reply."""
    if not line.strip():
        return line
    try:
        obj = json.loads(line)
    except ValueError:
        return line  # not JSON: the SDK's parse error is answered with -32700
    if isinstance(obj, dict) and ("result" in obj or "error" in obj):
        return line  # a response: the SDK's business
    problem = _problem(obj) if isinstance(obj, dict) else "a message must be a JSON object"
    if problem is None:
        return line
    ident = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(ident, bool) or not isinstance(ident, str | int):
        ident = None  # JSON-RPC: when the id cannot be determined, the reply's id is null
    return _MARK + json.dumps({"id": ident, "problem": problem}) + "\n"


class _RepairedLines:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async for line in self._inner:
            yield repair_line(line)


def parse_error_reply(exc: BaseException) -> types.JSONRPCError | None:
    """The reply to a line the SDK could not parse: ``-32600`` for a line :func:`repair_line` marked as an
    invalid request (on its id), else ``-32700`` with ``id: null``; None for anything else.

    The SDK's own parse verdict decides (a pydantic ``json_invalid`` error), so what counts as JSON is
    exactly what the SDK accepts.
    """
    if not isinstance(exc, ValidationError):
        return None
    for err in exc.errors(include_url=False):
        if err["type"] != "json_invalid":
            continue
        line = err.get("input")
        if isinstance(line, str) and not line.strip():
            return None  # a blank line carries no message: nothing to answer
        if isinstance(line, str) and line.startswith(_MARK):
            marked = json.loads(line[len(_MARK) :])
            return types.JSONRPCError(
                jsonrpc="2.0",
                id=marked["id"],
                error=types.ErrorData(code=INVALID_REQUEST, message=f"Invalid Request: {marked['problem']}"),
            )
        detail = str(err.get("msg", "invalid JSON")).removeprefix("Invalid JSON: ")
        return types.JSONRPCError(
            jsonrpc="2.0", id=None, error=types.ErrorData(code=PARSE_ERROR, message=f"Parse error: {detail}")
        )
    return None


class _Receiver(Protocol):
    """What this module needs of the SDK's read stream (its own protocol type is in a private module)."""

    async def receive(self) -> SessionMessage | Exception: ...

    async def aclose(self) -> None: ...


class _Sender(Protocol):
    """What this module needs of the SDK's write stream."""

    async def send(self, item: SessionMessage, /) -> None: ...


class _ParseErrorReplies:
    """The SDK's read stream, with each unparseable line answered on the write stream instead of passed on."""

    def __init__(self, inner: _Receiver, replies: _Sender) -> None:
        self._inner = inner
        self._replies = replies

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        while True:
            item = await self._inner.receive()
            reply = parse_error_reply(item) if isinstance(item, Exception) else None
            if reply is None:
                return item
            await self._replies.send(SessionMessage(reply))

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None


async def run_stdio(server: MCPServer) -> None:
    """Serve ``server`` over this process's stdin/stdout until stdin closes."""
    raw = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    stdin = cast("anyio.AsyncFile[str]", _RepairedLines(anyio.wrap_file(raw)))
    # stdout is still claimed by the SDK (fd 1 diverted to stderr while serving: stray prints can't corrupt
    # the protocol). The low-level server is what MCPServer.run_stdio_async drives too.
    # Private SDK names, kept because the public API lacks them (issue 17): MCPServer.run_stdio_async()
    # takes no streams (so no repaired stdin and no parse-error replies) and MCPServer exposes its
    # low-level Server only as `_lowlevel_server`; the stream protocol types live in the private
    # `mcp.shared._stream_protocols`.
    lowlevel = server._lowlevel_server
    async with stdio_server(stdin=stdin) as (read_stream, write_stream):
        replied = _ParseErrorReplies(read_stream, write_stream)
        await lowlevel.run(replied, write_stream, lowlevel.create_initialization_options())
