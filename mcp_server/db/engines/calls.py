"""What an engine itself says a statement calls: function names read from the engine's own rendering.

The guard reads a statement with sqlglot; an engine reads it with its own parser, and where the two
disagree (PostgreSQL's attribute notation ``(x).f``, which is a call of ``f(x)``; a string literal that
ends elsewhere under another session setting) a call the guard never saw would run. So each engine also
reports the functions *it* resolved, before the statement runs, and every one must be allowed
(:func:`mcp_server.sql.guard.check_engine_calls`):

* PostgreSQL and MariaDB render the statement back as text after parsing it (``EXPLAIN (VERBOSE, FORMAT
  JSON)``'s expressions; ``EXPLAIN EXTENDED``'s rewritten query). :func:`calls_in_rendering` reads the
  names called in such text. The text is the server's own, in one fixed style (the engines pin the
  settings that change it), so a small lexer suffices: quoted strings and identifiers are skipped, and
  a name directly followed by ``(`` is a call.
* DuckDB serialises its parse tree (``json_serialize_sql``): :func:`calls_in_duckdb_tree` walks it.
* SQLite asks the engine's authorizer about every function as a statement is prepared (in the engine).

This module only reads names; it never decides what is allowed and never runs SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = [
    "calls_in_duckdb_tree",
    "calls_in_postgres_plan",
    "calls_in_rendering",
    "duckdb_tables",
    "variables_in_rendering",
]

_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS = _NAME_START | frozenset("0123456789$")


def _is_name_start(ch: str) -> bool:
    return ch in _NAME_START or (not ch.isascii() and ch.isalpha())


def _is_name_char(ch: str) -> bool:
    return ch in _NAME_CHARS or (not ch.isascii() and ch.isalnum())


def _quoted_end(text: str, start: int, quote: str, backslash_escapes: bool) -> int:
    """Index just past the quoted token opening at ``start`` (a doubled quote stays inside)."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if backslash_escapes and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n  # unterminated: the rest is inside (nothing more is read as a call)


