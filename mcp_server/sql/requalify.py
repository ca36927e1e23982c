"""A column qualified by the wrong table of the query: moved to the one table of the query that has it.

A small model often binds a column to the other alias of a join::

    SELECT T1.CompanyName FROM Products AS T1 JOIN Suppliers AS T2 ON T1.SupplierID = T2.SupplierID
    -- no such column: T1.CompanyName (hint: T1 is Products, ...; CompanyName is a column of Suppliers (T2))

:func:`requalify` does what that hint says: every ``T1.CompanyName`` of that SELECT becomes
``T2.CompanyName``. It only moves a column when exactly one other table of the same SELECT (its own
FROM and JOINs, all of them catalog tables) has it; a tie, a subquery source or a qualifier of an
enclosing SELECT (a correlated name) is left alone. It never runs SQL; ``None`` when there is nothing
it can move. (``sql.join_completion`` handles the other half: a column of a table the query never joins.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from sqlr1.mcp_server.sql.join_completion import select_tables, table_references
from sqlr1.mcp_server.sql.parse import parse_statement

__all__ = ["Requalified", "requalify"]


@dataclass(frozen=True)
class Requalified:
    """The mended statement, and the move as ``T1.CompanyName -> T2.CompanyName`` (as written)."""

    sql: str
    moved: str


def requalify(
    sql: str, dialect: str, tables: Mapping[str, Sequence[str]], qualifier: str, column: str
) -> Requalified | None:
    """Qualify ``qualifier.column`` of ``sql`` by the one other table of its SELECT that has ``column``,
    over the catalog ``tables`` (name → columns); ``None`` when that table is not unique or not known."""
    tree = parse_statement(sql, dialect)
    if tree is None:
        return None
    catalog = {name.lower(): (name, {c.lower() for c in cols}) for name, cols in tables.items()}
    wanted, bound = column.lower(), qualifier.lower()
    for select in tree.find_all(exp.Select):
        named = select_tables(select, catalog)
        if not named:
            continue
        ref = next((r for r in named if r.lower() == bound), None)
        if ref is None or wanted in catalog[named[ref].lower()][1]:
            continue
        uses = [
            col
            for col in select.find_all(exp.Column)
            if col.table.lower() == bound
            and col.name.lower() == wanted
            and col.find_ancestor(exp.Select) is select
        ]
        holders = [r for r, table in named.items() if wanted in catalog[table.lower()][1]]
        if not uses:
            continue  # named only in a nested SELECT, which reads its own tables
        if len(holders) != 1:
            return None
        target = table_references(select)[holders[0]]
        for col in uses:
            col.set("table", target.copy())
        return Requalified(
            sql=tree.sql(dialect=dialect),
            moved=f"{ref}.{uses[0].name} -> {target.name}.{uses[0].name}",
        )
    return None
