"""MCP prompts: ready-made requests a client offers its user (slash commands, prompt pickers).

* ``ask_database(question, database?)``: answer a question with data, with the schema in the message;
* ``explain_table(database?, table)``: what a table holds, with its CREATE TABLE text and a few rows;
* ``explain_query(database?, sql)``: what a statement does, with the engine's query plan (or why it
  would be refused).

Every database read goes through the guarded executor or the schema inspector, in worker threads.
``database`` may be left out when the server serves one database. Bad arguments are JSON-RPC
``INVALID_PARAMS`` errors that name the problem (and the choices, for a missing database).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import anyio.to_thread
from mcp.server.mcpserver import UserMessage
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import Field

from sqlr1.mcp_server.catalog.schema import render_ddl
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.query_plan import plan_text
from sqlr1.mcp_server.sql.dialects import sqlglot_dialect

if TYPE_CHECKING:
    from sqlr1.mcp_server.protocol.mcp_protocol import SqlR1Server
    from sqlr1.mcp_server.protocol.server import ServerDeps

__all__ = ["MAX_PROMPT_DDL_CHARS", "register_prompts"]

MAX_PROMPT_DDL_CHARS = 24_000
"""A longer schema is not pasted into ``ask_database``: the message points to describe_schema instead."""
EXAMPLE_ROWS = 5

DATABASE = Annotated[
    str, Field(description="A name from list_databases (optional when the server serves one database).")
]


def register_prompts(server: SqlR1Server, deps: ServerDeps) -> None:
    """Add the prompts to ``server``."""
    registry, inspector, executor = deps.registry, deps.inspector, deps.executor

    def pick(database: str) -> str:
        names = registry.names()
        if not database:
            if len(names) == 1:
                return names[0]
            shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
            raise MCPError(code=INVALID_PARAMS, message=f"`database` is required: this server serves {shown}")
        if database not in names:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"unknown database {database!r}; this server serves {', '.join(names[:20])}",
            )
        return database

    def failed(exc: QueryFailed) -> MCPError:
        return MCPError(code=INVALID_PARAMS, message=str(exc.error))

    def engine_words(database: str) -> str:
        kind = registry.get(database).kind
        return f"the {kind} database `{database}` (write {sqlglot_dialect(kind)} SQL)"

    @server.prompt(
        name="ask_database",
        title="Ask a question of a database",
        description="Answer a natural-language question with data: the schema, then one read-only query.",
    )
    async def ask_database(
        question: Annotated[str, Field(description="The question, in natural language.")],
        database: DATABASE = "",
    ) -> list[UserMessage]:
        name = pick(database)
        try:
            ddl = await anyio.to_thread.run_sync(lambda: inspector.ddl(name))
        except QueryFailed as exc:
            raise failed(exc) from exc
        schema = (
            f"Schema:\n```sql\n{ddl}\n```"
            if len(ddl) <= MAX_PROMPT_DDL_CHARS
            else "The schema is large: call describe_schema with the tables you need (list_tables names them)."
        )
        text = (
            f"Answer this question with data from {engine_words(name)}:\n\n{question}\n\n{schema}\n\n"
            "Write ONE read-only statement. Check exact values with sample_values or search_values, check the "
            "statement with validate_sql, run it with execute_sql (or let generate_sql write it), then answer "
            "from the rows and show the SQL you ran."
        )
        return [UserMessage(content=text)]

    @server.prompt(
        name="explain_table",
        title="Explain a table",
        description="What a table holds: its columns, keys, relations and a few example rows.",
    )
    async def explain_table(
        table: Annotated[str, Field(description="A table of that database (list_tables names them).")],
        database: DATABASE = "",
    ) -> list[UserMessage]:
        name = pick(database)

        def read() -> tuple[str, str]:
            schema = inspector.describe(name, [table])
            found = schema.tables[0]
            quoted = executor.check(name, f"SELECT * FROM {_quote(found.name, registry.get(name).kind)}")
            rows = executor.run(name, quoted.sql, max_rows=EXAMPLE_ROWS)
            lines = [" | ".join(c.name for c in rows.columns)]
            lines += [" | ".join("NULL" if v is None else str(v) for v in row) for row in rows.rows]
            return render_ddl(schema), "\n".join(lines)

        try:
            ddl, sample = await anyio.to_thread.run_sync(read)
        except QueryFailed as exc:
            raise failed(exc) from exc
        text = (
            f"Explain the table `{table}` of {engine_words(name)}: what one row represents, what each "
            "column means, its keys and how it relates to other tables.\n\n"
            f"```sql\n{ddl}\n```\n\nThe first {EXAMPLE_ROWS} rows:\n```\n{sample}\n```"
        )
        return [UserMessage(content=text)]

    @server.prompt(
        name="explain_query",
        title="Explain a query and its plan",
        description="What a SQL statement does and how the engine plans to run it (it is not run).",
    )
    async def explain_query(
        sql: Annotated[str, Field(description="One SQL statement.")],
        database: DATABASE = "",
    ) -> list[UserMessage]:
        name = pick(database)
        try:
            _statement, raw = await executor.explain_async(name, sql)
        except QueryFailed as exc:
            text = (
                f"This statement for {engine_words(name)} would not run:\n```sql\n{sql}\n```\n"
                f"sqlr1 refused it: {exc.error}\n\nExplain what it was meant to do, why it is refused, and "
                "write a corrected read-only statement."
            )
            return [UserMessage(content=text)]
        plan = plan_text(registry.get(name).kind, raw) or "(the engine gives no plan)"
        text = (
            f"Explain what this statement does on {engine_words(name)}, in plain words, and whether its "
            f"plan is efficient (full scans, missing indexes):\n```sql\n{sql}\n```\n\n"
            f"The engine's query plan:\n```\n{plan}\n```"
        )
        return [UserMessage(content=text)]


def _quote(name: str, kind: str) -> str:
    if kind == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'
