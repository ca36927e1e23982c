"""The MCP server: guarded, read-only database tools over the registry, executor and schema inspector.

Owns the tool surface (names, input/output schemas, annotations, descriptions), the ``schema://``
resources and the server instructions. It never runs SQL itself (the executor does, behind the guard)
and never blocks the event loop: database work runs in worker threads. Upper layers add tools (for
example ``generate_sql``) through ``plugins`` without this module importing them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field
from pydantic_core import to_json

from mcp_server import __version__
from mcp_server.config import AppConfig, GuardSettings
from mcp_server.dialects import sqlglot_dialect
from mcp_server.errors import QueryError, QueryFailed
from mcp_server.executor import Executor
from mcp_server.registry import Registry
from mcp_server.results import JSONScalar, QueryResult
from mcp_server.schema import DatabaseSchema, SchemaInspector, render_ddl

__all__ = [
    "INSTRUCTIONS",
    "DatabaseInfo",
    "DatabaseList",
    "SampleValues",
    "SchemaDescription",
    "ServerDeps",
    "TableList",
    "ToolPlugin",
    "ValidationReport",
    "build_server",
    "describe_guard",
    "read_only_annotations",
    "structured_result",
    "tool_errors",
]

logger = logging.getLogger("sqlr1.server")

INSTRUCTIONS = """\
sqlr1 gives read-only, guarded SQL access to the databases listed by `list_databases`.
How to answer a question with data:
1. `list_databases`, then `list_tables(database)` to find where the data lives.
2. `describe_schema(database, tables?)` for columns, types, keys and example values; its `ddl` field is
   compact prompt text. `sample_values` shows real values of one column (useful for WHERE literals).
3. Write ONE read-only statement (SELECT, set operations, or WITH ... SELECT) in the database's dialect.
   `validate_sql` checks it without running it; `execute_sql` runs it and returns capped rows with
   `truncated` set when more existed.
Writes, DDL, PRAGMA/SET, multiple statements and file or network functions are always refused: the error
names the rule that blocked the statement and how to fix it. Statements are stopped at the server's
timeout; prefer LIMIT and aggregation over pulling whole tables.
"""


def read_only_annotations(title: str, *, idempotent: bool = True) -> ToolAnnotations:
    """Honest hints for a tool that reads the local catalog/databases and changes nothing."""
    return ToolAnnotations(
        title=title,
        read_only_hint=True,
        destructive_hint=False,
        idempotent_hint=idempotent,
        open_world_hint=False,
    )


def error_text(error: QueryError) -> str:
    """The message a client (or a model) reads for a failed call: kind, rule, message and position."""
    text = str(error)
    if error.position is not None:
        text += f" (at character {error.position})"
    return text


class _ToolErrors:
    """``with tool_errors():``: a plain context manager, not a generator one, because every tool call (each
    ``execute_sql`` included) enters it, and a generator-based one cost ~14 µs in a cold stdio server."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, QueryFailed):
            raise ToolError(error_text(exc.error)) from exc


_TOOL_ERRORS = _ToolErrors()


def tool_errors() -> _ToolErrors:
    """Turn a structured :class:`QueryFailed` into the MCP tool error the client sees."""
    return _TOOL_ERRORS


def structured_result(model: BaseModel | dict[str, Any], *, text: str | None = None) -> CallToolResult:
    """A tool result whose text is compact JSON (or ``text``) instead of the SDK's indented dump.

    Large results stay cheap for a model that reads the text; the structured content is the same as the
    SDK would produce (and it validates it against the tool's output schema, except for tools marked with
    :func:`_trust_structured_output`). ``model`` may be the already JSON-ready dict (e.g.
    :meth:`QueryResult.to_json_dict`), which is then used as it is.
    """
    data = model if isinstance(model, dict) else model.model_dump(mode="json", by_alias=True)
    if text is None:
        text = to_json(data).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


# --------------------------------------------------------------------------- tool outputs


class DatabaseInfo(BaseModel):
    name: str
    kind: str = Field(description="Engine: sqlite, postgresql, mysql or duckdb.")
    dialect: str = Field(description="SQL dialect statements must be written in.")
    warnings: list[str] = Field(
        default_factory=list,
        description="What the server connection's role may do beyond reading (superuser, server files, "
        "writes): sqlr1 still refuses anything but reads, but a least-privilege role is safer.",
    )


class DatabaseList(BaseModel):
    databases: list[DatabaseInfo]


class TableList(BaseModel):
    database: str
    tables: list[str]


