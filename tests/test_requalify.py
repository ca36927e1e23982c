"""mcp_server.sql.requalify: a column qualified by a table of the query that lacks it, qualified by the one
table of its SELECT that has it, over Chinook's real catalog; every mended query is run on the real
database (the generator's use of it, on the last attempt: test_instruct_generation.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sqlr1.mcp_server.sql.requalify import requalify

CHINOOK = Path(__file__).parent.parent / "examples" / "chinook.sqlite"


def _rows(sql: str) -> list[tuple[object, ...]]:
    con = sqlite3.connect(f"file:{CHINOOK}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_the_column_moves_to_the_other_alias_that_has_it(chinook_tables) -> None:
    sql = (
        "SELECT T1.Name FROM Track AS T1 JOIN Album AS T2 ON T1.AlbumId = T2.AlbumId "
        "WHERE T1.Title = 'Let There Be Rock'"
    )
    with pytest.raises(sqlite3.OperationalError, match=r"no such column: T1\.Title"):
        _rows(sql)
    done = requalify(sql, "sqlite", chinook_tables, "T1", "Title")
    assert done is not None and done.moved == "T1.Title -> T2.Title"
    assert done.sql == sql.replace("T1.Title", "T2.Title")
    assert len(_rows(done.sql)) == 8


def test_a_table_named_without_an_alias_and_every_use_in_its_select(chinook_tables) -> None:
    sql = (
        "SELECT Album.Name, COUNT(*) FROM Album JOIN Artist ON Album.ArtistId = Artist.ArtistId "
        "GROUP BY album.name ORDER BY COUNT(*) DESC LIMIT 1"
    )
    done = requalify(sql, "sqlite", chinook_tables, "album", "NAME")  # any letter case
    assert done is not None and done.moved == "Album.Name -> Artist.Name"  # as the query writes them
    assert "SELECT Artist.Name, COUNT(*)" in done.sql and "GROUP BY Artist.name" in done.sql
    assert _rows(done.sql) == [("Iron Maiden", 21)]


@pytest.mark.parametrize(
    ("sql", "qualifier", "column"),
    [
        (  # two tables of the query have it: a guess, not a repair
            "SELECT T1.Name FROM Album AS T1 JOIN Artist AS T2 ON T1.ArtistId = T2.ArtistId "
            "JOIN Track AS T3 ON T3.AlbumId = T1.AlbumId",
            "T1",
            "Name",
        ),
        (  # the column is there after all
            "SELECT T1.Name FROM Track AS T1",
            "T1",
            "Name",
        ),
        (  # no table of the query has it
            "SELECT T1.Title FROM Track AS T1 JOIN Genre AS T2 ON T1.GenreId = T2.GenreId",
            "T1",
            "Title",
        ),
        (  # a subquery source: its columns are not known
            "SELECT T1.Title FROM Track AS T1 JOIN (SELECT AlbumId, Title FROM Album) AS T2 "
            "ON T1.AlbumId = T2.AlbumId",
            "T1",
            "Title",
        ),
        (  # a qualifier of the enclosing SELECT (a correlated name) is not the inner SELECT's to move
            "SELECT Name FROM Track AS T1 WHERE EXISTS "
            "(SELECT 1 FROM Album AS T2 WHERE T2.AlbumId = T1.AlbumId AND T1.Title = 'x')",
            "T1",
            "Title",
        ),
        (  # an undefined qualifier
            "SELECT X9.Title FROM Track AS T1 JOIN Album AS T2 ON T1.AlbumId = T2.AlbumId",
            "X9",
            "Title",
        ),
        ("SELECT T1.Title FROM ((", "T1", "Title"),  # does not parse
    ],
)
def test_nothing_is_moved_unless_one_table_of_the_select_has_it(
    chinook_tables, sql: str, qualifier: str, column: str
) -> None:
    assert requalify(sql, "sqlite", chinook_tables, qualifier, column) is None


def test_aliases_keep_their_quoting_in_postgresql(chinook_tables) -> None:
    sql = 'SELECT "t1"."Title" FROM "Track" AS "t1" JOIN "Album" AS "T2" ON "t1"."AlbumId" = "T2"."AlbumId"'
    done = requalify(sql, "postgres", chinook_tables, "t1", "Title")
    assert done is not None
    assert done.sql.startswith('SELECT "T2"."Title" FROM "Track" AS "t1" JOIN "Album" AS "T2"')
