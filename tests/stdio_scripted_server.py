"""A real sqlr1 stdio server with the per-turn scripted model stand-in, for cancellation tests.

``python tests/stdio_scripted_server.py DB_PATH SQL [SQL ...]`` serves ``chinook`` (the SQLite file
at DB_PATH) over stdio with a 60 s guard timeout; the i-th ``generate_sql`` call answers ``SQL[i]``
(the last one repeats). Besides the full tool set it has ``engine_activity``, which reports how many
statements the engine is running, so a test can see a cancelled query really stopped in the engine.
``scripted_server`` builds the same server for other transports.
"""

from __future__ import annotations

import sys

import anyio
from agent_scripted import TurnScriptedBackend, sql_answer
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig, GuardSettings
from sqlr1.mcp_server.db.registry import Registry
from sqlr1.mcp_server.protocol.generation_tools import generation_plugin
from sqlr1.mcp_server.protocol.server import ServerDeps, build_server
from sqlr1.mcp_server.protocol.stdio_app import run_stdio

TIMEOUT_S = 60.0


class EngineActivity(BaseModel):
    running: int


def running_statements(registry: Registry, database: str = "chinook") -> int:
    """Statements the SQLite engine has in flight (its set of connections in use)."""
    return len(registry.engine(database)._active)  # type: ignore[attr-defined]


def activity_plugin(server: MCPServer, deps: ServerDeps) -> None:
    @server.tool(name="engine_activity", description="Statements the engine is running (tests only).")
    async def engine_activity() -> EngineActivity:
        return EngineActivity(running=running_statements(deps.registry))


def scripted_server(db: str, sqls: list[str]) -> tuple[MCPServer, Registry]:
    """The full server over ``chinook`` = ``db`` (60 s timeout, N = 1, no value retrieval) whose
    i-th ``generate_sql`` answers ``sqls[i]``, plus ``engine_activity``; and its registry."""
    config = AppConfig(
        guard=GuardSettings(timeout_s=TIMEOUT_S), databases=[DatabaseConfig(name="chinook", target=db)]
    )
    config.generation.num_candidates = 1
    config.generation.value_retrieval = False
    registry = Registry.from_config(config)
    model = TurnScriptedBackend([sql_answer(sql) for sql in sqls])
    server = build_server(config, registry=registry, plugins=[generation_plugin(model), activity_plugin])
    return server, registry


def main(argv: list[str]) -> None:
    db, *sqls = argv
    server, _ = scripted_server(db, sqls)
    anyio.run(run_stdio, server)


if __name__ == "__main__":
    main(sys.argv[1:])
