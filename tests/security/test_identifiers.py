"""Identifier injection: every tool argument that names a database, table or column, fuzzed.

Through the real in-memory MCP ``Client`` (core tools plus ``generate_sql`` / ``search_values`` with a
scripted model): only catalog names are accepted (matched case-insensitively and answered with the
catalog's spelling), anything else is a ``not_found`` tool error naming the bad value, no statement
reaches an engine, the model is never called, no file is opened and the database is unchanged.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from scripted_backend import ScriptedBackend, answer

from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig, GuardSettings
from sqlr1.mcp_server.db.engines.sqlite import SqliteEngine
from sqlr1.mcp_server.protocol.generation_tools import generation_plugin
from sqlr1.mcp_server.protocol.server import build_server

# Injection strings aimed at names: quoting breaks, stacked statements, comments, path traversal,
# URLs and file URIs, NUL and control bytes, unicode look-alikes, and very long strings.
INJECTIONS: list[str] = [
    "chinook; DROP TABLE Track",
    "chinook'; DROP TABLE Track; --",
    'chinook"; DROP TABLE Track; --',
    "chinook` ; DROP TABLE Track; #",
    "chinook]; DROP TABLE Track; --",
    "chinook -- comment",
    "chinook /* c */",
    "chinook/*",
    "' OR '1'='1",
    '" OR "1"="1',
    "1 UNION SELECT sql FROM sqlite_master",
    "../../etc/passwd",
    "../../../../../../etc/shadow",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "file:/etc/passwd?mode=rw",
    "sqlite:////etc/passwd",
    "postgresql://postgres@127.0.0.1/test",
    "chinook\x00",
    "\x00",
    "chinook\x00../../etc/passwd",
    "chinook\n",
    "chinook\r\nDROP TABLE Track",
    "\u0441hinook",  # Cyrillic 'с'
    "chin\u200book",  # zero-width space
    "ｃｈｉｎｏｏｋ",  # fullwidth
    "*",
    "%",
    "",
    " ",
    "main",
    "sqlite_master",
    "sqlite_schema",
    "x" * 100_000,
    "'" * 10_000,
]

TABLE_INJECTIONS: list[str] = [
    "Track; DROP TABLE Track",
    "Track'; DROP TABLE Track; --",
    'Track"; DROP TABLE Track; --',
    'Track" --',
    "Track`",
    "[Track]",
    '"Track"',
    "Track WHERE 1=1",
    "Track UNION SELECT * FROM sqlite_master",
    "(SELECT * FROM Track)",
    "main.Track; --",
    "temp.Track",
    "sqlite_master",
    "sqlite_schema",
    "sqlite_temp_master",
    "pragma_table_info('Track')",
    "json_each('[1]')",
    "../Track",
    "Track\x00",
    "Track\x00; DROP TABLE Track",
    "Track ",
    "\u0422rack",  # Cyrillic 'Т'
    "*",
    "",
    "x" * 100_000,
]

COLUMN_INJECTIONS: list[str] = [
    "Name; DROP TABLE Genre",
    'Name" FROM Track --',
    "Name FROM Genre UNION SELECT sql FROM sqlite_master --",
    "*",
    "rowid",
    "oid",
    "_rowid_",
    "count(*)",
    "load_extension('/tmp/x')",
    "Name\x00",
    "Name'",
    "",
    "x" * 100_000,
]

GENRE_COUNT = 25
TRACK_COUNT = 3503


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement sent to a SQLite engine (a spy around the real method, which still runs)."""
    seen: list[str] = []
    real_execute, real_explain = SqliteEngine.execute, SqliteEngine.explain

    def execute(self: SqliteEngine, sql: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(sql)
        return real_execute(self, sql, *args, **kwargs)

    def explain(self: SqliteEngine, sql: str, *args: Any, **kwargs: Any) -> Any:
        seen.append("EXPLAIN " + sql)
        return real_explain(self, sql, *args, **kwargs)

    monkeypatch.setattr(SqliteEngine, "execute", execute)
    monkeypatch.setattr(SqliteEngine, "explain", explain)
    yield seen


@pytest.fixture
def setup(
    chinook_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[MCPServer, ScriptedBackend, Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the value index cache
    backend = ScriptedBackend([answer("SELECT count(*) FROM Genre")])
    config = AppConfig(
        guard=GuardSettings(timeout_s=5.0, max_rows=50),
        databases=[DatabaseConfig(name="chinook", target=str(chinook_copy))],
    )
    return build_server(config, plugins=[generation_plugin(backend)]), backend, chinook_copy


async def call(client: Client, name: str, args: dict[str, Any]) -> Any:
    with anyio.fail_after(60):
        return await client.call_tool(name, args)


def _database_calls(bad: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("list_tables", {"database": bad}),
        ("describe_schema", {"database": bad}),
        ("describe_schema", {"database": bad, "tables": ["Track"]}),
        ("sample_values", {"database": bad, "table": "Genre", "column": "Name"}),
        ("execute_sql", {"database": bad, "sql": "SELECT 1"}),
        ("validate_sql", {"database": bad, "sql": "SELECT 1"}),
        ("search_values", {"database": bad, "text": "AC/DC"}),
        ("generate_sql", {"database": bad, "question": "How many genres?", "num_candidates": 1}),
    ]


def _names_the_value(text: str, bad: str) -> bool:
    """The error names the value (its repr, as the message quotes it; long values at least by a prefix)."""
    return repr(bad)[:60] in text or bad[:60] in text


async def test_only_catalog_database_names_are_accepted(
    setup: tuple[MCPServer, ScriptedBackend, Path], executed: list[str]
) -> None:
    server, backend, db = setup
    before = digest(db)
    async with Client(server) as client:
        for bad in INJECTIONS:
            for tool, args in _database_calls(bad):
                res = await call(client, tool, args)
                text = text_of(res)
                assert res.is_error, (tool, bad[:40], text[:200])
                assert res.structured_content is not None and res.structured_content["kind"] in text
                if bad:  # the empty name is refused either way; others are named
                    assert "not_found" in text and "unknown database" in text, (tool, bad[:40], text[:200])
                    assert _names_the_value(text, bad), (tool, bad[:40], text[:200])
                    assert len(text) < 1000  # named, not echoed back in full
                    assert "available: chinook" in text  # and says what would work
            with pytest.raises(MCPError) as info:
                await client.read_resource(f"schema://{bad}")
            assert info.value.error.code != 0
        assert executed == [] and backend.calls == []  # nothing ran, the model was never asked
        # the right name works: the assertions above could have failed
        res = await call(client, "execute_sql", {"database": "chinook", "sql": "SELECT count(*) FROM Genre"})
        assert res.structured_content["rows"] == [[GENRE_COUNT]]
    assert digest(db) == before


async def test_database_names_are_never_paths(
    setup: tuple[MCPServer, ScriptedBackend, Path], tmp_path: Path, executed: list[str]
) -> None:
    """The served file's own path, another SQLite file's path, or a URL is not a database name."""
    server, _, db = setup
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE secret (v TEXT)")
        conn.execute("INSERT INTO secret VALUES ('do not read')")
    conn.close()
    async with Client(server) as client:
        for name in (
            str(db),
            str(other),
            other.as_uri(),
            f"sqlite:///{other}",
            str(db.parent),
            "chinook.sqlite",
        ):
            for tool, args in _database_calls(name):
                res = await call(client, tool, args)
                assert res.is_error and "unknown database" in text_of(res), (tool, name)
                assert "do not read" not in text_of(res)
    assert executed == []


async def test_only_catalog_table_names_are_accepted(
    setup: tuple[MCPServer, ScriptedBackend, Path], executed: list[str]
) -> None:
    server, _, db = setup
    before = digest(db)
    async with Client(server) as client:
        for bad in TABLE_INJECTIONS:
            for tool, args in (
                ("describe_schema", {"database": "chinook", "tables": [bad]}),
                ("describe_schema", {"database": "chinook", "tables": ["Genre", bad]}),
                ("sample_values", {"database": "chinook", "table": bad, "column": "Name"}),
            ):
                res = await call(client, tool, args)
                text = text_of(res)
                assert res.is_error and "not_found" in text, (tool, bad[:40], text[:200])
                assert f"table {repr(bad)[:60]}" in text or repr(bad)[:60] in text, (
                    tool,
                    bad[:40],
                    text[:200],
                )
                assert "list_tables" in text  # the fix is named
                assert len(text) < 1000
        # describing tables reads their example values; sampling never ran on a bad name
        assert not any(bad and bad in sql for sql in executed for bad in TABLE_INJECTIONS if len(bad) > 3)
        # case-insensitive matches resolve to the catalog's own spelling
        res = await call(client, "describe_schema", {"database": "chinook", "tables": ["track"]})
        assert [t["name"] for t in res.structured_content["schema"]["tables"]] == ["Track"]
        res = await call(client, "sample_values", {"database": "chinook", "table": "GENRE", "column": "name"})
        assert not res.is_error and len(res.structured_content["values"]) == 10
    assert digest(db) == before


async def test_only_catalog_column_names_are_accepted(
    setup: tuple[MCPServer, ScriptedBackend, Path], executed: list[str]
) -> None:
    server, _, db = setup
    before = digest(db)
    async with Client(server) as client:
        for bad in COLUMN_INJECTIONS:
            res = await call(
                client, "sample_values", {"database": "chinook", "table": "Genre", "column": bad}
            )
            text = text_of(res)
            assert res.is_error and "not_found" in text, (bad[:40], text[:200])
            assert "its columns are: GenreId, Name" in text, text[:200]
    assert executed == []  # the column is resolved against the catalog before any SQL exists
    assert digest(db) == before
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM Track").fetchone()[0] == TRACK_COUNT
    conn.close()


async def test_valid_names_build_quoted_sql_only(
    setup: tuple[MCPServer, ScriptedBackend, Path], executed: list[str]
) -> None:
    """The one statement sample_values sends quotes the catalog's identifiers (never the caller's text)."""
    server, _, _ = setup
    async with Client(server) as client:
        res = await call(client, "sample_values", {"database": "chinook", "table": "genre", "column": "NAME"})
        assert not res.is_error
    assert len(executed) == 1
    assert '"Name"' in executed[0] and '"Genre"' in executed[0] and "NAME" not in executed[0]


_alphabet = st.characters(codec="utf-8", exclude_categories=["Cs"])
_fragments = st.sampled_from(
    [
        "chinook",
        "Track",
        "Genre",
        "Name",
        ";",
        "'",
        '"',
        "`",
        "--",
        "/*",
        "*/",
        "\x00",
        "../",
        " ",
        "DROP TABLE x",
    ]
)
_names = st.lists(st.one_of(_fragments, st.text(_alphabet, max_size=8)), min_size=1, max_size=6).map("".join)
_CATALOG = {"chinook"}
_TABLES = {
    "album", "artist", "customer", "employee", "genre", "invoice", "invoiceline", "mediatype",
    "playlist", "playlisttrack", "track",
}  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(database=_names, table=_names, column=_names)
def test_fuzzed_names_accept_only_the_catalog(
    setup: tuple[MCPServer, ScriptedBackend, Path],
    executed: list[str],
    database: str,
    table: str,
    column: str,
) -> None:
    server, backend, db = setup
    before = digest(db)
    asked = len(backend.calls)

    async def go() -> None:
        async with Client(server) as client:
            for tool, args in _database_calls(database):
                res = await call(client, tool, args)
                assert res.is_error == (database not in _CATALOG), (tool, database)
            res = await call(
                client, "sample_values", {"database": "chinook", "table": table, "column": column}
            )
            table_ok = table.casefold() in _TABLES
            if not table_ok:
                assert res.is_error and "not_found" in text_of(res)
            res = await call(client, "describe_schema", {"database": "chinook", "tables": [table]})
            assert res.is_error == (not table_ok)

    anyio.run(go)
    if database not in _CATALOG:
        assert len(backend.calls) == asked
    assert digest(db) == before
