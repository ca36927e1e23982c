"""The MCP tools through the SDK's in-memory Client: schemas, annotations, results and errors as a client sees them."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_text import first_text

from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig, GuardSettings
from sqlr1.mcp_server.core.errors import QueryError
from sqlr1.mcp_server.protocol.server import ServerDeps, build_server, read_only_annotations

TOOLS = {"list_databases", "list_tables", "describe_schema", "sample_values", "execute_sql", "validate_sql"}
RUNAWAY = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"


@pytest.fixture
def config(chinook_copy: Path, spider_copy: Any) -> AppConfig:
    return AppConfig(
        guard=GuardSettings(timeout_s=1.0, max_rows=50),
        databases=[
            DatabaseConfig(name="chinook", target=str(chinook_copy)),
            DatabaseConfig(name="concert_singer", target=str(spider_copy("concert_singer"))),
        ],
    )


@pytest.fixture
def server(config: AppConfig) -> MCPServer:
    return build_server(config)


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def call(client: Client, name: str, args: dict[str, Any]) -> Any:
    with anyio.fail_after(30):
        return await client.call_tool(name, args)


async def test_tools_have_schemas_and_honest_annotations(server: MCPServer) -> None:
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) >= TOOLS
        for name in TOOLS:
            tool = tools[name]
            assert tool.output_schema is not None, name
            assert tool.description
            ann = tool.annotations
            assert ann is not None
            assert ann.read_only_hint is True
            assert ann.destructive_hint is False
            assert ann.open_world_hint is False
        assert set(tools["execute_sql"].input_schema["required"]) == {"database", "sql"}
        assert "rows" in (tools["execute_sql"].output_schema or {})["properties"]
        instructions = client.instructions or ""
        assert "execute_sql" in instructions and "read-only" in instructions


TYPED_CELLS = (
    "SELECT 1 AS i, 2.5 AS f, 'x' AS s, NULL AS n, x'00ff' AS b, 9007199254740993 AS big, "
    "'\u00e9\u4e2d' AS u, 1e308 * 10 AS inf UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
)


async def test_execute_sql_results_match_the_published_schema_and_model(server: MCPServer) -> None:
    """The server does not re-validate execute_sql's structured content per call (server.py,
    ``_trust_structured_output``), so every cell type must come out valid by construction."""
    import jsonschema

    from sqlr1.mcp_server.core.results import QueryResult

    async with Client(server) as client:
        schema = {t.name: t for t in (await client.list_tools()).tools}["execute_sql"].output_schema
        for db, sql in [
            ("chinook", TYPED_CELLS),
            ("chinook", "SELECT * FROM Invoice ORDER BY InvoiceId LIMIT 60"),
            ("concert_singer", "SELECT * FROM singer"),
        ]:
            res = await call(client, "execute_sql", {"database": db, "sql": sql})
            assert not res.is_error, text_of(res)
            jsonschema.validate(res.structured_content, schema)
            QueryResult.model_validate(res.structured_content)  # the stricter model: cells are JSON scalars
            assert json.loads(text_of(res)) == res.structured_content


async def test_list_databases_and_tables(server: MCPServer) -> None:
    async with Client(server) as client:
        res = await call(client, "list_databases", {})
        assert not res.is_error
        dbs = {d["name"]: d for d in res.structured_content["databases"]}
        assert set(dbs) == {"chinook", "concert_singer"}
        assert dbs["chinook"]["kind"] == "sqlite"
        res = await call(client, "list_tables", {"database": "chinook"})
        assert not res.is_error
        assert {"Track", "Album", "Artist", "InvoiceLine"} <= set(res.structured_content["tables"])


async def test_describe_schema_structured_and_prompt_text(server: MCPServer) -> None:
    async with Client(server) as client:
        res = await call(client, "describe_schema", {"database": "chinook", "tables": ["Track"]})
        assert not res.is_error, text_of(res)
        data = res.structured_content
        assert [t["name"] for t in data["schema"]["tables"]] == ["Track"]
        cols = {c["name"] for c in data["schema"]["tables"][0]["columns"]}
        assert {"TrackId", "Name", "AlbumId", "UnitPrice"} <= cols
        assert "CREATE TABLE" in data["ddl"] and "Track" in data["ddl"]
        assert json.loads(text_of(res)) == data  # the text is the JSON of the structured content
        assert "Album" not in [t["name"] for t in data["schema"]["tables"]]


async def test_describe_unknown_table_names_it(server: MCPServer) -> None:
    async with Client(server) as client:
        res = await call(client, "describe_schema", {"database": "chinook", "tables": ["Trackz"]})
        assert res.is_error
        assert "not_found" in text_of(res) and "Trackz" in text_of(res)


async def test_sample_values(server: MCPServer) -> None:
    async with Client(server) as client:
        res = await call(
            client, "sample_values", {"database": "chinook", "table": "Genre", "column": "Name", "limit": 5}
        )
        assert not res.is_error, text_of(res)
        data = res.structured_content
        assert len(data["values"]) == 5 and all(isinstance(v, str) for v in data["values"])
        assert data["truncated"] is True
        assert (data["table"], data["column"]) == ("Genre", "Name")


@pytest.mark.parametrize(
    ("table", "column", "named"),
    [
        ("Genre", "Nope", "Nope"),
        ("Genre; DROP TABLE Genre", "Name", "Genre; DROP TABLE Genre"),
        ('Genre" --', "Name", 'Genre" --'),
        ("Genre", 'Name" FROM Track --', "Name"),
    ],
)
async def test_sample_values_accepts_only_catalog_names(
    server: MCPServer, chinook_copy: Path, table: str, column: str, named: str
) -> None:
    async with Client(server) as client:
        res = await call(client, "sample_values", {"database": "chinook", "table": table, "column": column})
        assert res.is_error
        assert "not_found" in text_of(res) and named in text_of(res)
    with sqlite3.connect(chinook_copy) as conn:
        assert conn.execute("SELECT count(*) FROM Genre").fetchone()[0] == 25


async def test_execute_sql_point_lookup_and_join(server: MCPServer) -> None:
    async with Client(server) as client:
        res = await call(
            client,
            "execute_sql",
            {"database": "chinook", "sql": "SELECT ArtistId, Name FROM Artist WHERE ArtistId = 1"},
        )
        assert not res.is_error, text_of(res)
        data = res.structured_content
        assert [c["name"] for c in data["columns"]] == ["ArtistId", "Name"]
        assert data["rows"] == [[1, "AC/DC"]]
        assert data["truncated"] is False and data["row_count"] == 1
        assert json.loads(text_of(res)) == data and "\n" not in text_of(res)  # compact text for models
        join = (
            "SELECT t.Name, a.Title, ar.Name FROM Track t JOIN Album a ON a.AlbumId = t.AlbumId "
            "JOIN Artist ar ON ar.ArtistId = a.ArtistId WHERE ar.Name = 'AC/DC' ORDER BY t.TrackId"
        )
        res = await call(client, "execute_sql", {"database": "chinook", "sql": join})
        assert not res.is_error
        assert res.structured_content["row_count"] == 18
        assert res.structured_content["rows"][0] == [
            "For Those About To Rock (We Salute You)",
            "For Those About To Rock We Salute You",
            "AC/DC",
        ]


async def test_execute_sql_caps_rows(server: MCPServer) -> None:
    async with Client(server) as client:
        res = await call(
            client, "execute_sql", {"database": "chinook", "sql": "SELECT TrackId FROM Track", "max_rows": 3}
        )
        assert res.structured_content["row_count"] == 3 and res.structured_content["truncated"] is True
        # a client cannot raise the server's cap (50 here)
        res = await call(
            client,
            "execute_sql",
            {"database": "chinook", "sql": "SELECT TrackId FROM Track", "max_rows": 10_000},
        )
        assert res.structured_content["row_count"] == 50 and res.structured_content["truncated"] is True


async def test_with_select_is_allowed(server: MCPServer) -> None:
    async with Client(server) as client:
        sql = "WITH g AS (SELECT GenreId, count(*) AS n FROM Track GROUP BY GenreId) SELECT max(n) FROM g"
        res = await call(client, "execute_sql", {"database": "chinook", "sql": sql})
        assert not res.is_error, text_of(res)
        assert res.structured_content["rows"] == [[1297]]


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM Track",
        "SELECT 1; DROP TABLE Track",
        "WITH x AS (DELETE FROM Track RETURNING *) SELECT * FROM x",
        "PRAGMA writable_schema = 1",
        "ATTACH DATABASE '/tmp/x.sqlite' AS x",
        "SELECT load_extension('/tmp/evil')",
    ],
)
async def test_blocked_statements_show_kind_and_rule(server: MCPServer, chinook_copy: Path, sql: str) -> None:
    async with Client(server) as client:
        res = await call(client, "execute_sql", {"database": "chinook", "sql": sql})
        assert res.is_error
        text = text_of(res)
        # what the client sees: the SDK's prefix, then kind, the guard rule and the message
        assert re.match(r"Error executing tool execute_sql: (blocked \[\w+\]|syntax): \S", text), text
        # ... and the same as data: the QueryError, with the rule of a refusal
        error = QueryError.model_validate(res.structured_content)
        assert error.kind in ("blocked", "syntax") and error.message in text
        assert (error.kind == "syntax") or (error.rule is not None and f"[{error.rule}]" in text)
    with sqlite3.connect(chinook_copy) as conn:
        assert conn.execute("SELECT count(*) FROM Track").fetchone()[0] == 3503


async def test_errors_name_what_is_missing(server: MCPServer) -> None:
    async with Client(server) as client:
        res = await call(client, "execute_sql", {"database": "nope_db", "sql": "SELECT 1"})
        assert res.is_error and "not_found" in text_of(res) and "nope_db" in text_of(res)
        res = await call(client, "list_tables", {"database": "../../etc/passwd"})
        assert res.is_error and "not_found" in text_of(res)
        res = await call(client, "execute_sql", {"database": "chinook", "sql": "SELECT * FROM NoSuchTable"})
        assert res.is_error and "NoSuchTable" in text_of(res)
        res = await call(client, "execute_sql", {"database": "chinook", "sql": "SELEC 1 FROM"})
        assert res.is_error and "syntax" in text_of(res)


async def test_wrong_argument_types_are_tool_errors(server: MCPServer) -> None:
    async with Client(server) as client:
        res = await call(
            client, "execute_sql", {"database": "chinook", "sql": "SELECT 1", "max_rows": "many"}
        )
        assert res.is_error and "max_rows" in text_of(res)
        res = await call(client, "execute_sql", {"database": "chinook"})
        assert res.is_error and "sql" in text_of(res)
        res = await call(
            client, "sample_values", {"database": "chinook", "table": "Genre", "column": "Name", "limit": 0}
        )
        assert res.is_error and "limit" in text_of(res)
        # the server is still fine
        res = await call(client, "execute_sql", {"database": "chinook", "sql": "SELECT 1 AS one"})
        assert res.structured_content["rows"] == [[1]]


async def test_validate_sql(server: MCPServer) -> None:
    async with Client(server) as client:
        res = await call(client, "validate_sql", {"database": "chinook", "sql": "SELECT Name FROM Artist"})
        assert not res.is_error and res.structured_content["valid"] is True
        res = await call(client, "validate_sql", {"database": "chinook", "sql": "DROP TABLE Artist"})
        assert not res.is_error
        assert res.structured_content["valid"] is False
        assert (
            res.structured_content["error"]["kind"] == "blocked" and res.structured_content["error"]["rule"]
        )
        res = await call(client, "validate_sql", {"database": "chinook", "sql": "SELECT Nope FROM Artist"})
        assert res.structured_content["valid"] is False
        assert res.structured_content["error"]["kind"] in ("execution", "not_found")
        res = await call(client, "validate_sql", {"database": "nope_db", "sql": "SELECT 1"})
        assert res.is_error and "nope_db" in text_of(res)


async def test_runaway_query_times_out_and_does_not_block_other_calls(server: MCPServer) -> None:
    order: list[str] = []
    async with Client(server) as client:

        async def runaway() -> None:
            res = await call(client, "execute_sql", {"database": "chinook", "sql": RUNAWAY})
            assert res.is_error and "timeout" in text_of(res), text_of(res)
            order.append("runaway")

        async def quick() -> None:
            await anyio.sleep(0.2)
            res = await call(client, "list_databases", {})
            assert not res.is_error
            order.append("quick")

        async with anyio.create_task_group() as tg:
            tg.start_soon(runaway)
            tg.start_soon(quick)
        assert order == ["quick", "runaway"]
        res = await call(client, "execute_sql", {"database": "chinook", "sql": "SELECT count(*) FROM Artist"})
        assert res.structured_content["rows"] == [[275]]


async def test_schema_resource(server: MCPServer) -> None:
    async with Client(server) as client:
        templates = (await client.list_resource_templates()).resource_templates
        assert any(t.uri_template == "schema://{database}" for t in templates)
        res = await client.read_resource("schema://concert_singer")
        text = first_text(res)
        assert "CREATE TABLE" in text and "singer" in text
        with pytest.raises(MCPError) as info:
            await client.read_resource("schema://nope_db")
        assert "nope_db" in str(info.value)


async def test_plugins_add_tools(config: AppConfig) -> None:
    seen: list[ServerDeps] = []

    def plugin(server: MCPServer, deps: ServerDeps) -> None:
        seen.append(deps)

        @server.tool(name="count_databases", annotations=read_only_annotations("Count databases"))
        def count_databases() -> int:
            return len(list(deps.registry.names()))

    server = build_server(config, plugins=[plugin])
    async with Client(server) as client:
        res = await call(client, "count_databases", {})
        assert not res.is_error and res.structured_content == {"result": 2}
    assert seen and seen[0].config is config


_names = st.one_of(
    st.sampled_from(["chinook", "concert_singer", "Track", "Name", "singer"]), st.text(max_size=40)
)
_sql = st.one_of(
    st.sampled_from(["SELECT 1", "SELECT * FROM singer", "DROP TABLE singer", "SELECT 1; SELECT 2", RUNAWAY]),
    st.text(max_size=300),
)
_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    _names,
    _sql,
    st.lists(_names, max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_keys = st.sampled_from(["database", "sql", "table", "column", "limit", "tables", "max_rows", "extra"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(sorted(TOOLS)), st.dictionaries(_keys, _value, max_size=5)),
        min_size=1,
        max_size=4,
    )
)
def test_fuzzed_arguments_always_get_a_result(
    server: MCPServer, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    """Wrong types, missing fields, odd strings: every call gets a tool result (often an error); nothing breaks."""

    async def go() -> None:
        async with Client(server) as client:
            for name, args in calls:
                res = await call(client, name, args)
                assert res.is_error or res.structured_content is not None
                if res.is_error:
                    assert text_of(res).startswith("Error executing tool ")
            res = await call(client, "execute_sql", {"database": "chinook", "sql": "SELECT 2 + 2"})
            assert res.structured_content["rows"] == [[4]]

    anyio.run(go)
