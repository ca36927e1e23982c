"""The MCP server: guarded, read-only database tools over the registry, executor and schema inspector.

Owns the tool surface (names, titles, input/output schemas, annotations, descriptions) and the server
instructions; the resources are :mod:`mcp_server.protocol.mcp_resources`, the prompts :mod:`mcp_server.protocol.mcp_prompts`,
completions :mod:`mcp_server.protocol.completions`, and the protocol behaviour around every call (strict arguments,
log messages, clean schemas) :class:`mcp_server.protocol.mcp_protocol.SqlR1Server`. It never runs SQL itself (the
executor does, behind the guard) and never blocks the event loop: database work runs in worker threads.
Upper layers add tools (for example ``generate_sql``) through ``plugins`` without this module importing them.

Integers beyond ±(2^53 - 1) in results (rows, sample values) are sent as decimal strings: JavaScript
clients parse JSON numbers as doubles and would silently lose their last digits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, TypeAdapter
from pydantic_core import to_json

from sqlr1.mcp_server import __version__
from sqlr1.mcp_server.catalog.schema import DatabaseSchema, SchemaInspector, render_ddl
from sqlr1.mcp_server.core.config import AppConfig, GuardSettings
from sqlr1.mcp_server.core.errors import QueryError, QueryFailed
from sqlr1.mcp_server.core.results import JSONScalar, QueryResult, safe_integers
from sqlr1.mcp_server.db.executor import Executor
from sqlr1.mcp_server.db.query_plan import plan_text
from sqlr1.mcp_server.db.registry import Registry
from sqlr1.mcp_server.protocol.mcp_protocol import SqlR1Server, error_text
from sqlr1.mcp_server.sql.dialects import sqlglot_dialect

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
    "error_text",
    "read_only_annotations",
    "structured_result",
    "tool_errors",
]

logger = logging.getLogger("sqlr1.server")

INSTRUCTIONS = """\
sqlr1 gives read-only, guarded SQL access to the databases listed by `list_databases` (when it serves
exactly one, every `database` argument may be left out).
Tools:
- `list_databases`: names, engines and SQL dialects. `list_tables(database)`: the tables of one.
- `describe_schema(database, tables?)`: columns, types, keys and example values; its `ddl` field is
  compact CREATE TABLE text for a prompt.
- `sample_values(database, table, column)`: real values of one column; `search_values(database, text)`:
  the stored values a phrase refers to, with their table and column. Use both for exact WHERE literals.
- `validate_sql(database, sql)`: checks ONE statement without running it and returns the engine's
  query `plan`; `execute_sql(database, sql)` runs it and returns capped rows (`truncated` when more
  existed).
- `generate_sql(database, question)`: the server's own model writes the SQL (SQL-R1: several candidates,
  executed and voted on). Slow on a CPU: it reports progress and returns within `time_budget_s`.
How to answer a question with data: find the tables, read their schema, write ONE read-only statement
(SELECT, set operations, or WITH ... SELECT) in the database's dialect, validate it, execute it.
Writes, DDL, PRAGMA/SET, multiple statements and file or network functions are always refused: the error
names the rule that blocked the statement and how to fix it. A failed call is an isError result whose
structured content is the error: `kind` (blocked, syntax, execution, timeout, not_found, config,
invalid_arguments), `message`, `rule` and `position` (character offset), when known. Statements are stopped at the server's
timeout; prefer LIMIT and aggregation over pulling whole tables. Integers beyond 2^53 come as strings.
Resources: `schema://{database}` and `schema://{database}/{table}` (CREATE TABLE text). Prompts:
`ask_database`, `explain_table`, `explain_query`.
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
    """Turn a structured :class:`QueryFailed` into a ``ToolError`` (caused by it): :class:`SqlR1Server`
    answers it with an ``isError`` result whose structured content is the :class:`QueryError`."""
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
    plan: str | None = Field(
        default=None,
        description="The engine's query plan as text (SQLite: EXPLAIN QUERY PLAN; PostgreSQL and DuckDB: "
        "EXPLAIN); None when the statement is invalid or the engine gives none (MariaDB/MySQL).",
    )


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
    server = SqlR1Server(
        "sqlr1",
        title="sqlr1 (guarded read-only SQL)",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
        databases=registry.names,
    )
    from sqlr1.mcp_server.protocol.completions import register_completions
    from sqlr1.mcp_server.protocol.mcp_prompts import register_prompts
    from sqlr1.mcp_server.protocol.mcp_resources import register_resources

    _register_core_tools(server, deps)
    register_resources(server, deps)
    register_prompts(server, deps)
    register_completions(server, deps)
    for plugin in plugins:
        plugin(server, deps)
    return server


