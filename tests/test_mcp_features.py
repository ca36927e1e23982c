"""The MCP features clients look for, through the SDK's client over a real stdio subprocess (``sqlr1 serve``):
single-``type`` schemas and titles, instructions, strict and readable arguments, an optional ``database``,
``describe_schema``'s JSON text, big integers, the query plan, prompts, completions, resources with
``list_changed``, and the ``logging`` capability."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp_text import first_text, text
from mcp_types import (
    LoggingMessageNotificationParams,
    PromptReference,
    ResourceListChangedNotification,
    ResourceTemplateReference,
)

from sqlr1.mcp_server.core.results import MAX_SAFE_INTEGER
from sqlr1.mcp_server.protocol.mcp_arguments import type_lists

REPO = Path(__file__).resolve().parent.parent
TOOLS = {
    "list_databases",
    "list_tables",
    "describe_schema",
    "sample_values",
    "execute_sql",
    "validate_sql",
    "generate_sql",
    "search_values",
}


@asynccontextmanager
async def serve(tmp_path: Path, *dbs: str, **client: Any) -> AsyncIterator[Client]:
    """``sqlr1 serve`` over stdio with ``dbs`` (``name=path``), this checkout's code, and a client."""
    args = ["-m", "sqlr1.mcp_server.cli.main"]
    for db in dbs:
        args += ["--db", db]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("SQLR1_TOKEN", None)
    params = StdioServerParameters(command=sys.executable, args=[*args, "serve"], cwd=str(REPO), env=env)
    with (tmp_path / "stderr.txt").open("a", encoding="utf-8") as err, anyio.fail_after(120):
        async with Client(stdio_client(params, errlog=err), **client) as session:
            yield session


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def test_schemas_titles_instructions_and_optional_database(chinook_copy: Path, tmp_path: Path) -> None:
    async with serve(tmp_path, f"chinook={chinook_copy}") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        instructions = client.instructions or ""
    assert set(tools) >= TOOLS
    for name, tool in tools.items():
        # Single-`type` dialects (the Inspector's --strict, function-declaration subsets) reject lists.
        assert list(type_lists(tool.input_schema)) == [], (name, list(type_lists(tool.input_schema)))
        assert list(type_lists(tool.output_schema or {})) == [], (name, list(type_lists(tool.output_schema)))
        assert tool.title, f"{name} has no top-level title"
        assert f"`{name}" in instructions, f"the instructions do not describe {name}"
        if "database" in tool.input_schema["properties"]:  # one database served: optional
            assert "database" not in tool.input_schema.get("required", []), name
            assert tool.input_schema["properties"]["database"]["default"] == "chinook"


async def test_strict_readable_arguments_and_results(chinook_copy: Path, tmp_path: Path) -> None:
    big = MAX_SAFE_INTEGER + 2
    async with serve(tmp_path, f"chinook={chinook_copy}") as client:
        as_string = await client.call_tool("execute_sql", {"sql": "SELECT 1", "max_rows": "3"})
        too_small = await client.call_tool("sample_values", {"table": "Genre", "column": "Name", "limit": 0})
        no_sql = await client.call_tool("validate_sql", {})
        rows = await client.call_tool("execute_sql", {"sql": f"SELECT {big} AS big, 7 AS small"})
        plan = await client.call_tool("validate_sql", {"sql": "SELECT Name FROM Track WHERE TrackId = 3"})
        refused = await client.call_tool("validate_sql", {"sql": "DELETE FROM Track"})
        described = await client.call_tool("describe_schema", {"tables": ["Genre"]})
    # A string is not an integer, and the error says which argument, what it wanted and what it got.
    assert as_string.is_error
    assert text_of(as_string) == (
        'Error executing tool execute_sql: invalid arguments: `max_rows` must be an integer, got the string "3"'
    )
    assert too_small.is_error and "`limit` must be at least 1, got the integer 0" in text_of(too_small)
    assert no_sql.is_error and "`sql` is required" in text_of(no_sql)
    for res in (as_string, too_small, no_sql):
        assert "http" not in text_of(res) and "pydantic" not in text_of(res) and "\n" not in text_of(res)
    # Beyond 2^53 an integer is sent as its decimal string (JavaScript would round it); small ones stay.
    assert not rows.is_error and rows.structured_content["rows"] == [[str(big), 7]]
    assert json.loads(text_of(rows)) == rows.structured_content
    # The engine's plan, through the guarded path; a refused statement has none.
    assert plan.structured_content["valid"] is True
    assert "SEARCH Track USING INTEGER PRIMARY KEY" in plan.structured_content["plan"]
    assert refused.structured_content["valid"] is False and refused.structured_content["plan"] is None
    # describe_schema's text is the JSON of its structured content; the DDL is a field of it.
    assert json.loads(text_of(described)) == described.structured_content
    assert "CREATE TABLE Genre" in described.structured_content["ddl"]


