"""Schema resources: one per database and one per table, listed in ``resources/list``, with
``notifications/resources/list_changed`` when a listed database's tables change.

* ``schema://{database}``: the database's schema as CREATE TABLE text with comments and example values
  (a concrete resource per database, plus the template for any name);
* ``schema://{database}/{table}``: one table's CREATE TABLE text (listed per table while the server
  serves at most ``MAX_TABLE_LISTED_DATABASES`` databases; the template reads any table);
* ``values://{database}/{table}/{column}``: distinct values of one column as JSON (template only).

:class:`CatalogWatcher`, a server middleware, notices a schema change after a request (the database's
fingerprint moved and its table list with it; checked at most every ``CHECK_EVERY_S``) and tells the
client its resource list changed. Databases are fixed when the server starts, so only table lists move.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
import anyio.to_thread
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.resources import FunctionResource
from mcp_types import Resource as MCPResource

from sqlr1.mcp_server.catalog.schema import render_ddl
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.core.results import safe_integers

if TYPE_CHECKING:
    from sqlr1.mcp_server.protocol.mcp_protocol import SqlR1Server
    from sqlr1.mcp_server.protocol.server import ServerDeps

__all__ = ["CHECK_EVERY_S", "MAX_TABLE_LISTED_DATABASES", "CatalogWatcher", "register_resources"]

log = logging.getLogger(__name__)

MAX_TABLE_LISTED_DATABASES = 10
"""Per-table resources are listed only up to this many databases (a Spider folder has 166)."""
CHECK_EVERY_S = 1.0
"""Least time between two checks for changed table lists."""
DDL_MIME = "text/x-sql"
SAMPLE_VALUES = 50


def schema_uri(database: str, table: str | None = None) -> str:
    uri = f"schema://{quote(database, safe='')}"
    return uri if table is None else f"{uri}/{quote(table, safe='')}"


class CatalogWatcher:
    """Remembers the table lists a client was shown and, after later requests, tells it when one moved."""

    def __init__(self, deps: ServerDeps) -> None:
        self.deps = deps
        self.shown: dict[str, tuple[str, list[str]]] = {}  # database -> (fingerprint, tables) as listed
        self._checked = 0.0

    def tables(self, database: str) -> tuple[str, list[str]]:
        """(fingerprint, table names) of ``database`` now. Runs queries: call it in a worker thread."""
        fingerprint = self.deps.registry.engine(database).fingerprint()
        return fingerprint, self.deps.inspector.list_tables(database)

    async def list_table_resources(self) -> list[MCPResource]:
        names = self.deps.registry.names()
        if len(names) > MAX_TABLE_LISTED_DATABASES:
            return []
        out: list[MCPResource] = []
        for database in names:
            try:
                shown = await anyio.to_thread.run_sync(self.tables, database)
            except QueryFailed as exc:  # an unreachable server: its tables are not listed, the rest are
                log.info("not listing the tables of %s: %s", database, exc)
                continue
            self.shown[database] = shown
            out += [
                MCPResource(
                    uri=schema_uri(database, table),
                    name=f"{database}.{table}",
                    title=f"Table {table} ({database})",
                    description=f"CREATE TABLE text of {table} in {database}, with example values.",
                    mime_type=DDL_MIME,
                )
                for table in shown[1]
            ]
        return out

    def _moved(self) -> bool:
        moved = False
        for database, (fingerprint, tables) in list(self.shown.items()):
            try:
                now = self.deps.registry.engine(database).fingerprint()
                if now == fingerprint:
                    continue
                current = self.tables(database)
            except QueryFailed:
                continue
            self.shown[database] = current
            moved = moved or current[1] != tables
        return moved

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.request_id is None or not self.shown or ctx.method in ("initialize", "resources/list"):
            return result
        now = time.monotonic()
        if now - self._checked < CHECK_EVERY_S:
            return result
        self._checked = now
        if await anyio.to_thread.run_sync(self._moved):
            try:
                await ctx.session.send_resource_list_changed()
            except Exception as exc:  # a closed stream: the client is gone
                log.debug("resources/list_changed not delivered: %s", exc)
        return result


def register_resources(server: SqlR1Server, deps: ServerDeps) -> None:
    """Add the schema resources, their templates and the catalog watcher to ``server``."""

    async def ddl(database: str, table: str | None = None) -> str:
        try:
            schema = await anyio.to_thread.run_sync(
                lambda: deps.inspector.describe(database, [table] if table is not None else None)
            )
        except QueryFailed as exc:
            from sqlr1.mcp_server.protocol.server import error_text

            if exc.error.kind == "not_found":
                raise ResourceNotFoundError(error_text(exc.error)) from exc
            raise ResourceError(error_text(exc.error)) from exc
        return render_ddl(schema)

    @server.resource(
        "schema://{database}",
        name="schema",
        title="Database schema",
        description="A database's schema as CREATE TABLE text with comments and example values.",
        mime_type=DDL_MIME,
    )
    async def schema_resource(database: str) -> str:
        return await ddl(database)

    @server.resource(
        "schema://{database}/{table}",
        name="table_schema",
        title="Table schema",
        description="One table's CREATE TABLE text with comments and example values.",
        mime_type=DDL_MIME,
    )
    async def table_resource(database: str, table: str) -> str:
        return await ddl(database, table)

    @server.resource(
        "values://{database}/{table}/{column}",
        name="column_values",
        title="Column values",
        description=f"Up to {SAMPLE_VALUES} distinct non-null values of one column, as a JSON array.",
        mime_type="application/json",
    )
    async def values_resource(database: str, table: str, column: str) -> str:
        try:
            values = await anyio.to_thread.run_sync(
                lambda: deps.inspector.sample_values(database, table, column, SAMPLE_VALUES)
            )
        except QueryFailed as exc:
            from sqlr1.mcp_server.protocol.server import error_text

            if exc.error.kind == "not_found":
                raise ResourceNotFoundError(error_text(exc.error)) from exc
            raise ResourceError(error_text(exc.error)) from exc
        return json.dumps(safe_integers(values), ensure_ascii=False)

    for name in deps.registry.names():
        kind = deps.registry.get(name).kind
        server.add_resource(
            FunctionResource(
                uri=schema_uri(name),
                name=name,
                title=f"Schema of {name}",
                description=f"The {kind} database {name}: CREATE TABLE text with comments and example values.",
                mime_type=DDL_MIME,
                fn=_reader(ddl, name),
            )
        )

    watcher = CatalogWatcher(deps)
    server.resource_lister = watcher.list_table_resources
    server.middleware.append(watcher)


def _reader(ddl: Any, database: str) -> Any:
    async def read() -> str:
        text: str = await ddl(database)
        return text

    return read
