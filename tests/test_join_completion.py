"""mcp_server.sql.join_completion: joining, along the foreign keys, the table of a column the query named
without joining it, over Chinook's real catalog; every completed query is run on the real database
(the generator's use of it, on a retry: test_instruct_generation.py and test_confidence.py)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from sqlr1.mcp_server.sql.join_completion import ForeignKeyLink, complete_joins, foreign_key_links

CHINOOK = Path(__file__).parent.parent / "examples" / "chinook.sqlite"


def _rows(sql: str) -> list[tuple[object, ...]]:
    con = sqlite3.connect(f"file:{CHINOOK}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_column_of_the_referenced_table_is_joined_along_its_key(chinook_tables, chinook_links) -> None:
    sql = "SELECT Name FROM Track WHERE Title = 'Let There Be Rock'"
    with pytest.raises(sqlite3.OperationalError, match="no such column: Title"):
        _rows(sql)
    done = complete_joins(sql, "sqlite", chinook_tables, chinook_links, "Title")
    assert done is not None and done.joined == ("Album",) and not done.fans_out
    assert done.sql == (
        "SELECT Name FROM Track JOIN Album ON Track.AlbumId = Album.AlbumId "
        "WHERE Album.Title = 'Let There Be Rock'"
    )
    assert len(_rows(done.sql)) == 8


def test_two_keys_away_and_an_aliased_table(chinook_tables, chinook_links) -> None:
    sql = "SELECT SUM(il.Quantity) FROM InvoiceLine AS il WHERE Country = 'Canada'"
    done = complete_joins(sql, "sqlite", chinook_tables, chinook_links, "country")  # any letter case
    assert done is not None and done.joined == ("Invoice", "Customer") and not done.fans_out
    assert done.sql == (
        "SELECT SUM(il.Quantity) FROM InvoiceLine AS il JOIN Invoice ON il.InvoiceId = Invoice.InvoiceId "
        "JOIN Customer ON Invoice.CustomerId = Customer.CustomerId WHERE Customer.Country = 'Canada'"
    )
    assert _rows(done.sql) == [(304,)]


def test_names_the_new_table_makes_ambiguous_are_qualified_by_their_own_table(
    chinook_tables, chinook_links
) -> None:
    sql = "SELECT AlbumId, COUNT(*) FROM Track WHERE Title LIKE 'Greatest%' GROUP BY AlbumId"
    with pytest.raises(sqlite3.OperationalError):
        _rows(sql)
    done = complete_joins(sql, "sqlite", chinook_tables, chinook_links, "Title")
    assert done is not None
    assert "SELECT Track.AlbumId, COUNT(*)" in done.sql and "GROUP BY Track.AlbumId" in done.sql
    assert len(_rows(done.sql)) == 4


def test_a_join_against_the_key_can_repeat_rows_and_says_so(chinook_tables, chinook_links) -> None:
    done = complete_joins(
        "SELECT FirstName FROM Customer WHERE Total > 20", "sqlite", chinook_tables, chinook_links, "Total"
    )
    assert done is not None and done.joined == ("Invoice",) and done.fans_out
    assert "JOIN Invoice ON Customer.CustomerId = Invoice.CustomerId" in done.sql


def test_only_the_select_that_misses_the_column_is_completed(chinook_tables, chinook_links) -> None:
    sql = "SELECT Name FROM Artist WHERE ArtistId IN (SELECT ArtistId FROM Album WHERE Milliseconds > 1)"
    done = complete_joins(sql, "sqlite", chinook_tables, chinook_links, "Milliseconds")
    assert done is not None and done.joined == ("Track",) and done.fans_out
    assert done.sql == (
        "SELECT Name FROM Artist WHERE ArtistId IN (SELECT ArtistId FROM Album "
        "JOIN Track ON Album.AlbumId = Track.AlbumId WHERE Track.Milliseconds > 1)"
    )
    assert len(_rows(done.sql)) == 204


@pytest.mark.parametrize(
    ("sql", "column"),
    [
        # Playlist and Track both have a Name, one key away from PlaylistTrack: which one is a guess
        ("SELECT Name FROM PlaylistTrack", "Name"),
        # an output name, not a missing column
        ("SELECT COUNT(*) AS n FROM Track GROUP BY GenreId ORDER BY n", "n"),
        # a correlated reference to the enclosing SELECT's table
        ("SELECT Name FROM Artist WHERE EXISTS (SELECT 1 FROM Album WHERE Name = 'x')", "Name"),
        # the column is there already
        ("SELECT Name FROM Track", "Name"),
        # read from a subquery: its columns are not the catalog's
        ("SELECT Title FROM (SELECT Name FROM Track) AS t", "Title"),
        # no table holds it
        ("SELECT Nothing FROM Track", "Nothing"),
        # more than two keys away (Track -> InvoiceLine -> Invoice -> Customer -> Employee)
        ("SELECT COUNT(*) FROM Track WHERE ReportsTo = 2", "ReportsTo"),
        # does not parse
        ("SELECT Name FROM Track WHERE (", "Title"),
    ],
)
def test_nothing_to_complete(chinook_tables, chinook_links, sql: str, column: str) -> None:
    assert complete_joins(sql, "sqlite", chinook_tables, chinook_links, column) is None


def test_names_with_spaces_are_quoted_in_the_dialect() -> None:
    tables = {"Products": ["ProductID", "ProductName"], "Order Details": ["OrderID", "ProductID", "Quantity"]}
    links = [ForeignKeyLink("Order Details", ("ProductID",), "Products", ("ProductID",))]
    sql = "SELECT ProductName, SUM(Quantity) FROM Products GROUP BY ProductName"
    done = complete_joins(sql, "sqlite", tables, links, "Quantity")
    assert done is not None and done.fans_out
    assert (
        'JOIN "Order Details" ON Products.ProductID = "Order Details".ProductID' in done.sql
        and 'SUM("Order Details".Quantity)' in done.sql
    )
    mysql = complete_joins(sql, "mysql", tables, links, "Quantity")
    assert mysql is not None and "JOIN `Order Details` ON" in mysql.sql
    postgres = complete_joins(sql, "postgres", tables, links, "Quantity")
    assert postgres is not None and 'JOIN "Order Details" ON' in postgres.sql
    # PostgreSQL folds unquoted names to lower case: a mixed-case catalog name is quoted, an alias
    # stays as the query wrote it
    aliased = "SELECT p.ProductName FROM Products AS p WHERE Quantity > 3"
    pg = complete_joins(aliased, "postgres", tables, links, "Quantity")
    assert pg is not None and pg.sql == (
        'SELECT p.ProductName FROM Products AS p JOIN "Order Details" ON p."ProductID" = "Order Details"'
        '."ProductID" WHERE "Order Details".Quantity > 3'
    )
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE Products (ProductID INTEGER PRIMARY KEY, ProductName TEXT)")
    con.execute('CREATE TABLE "Order Details" (OrderID INT, ProductID INT REFERENCES Products, Quantity INT)')
    con.executemany("INSERT INTO Products VALUES (?, ?)", [(1, "Chai"), (2, "Tofu")])
    con.executemany('INSERT INTO "Order Details" VALUES (?, ?, ?)', [(1, 1, 5), (2, 1, 3), (2, 2, 4)])
    assert con.execute(done.sql).fetchall() == [("Chai", 8), ("Tofu", 4)]


@pytest.mark.services
@pytest.mark.parametrize("kind", ["postgres", "mariadb", "duckdb"])
def test_the_completed_query_runs_on_each_engine(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Mixed-case names that PostgreSQL folds unless quoted, each engine's "no such column" message, its
    catalog's foreign keys (SchemaInspector), and the completed query run through the guarded executor."""
    import sqlalchemy as sa

    from sqlr1.mcp_server.catalog.schema import SchemaInspector
    from sqlr1.mcp_server.core.config import GuardSettings
    from sqlr1.mcp_server.core.errors import QueryFailed
    from sqlr1.mcp_server.db.executor import Executor
    from sqlr1.mcp_server.db.registry import Registry
    from sqlr1.mcp_server.sql.column_hint import missing_column
    from sqlr1.mcp_server.sql.dialects import sqlglot_dialect

    suffix = uuid.uuid4().hex[:8]
    category, product = f"Category_{suffix}", f"Product_{suffix}"
    if kind == "duckdb":
        url, target = f"duckdb:///{tmp_path / 'x.duckdb'}", str(tmp_path / "x.duckdb")
    else:
        url = request.getfixturevalue("postgres_url" if kind == "postgres" else "mariadb_url")
        target = f"db={url}"
    q = "`{}`".format if kind == "mariadb" else '"{}"'.format
    ddl = [
        f"CREATE TABLE {q(category)} ({q('CategoryId')} INT PRIMARY KEY, {q('CategoryName')} VARCHAR(50))",
        f"CREATE TABLE {q(product)} ({q('ProductId')} INT PRIMARY KEY, {q('ProductName')} VARCHAR(50), "
        f"{q('CategoryId')} INT, FOREIGN KEY ({q('CategoryId')}) REFERENCES {q(category)} ({q('CategoryId')}))",
        f"INSERT INTO {q(category)} VALUES (1, 'Seafood'), (2, 'Dairy')",
        f"INSERT INTO {q(product)} VALUES (1, 'Ikura', 1), (2, 'Konbu', 1), (3, 'Brie', 2)",
    ]
    setup = sa.create_engine(url)
    with setup.begin() as conn:
        for statement in ddl:
            conn.execute(sa.text(statement))
    setup.dispose()
    registry = Registry.from_targets([target])
    name = registry.names()[0]
    try:
        executor = Executor(registry, GuardSettings())
        sql = f"SELECT {q('ProductName')} FROM {q(product)} WHERE {q('CategoryName')} = 'Seafood'"
        with pytest.raises(QueryFailed) as info:
            executor.run(name, sql)
        assert missing_column(info.value.error.message) == (None, "CategoryName")
        schema = SchemaInspector(registry).describe(name, [category, product])
        tables = {t.name: [c.name for c in t.columns] for t in schema.tables}
        links = foreign_key_links(schema.tables)
        dialect = sqlglot_dialect(registry.engine(name).spec.kind)
        done = complete_joins(sql, dialect, tables, links, "CategoryName")
        assert done is not None and done.joined == (category,) and not done.fans_out
        result = executor.run(name, done.sql)
        assert sorted(str(row[0]) for row in result.rows) == ["Ikura", "Konbu"]
    finally:
        registry.close()
        setup = sa.create_engine(url)
        with setup.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {q(product)}"))
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {q(category)}"))
        setup.dispose()
