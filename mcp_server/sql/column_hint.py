"""A precise hint for a "no such column" error: which table an alias stands for, and where the column is.

The engines say only that ``T1.SupportRepId`` does not exist. A model (or a person) that wrote it
usually bound the column to the wrong alias, or forgot a join. :func:`column_hint` reads the failed
statement with sqlglot and the database's catalog, and says what is true instead::

    T1 is Employee, which has no column SupportRepId; SupportRepId is a column of Customer (T2).

Tables the query does not join are named nearest first, by foreign keys from the query's tables (given
``links``): ``UnitPrice`` in a query over Categories points to Products before a view or a farther table.
It is called on the error path only (``Executor``), so every client reads it: the agent loop and
multi-turn training feed it back to the model, and an IDE's own model reads it over MCP. It never runs
SQL; a message or statement it cannot read gives ``None`` (the engine's generic hint stays).
"""

from __future__ import annotations

import difflib
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from sqlglot import exp

from sqlr1.mcp_server.sql.join_completion import ForeignKeyLink
from sqlr1.mcp_server.sql.parse import parse_statement

__all__ = ["ambiguous_column", "column_hint", "missing_column"]

# The missing name in each engine's message, as written in the statement (qualifier.column or column).
_MESSAGES = (
    re.compile(r"no such column: (?P<name>\S+)"),  # SQLite
    re.compile(r"Unknown column '(?P<name>[^']+)'"),  # MySQL, MariaDB
    re.compile(r'Table "(?P<qualifier>[^"]+)" does not have a column named "(?P<column>[^"]+)"'),  # DuckDB
    re.compile(r'Referenced column "(?P<column>[^"]+)" not found'),  # DuckDB
    re.compile(r"column (?P<name>\S+) does not exist"),  # PostgreSQL
)
# The name in each engine's "ambiguous column" message.
_AMBIGUOUS = (
    re.compile(r"ambiguous column name: (?P<column>\S+)"),  # SQLite
    re.compile(r"Column '(?P<column>[^']+)' in .+ is ambiguous"),  # MySQL, MariaDB
    re.compile(r'column reference "(?P<column>[^"]+)" is ambiguous'),  # PostgreSQL
    re.compile(r'Ambiguous reference to column name "(?P<column>[^"]+)"'),  # DuckDB
)
_SHOWN_COLUMNS = 12


def missing_column(message: str) -> tuple[str | None, str] | None:
    """``(qualifier, column)`` named by an engine's "no such column" message, or ``None``."""
    for pattern in _MESSAGES:
        match = pattern.search(message)
        if match is None:
            continue
        groups = match.groupdict()
        if groups.get("name"):
            qualifier, _, column = groups["name"].rstrip(".,;").rpartition(".")
            return _unquote(qualifier) or None, _unquote(column)
        return _unquote(groups.get("qualifier") or "") or None, _unquote(groups["column"])
    return None


def ambiguous_column(message: str) -> str | None:
    """The column an engine's "ambiguous column" message names, or ``None``."""
    for pattern in _AMBIGUOUS:
        match = pattern.search(message)
        if match is not None:
            return _unquote(match.group("column")).rpartition(".")[2]
    return None


