"""``completion/complete``: pick lists for ``database``, ``table`` and ``column`` arguments.

Serves every prompt and resource template that names such an argument (``schema://{database}``,
``schema://{database}/{table}``, ``values://{database}/{table}/{column}``, the prompts of
:mod:`mcp_server.protocol.mcp_prompts`). A table is completed within the ``database`` already given (or the only
one served), a column within the ``table``. Names that start with the typed text come first, then names
that contain it, case-insensitively; at most ``MAX_VALUES`` (the protocol's limit), with ``total`` and
``hasMore``. An unknown database or table completes to nothing rather than failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from mcp_types import Completion, CompletionArgument, CompletionContext

from sqlr1.mcp_server.core.errors import QueryFailed

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from sqlr1.mcp_server.protocol.server import ServerDeps

__all__ = ["MAX_VALUES", "matching", "register_completions"]

MAX_VALUES = 100


def matching(names: Sequence[str], typed: str) -> Completion:
    """``names`` that start with ``typed``, then those containing it (case-insensitive), capped."""
    low = typed.lower()
    first = [n for n in names if n.lower().startswith(low)]
    then = [n for n in names if low in n.lower() and not n.lower().startswith(low)]
    found = first + then
    return Completion(values=found[:MAX_VALUES], total=len(found), has_more=len(found) > MAX_VALUES)


def register_completions(server: MCPServer, deps: ServerDeps) -> None:
    """Serve ``completion/complete`` on ``server`` for the catalog's names."""
    registry, inspector = deps.registry, deps.inspector

    def database_of(given: dict[str, str]) -> str | None:
        names = registry.names()
        return given.get("database") or (names[0] if len(names) == 1 else None)

    def names_for(argument: str, given: dict[str, str]) -> list[str]:
        """Blocking (catalog queries): run in a worker thread."""
        if argument == "database":
            return registry.names()
        database = database_of(given)
        if database is None:
            return []
        if argument == "table":
            return inspector.list_tables(database)
        table = given.get("table")
        if argument == "column" and table:
            schema = inspector.describe(database, [table])
            return [c.name for t in schema.tables for c in t.columns]
        return []

    @server.completion()  # type: ignore[no-untyped-call, untyped-decorator]  # unannotated in the SDK
    async def complete(
        ref: Any, argument: CompletionArgument, context: CompletionContext | None
    ) -> Completion | None:
        if argument.name not in ("database", "table", "column"):
            return None
        given = dict((context.arguments or {}) if context is not None else {})
        try:
            names = await anyio.to_thread.run_sync(lambda: names_for(argument.name, given))
        except QueryFailed:
            names = []  # an unknown database or table: nothing to offer
        return matching(names, argument.value)
