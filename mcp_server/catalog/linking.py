"""Schema linking: the tables a question needs, so a large schema is not prompted whole.

Owns :func:`link_tables`: from a :class:`~mcp_server.catalog.schema.DatabaseSchema`, the question (with its
evidence) and the values value retrieval found, it keeps the tables the question names (more than
half of the name's words), the tables whose columns match question words that no named table's
columns explain (identifier words split from CamelCase/snake_case, plural-stemmed, matched exactly
or by a long shared prefix), the tables holding matched values, and then closes the set
over foreign keys: the tables on the shortest join path between kept tables, and the tables one
foreign key away from a table the question names (the lookups and link tables a join needs).
Lexical and deterministic: no model, no database access. Recall is measured on Spider and BIRD dev
gold (``benchmarks/schema_linking_bench.py``); :func:`gold_tables` extracts a gold query's tables.

Used by ``generation.py`` when a schema is larger than ``GenerationConfig.link_above_chars``; a
small schema is prompted whole (its KV prefix is then cached per database).
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlr1.mcp_server.catalog.schema import DatabaseSchema, TableSchema

__all__ = ["LinkedTables", "gold_tables", "link_tables", "subset", "words"]


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SPLIT = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_STOP = _word_set(
    """a an the of in on at to for from by with and or not no is are was were be been has have had do
    does did what which who whom whose when where how many much list show give find return get all
    each every any some that this these those there their its it as than then more most less least
    top per me i we our you your name names number count average avg sum max min"""
)
_GENERIC = _word_set("id ids code type key no num date")  # weak evidence when matched alone
_PREFIX = 5  # words sharing this many leading letters match (composer ~ composed)


def _stem(word: str) -> str:
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("ses", "xes", "ches", "shes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def words(text: str) -> list[str]:
    """Stemmed lower-case words of an identifier or a sentence (CamelCase and snake_case split)."""
    return [_stem(w) for w in _SPLIT.findall(text) if w]


def _match(a: str, b: str) -> bool:
    return a == b or (len(a) >= _PREFIX and len(b) >= _PREFIX and a[:_PREFIX] == b[:_PREFIX])


@dataclass(frozen=True)
class LinkedTables:
    """The tables kept (in schema order) and why each was kept."""

    tables: list[str]
    reasons: dict[str, str]


def _named(table: TableSchema, asked: set[str]) -> bool:
    """Whether the question names ``table``: more than half of its name's words (``Products``; not
    ``Alphabetical list of products``, a view that merely mentions them)."""
    name_words = [w for w in words(table.name) if w not in _STOP]
    hits = sum(1 for w in name_words if any(_match(q, w) for q in asked))
    return bool(name_words) and hits * 2 > len(name_words)


def _column_hits(table: TableSchema, asked: set[str]) -> dict[str, float]:
    """Question words matched by ``table``'s column names (generic words such as ``id`` weigh less)."""
    name_words = set(words(table.name))
    hits: dict[str, float] = {}
    for col in table.columns:
        for w in words(col.name):
            if w in _STOP or w in name_words:
                continue
            for q in asked:
                if _match(q, w):
                    hits[q] = max(hits.get(q, 0.0), 0.25 if w in _GENERIC else 1.0)
    return hits


def _graph(schema: DatabaseSchema) -> dict[str, set[str]]:
    by_fold = {t.name.casefold(): t.name for t in schema.tables}
    edges: dict[str, set[str]] = {t.name: set() for t in schema.tables}
    for t in schema.tables:
        for fk in t.foreign_keys:
            other = by_fold.get(fk.ref_table.casefold())
            if other and other != t.name:
                edges[t.name].add(other)
                edges[other].add(t.name)
    return edges


def _path(edges: dict[str, set[str]], start: str, goal: str) -> list[str]:
    seen = {start: ""}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while seen[path[-1]]:
                path.append(seen[path[-1]])
            return path
        for nxt in sorted(edges[node]):
            if nxt not in seen:
                seen[nxt] = node
                queue.append(nxt)
    return []


def link_tables(
    schema: DatabaseSchema,
    question: str,
    *,
    evidence: str | None = None,
    value_tables: Iterable[str] = (),
) -> LinkedTables:
    """The tables of ``schema`` the question needs (all of them when nothing matches)."""
    asked = {w for w in words(f"{evidence or ''} {question}") if w not in _STOP}
    reasons: dict[str, str] = {}
    named = [t.name for t in schema.tables if _named(t, asked)]
    reasons.update(dict.fromkeys(named, "named"))
    # Question words the named tables' columns already explain pull in no other table.
    explained: set[str] = set()
    for table in schema.tables:
        if table.name in reasons:
            name_words = words(table.name)
            explained |= {q for q in asked if any(_match(q, w) for w in name_words)}
            explained |= set(_column_hits(table, asked))
    for table in schema.tables:
        if table.name not in reasons:
            extra = {q: w for q, w in _column_hits(table, asked).items() if q not in explained}
            if sum(extra.values()) >= 1.0:
                reasons[table.name] = "columns"
    known = {t.name.casefold(): t.name for t in schema.tables}
    for value_table in value_tables:
        name = known.get(value_table.casefold())
        if name is not None:
            reasons.setdefault(name, "values")
    if not reasons:
        return LinkedTables([t.name for t in schema.tables], dict.fromkeys(known.values(), "no match"))
    edges = _graph(schema)
    kept = list(reasons)
    for a, b in itertools.pairwise(kept):  # connect the kept tables through join paths
        for hop in _path(edges, a, b):
            reasons.setdefault(hop, "join path")
    for named_table in named:
        for neighbour in edges[named_table]:
            reasons.setdefault(neighbour, "foreign key")
    return LinkedTables([t.name for t in schema.tables if t.name in reasons], reasons)


def gold_tables(sql: str, schema: DatabaseSchema, dialect: str = "sqlite") -> set[str]:
    """The schema tables a (gold) query reads, by name (case-insensitive); unknown names are dropped."""
    import sqlglot
    from sqlglot import exp

    known = {t.name.casefold(): t.name for t in schema.tables}
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return set()
    return {known[t.name.casefold()] for t in tree.find_all(exp.Table) if t.name.casefold() in known}


def subset(schema: DatabaseSchema, tables: Sequence[str]) -> DatabaseSchema:
    """``schema`` restricted to ``tables`` (same order as the schema)."""
    keep = {t.casefold() for t in tables}
    return DatabaseSchema(  # a new object: model_copy would carry the full schema's cached DDL
        database=schema.database,
        dialect=schema.dialect,
        fingerprint=schema.fingerprint,
        tables=[t for t in schema.tables if t.name.casefold() in keep],
    )
