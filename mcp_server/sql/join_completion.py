"""The join a statement forgot: a column of a table the query does not join, reached by foreign keys.

A small model often names an attribute of a related table without joining it::

    SELECT ProductName FROM Products WHERE CategoryName = 'Seafood'        -- no such column: CategoryName

``CategoryName`` is a column of Categories, which Products references (``Products.CategoryID``).
:func:`complete_joins` adds the join along that foreign-key path, as the FROM-clause inference of
IRNet/SemQL does, and qualifies the names the new table would make ambiguous::

    SELECT ProductName FROM Products JOIN Categories ON Products.CategoryID = Categories.CategoryID
    WHERE Categories.CategoryName = 'Seafood'

It only completes what is unambiguous: the nearest table holding the column (at most ``MAX_HOPS``
foreign keys away from a table the query's SELECT names) must be the only one at that distance. A path
that follows every key from the referencing table to the referenced one (``fans_out=False``) keeps the
query's rows as they were; one that goes the other way (Customer → Invoice) can repeat rows, which the
caller may treat as less certain. It never runs SQL; ``None`` when there is nothing it can complete.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from sqlr1.mcp_server.sql.parse import parse_statement

__all__ = ["MAX_HOPS", "ForeignKeyLink", "JoinCompletion", "complete_joins", "foreign_key_links"]

MAX_HOPS = 2  # Product -> Category is one; Track -> Album -> Artist is two
SAFE_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ForeignKeyLink:
    """``table(columns)`` references ``ref_table(ref_columns)``."""

    table: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


class _ForeignKey(Protocol):
    columns: list[str]
    ref_table: str
    ref_columns: list[str]


class _Table(Protocol):
    name: str

    @property
    def foreign_keys(self) -> Sequence[_ForeignKey]: ...


def foreign_key_links(tables: Iterable[_Table]) -> list[ForeignKeyLink]:
    """The foreign keys of catalog ``tables`` (an engine's catalog, or a described schema's tables)."""
    return [
        ForeignKeyLink(t.name, tuple(fk.columns), fk.ref_table, tuple(fk.ref_columns))
        for t in tables
        for fk in t.foreign_keys
    ]


@dataclass(frozen=True)
class JoinCompletion:
    """The completed statement, the tables it joined (in order) and whether a join can repeat rows."""

    sql: str
    joined: tuple[str, ...]
    fans_out: bool


@dataclass(frozen=True)
class _Hop:
    """One join: from ``start`` (a table the SELECT already has) to ``end`` over ``pairs`` of columns."""

    start: str
    end: str
    pairs: tuple[tuple[str, str], ...]  # (start column, end column)
    forward: bool  # start references end: every start row meets at most one end row


def complete_joins(
    sql: str,
    dialect: str,
    tables: Mapping[str, Sequence[str]],
    links: Iterable[ForeignKeyLink],
    column: str,
) -> JoinCompletion | None:
    """Join the table that holds the unqualified ``column`` into the first SELECT of ``sql`` that uses
    it without having it, over the catalog ``tables`` (name → columns) and its foreign ``links``."""
    tree = parse_statement(sql, dialect)
    if tree is None:
        return None
    catalog = {name.lower(): (name, {c.lower() for c in cols}) for name, cols in tables.items()}
    wanted = column.lower()
    for select in tree.find_all(exp.Select):
        named = _named_tables(select, catalog)
        if named is None or not named or not _misses(select, wanted, catalog):
            continue
        path = _path(set(named.values()), wanted, catalog, list(links))
        if path is None:
            return None
        _join(select, path, named, catalog, wanted, dialect)
        return JoinCompletion(
            sql=tree.sql(dialect=dialect),
            joined=tuple(hop.end for hop in path),
            fans_out=any(not hop.forward for hop in path),
        )
    return None


def _named_tables(select: exp.Select, catalog: dict[str, tuple[str, set[str]]]) -> dict[str, str] | None:
    """The catalog tables in ``select``'s own FROM and JOINs: reference (alias or name, as written) →
    table name.
    ``None`` when it reads from something else (a subquery, a CTE, a function): its columns are unknown."""
    named: dict[str, str] = {}
    for table in _sources(select):
        if not isinstance(table, exp.Table) or table.name.lower() not in catalog:
            return None
        named[table.alias or table.name] = catalog[table.name.lower()][0]
    return named


def _sources(select: exp.Select) -> list[exp.Expression]:
    """What ``select``'s own FROM and JOINs read from (tables, subqueries, functions)."""
    clauses = [select.args.get("from_"), *(select.args.get("joins") or [])]
    return [clause.this for clause in clauses if clause is not None]