async def test_database_is_required_with_several(
    chinook_copy: Path, spider_copy: Any, tmp_path: Path
) -> None:
    concert = spider_copy("concert_singer")
    async with serve(tmp_path, f"chinook={chinook_copy}", f"concert={concert}") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        missing = await client.call_tool("list_tables", {})
        given = await client.call_tool("list_tables", {"database": "concert"})
    assert "database" in tools["execute_sql"].input_schema["required"]
    assert missing.is_error
    assert "`database` is required" in text_of(missing) and "chinook, concert" in text_of(missing)
    assert "singer" in given.structured_content["tables"]


async def test_prompts_and_completions(chinook_copy: Path, tmp_path: Path) -> None:
    async with serve(tmp_path, f"chinook={chinook_copy}") as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        ask = await client.get_prompt("ask_database", {"question": "How many tracks are there?"})
        table = await client.get_prompt("explain_table", {"database": "chinook", "table": "Genre"})
        query = await client.get_prompt(
            "explain_query", {"sql": "SELECT Name FROM Artist WHERE ArtistId = 1"}
        )
        bad_sql = await client.get_prompt("explain_query", {"sql": "DROP TABLE Artist"})
        try:
            await client.get_prompt("explain_table", {"database": "nope", "table": "Genre"})
            unknown: str | None = None
        except MCPError as exc:
            unknown = str(exc)
        prompt = PromptReference(type="ref/prompt", name="explain_table")
        databases = await client.complete(prompt, {"name": "database", "value": "ch"})
        tables = await client.complete(prompt, {"name": "table", "value": "in"}, {"database": "chinook"})
        template = ResourceTemplateReference(type="ref/resource", uri="values://{database}/{table}/{column}")
        columns = await client.complete(
            template, {"name": "column", "value": "id"}, {"database": "chinook", "table": "Album"}
        )
        nothing = await client.complete(template, {"name": "table", "value": ""}, {"database": "nope"})
    assert set(prompts) == {"ask_database", "explain_table", "explain_query"}
    assert all(p.title and p.description for p in prompts.values())
    assert {a.name: a.required for a in prompts["explain_table"].arguments or []} == {
        "table": True,
        "database": False,
    }
    ask_text = text(ask.messages[0].content)
    assert "How many tracks are there?" in ask_text and "CREATE TABLE Track" in ask_text
    table_text = text(table.messages[0].content)
    assert "CREATE TABLE Genre" in table_text and "Rock" in table_text  # the first rows are shown
    assert "SEARCH Artist USING INTEGER PRIMARY KEY" in text(query.messages[0].content)
    assert "blocked" in text(bad_sql.messages[0].content)
    assert unknown is not None and "nope" in unknown and "chinook" in unknown
    assert databases.completion.values == ["chinook"]
    assert tables.completion.values == ["Invoice", "InvoiceLine"]  # starts with "in", case-insensitive
    assert columns.completion.values == ["AlbumId", "ArtistId"]
    assert nothing.completion.values == []