def _dialect(registry: Registry, name: str) -> str:
    return sqlglot_dialect(registry.get(name).kind)


async def _describe(deps: ServerDeps, database: str, tables: list[str] | None) -> DatabaseSchema:
    return await anyio.to_thread.run_sync(lambda: deps.inspector.describe(database, tables))


def _register_core_tools(server: SqlR1Server, deps: ServerDeps) -> None:
    registry, executor = deps.registry, deps.executor
    guard = deps.config.guard

    @server.tool(
        name="list_databases",
        title="List databases",
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
        title="List tables",
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
        title="Describe schema",
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
        # The text is the JSON of the structured content (as the spec says it should be); `ddl` in it is
        # the prompt form.
        return structured_result(SchemaDescription(database=database, schema=schema, ddl=ddl))

    @server.tool(
        name="sample_values",
        title="Sample column values",
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
            values=safe_integers(values[:limit]),
            truncated=len(values) > limit,
        )

    @server.tool(
        name="execute_sql",
        title="Execute read-only SQL",
        annotations=read_only_annotations("Execute read-only SQL"),
        description=(
            "Run ONE read-only statement (SELECT / set operation / WITH ... SELECT) and return columns "
            f"and rows, capped at max_rows (default and maximum {guard.max_rows}) with `truncated` set "
            f"when more existed. Stopped after {guard.timeout_s:g} s. A refusal or failure is an isError result "
            "whose structured content is the error (kind, rule, message, position). "
            "Integers beyond ±(2^53 - 1) come as decimal strings."
        ),
    )
    async def execute_sql(
        database: Annotated[str, Field(description="A name from list_databases.")],
        sql: Annotated[str, Field(description="One read-only SQL statement in the database's dialect.")],
        max_rows: Annotated[
            int | None, Field(ge=1, description="Row cap for this call (never above the server's).")
        ] = None,
    ) -> CallToolResult:
        cap = guard.max_rows if max_rows is None else min(max_rows, guard.max_rows)
        with tool_errors():
            result = await executor.run_json_async(database, sql, max_rows=cap)
        result["rows"] = safe_integers(result["rows"])
        return structured_result(result)

    # Published without the SDK's validation of each result: see _QUERY_RESULT_SCHEMA.
    server.publish_output_schema("execute_sql", _QUERY_RESULT_SCHEMA)

    @server.tool(
        name="validate_sql",
        title="Validate SQL",
        annotations=read_only_annotations("Validate SQL"),
        description=(
            "Check a statement without returning data: parse, guard rules and an engine dry run (EXPLAIN). "
            "Returns valid=true with the engine's query `plan`, or valid=false with the error (kind, rule, "
            "message) to fix."
        ),
    )
    async def validate_sql(
        database: Annotated[str, Field(description="A name from list_databases.")],
        sql: Annotated[str, Field(description="One read-only SQL statement in the database's dialect.")],
    ) -> ValidationReport:
        with tool_errors():
            registry.get(database)  # an unknown database is a tool error, not an invalid statement
        try:
            _statement, raw = await executor.explain_async(database, sql)
        except QueryFailed as exc:
            return ValidationReport(database=database, valid=False, error=exc.error)
        plan = plan_text(registry.get(database).kind, raw)
        return ValidationReport(database=database, valid=True, plan=plan)


_QUERY_RESULT_SCHEMA = TypeAdapter(QueryResult).json_schema()
"""``execute_sql``'s output schema. The tool builds its structured content from values
:func:`executor.cap_rows` already made JSON scalars, so the SDK's validation pass per call (~15 µs for 20
rows, more per cell) would prove nothing new on the hot path: the tool is registered as returning a bare
``CallToolResult`` and the schema is published by :meth:`SqlR1Server.publish_output_schema`;
``tests/test_server_tools.py`` checks the results against it instead."""


def describe_databases(registry: Registry) -> list[dict[str, Any]]:
    """Name, kind and a password-free target per database, for start-up logs and ``sqlr1 dbs``."""
    out: list[dict[str, Any]] = []
    for name in registry.names():
        spec = registry.get(name)
        target = str(spec.path) if spec.path is not None else spec.display_url
        out.append({"name": name, "kind": spec.kind, "target": target})
    return out
