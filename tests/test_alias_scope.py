"""mcp_server.sql.alias_scope: which table each alias stands for, and the qualified columns that are not
of their qualifier's table, over Chinook's real catalog (the grammar that binds the aliases runs in
llama.cpp in test_sql_grammar.py; the re-decoding in test_instruct_generation.py)."""

from __future__ import annotations

import pytest

from sqlr1.mcp_server.sql.alias_scope import alias_scope


def test_an_alias_used_for_a_column_of_the_other_table_is_misbound(chinook_tables) -> None:
    sql = (
        "SELECT COUNT(T1.EmployeeId) FROM Employee AS T1 JOIN Customer AS T2 "
        "ON T1.SupportRepId = T2.CustomerId WHERE T1.Title = 'Sales Support Agent'"
    )
    scope = alias_scope(sql, "sqlite", chinook_tables)
    assert scope is not None
    assert scope.bindings == {"T1": ("Employee",), "T2": ("Customer",)} and scope.tables == ()
    assert scope.misbound == ["T1.SupportRepId"]


@pytest.mark.parametrize(
    ("sql", "misbound"),
    [
        # a qualifier that names nothing in the query (the alias declared is Q)
        ("SELECT AVG(O.Total) FROM Customer C JOIN Invoice Q ON C.CustomerId = Q.CustomerId", ["O.Total"]),
        # a table qualifier for a table the query does not name
        ("SELECT COUNT(*) FROM Employee WHERE Album.Title = 'x'", ["Album.Title"]),
        # a table that has an alias goes by it, not by its name
        ("SELECT Employee.FirstName FROM Employee AS e", ["Employee.FirstName"]),
        # letter case does not matter in SQL names
        ("SELECT t1.name FROM track AS T1", []),
        ("SELECT Track.Name, g.Name FROM Track JOIN Genre g ON Track.GenreId = g.GenreId", []),
        # a subquery's alias: its columns are not the catalog's, so they are not checked
        ("SELECT s.n FROM (SELECT COUNT(*) AS n FROM Track) AS s", []),
        ("SELECT Name, * FROM Artist a WHERE a.ArtistId IN (SELECT a2.ArtistId FROM Album a2)", []),
        ("SELECT T1.* FROM Album AS T1", []),
    ],
)
def test_misbound_qualifiers(chinook_tables, sql: str, misbound: list[str]) -> None:
    scope = alias_scope(sql, "sqlite", chinook_tables)
    assert scope is not None and scope.misbound == misbound


def test_bindings_of_a_reused_alias_and_a_subquery(chinook_tables) -> None:
    sql = (
        "SELECT s.n, T1.Name FROM Artist AS T1, (SELECT COUNT(*) AS n FROM Album AS T1) AS s "
        "WHERE T1.Title IS NOT NULL"
    )
    scope = alias_scope(sql, "sqlite", chinook_tables)
    assert scope is not None
    # scopes are not told apart: T1 stands for both chinook_tables, and Title is one of Album's
    assert scope.bindings == {"T1": ("Album", "Artist"), "s": None} and scope.misbound == []


def test_a_statement_that_does_not_parse_gives_none(chinook_tables) -> None:
    assert alias_scope("SELECT FROM WHERE (", "sqlite", chinook_tables) is None
