"""Errors as data on the MCP wire, and the agent's typed read of every tool result.

A failed call is an ``isError`` result whose structured content is the server's ``QueryError`` (kind, message,
rule, position), over a real stdio subprocess and the in-memory ``mcp.Client``; every published output schema
admits that error, so clients that validate error results against it (the TypeScript SDK) still read it. The
agent validates each result into the server's pydantic models and stops, with a clear error, on one that does
not fit (a server of another version), instead of feeding it to the model as a failed query.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import validators
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent
from scripted_backend import ScriptedBackend
from serve_fixtures import child_env

from sqlr1.agent import Agent, StdioTarget
from sqlr1.agent.tools import SqlTools, ToolResultInvalid, connect, error_of
from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig
from sqlr1.mcp_server.core.errors import QueryError, QueryFailed
from sqlr1.mcp_server.protocol.generation_tools import generation_plugin
from sqlr1.mcp_server.protocol.server import build_server

DELETE = "DELETE FROM Artist"


def _server(db: Path, backend: Any = None) -> MCPServer:
    config = AppConfig(databases=[DatabaseConfig(name="chinook", target=str(db))])
    return build_server(config, plugins=[generation_plugin(backend or ScriptedBackend([]))])


def _check_refusal(result: CallToolResult) -> QueryError:
    assert result.is_error
    error = QueryError.model_validate(result.structured_content)
    assert error.kind == "blocked" and error.rule == "read_only"
    assert error.position == DELETE.index("Artist")  # the offending node, as data
    text = "\n".join(c.text for c in result.content if isinstance(c, TextContent))
    assert text.startswith("Error executing tool execute_sql: blocked [read_only]: ")  # today's text
    assert error.message in text and f"(at character {error.position})" in text
    return error


async def _refusals_and_schemas(client: Client) -> None:
    refused = await client.call_tool("execute_sql", {"database": "chinook", "sql": DELETE})
    _check_refusal(refused)
    bad_args = await client.call_tool(
        "execute_sql", {"database": "chinook", "sql": "SELECT 1", "max_rows": "3"}
    )
    assert bad_args.is_error and bad_args.structured_content is not None
    assert bad_args.structured_content["kind"] == "invalid_arguments"
    assert "max_rows" in bad_args.structured_content["message"]
    unknown = await client.call_tool("list_tables", {"database": "nope"})
    assert unknown.is_error and QueryError.model_validate(unknown.structured_content).kind == "not_found"
    # What the TypeScript SDK client does with every result (error ones included): validate it against the
    # published output schema. The error passes, and a success result still needs all its fields.
    tools = {t.name: t for t in (await client.list_tools()).tools}
    for name, tool in tools.items():
        assert tool.output_schema is not None, name
        validator = validators.validator_for(tool.output_schema)(tool.output_schema)
        assert not list(validator.iter_errors(refused.structured_content)), name
        assert list(validator.iter_errors({})), f"{name}: an empty result passes its output schema"
    schema = tools["execute_sql"].output_schema
    assert schema is not None
    assert set(schema["properties"]) >= {"columns", "rows", "row_count", "truncated"}  # listed as before


async def test_refusal_is_structured_in_memory(chinook_copy: Path) -> None:
    async with Client(_server(chinook_copy)) as client:
        await _refusals_and_schemas(client)


async def test_refusal_is_structured_over_stdio(chinook_copy: Path) -> None:
    target = StdioTarget(args=("--db", f"chinook={chinook_copy}", "serve"), env=child_env())
    async with connect(target, timeout_s=60) as client:
        await _refusals_and_schemas(client)
        # ... and the agent reads it as the same QueryError, not from the text
        with pytest.raises(QueryFailed) as refused:
            await SqlTools(client).execute_sql("chinook", DELETE)
        assert refused.value.error.rule == "read_only" and refused.value.error.position == 12


async def test_no_success_field_is_named_like_an_error_field(chinook_copy: Path) -> None:
    """``admit_errors`` keeps each success schema's properties at the top, so they apply to the error object
    too: a property named like a QueryError field must accept that field's value."""
    async with Client(_server(chinook_copy)) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        shared = set(QueryError.model_fields) & set((tool.output_schema or {}).get("properties", {}))
        assert shared <= {"message"}, (
            tool.name,
            shared,
        )  # GenerationResult.message: a string, as the error's


# --------------------------------------------------------------------------- the agent's typed read


def _impostor(**tools: dict[str, Any]) -> MCPServer:
    """A server with sqlr1's tool names whose results have the wrong shape (another version, say)."""
    server = MCPServer("impostor")
    good = {"databases": [{"name": "chinook", "kind": "sqlite", "dialect": "sqlite"}]}
    shapes = {"list_databases": good, **tools}
    for name, data in shapes.items():
        server.add_tool(_returning(data), name=name, structured_output=False)
    return server


def _returning(data: dict[str, Any]) -> Callable[..., CallToolResult]:
    def tool(
        database: Any = None,
        sql: Any = None,
        max_rows: Any = None,
        tables: Any = None,
        text: Any = None,
        question: Any = None,
        num_candidates: Any = None,
        feedback: Any = None,
    ) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text="{}")], structured_content=data)

    return tool


@pytest.mark.parametrize(
    ("tool", "shape", "call", "names"),
    [
        ("list_databases", {"databases": [{"name": 1}]}, lambda t: t.list_databases(), "databases.0.name"),
        ("execute_sql", {"rows": "nope"}, lambda t: t.execute_sql("chinook", "SELECT 1"), "columns"),
        ("describe_schema", {"database": "chinook"}, lambda t: t.describe_schema("chinook"), "schema"),
        ("validate_sql", {"valid": "maybe"}, lambda t: t.validate_sql("chinook", "SELECT 1"), "valid"),
        ("search_values", {"hits": [{"value": 3}]}, lambda t: t.search_values("chinook", "x"), "hits.0"),
        ("generate_sql", {"sql": "SELECT 1", "values": []}, lambda t: t.generate_sql({}), "candidates"),
    ],
)
async def test_each_typed_read_fails_loudly(tool: str, shape: dict[str, Any], call: Any, names: str) -> None:
    async with Client(_impostor(**{tool: shape})) as client:
        with pytest.raises(ToolResultInvalid) as raised:
            await call(SqlTools(client))
    message = raised.value.error.message
    assert f"the server's {tool} result is not a valid" in message and names in message, message


async def test_the_agent_stops_on_an_unreadable_generation_instead_of_retrying() -> None:
    server = _impostor(generate_sql={"status": "ok", "sql": "SELECT 1"}, execute_sql={})
    async with Agent.connect(server) as agent:
        with pytest.raises(ToolResultInvalid, match="generate_sql result is not a valid GenerationResult"):
            await agent.ask("how many artists?")
        with pytest.raises(ToolResultInvalid, match="execute_sql result is not a valid QueryResult"):
            await agent.run_sql("SELECT 1")
    with pytest.raises(ToolResultInvalid, match="list_databases"):
        async with Agent.connect(_impostor(list_databases={"databases": "chinook"})):
            pass


async def test_a_plain_text_error_of_another_server_is_an_execution_error() -> None:
    result = CallToolResult(content=[TextContent(type="text", text="disk on fire")], is_error=True)
    assert error_of(result) == QueryError(kind="execution", message="disk on fire")
    odd = CallToolResult(
        content=[TextContent(type="text", text="nope")], structured_content={"code": 7}, is_error=True
    )
    assert error_of(odd).message == "nope"