def column_hint(
    message: str,
    sql: str,
    dialect: str,
    tables: Mapping[str, Sequence[str]],
    links: Iterable[ForeignKeyLink] = (),
) -> str | None:
    """One or two sentences on a missing (or ambiguous) column of ``sql``, from the catalog ``tables``
    (name → columns) and its foreign ``links`` (they order the tables the query does not join: nearest
    first).

    ``None`` when the message names no column, the statement does not parse, or nothing useful is known.
    """
    named = missing_column(message)
    if named is None:
        shared = ambiguous_column(message)
        tree = parse_statement(sql, dialect) if shared else None
        return _ambiguity_hint(tree, shared, tables) if tree is not None and shared else None
    qualifier, column = named
    tree = parse_statement(sql, dialect)
    if tree is None:
        return None
    catalog = {name.lower(): (name, list(cols)) for name, cols in tables.items()}
    # Every catalog table the statement names, and the aliases it goes by (all scopes: a hint, not a binder).
    owner_of: dict[str, str] = {}  # alias or table name (lower case) -> catalog table name
    aliases: dict[str, list[str]] = {}  # catalog table name -> its aliases as written
    for table in tree.find_all(exp.Table):
        entry = catalog.get(table.name.lower())
        if entry is None:
            continue
        owner_of[table.name.lower()] = entry[0]
        if table.alias:
            owner_of[table.alias.lower()] = entry[0]
            aliases.setdefault(entry[0], []).append(table.alias)

    def has_column(name: str) -> bool:
        return column.lower() in (c.lower() for c in catalog[name.lower()][1])

    def named_as(name: str) -> str:
        return f"{name} ({', '.join(sorted(set(aliases[name])))})" if name in aliases else name

    joined = sorted(set(owner_of.values()))
    if qualifier is None:
        first = f"No table in the query has a column {column}"
    else:
        owner = owner_of.get(qualifier.lower())
        if owner is None or has_column(owner):
            return None  # an undefined qualifier, or not a binding problem: the engine's hint fits
        first = (
            f"{owner} has no column {column}"
            if qualifier.lower() == owner.lower()
            else f"{qualifier} is {owner}, which has no column {column}"
        )
    holding = [n for n in joined if has_column(n)]
    elsewhere = _nearest_first(
        [name for name, _ in sorted(catalog.values()) if name not in joined and has_column(name)],
        joined,
        links,
    )
    if holding:
        also = f" (also of {', '.join(elsewhere[:3])}, which the query does not join)" if elsewhere else ""
        return f"{first}; {column} is a column of {', '.join(named_as(n) for n in holding)}{also}."
    if elsewhere:
        return f"{first}; {column} is a column of {', '.join(elsewhere[:3])}, which the query does not join."
    pool = [(n, c) for n in joined for c in catalog[n.lower()][1]]
    close = difflib.get_close_matches(column.lower(), [c.lower() for _, c in pool], n=3, cutoff=0.6)
    if close:
        picks = [f"{n}.{c}" for n, c in pool if c.lower() in close][:3]
        return f"{first}. Did you mean {' or '.join(picks)}?"
    if qualifier is not None:
        owner = owner_of[qualifier.lower()]
        cols = catalog[owner.lower()][1]
        more = ", …" if len(cols) > _SHOWN_COLUMNS else ""
        return f"{first}. {owner}'s columns: {', '.join(cols[:_SHOWN_COLUMNS])}{more}."
    return None


def _ambiguity_hint(tree: exp.Expr, column: str, tables: Mapping[str, Sequence[str]]) -> str | None:
    """The references of the statement that hold ``column`` (all scopes: a hint, not a binder), e.g.
    "Freight is a column of Invoices and Orders (Orders, Q1); qualify it by the one you mean: Invoices.Freight,
    Orders.Freight or Q1.Freight."; ``None`` when fewer than two do."""
    catalog = {name.lower(): (name, {c.lower() for c in cols}) for name, cols in tables.items()}
    refs: dict[str, list[str]] = {}  # catalog table -> its references (alias, or its name), as written
    for table in tree.find_all(exp.Table):
        entry = catalog.get(table.name.lower())
        if entry is not None and column.lower() in entry[1]:
            ref = table.alias or table.name
            if ref not in refs.setdefault(entry[0], []):
                refs[entry[0]].append(ref)
    every = [ref for name in sorted(refs) for ref in refs[name]]
    if len(every) < 2:
        return None
    names = [f"{name} ({', '.join(refs[name])})" if refs[name] != [name] else name for name in sorted(refs)]
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
    choices = [f"{ref}.{column}" for ref in every]
    return (
        f"{column} is a column of {listed}; qualify it by the one you mean: "
        f"{', '.join(choices[:-1])} or {choices[-1]}."
    )


def _nearest_first(names: list[str], start: Sequence[str], links: Iterable[ForeignKeyLink]) -> list[str]:
    """``names`` by their foreign-key distance from the tables ``start`` (either direction), then as given;
    a table no key reaches (a view) comes last."""
    edges: dict[str, set[str]] = {}
    for link in links:
        a, b = link.table.lower(), link.ref_table.lower()
        edges.setdefault(a, set()).add(b)
        edges.setdefault(b, set()).add(a)
    distance = {table.lower(): 0 for table in start}
    frontier = deque(distance)
    while frontier:
        table = frontier.popleft()
        for other in sorted(edges.get(table, ())):
            if other not in distance:
                distance[other] = distance[table] + 1
                frontier.append(other)
    far = len(distance) + 1
    return sorted(names, key=lambda name: distance.get(name.lower(), far))  # stable: ties keep their order


def _unquote(name: str) -> str:
    return name.strip().strip('"`[]')