class SchemaDescription(BaseModel):
    database: str
    schema_: DatabaseSchema = Field(alias="schema", description="Tables, columns, keys and example values.")
    ddl: str = Field(description="The same schema as CREATE TABLE text with comments, for prompts.")

    model_config = {"populate_by_name": True}


class SampleValues(BaseModel):
    database: str
    table: str
    column: str
    values: list[JSONScalar] = Field(description="Distinct non-null values, at most `limit`.")
    truncated: bool = Field(description="True when more distinct values exist.")


class ValidationReport(BaseModel):
    database: str
    valid: bool
    error: QueryError | None = Field(default=None, description="Why the statement would be refused or fail.")


# --------------------------------------------------------------------------- wiring


@dataclass
class ServerDeps:
    """What tools need; handed to plugins so they share the one registry, executor and inspector."""

    config: AppConfig
    registry: Registry
    executor: Executor
    inspector: SchemaInspector


ToolPlugin = Callable[[MCPServer, ServerDeps], None]
"""Adds tools/resources to a built server, e.g. ``generate_sql`` from the generation layer."""


def describe_guard(settings: GuardSettings) -> str:
    """One line with the effective guard settings, printed at start."""
    extra = ",".join(settings.extra_functions) or "none"
    return (
        f"guard: read_only={settings.read_only} timeout_s={settings.timeout_s:g} "
        f"max_rows={settings.max_rows} max_chars={settings.max_chars} "
        f"max_value_bytes={settings.max_value_bytes} max_sqlite_heap_bytes={settings.max_sqlite_heap_bytes} "
        f"extra_functions={extra}"
    )