async def test_resources_listed_and_list_changed(chinook_copy: Path, tmp_path: Path) -> None:
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceListChangedNotification):
            changed.set()

    # The handshake revision: list_changed notifications (2026-07-28 clients subscribe instead).
    async with serve(
        tmp_path, f"chinook={chinook_copy}", mode="legacy", message_handler=on_message
    ) as client:
        caps = client.server_capabilities
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        whole = await client.read_resource("schema://chinook")
        one = await client.read_resource("schema://chinook/Genre")
        values = await client.read_resource("values://chinook/Genre/Name")
        with sqlite3.connect(chinook_copy) as conn:
            conn.execute("CREATE TABLE Review (ReviewId INTEGER PRIMARY KEY, Stars INTEGER)")
        await anyio.sleep(1.1)  # the catalog is checked at most once a second
        await client.call_tool("list_databases", {})
        with anyio.fail_after(10):
            await changed.wait()
        relisted = {str(r.uri) for r in (await client.list_resources()).resources}
    assert caps is not None and caps.resources is not None and caps.resources.list_changed is True
    assert "schema://chinook" in listed and "schema://chinook/Track" in listed
    assert listed["schema://chinook/Track"].mime_type == "text/x-sql"
    assert {"schema://{database}", "schema://{database}/{table}", "values://{database}/{table}/{column}"} <= (
        templates
    )
    assert "CREATE TABLE Track" in first_text(whole)
    assert first_text(one).startswith("CREATE TABLE Genre") and "Track" not in first_text(one)
    assert "Rock" in json.loads(first_text(values))
    assert "schema://chinook/Review" in relisted and "schema://chinook/Review" not in listed


async def test_logging_capability_and_levels(chinook_copy: Path, tmp_path: Path) -> None:
    logs: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async with serve(tmp_path, f"chinook={chinook_copy}", mode="legacy", logging_callback=on_log) as client:
        caps = client.server_capabilities
        await client.call_tool("execute_sql", {"sql": "SELECT 1"})
        await client.call_tool("execute_sql", {"sql": "DELETE FROM Track"})
        await anyio.sleep(0.2)
        default = list(logs)
        logs.clear()
        await client.set_logging_level("warning")
        await client.call_tool("execute_sql", {"sql": "SELECT 2"})
        await client.call_tool("execute_sql", {"sql": "DELETE FROM Track"})
        await anyio.sleep(0.2)
        at_warning = list(logs)
    assert caps is not None and caps.logging is not None
    # By default every level is sent: the timing of the query and the refusal of the write.
    assert any(
        m.level == "info" and m.data.get("tool") == "execute_sql" and "elapsed_ms" in m.data for m in default
    )
    assert any(m.level == "warning" and "blocked" in m.data for m in default)
    assert all(m.logger == "sqlr1" for m in default)
    # At "warning", the timing is dropped and the refusal still comes.
    assert [m.level for m in at_warning] == ["warning"] and "blocked" in at_warning[0].data


def test_log_levels_are_kept_per_connection_never_for_stateless_http() -> None:
    from sqlr1.mcp_server.protocol.mcp_logging import ClientLogLevels, connection_key

    levels = ClientLogLevels()
    stateless = connection_key({"host": "127.0.0.1"})  # an HTTP request without a session id
    levels.set(stateless, "emergency")
    assert levels.allows(connection_key({"host": "127.0.0.1"}), "info")  # another client still hears info
    levels.set(connection_key({"mcp-session-id": "abc"}), "error")
    assert not levels.allows(connection_key({"mcp-session-id": "abc"}), "info")
    assert levels.allows(connection_key({"mcp-session-id": "xyz"}), "info")
    levels.set(connection_key(None), "error")  # stdio: one connection
    assert not levels.allows(connection_key(None), "warning")
