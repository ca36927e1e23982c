"""Schema linking: which tables a question keeps, the foreign-key closure, and gold-table extraction
(recall over Spider/BIRD dev is measured by benchmarks/schema_linking_bench.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlr1.mcp_server.catalog.linking import gold_tables, link_tables, subset, words
from sqlr1.mcp_server.catalog.schema import DatabaseSchema, SchemaInspector
from sqlr1.mcp_server.db.registry import Registry


@pytest.fixture
def chinook(chinook_copy: Path) -> DatabaseSchema:
    registry = Registry.from_targets([str(chinook_copy)])
    return SchemaInspector(registry).describe(registry.names()[0])


def test_words_split_identifiers_and_stem_plurals() -> None:
    assert words("InvoiceLine") == ["invoice", "line"]
    assert words("track_names") == ["track", "name"]
    assert words("How many Playlists have categories?") == ["how", "many", "playlist", "have", "category"]


def test_named_tables_and_the_join_path_between_them(chinook: DatabaseSchema) -> None:
    linked = link_tables(chinook, "Which tracks are on the Grunge playlist?")
    assert {"Track", "Playlist", "PlaylistTrack"} <= set(linked.tables)
    assert linked.reasons["Track"] == "named" and linked.reasons["Playlist"] == "named"
    assert "Customer" not in linked.tables and "Employee" not in linked.tables
    assert linked.tables == [t.name for t in chinook.tables if t.name in linked.tables]  # schema order


def test_columns_values_and_no_match(chinook: DatabaseSchema) -> None:
    by_column = link_tables(chinook, "What is the billing country with the most sales?")
    assert "Invoice" in by_column.tables and by_column.reasons["Invoice"] == "columns"
    by_value = link_tables(chinook, "Who made Balls to the Wall?", value_tables=["album"])
    assert by_value.reasons["Album"] == "values"
    everything = link_tables(chinook, "Hello?")
    assert everything.tables == [t.name for t in chinook.tables]


def test_subset_renders_only_its_tables(chinook: DatabaseSchema) -> None:
    from sqlr1.mcp_server.catalog.schema import render_ddl

    full = render_ddl(chinook)
    small = render_ddl(subset(chinook, ["Album", "artist"]))
    assert "CREATE TABLE Album" in small and "CREATE TABLE Artist" in small
    assert "CREATE TABLE Track" not in small and len(small) < len(full) / 4


def test_gold_tables(chinook: DatabaseSchema) -> None:
    sql = "SELECT T1.Name FROM artist AS T1 JOIN (SELECT ArtistId FROM Album) AS x USING (ArtistId)"
    assert gold_tables(sql, chinook) == {"Artist", "Album"}
    assert gold_tables("SELECT * FROM nowhere", chinook) == set()
    assert gold_tables("not sql at all (", chinook) == set()