def _misses(select: exp.Select, wanted: str, catalog: dict[str, tuple[str, set[str]]]) -> bool:
    """``select`` itself names ``wanted`` unqualified, and neither its tables, its output names nor an
    enclosing SELECT's tables (a correlated reference) have it."""
    uses = [
        col
        for col in select.find_all(exp.Column)
        if not col.table and col.name.lower() == wanted and col.find_ancestor(exp.Select) is select
    ]
    aliases = {e.alias.lower() for e in select.expressions if isinstance(e, exp.Alias)}
    if not uses or wanted in aliases:  # ORDER BY total, where total is an output name
        return False
    scope: exp.Expression | None = select
    while isinstance(scope, exp.Select):
        named = _named_tables(scope, catalog)
        if named is None or any(wanted in catalog[t.lower()][1] for t in named.values()):
            return False
        scope = scope.parent.find_ancestor(exp.Select) if scope.parent else None
    return True


def _path(
    start: set[str], wanted: str, catalog: dict[str, tuple[str, set[str]]], links: list[ForeignKeyLink]
) -> list[_Hop] | None:
    """The shortest foreign-key path from the tables in ``start`` to the one table holding ``wanted``
    (breadth first, at most ``MAX_HOPS``); ``None`` if there is none or two tables tie."""
    edges: dict[str, list[_Hop]] = {}
    for link in links:
        if link.table.lower() not in catalog or link.ref_table.lower() not in catalog:
            continue
        a, b = catalog[link.table.lower()][0], catalog[link.ref_table.lower()][0]
        pairs = tuple(zip(link.columns, link.ref_columns, strict=True))
        edges.setdefault(a, []).append(_Hop(a, b, pairs, forward=True))
        edges.setdefault(b, []).append(_Hop(b, a, tuple((y, x) for x, y in pairs), forward=False))
    came: dict[str, list[_Hop]] = {table: [] for table in start}
    frontier = deque(sorted(start))
    for _ in range(MAX_HOPS):
        reached: dict[str, list[_Hop]] = {}
        for table in frontier:
            for hop in edges.get(table, []):
                if hop.end not in came and hop.end not in reached:
                    reached[hop.end] = [*came[table], hop]
        holders = sorted(t for t in reached if wanted in catalog[t.lower()][1])
        if len(holders) == 1:
            return reached[holders[0]]
        if holders:
            return None  # two tables at the same distance hold it: a guess, not a completion
        came.update(reached)
        frontier = deque(sorted(reached))
    return None


def _join(
    select: exp.Select,
    path: list[_Hop],
    named: dict[str, str],
    catalog: dict[str, tuple[str, set[str]]],
    wanted: str,
    dialect: str,
) -> None:
    """Add ``path``'s joins to ``select`` and qualify the unqualified names that are no longer unique."""
    written = _written(select)  # how the query names its tables (alias or name), quoting kept
    ref_of = {table: written[ref] for ref, table in reversed(list(named.items()))}  # table -> reference
    before = dict(named)
    for hop in path:
        ref_of[hop.end] = _identifier(hop.end, dialect)
        on = exp.and_(
            *(
                exp.EQ(
                    this=exp.column(_identifier(a, dialect), table=ref_of[hop.start].copy()),
                    expression=exp.column(_identifier(b, dialect), table=ref_of[hop.end].copy()),
                )
                for a, b in hop.pairs
            )
        )
        select.join(exp.Table(this=ref_of[hop.end].copy()), on=on, copy=False)
        named[hop.end] = hop.end
    for col in list(select.find_all(exp.Column)):
        if col.table or col.find_ancestor(exp.Select) is not select or isinstance(col.this, exp.Star):
            continue
        name = col.name.lower()
        if name == wanted:
            col.set("table", ref_of[path[-1].end].copy())
            continue
        holders = [ref for ref, table in named.items() if name in catalog[table.lower()][1]]
        owners = [ref for ref, table in before.items() if name in catalog[table.lower()][1]]
        if len(holders) > 1 and len(owners) == 1:
            col.set("table", written[owners[0]].copy())


def _written(select: exp.Select) -> dict[str, exp.Identifier]:
    """Each table reference of ``select``'s FROM and JOINs (alias or name) → its identifier as written."""
    refs: dict[str, exp.Identifier] = {}
    for table in _sources(select):
        if isinstance(table, exp.Table):
            alias = table.args.get("alias")
            ident = alias.this if isinstance(alias, exp.TableAlias) else table.this
            if isinstance(ident, exp.Identifier):
                refs[ident.name] = ident
    return refs


def _identifier(name: str, dialect: str) -> exp.Identifier:
    """A catalog name as an identifier of ``dialect``: quoted where it must be (spaces, or letter case
    the dialect would fold: ``"Products"`` in PostgreSQL)."""
    quoted = not SAFE_IDENTIFIER.match(name) or Dialect.get_or_raise(dialect).case_sensitive(name)
    return exp.to_identifier(name, quoted=quoted)