def build_server(
    config: AppConfig,
    *,
    registry: Registry | None = None,
    plugins: Sequence[ToolPlugin] = (),
) -> MCPServer:
    """Build the sqlr1 MCP server over ``config`` (or an already-built ``registry``)."""
    if registry is None:
        registry = Registry.from_config(config)
    executor = Executor(registry, config.guard)
    inspector = SchemaInspector(registry, timeout_s=config.guard.timeout_s)
    deps = ServerDeps(config=config, registry=registry, executor=executor, inspector=inspector)
    server: MCPServer = MCPServer(
        "sqlr1",
        title="sqlr1 (guarded read-only SQL)",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    _register_core_tools(server, deps)
    _register_resources(server, deps)
    for plugin in plugins:
        plugin(server, deps)
    return server


def _dialect(registry: Registry, name: str) -> str:
    return sqlglot_dialect(registry.get(name).kind)


async def _describe(deps: ServerDeps, database: str, tables: list[str] | None) -> DatabaseSchema:
    return await anyio.to_thread.run_sync(lambda: deps.inspector.describe(database, tables))


def _register_core_tools(server: MCPServer, deps: ServerDeps) -> None:
    registry, executor = deps.registry, deps.executor
    guard = deps.config.guard

    @server.tool(
        name="list_databases",
        annotations=read_only_annotations("List databases"),
        description="List the databases this server can query, with their engine and SQL dialect.",
    )
    async def list_databases() -> DatabaseList:
        with tool_errors():
            warnings = await anyio.to_thread.run_sync(registry.privilege_warnings)
            infos = [
                DatabaseInfo(
                    name=name,
                    kind=registry.get(name).kind,
                    dialect=_dialect(registry, name),
                    warnings=warnings.get(name, []),
                )
                for name in registry.names()
            ]
        return DatabaseList(databases=infos)

    @server.tool(
        name="list_tables",
        annotations=read_only_annotations("List tables"),
        description="List the tables of one database (names exactly as they must be quoted in SQL).",
    )
    async def list_tables(
        database: Annotated[str, Field(description="A name from list_databases.")],
    ) -> TableList:
        with tool_errors():
            tables = await anyio.to_thread.run_sync(lambda: deps.inspector.list_tables(database))
        return TableList(database=database, tables=tables)

    @server.tool(
        name="describe_schema",
        annotations=read_only_annotations("Describe schema"),
        description=(
            "Tables with columns, types, primary/foreign keys, example values and descriptions. "
            "`ddl` holds the same as CREATE TABLE text for a prompt. Pass `tables` to restrict it."
        ),
    )
    async def describe_schema(
        database: Annotated[str, Field(description="A name from list_databases.")],
        tables: Annotated[
            list[str] | None, Field(description="Only these tables (default: all).", max_length=1000)
        ] = None,
    ) -> Annotated[CallToolResult, SchemaDescription]:
        with tool_errors():
            schema = await _describe(deps, database, tables)
        ddl = render_ddl(schema)
        # A client that shows only text gets the prompt form; the structured content has everything.
        return structured_result(SchemaDescription(database=database, schema=schema, ddl=ddl), text=ddl)

    @server.tool(
        name="sample_values",
        annotations=read_only_annotations("Sample column values"),
        description="Distinct non-null values of one column, to pick exact literals for WHERE clauses.",
    )
    async def sample_values(
        database: Annotated[str, Field(description="A name from list_databases.")],
        table: Annotated[str, Field(description="A table of that database.")],
        column: Annotated[str, Field(description="A column of that table.")],
        limit: Annotated[int, Field(ge=1, le=100, description="How many values (1-100).")] = 10,
    ) -> SampleValues:
        with tool_errors():
            values = await anyio.to_thread.run_sync(
                lambda: deps.inspector.sample_values(database, table, column, limit + 1)
            )
        return SampleValues(
            database=database,
            table=table,
            column=column,
            values=values[:limit],
            truncated=len(values) > limit,
        )

    @server.tool(
        name="execute_sql",
        annotations=read_only_annotations("Execute read-only SQL"),
        description=(
            "Run ONE read-only statement (SELECT / set operation / WITH ... SELECT) and return columns "
            f"and rows, capped at max_rows (default and maximum {guard.max_rows}) with `truncated` set "
            f"when more existed. Stopped after {guard.timeout_s:g} s. Refusals name the guard rule."
        ),
    )
    async def execute_sql(
        database: Annotated[str, Field(description="A name from list_databases.")],
        sql: Annotated[str, Field(description="One read-only SQL statement in the database's dialect.")],
        max_rows: Annotated[
            int | None, Field(ge=1, description="Row cap for this call (never above the server's).")
        ] = None,
    ) -> Annotated[CallToolResult, QueryResult]:
        cap = guard.max_rows if max_rows is None else min(max_rows, guard.max_rows)
        with tool_errors():
            result = await executor.run_json_async(database, sql, max_rows=cap)
        return structured_result(result)

    _trust_structured_output(server, "execute_sql")

    @server.tool(
        name="validate_sql",
        annotations=read_only_annotations("Validate SQL"),
        description=(
            "Check a statement without returning data: parse, guard rules and an engine dry run (EXPLAIN). "
            "Returns valid=true, or valid=false with the error (kind, rule, message) to fix."
        ),
    )
    async def validate_sql(
        database: Annotated[str, Field(description="A name from list_databases.")],
        sql: Annotated[str, Field(description="One read-only SQL statement in the database's dialect.")],
    ) -> ValidationReport:
        with tool_errors():
            registry.get(database)  # an unknown database is a tool error, not an invalid statement
        try:
            await executor.validate_async(database, sql)
        except QueryFailed as exc:
            return ValidationReport(database=database, valid=False, error=exc.error)
        return ValidationReport(database=database, valid=True)


def _trust_structured_output(server: MCPServer, name: str) -> None:
    """Publish ``name``'s output schema without re-validating each result against it.

    The tool builds its structured content from values :func:`executor.cap_rows` already made JSON
    scalars, so the SDK's validation pass per call (~15 µs for 20 rows, more per cell) proves nothing new
    on the hot path; ``tests/test_server_tools.py`` checks the results against the published schema instead.
    The SDK reads ``output_model`` live and validates only when it is set.
    """
    tool = server._tool_manager.get_tool(name)  # the SDK has no public accessor for a Tool
    if tool is None or tool.fn_metadata.output_schema is None:
        raise RuntimeError(f"tool {name!r} is not registered with an output schema")
    tool.fn_metadata.output_model = None


def _register_resources(server: MCPServer, deps: ServerDeps) -> None:
    @server.resource(
        "schema://{database}",
        name="schema",
        description="A database's schema as CREATE TABLE text with comments and example values.",
        mime_type="text/x-sql",
    )
    async def schema_resource(database: str) -> str:
        try:
            schema = await _describe(deps, database, None)
        except QueryFailed as exc:
            if exc.error.kind == "not_found":
                raise ResourceNotFoundError(error_text(exc.error)) from exc
            raise ResourceError(error_text(exc.error)) from exc
        return render_ddl(schema)


def describe_databases(registry: Registry) -> list[dict[str, Any]]:
    """Name, kind and a password-free target per database, for start-up logs and ``sqlr1 dbs``."""
    out: list[dict[str, Any]] = []
    for name in registry.names():
        spec = registry.get(name)
        target = str(spec.path) if spec.path is not None else spec.display_url
        out.append({"name": name, "kind": spec.kind, "target": target})
    return out
