"""The agent's side of the MCP connection: how to reach our server and typed calls to its tools.

Owns the three ways to connect (the embedded in-process server, a ``sqlr1 serve`` stdio subprocess,
a remote streamable-HTTP server with a bearer token) and the translation of tool results into values:
structured content in, :class:`~mcp_server.core.errors.QueryError` out for a failed call. It never builds
prompts, runs SQL or talks to a model itself: every capability is one of the server's tools, so a chat
user and an IDE user get the same behaviour.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, get_args

from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.dispatcher import ProgressFnT

from mcp_server.core.errors import ErrorKind, QueryError, QueryFailed
from mcp_server.core.results import QueryResult

__all__ = [
    "HttpTarget",
    "ProgressHandler",
    "ServerTarget",
    "SqlTools",
    "StdioTarget",
    "connect",
    "error_from_text",
]

ProgressHandler = ProgressFnT


@dataclass(frozen=True)
class StdioTarget:
    """``sqlr1 [global flags] serve`` (or any command speaking MCP on stdio) started as a subprocess.

    ``args`` are the ``sqlr1`` arguments, e.g. ``("--db", "x.sqlite", "serve")``.
    """

    args: tuple[str, ...] = ("serve",)
    command: str = sys.executable
    prefix: tuple[str, ...] = ("-m", "mcp_server.cli.main")
    env: dict[str, str] | None = None

    def parameters(self) -> StdioServerParameters:
        return StdioServerParameters(command=self.command, args=[*self.prefix, *self.args], env=self.env)


@dataclass(frozen=True)
class HttpTarget:
    """A remote ``sqlr1 serve --http`` endpoint; ``token`` is sent as ``Authorization: Bearer``."""

    url: str
    token: str | None = field(default=None, repr=False)


ServerTarget = MCPServer | StdioTarget | HttpTarget


@asynccontextmanager
async def connect(target: ServerTarget, *, timeout_s: float | None = None) -> AsyncIterator[Client]:
    """An entered MCP client for ``target``: in-memory for a server object, else stdio or HTTP."""
    async with AsyncExitStack() as stack:
        if isinstance(target, MCPServer):
            client = Client(target, read_timeout_seconds=timeout_s, cache=None)
        elif isinstance(target, StdioTarget):
            client = Client(target.parameters(), read_timeout_seconds=timeout_s, cache=None)
        else:
            headers = {"Authorization": f"Bearer {target.token}"} if target.token else None
            http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
            client = Client(
                streamable_http_client(target.url, http_client=http),
                read_timeout_seconds=timeout_s,
                cache=None,
            )
        try:
            entered = await stack.enter_async_context(client)
        except Exception as exc:  # the handshake failed: say where and why, as a value a person can act on
            raise QueryFailed.of(
                "config", f"cannot connect to the sqlr1 server {_describe(target)}: {_leaf(exc)}"
            ) from exc
        yield entered


def _leaf(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def _describe(target: ServerTarget) -> str:
    if isinstance(target, HttpTarget):
        token = "with a bearer token" if target.token else "without a token"
        return f"at {target.url} ({token}; check the URL and --token)"
    if isinstance(target, StdioTarget):
        return f"started as {' '.join([target.command, *target.prefix, *target.args])}"
    return "(in process)"


_KINDS: tuple[str, ...] = get_args(ErrorKind)
_ERROR_TEXT = re.compile(
    r"^(?:Error executing tool [\w.-]+: )?(?P<kind>\w+)(?: \[(?P<rule>[^\]]+)\])?: (?P<msg>.*)$", re.S
)
_POSITION = re.compile(r" \(at character (\d+)\)$")


def error_from_text(text: str) -> QueryError:
    """Rebuild the structured error the server rendered as ``kind [rule]: message (at character N)``."""
    text = text.strip()
    m = _ERROR_TEXT.match(text)
    if m is None or m.group("kind") not in _KINDS:
        message = re.sub(r"^Error executing tool [\w.-]+: ", "", text)
        return QueryError(kind="execution", message=message or "the tool call failed")
    message, position = m.group("msg"), None
    pm = _POSITION.search(message)
    if pm:
        position = int(pm.group(1))
        message = message[: pm.start()]
    return QueryError(kind=m.group("kind"), message=message, rule=m.group("rule"), position=position)  # type: ignore[arg-type]


class SqlTools:
    """Typed calls to the server's tools over one entered :class:`mcp.client.Client`.

    Every method returns the tool's structured content (a dict), or raises :class:`QueryFailed`
    carrying the error the server reported. Cancelling the calling task cancels the request on the
    server (in memory: the handler's scope; stdio/HTTP: ``notifications/cancelled``), which stops
    the model and interrupts the engine.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._tool_names: set[str] | None = None

    async def tool_names(self) -> set[str]:
        if self._tool_names is None:
            listed = await self.client.list_tools()
            self._tool_names = {t.name for t in listed.tools}
        return self._tool_names

    async def call(
        self, name: str, arguments: dict[str, Any], *, progress: ProgressHandler | None = None
    ) -> dict[str, Any]:
        args = {k: v for k, v in arguments.items() if v is not None}
        result = await self.client.call_tool(name, args, progress_callback=progress)
        text = "\n".join(getattr(c, "text", "") for c in result.content)
        if result.is_error:
            raise QueryFailed(error_from_text(text))
        if result.structured_content is None:
            raise QueryFailed.of("execution", f"tool {name} returned no structured content: {text[:200]}")
        return dict(result.structured_content)

    async def list_databases(self) -> list[dict[str, Any]]:
        return list((await self.call("list_databases", {}))["databases"])

    async def describe_schema(self, database: str, tables: list[str] | None = None) -> dict[str, Any]:
        return await self.call("describe_schema", {"database": database, "tables": tables})

    async def execute_sql(self, database: str, sql: str, *, max_rows: int | None = None) -> QueryResult:
        data = await self.call("execute_sql", {"database": database, "sql": sql, "max_rows": max_rows})
        return QueryResult.model_validate(data)

    async def validate_sql(self, database: str, sql: str) -> QueryError | None:
        data = await self.call("validate_sql", {"database": database, "sql": sql})
        return (
            None
            if data.get("valid")
            else QueryError.model_validate(data.get("error") or {"kind": "syntax", "message": "invalid"})
        )

    async def search_values(self, database: str, text: str) -> dict[str, Any] | None:
        """Value hits for ``text``, or ``None`` when the server has no ``search_values`` tool."""
        if "search_values" not in await self.tool_names():
            return None
        return await self.call("search_values", {"database": database, "text": text})

    async def generate_sql(
        self, arguments: dict[str, Any], *, progress: ProgressHandler | None = None
    ) -> dict[str, Any]:
        return await self.call("generate_sql", arguments, progress=progress)
