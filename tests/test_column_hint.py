"""mcp_server.sql.column_hint: the precise hint for a missing column, from the statement and the catalog.

Each engine's real message is checked against its real catalog in tests/engine_contract.py; here, the
sentences for each kind of mistake over Chinook's catalog, and the cases that must give no hint."""

from __future__ import annotations

import pytest

from sqlr1.mcp_server.sql.column_hint import ambiguous_column, column_hint, missing_column
from sqlr1.mcp_server.sql.join_completion import ForeignKeyLink


@pytest.mark.parametrize(
    ("message", "named"),
    [
        ("no such column: T1.SupportRepId", ("T1", "SupportRepId")),
        ("no such column: Nme (hint: check ...)", (None, "Nme")),
        ("Unknown column 'T1.SupportRepId' in 'field list'", ("T1", "SupportRepId")),
        ('Binder Error: Table "T1" does not have a column named "SupportRepId"', ("T1", "SupportRepId")),
        ('Binder Error: Referenced column "Nme" not found in FROM clause!', (None, "Nme")),
        ("column t1.supportrepid does not exist", ("t1", "supportrepid")),
        ('column "Nme" does not exist', (None, "Nme")),
        ("no such table: Foo", None),
        ("ambiguous column name: Name", None),
    ],
)
def test_missing_column_reads_every_engines_message(
    message: str, named: tuple[str | None, str] | None
) -> None:
    assert missing_column(message) == named


@pytest.mark.parametrize(
    ("message", "sql", "hint"),
    [
        (  # the alias is the wrong table; the column is in a joined one
            "no such column: T1.SupportRepId",
            "SELECT COUNT(*) FROM Employee AS T1 JOIN Customer AS T2 ON T1.SupportRepId = T2.CustomerId",
            "T1 is Employee, which has no column SupportRepId; SupportRepId is a column of Customer (T2).",
        ),
        (  # ... and also in a table the query does not join
            "no such column: T2.CustomerId",
            "SELECT T1.FirstName FROM Customer AS T1 JOIN InvoiceLine AS T2 ON T1.CustomerId = T2.CustomerId",
            "T2 is InvoiceLine, which has no column CustomerId; CustomerId is a column of Customer (T1) "
            "(also of Invoice, which the query does not join).",
        ),
        (  # qualified by the table's own name, the column only in tables not joined
            "no such column: Album.Name",
            "SELECT Album.Name FROM Album",
            "Album has no column Name; Name is a column of Artist, Genre, MediaType, which the query does not join.",
        ),
        (  # unqualified, a misspelling of a joined table's column
            "no such column: Nme",
            "SELECT Nme FROM Artist",
            "No table in the query has a column Nme. Did you mean Artist.Name?",
        ),
        (  # nothing close: the table's columns
            "no such column: T1.Foo",
            "SELECT T1.Foo FROM Artist AS T1",
            "T1 is Artist, which has no column Foo. Artist's columns: ArtistId, Name.",
        ),
        (  # a subquery's alias is read too
            "no such column: t.Total",
            "SELECT x FROM (SELECT t.Total AS x FROM Track AS t)",
            "t is Track, which has no column Total; Total is a column of Invoice, which the query does not join.",
        ),
    ],
)
def test_hint_says_what_the_alias_is_and_where_the_column_lives(
    chinook_tables: dict[str, list[str]], message: str, sql: str, hint: str
) -> None:
    assert column_hint(message, sql, "sqlite", chinook_tables) == hint


@pytest.mark.parametrize(
    ("message", "sql"),
    [
        ("no such column: X9.Name", "SELECT X9.Name FROM Artist"),  # an undefined qualifier
        ("no such column: T1.Name", "SELECT T1.Name FROM Artist AS T1"),  # the column is there after all
        ("no such column: Zzzzzz", "SELECT Zzzzzz FROM Artist"),  # nothing known to say
        ("no such column: T1.Name", "SELECT T1.Name FROM (("),  # does not parse
        ("no such table: Foo", "SELECT * FROM Foo"),  # not a column error
    ],
)
def test_no_hint_where_nothing_precise_is_known(
    chinook_tables: dict[str, list[str]], message: str, sql: str
) -> None:
    assert column_hint(message, sql, "sqlite", chinook_tables) is None


def test_tables_not_joined_are_named_nearest_first_by_foreign_keys(
    chinook_tables: dict[str, list[str]], chinook_links: list[ForeignKeyLink]
) -> None:
    """Name is a column of five tables Album does not join; by name the first three are Artist, Genre and
    MediaType, but Track references Album directly, so it comes before the tables two keys away."""
    message, sql = "no such column: Album.Name", "SELECT Album.Name FROM Album"
    by_name = column_hint(message, sql, "sqlite", chinook_tables)
    nearest = column_hint(message, sql, "sqlite", chinook_tables, chinook_links)
    assert by_name is not None and "Artist, Genre, MediaType, which" in by_name
    assert nearest == (
        "Album has no column Name; Name is a column of Artist, Track, Genre, which the query does not join."
    )


@pytest.mark.parametrize(
    "message",
    [
        "ambiguous column name: Name",  # SQLite
        "Column 'Name' in SELECT is ambiguous",  # MariaDB
        "Column 'Name' in field list is ambiguous",  # MySQL
        'column reference "Name" is ambiguous',  # PostgreSQL
        "Binder Error: Ambiguous reference to column name \"Name\" (use: 'g.Name' or 't.Name')",  # DuckDB
    ],
)
def test_ambiguous_column_reads_every_engines_message(message: str) -> None:
    assert ambiguous_column(message) == "Name" and missing_column(message) is None


def test_an_ambiguous_name_gets_every_reference_that_holds_it(chinook_tables: dict[str, list[str]]) -> None:
    two = "SELECT Name FROM Track JOIN Genre ON Track.GenreId = Genre.GenreId"
    assert column_hint("ambiguous column name: Name", two, "sqlite", chinook_tables) == (
        "Name is a column of Genre and Track; qualify it by the one you mean: Genre.Name or Track.Name."
    )
    again = (  # the same table joined twice, as small models do
        "SELECT Name FROM Track AS t JOIN Track AS u ON t.TrackId = u.TrackId JOIN Genre AS g ON t.GenreId = g.GenreId"
    )
    assert column_hint("ambiguous column name: Name", again, "sqlite", chinook_tables) == (
        "Name is a column of Genre (g) and Track (t, u); qualify it by the one you mean: g.Name, t.Name or u.Name."
    )
    one = "SELECT Name FROM Track JOIN Album ON Track.AlbumId = Album.AlbumId"  # not ambiguous in the catalog
    assert column_hint("ambiguous column name: Name", one, "sqlite", chinook_tables) is None
