"""sqlr1's ``MCPServer``: what the protocol asks of a server and the SDK leaves to it, on public methods only.

:class:`SqlR1Server` overrides ``list_tools``, ``call_tool`` and ``list_resources`` (the methods the SDK's
request handlers call) and adds nothing private:

* ``tools/list``: every schema in the single-``type`` dialect (:func:`mcp_arguments.single_types`);
  the output schema of tools that build their structured content themselves and skip the SDK's
  per-call validation (``publish_output_schema``); every output schema admitting the tool's error
  object too (:func:`admit_errors`); ``database`` optional, defaulting to the one
  database, when exactly one is served.
* ``tools/call``: arguments checked against the published input schema before the SDK sees them
  (JSON types are strict: ``"3"`` is not an integer), refused with one readable line per problem; the
  sole database filled in; a missing ``database`` with several served names the choices. A failure
  carrying a :class:`~mcp_server.core.errors.QueryError` (guard refusal, syntax, timeout, unknown
  database, invalid arguments, ...) comes back as an ``isError`` result whose structured content is that
  error (kind, message, rule, position) and whose text says the same (:func:`error_result`). Refusals,
  timeouts and each call's time go to the client as log messages (:mod:`mcp_server.protocol.mcp_logging`).
* ``resources/list``: the registered resources plus those of ``resource_lister`` (per-table schemas).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult, LoggingLevel, TextContent
from mcp_types import Resource as MCPResource
from mcp_types import Tool as MCPTool

from sqlr1.mcp_server.core.errors import QueryError, QueryFailed
from sqlr1.mcp_server.protocol.mcp_arguments import ArgumentChecker, single_types
from sqlr1.mcp_server.protocol.mcp_logging import ClientLogLevels, ProtocolMiddleware, send_log

__all__ = ["MAX_NAMED_CHOICES", "SqlR1Server", "admit_errors", "error_result", "error_text", "query_error_of"]

MAX_NAMED_CHOICES = 20
"""How many database names an error lists before "and N more"."""

ResourceLister = Callable[[], Awaitable[list[MCPResource]]]


def error_text(error: QueryError) -> str:
    """The message a person (or a model) reads for a failed call: kind, rule, message and position."""
    text = str(error)
    if error.position is not None:
        text += f" (at character {error.position})"
    return text


def error_result(tool: str, error: QueryError) -> CallToolResult:
    """A failed call as data: ``isError`` with the :class:`QueryError` as structured content, and the same in
    the text a person reads (behind the SDK's ``Error executing tool NAME:`` prefix, as the SDK words it).
    The Python SDK skips output-schema validation for an ``isError`` result; others validate it too, so
    every published output schema admits the error (:func:`admit_errors`)."""
    if error.kind == "invalid_arguments":  # worded as before: "invalid arguments: `x` must be ..."
        text = f"Error executing tool {tool}: invalid arguments: {error.message}"
    else:
        text = f"Error executing tool {tool}: {error_text(error)}"
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=error.model_dump(mode="json"),
        is_error=True,
    )


_ERROR_SCHEMA = QueryError.model_json_schema()


def admit_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (a tool's output schema) made to admit the tool's error too: its ``required`` moves into
    ``anyOf: [{"required": [...]}, QueryError]``; properties, title and ``$defs`` stay where they were.

    The TypeScript SDK's client (1.32, modelcontextprotocol/typescript-sdk#1943, fix pending in #1945) and
    some Inspector builds validate the structured content of an ``isError`` result against the output schema
    too, and would turn every structured error (:func:`error_result`) into a protocol error the model never
    reads. A success result still has to carry every field it always did; no success property is named
    like a :class:`QueryError` field with another type (``tests/test_mcp_errors.py`` checks)."""
    out = dict(schema)
    defs = dict(out.get("$defs", {}))
    defs.setdefault("QueryError", _ERROR_SCHEMA)
    required = out.pop("required", None)
    out["anyOf"] = [{"required": required} if required else {}, {"$ref": "#/$defs/QueryError"}]
    out["$defs"] = defs
    return out


def query_error_of(exc: BaseException) -> QueryError | None:
    """The :class:`QueryError` behind a tool failure: the tool raises ``ToolError`` from ``QueryFailed``
    (:func:`mcp_server.protocol.server.tool_errors`) and the SDK wraps that in its own ``ToolError``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, QueryFailed):
            return seen.error
        seen = seen.__cause__
    return None


def _text_of(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


class SqlR1Server(MCPServer):
    """``MCPServer`` with strict, readable arguments, clean schemas and log messages (see module doc)."""

    def __init__(self, *args: Any, databases: Callable[[], list[str]], **kwargs: Any) -> None:
        self.log_levels = ClientLogLevels()
        middleware = [ProtocolMiddleware(self.log_levels), *kwargs.pop("middleware", ())]
        super().__init__(*args, middleware=middleware, **kwargs)
        self.database_names = databases
        self.resource_lister: ResourceLister | None = None
        self._output_schemas: dict[str, dict[str, Any]] = {}
        self._published: dict[str, tuple[int, MCPTool]] = {}
        self._by_name: dict[str, MCPTool] | None = None  # the published tools; reset by add/remove_tool
        self._arguments = ArgumentChecker()

    def add_tool(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().add_tool(fn, *args, **kwargs)
        self._by_name = None

    def remove_tool(self, name: str) -> None:
        super().remove_tool(name)
        self._by_name = None

    # -- tools/list ------------------------------------------------------------------------------
    def publish_output_schema(self, tool: str, schema: dict[str, Any]) -> None:
        """List ``schema`` as ``tool``'s output schema. For a tool registered as returning a bare
        ``CallToolResult`` (no schema, so the SDK does not validate each result): it builds structured
        content valid by construction, and its tests check results against the schema instead."""
        self._output_schemas[tool] = schema
        self._published.pop(tool, None)
        self._by_name = None

    async def list_tools(self) -> list[MCPTool]:
        return [self._publish(tool) for tool in await super().list_tools()]

    def _publish(self, tool: MCPTool) -> MCPTool:
        cached = self._published.get(tool.name)
        if cached is not None and cached[0] == id(tool.input_schema):
            return cached[1]
        inputs = single_types(tool.input_schema)
        props = inputs.get("properties", {})
        names = self.database_names()
        if "database" in props and len(names) == 1:
            props["database"]["default"] = names[0]
            props["database"]["description"] = (
                f"{props['database'].get('description', '')} Optional: this server serves one database, "
                f"{names[0]!r}."
            ).strip()
            inputs["required"] = [r for r in inputs.get("required", []) if r != "database"]
            if not inputs["required"]:
                del inputs["required"]
        output = self._output_schemas.get(tool.name, tool.output_schema)
        published = tool.model_copy(
            update={
                "input_schema": inputs,
                "output_schema": single_types(admit_errors(output)) if output is not None else None,
                "title": tool.title or (tool.annotations.title if tool.annotations else None),
            }
        )
        self._published[tool.name] = (id(tool.input_schema), published)
        return published

    async def _published_tool(self, name: str) -> MCPTool | None:
        if self._by_name is None:
            self._by_name = {tool.name: tool for tool in await self.list_tools()}
        return self._by_name.get(name)

    # -- tools/call ------------------------------------------------------------------------------
    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        tool = await self._published_tool(name)
        if tool is None:
            return await super().call_tool(name, arguments, context)  # the SDK's "unknown tool"
        started = time.perf_counter()
        try:
            arguments = self._with_database(tool, arguments)
            problems = self._arguments.problems(name, tool.input_schema, arguments)
            if problems:
                raise QueryFailed.of("invalid_arguments", "; ".join(problems))
            result = await super().call_tool(name, arguments, context)
        except (ToolError, QueryFailed) as exc:
            error = query_error_of(exc)
            if error is None:  # a crash or an SDK refusal without a QueryError: the SDK's text result
                await self._log_failure(context, name, None, str(exc), started)
                raise
            failed = error_result(name, error)
            await self._log_failure(context, name, error, _text_of(failed), started)
            return failed
        if isinstance(result, CallToolResult) and result.is_error:
            await self._log_failure(context, name, None, _text_of(result), started)
        else:
            elapsed = round((time.perf_counter() - started) * 1000, 1)
            await send_log(context, self.log_levels, "info", {"tool": name, "elapsed_ms": elapsed})
        return result

    def _with_database(self, tool: MCPTool, arguments: dict[str, Any]) -> dict[str, Any]:
        props = tool.input_schema.get("properties", {})
        if "database" not in props or arguments.get("database") is not None:
            return arguments
        names = self.database_names()
        if len(names) == 1:
            return {**arguments, "database": names[0]}
        shown = ", ".join(names[:MAX_NAMED_CHOICES])
        more = f" and {len(names) - MAX_NAMED_CHOICES} more" if len(names) > MAX_NAMED_CHOICES else ""
        raise QueryFailed.of(
            "invalid_arguments",
            f"`database` is required: this server serves {len(names)} databases ({shown}{more}); "
            "list_databases describes them",
        )

    async def _log_failure(
        self,
        context: Context[Any, Any] | None,
        tool: str,
        error: QueryError | None,
        text: str,
        started: float,
    ) -> None:
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        if error is not None and error.kind == "invalid_arguments":
            await send_log(context, self.log_levels, "notice", {"tool": tool, "refused": text})
            return
        kind = error.kind if error is not None and error.kind in ("timeout", "blocked") else "error"
        level: LoggingLevel = "warning" if kind in ("timeout", "blocked") else "notice"
        await send_log(context, self.log_levels, level, {"tool": tool, kind: text, "elapsed_ms": elapsed})

    # -- resources/list --------------------------------------------------------------------------
    async def list_resources(self) -> list[MCPResource]:
        listed = await super().list_resources()
        if self.resource_lister is not None:
            listed += await self.resource_lister()
        return listed