def _matching_parens(text: str, identifier_quote: str, backslash_escapes: bool) -> dict[int, int]:
    """Index of each ``(`` -> index of its ``)``, outside quotes and comments."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "'":
            i = _quoted_end(text, i, "'", backslash_escapes)
            continue
        if ch == identifier_quote:
            i = _quoted_end(text, i, identifier_quote, False)
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def _cte_columns(text: str, close: int) -> bool:
    """After ``name(...)``: ``AS (`` follows, so it was a CTE with a column list, not a call."""
    rest = text[close + 1 : close + 40].lstrip().lower()
    return rest.startswith("as") and rest[2:].lstrip().startswith("(")


def calls_in_rendering(text: str, *, identifier_quote: str, backslash_escapes: bool) -> Iterator[str]:
    """The functions called in an engine's rendering of a statement, lower case, in order of appearance.

    A call is a name (bare or quoted with ``identifier_quote``), possibly qualified (``schema.name``,
    reported with its qualifier), directly followed by ``(``. Not calls: a type after ``AS`` or ``::``
    (``cast(x as decimal(10,2))``, ``x::numeric(10,2)``) and a CTE's column list (``r(n) as (...)``).
    String literals (``'...'`` with doubled quotes, and backslash escapes when ``backslash_escapes``),
    ``/* ... */`` comments and quoted identifiers not followed by ``(`` are skipped.
    """
    parens = _matching_parens(text, identifier_quote, backslash_escapes)
    i = 0
    n = len(text)
    parts: list[str] = []  # the dotted name being read
    before = ""  # the significant token before the name: "as" or "::" make it a type
    previous = ""  # the last significant token read
    while i < n:
        ch = text[i]
        if ch == "'":
            i = _quoted_end(text, i, "'", backslash_escapes)
            parts, previous = [], "'"
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch == identifier_quote:
            end = _quoted_end(text, i, identifier_quote, False)
            word = text[i + 1 : end - 1].replace(identifier_quote * 2, identifier_quote)
            quoted = True
            i = end
        elif _is_name_start(ch):
            start = i
            while i < n and _is_name_char(text[i]):
                i += 1
            word = text[start:i]
            quoted = False
        else:
            if not ch.isspace():
                previous = "::" if text.startswith("::", i) else ch
                i += 2 if previous == "::" else 1
            else:
                i += 1
            parts = []
            continue
        if not parts:
            before = previous
        parts.append(word)
        previous = word.lower() if not quoted else '"'
        # after a name: a dot continues a qualified name, "(" makes it a call, anything else ends it
        if i < n and text[i] == ".":
            i += 1
            continue
        if i < n and text[i] == "(" and before not in ("as", "::"):
            close = parens.get(i)
            if close is None or not _cte_columns(text, close):
                yield ".".join(parts).lower()
        parts = []


def variables_in_rendering(text: str, *, identifier_quote: str, backslash_escapes: bool) -> Iterator[str]:
    """User and system variables (``@x``, ``@@datadir``) in an engine's rendering, outside quotes."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "'":
            i = _quoted_end(text, i, "'", backslash_escapes)
        elif ch == identifier_quote:
            i = _quoted_end(text, i, identifier_quote, False)
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == "@":
            start = i
            i += 1
            while i < n and (text[i] == "@" or text[i] == "." or _is_name_char(text[i])):
                i += 1
            yield text[start:i]
        else:
            i += 1


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# Keys of PostgreSQL's JSON plan whose values are names, not expressions (an alias or table name may hold
# any character). Every other string in the plan is read as an expression, so a key a later PostgreSQL adds
# can only cause a false refusal, never a missed call.
_PLAN_NAME_KEYS = frozenset(
    {
        "Node Type", "Strategy", "Partial Mode", "Parent Relationship", "Scan Direction", "Index Name",
        "Relation Name", "Schema", "Alias", "Join Type", "Subplan Name", "CTE Name", "Command",
        "Operation", "Sort Method", "Sort Space Type", "Tuplestore Name", "Conflict Resolution",
        "Conflict Arbiter Indexes", "Relations",
    }
)  # fmt: skip
# Keys whose value is itself the name of something the server calls.
_PLAN_CALL_KEYS = frozenset({"Function Name", "Sampling Method"})


def calls_in_postgres_plan(plan: Any) -> Iterator[str]:
    """Functions in ``EXPLAIN (VERBOSE, FORMAT JSON)`` output (deparsed with ``standard_conforming_strings``
    on: ``'...'`` strings with doubled quotes, ``"..."`` identifiers)."""
    stack: list[tuple[str, Any]] = [("", plan)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.items())
        elif isinstance(item, list):
            stack.extend((key, v) for v in item)
        elif isinstance(item, str) and key not in _PLAN_NAME_KEYS:
            if key in _PLAN_CALL_KEYS:
                yield item.lower()
            else:
                yield from calls_in_rendering(item, identifier_quote='"', backslash_escapes=False)


def calls_in_duckdb_tree(tree: dict[str, Any]) -> Iterator[str]:
    """Functions (scalar, aggregate, window, table functions, operators) in ``json_serialize_sql`` output,
    lower case, qualified with their schema when the statement names one."""
    for node in _walk(tree):
        name = node.get("function_name")
        if node.get("class") in ("FUNCTION", "WINDOW") and isinstance(name, str):
            schema = node.get("schema") or ""
            catalog = node.get("catalog") or ""
            yield ".".join(p for p in (catalog, schema, name) if p).lower()


def duckdb_tables(tree: dict[str, Any]) -> Iterator[str]:
    """Table names as DuckDB's parser read them (a name it would resolve as a file path shows here)."""
    for node in _walk(tree):
        if node.get("type") == "BASE_TABLE" and isinstance(node.get("table_name"), str):
            yield node["table_name"]
