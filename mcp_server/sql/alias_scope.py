"""Which table each alias of a statement stands for, and the qualified columns its alias does not have.

The catalog grammar (``method/grammar.py``) checks ``Customer.SupportRepId`` against Customer's columns,
but a context-free grammar cannot know which table ``T1`` stands for: the alias is declared after the
SELECT list that uses it. :func:`alias_scope` reads a finished statement with sqlglot and says::

    AliasScope(bindings={"T1": ("Employee",), "T2": ("Customer",)}, tables=(), misbound=["T1.SupportRepId"])

The generator then decodes the query again under a grammar with those bindings
(``sql_grammar(..., aliases=...)``), so that ``T1.`` can only be followed by a column of Employee.
It never runs SQL; a statement it cannot parse gives ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlglot import exp

from sqlr1.mcp_server.sql.parse import parse_statement

__all__ = ["AliasScope", "alias_scope"]


@dataclass(frozen=True)
class AliasScope:
    """The aliases of one statement: ``bindings`` maps an alias as written to the catalog tables it
    stands for (``None``: a subquery's alias, whose columns the catalog does not know); ``tables`` are
    the catalog tables it names without an alias (their own name qualifies their columns); ``misbound``
    lists the qualified columns, as ``qualifier.column``, whose qualifier has no such column or names
    no table of the statement."""

    bindings: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    tables: tuple[str, ...] = ()
    misbound: list[str] = field(default_factory=list)


def alias_scope(sql: str, dialect: str, tables: Mapping[str, Sequence[str]]) -> AliasScope | None:
    """The aliases of ``sql`` over the catalog ``tables`` (name → columns); ``None``: it does not parse.

    Scopes are not told apart (an alias used twice stands for all its tables): it is a decoding aid,
    and the engine still checks every statement.
    """
    tree = parse_statement(sql, dialect)
    if tree is None:
        return None
    catalog = {name.lower(): (name, {c.lower() for c in cols}) for name, cols in tables.items()}
    bound: dict[str, set[str] | None] = {}
    named: dict[str, str] = {}  # lower case -> catalog name, of the tables named without an alias
    for table in tree.find_all(exp.Table):
        entry = catalog.get(table.name.lower())
        if entry is None:
            continue
        if not table.alias:
            named[table.name.lower()] = entry[0]
            continue
        seen = bound.setdefault(table.alias, set())
        if seen is not None:
            seen.add(entry[0])
    for sub in tree.find_all(exp.Subquery):
        if sub.alias:
            bound[sub.alias] = None
    by_lower = {alias.lower(): alias for alias in bound}
    misbound: list[str] = []
    for column in tree.find_all(exp.Column):
        qualifier = column.table
        if not qualifier or isinstance(column.this, exp.Star):
            continue
        name = column.name.lower()
        alias = by_lower.get(qualifier.lower())
        if alias is not None:
            owners = bound[alias]
            ok = owners is None or any(name in catalog[t.lower()][1] for t in owners)
        elif qualifier.lower() in named:
            ok = name in catalog[qualifier.lower()][1]
        else:
            ok = False  # a qualifier that names no table of the statement
        if not ok:
            misbound.append(f"{qualifier}.{column.name}")
    bindings = {alias: None if owners is None else tuple(sorted(owners)) for alias, owners in bound.items()}
    return AliasScope(bindings=bindings, tables=tuple(named.values()), misbound=list(dict.fromkeys(misbound)))
