"""The agent's side of the MCP connection: how to reach our server and typed calls to its tools.

Owns the three ways to connect (the embedded in-process server, a ``sqlr1 serve`` stdio subprocess,
a remote streamable-HTTP server with a bearer token) and the translation of tool results into values:
each result's structured content validated into the server's own pydantic model, and a failed call's
structured content into a :class:`~mcp_server.core.errors.QueryError`; nothing is parsed from text. It never builds
prompts, runs SQL or talks to a model itself: every capability is one of the server's tools, so a chat
user and an IDE user get the same behaviour.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.shared.dispatcher import ProgressFnT
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, ValidationError

from sqlr1.mcp_server import __version__
from sqlr1.mcp_server.core.errors import QueryError, QueryFailed
from sqlr1.mcp_server.core.results import QueryResult
from sqlr1.mcp_server.inference.generation import GenerationResult
from sqlr1.mcp_server.protocol.generation_tools import ValueSearch
from sqlr1.mcp_server.protocol.server import DatabaseInfo, DatabaseList, SchemaDescription, ValidationReport

__all__ = [
    "HttpTarget",
    "ProgressHandler",
    "ServerTarget",
    "SqlTools",
    "StdioTarget",
    "ToolResultInvalid",
    "connect",
    "error_of",
]

ProgressHandler = ProgressFnT
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class StdioTarget:
    """``sqlr1 [global flags] serve`` (or any command speaking MCP on stdio) started as a subprocess.

    ``args`` are the ``sqlr1`` arguments, e.g. ``("--db", "x.sqlite", "serve")``.
    """

    args: tuple[str, ...] = ("serve",)
    command: str = sys.executable
    prefix: tuple[str, ...] = ("-m", "sqlr1.mcp_server.cli.main")
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
            # the MCP transports' own defaults (30 s, 300 s to read a response stream), built with httpx2's
            # public API: the SDK's factory for them lives in a private module (mcp.shared._httpx_utils)
            timeout = httpx2.Timeout(30.0, read=300.0)
            http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=timeout))
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


def error_of(result: CallToolResult) -> QueryError:
    """The error of a failed call: its structured content (sqlr1 sends the :class:`QueryError`), else its
    text as an ``execution`` error (another server, or the SDK's own refusals such as an unknown tool)."""
    if result.structured_content is not None:
        try:
            return QueryError.model_validate(result.structured_content)
        except ValidationError:
            pass  # not sqlr1's error shape: the text says what happened
    text = _text_of(result).strip()
    return QueryError(kind="execution", message=text or "the tool call failed")


def _text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


class ToolResultInvalid(QueryFailed):
    """A tool result that does not validate into the server's model (a server of another version, or not
    sqlr1): not a query the model can correct, so the agent stops on it instead of retrying."""


class SqlTools:
    """Typed calls to the server's tools over one entered :class:`mcp.client.Client`.

    Every method validates the tool's structured content into the server's own pydantic model (raising
    :class:`ToolResultInvalid`, naming the tool and the fields, when it does not fit), or raises
    :class:`QueryFailed` with the :class:`QueryError` a failed call carries as structured content.
    Cancelling the calling task cancels the request on the server (in memory: the handler's scope;
    stdio/HTTP: ``notifications/cancelled``), which stops the model and interrupts the engine.
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
        """The structured content of a successful call, unvalidated (for tools without a model here)."""
        args = {k: v for k, v in arguments.items() if v is not None}
        result = await self.client.call_tool(name, args, progress_callback=progress)
        if result.is_error:
            raise QueryFailed(error_of(result))
        if not isinstance(result.structured_content, dict):
            text = _text_of(result)[:200]
            raise ToolResultInvalid.of("config", f"tool {name} returned no structured content: {text}")
        return result.structured_content

    async def call_as(
        self,
        model: type[M],
        name: str,
        arguments: dict[str, Any],
        *,
        progress: ProgressHandler | None = None,
    ) -> M:
        """:meth:`call`, validated into ``model``."""
        data = await self.call(name, arguments, progress=progress)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(result)'}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise ToolResultInvalid.of(
                "config",
                f"the server's {name} result is not a valid {model.__name__} (is it sqlr1 {__version__}?): "
                f"{problems}",
            ) from exc

    async def list_databases(self) -> list[DatabaseInfo]:
        return (await self.call_as(DatabaseList, "list_databases", {})).databases

    async def describe_schema(self, database: str, tables: list[str] | None = None) -> SchemaDescription:
        return await self.call_as(
            SchemaDescription, "describe_schema", {"database": database, "tables": tables}
        )

    async def execute_sql(self, database: str, sql: str, *, max_rows: int | None = None) -> QueryResult:
        arguments = {"database": database, "sql": sql, "max_rows": max_rows}
        return await self.call_as(QueryResult, "execute_sql", arguments)

    async def validate_sql(self, database: str, sql: str) -> QueryError | None:
        """``None`` for a valid statement, else why it would be refused or fail."""
        report = await self.call_as(ValidationReport, "validate_sql", {"database": database, "sql": sql})
        if report.valid:
            return None
        return report.error or QueryError(kind="syntax", message="the server found the statement invalid")

    async def search_values(self, database: str, text: str) -> ValueSearch | None:
        """Value hits for ``text``, or ``None`` when the server has no ``search_values`` tool."""
        if "search_values" not in await self.tool_names():
            return None
        return await self.call_as(ValueSearch, "search_values", {"database": database, "text": text})

    async def generate_sql(
        self, arguments: dict[str, Any], *, progress: ProgressHandler | None = None
    ) -> GenerationResult:
        return await self.call_as(GenerationResult, "generate_sql", arguments, progress=progress)
