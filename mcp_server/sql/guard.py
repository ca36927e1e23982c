"""The SQL guard: decides whether one statement is a side-effect-free read, before any engine sees it.

It owns the single check every statement goes through: tokenize and parse with sqlglot in the
database's dialect, then one walk over the whole tree against the allowlists in
``mcp_server.sql.dialects`` (node types and functions, per dialect). It fails closed: anything it does not
positively recognise as a read is rejected with a rule id and advice. It never executes SQL and never
rewrites it; the engines' read-only modes are defence in depth on top of it, not a replacement.

Rule ids (``QueryError.rule`` of kind ``blocked``): too_long, too_deep, bare_joins, executable_comment,
suspicious_character, empty, single_statement, read_only, transaction_control, pragma, attach, copy,
set, extension, unparsed_command, select_into, locking_clause, optimizer_hint, parameter,
function_not_allowed, node_not_allowed, file_path_table, unchecked_literal, unchecked. Parse errors are kind
``syntax``.

It also owns the second check, :class:`CallPolicy`: sqlglot and an engine can read one text differently
(PostgreSQL's ``(x).f`` is a call of ``f(x)``; a setting can move where a string literal ends), so each
engine reports the functions *it* resolved before a statement runs (``mcp_server.db.engines.calls``) and
the policy refuses any outside ``dialects.ENGINE_FUNCTIONS``, with the same ``function_not_allowed`` rule.

Verdicts are cached (LRU) by ``(sql, dialect, extra_functions)``; the returned AST is shared between
callers and must not be mutated (``statement.expression.copy()`` first).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import sqlglot.expressions as exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from sqlr1.mcp_server.core.errors import QueryError, QueryFailed
from sqlr1.mcp_server.sql.dialects import (
    ALLOWED_FUNCTIONS,
    ALLOWED_NODES,
    ALLOWED_ONLY_IN,
    ALLOWED_ROOTS,
    ATTRIBUTE_NOTATION_DIALECTS,
    BLOCKED_NODE_RULES,
    DUCKDB_OPERATOR_CHARS,
    ENGINE_BUILTIN_SCHEMAS,
    ENGINE_FUNCTIONS,
    EXECUTABLE_COMMENT_MARKERS,
    FILE_PATH_TABLE_CHARS,
    MAX_BARE_JOINS,
    MAX_PAREN_DEPTH,
    MAX_SQL_CHARS,
    TABLE_FUNCTION_PREFIXES,
    sqlglot_dialect,
)

__all__ = ["CallPolicy", "GuardedStatement", "cache_clear", "check", "function_name", "read_calls"]

_CACHE_SIZE = 4096

# Tokens whose text is quoted data or a quoted identifier: any character may appear inside.
_QUOTED_TOKENS = frozenset(
    {
        TokenType.STRING,
        TokenType.IDENTIFIER,
        TokenType.NATIONAL_STRING,
        TokenType.RAW_STRING,
        TokenType.BYTE_STRING,
        TokenType.HEX_STRING,
        TokenType.BIT_STRING,
        TokenType.HEREDOC_STRING,
        TokenType.UNICODE_STRING,
    }
)


@dataclass(frozen=True)
class GuardedStatement:
    """A statement the guard accepted. ``sql`` is the original text, sent to the engine unchanged."""

    sql: str
    dialect: str
    expression: exp.Expr
    tables: tuple[str, ...]  # referenced tables as written (schema-qualified if written so), CTEs excluded
    has_order_by: bool  # the top-level query has ORDER BY (result order is meaningful)


_NO_EXTRA: frozenset[str] = frozenset()


def check(sql: str, dialect: str, *, extra_functions: Iterable[str] = ()) -> GuardedStatement:
    """Accept one read-only statement or raise.

    ``dialect`` is a sqlglot dialect name ("sqlite", "postgres", "mysql", "duckdb"); engine kinds
    ("postgresql") are accepted too. ``extra_functions`` are allowed on top of the dialect allowlist.

    Raises :class:`QueryFailed` with kind ``syntax`` (with ``position`` when known) or kind ``blocked``
    with a stable ``rule`` id and a message naming the offending node and how to fix the query.
    Raises ``ValueError`` for an unknown dialect.
    """
    extra = frozenset(f.upper() for f in extra_functions) if extra_functions else _NO_EXTRA
    verdict = _check_cached(sql, sqlglot_dialect(dialect), extra)
    if isinstance(verdict, QueryError):
        raise QueryFailed(verdict.model_copy())
    return verdict


class CallPolicy:
    """Which functions an engine may report that a statement calls (the second check; module docstring).

    ``dialects.ENGINE_FUNCTIONS`` for the dialect, in the engine's own names, plus the administrator's
    ``extra_functions``; a name qualified with the engine's built-in schema (``pg_catalog.upper``) counts
    as the bare name, any other qualified name must be allowed as written. Thread-safe to read.
    """

    def __init__(self, dialect: str, extra_functions: Iterable[str] = ()) -> None:
        self.dialect = sqlglot_dialect(dialect)
        self._allowed = frozenset(ENGINE_FUNCTIONS[self.dialect]) | {f.lower() for f in extra_functions}
        self._builtin = ENGINE_BUILTIN_SCHEMAS[self.dialect]

    def allow(self, names: Iterable[str]) -> None:
        """Also allow these (the ``extra_functions`` guard setting)."""
        self._allowed = self._allowed | {n.lower() for n in names}

    def allows(self, name: str) -> bool:
        name = name.lower()
        if name in self._allowed:
            return True
        schema, dot, bare = name.rpartition(".")
        if dot and schema in self._builtin:
            return bare in self._allowed
        return self.dialect == "duckdb" and bool(name) and all(c in DUCKDB_OPERATOR_CHARS for c in name)

    def check(self, calls: Iterable[str], engine: str) -> None:
        """Raise ``QueryFailed`` (blocked, ``function_not_allowed``) at the first call not allowed.

        ``engine`` names who reported the calls, for the message ("PostgreSQL").
        """
        for name in calls:
            if not self.allows(name):
                raise _blocked(
                    "function_not_allowed",
                    f"function {name} is not allowed in the {self.dialect} dialect: {engine} reads this "
                    f"statement as calling {name}(...)" + _NOTATION_HINT.get(self.dialect, "") + "; use "
                    "built-in scalar, aggregate and window functions only (an administrator can allow a safe "
                    "function with guard.extra_functions)",
                )


# How a call can hide from a reader that is not the engine, per dialect (for the message above).
_NOTATION_HINT = {
    "postgres": " (PostgreSQL also calls a function written as a column: (x).f or alias.f is f(x))",
}


def read_calls(sql: str, dialect: str) -> list[str]:
    """The functions the guard reads ``sql`` as calling, lower case, allowed or not, in the engines' sense:
    calls as written, PostgreSQL's ``(x).f``, SQLite's ``pragma_*`` tables. Raises ``QueryFailed``
    (syntax) when it cannot read the text. For comparing with an engine's own reading (the differential
    test); ``check`` is what decides."""
    dialect = sqlglot_dialect(dialect)
    engine_dialect = Dialect.get_or_raise(dialect)
    try:
        statements = engine_dialect.parser().parse(engine_dialect.tokenize(sql), sql)
    except (TokenError, ParseError, RecursionError) as exc:
        raise QueryFailed.of("syntax", f"cannot read the statement: {exc}") from exc
    prefix = TABLE_FUNCTION_PREFIXES.get(dialect, "\0")
    names: list[str] = []
    for root in statements:
        if root is None:
            continue
        for node in root.walk():
            if isinstance(node, exp.Func):
                names.append(_written_name(node).lower())
            elif (
                dialect in ATTRIBUTE_NOTATION_DIALECTS
                and isinstance(node, exp.Dot)
                and isinstance(node.expression, exp.Identifier)
            ):
                names.append(node.expression.name.lower())
            elif isinstance(node, exp.Table) and node.name.lower().startswith(prefix):
                names.append(node.name.lower())
    return names


def cache_clear() -> None:
    """Forget cached verdicts (used by the benchmark to measure cold checks)."""
    _check_cached.cache_clear()


def function_name(node: exp.Func) -> str:
    """The allowlist key of a function node: the call's name for unknown functions, else sqlglot's."""
    if isinstance(node, exp.Anonymous | exp.AnonymousAggFunc):
        return str(node.name).upper()
    return node.sql_name().upper()


@lru_cache(maxsize=_CACHE_SIZE)
def _check_cached(sql: str, dialect: str, extra: frozenset[str]) -> GuardedStatement | QueryError:
    try:
        return _check(sql, dialect, extra)
    except QueryFailed as failed:
        return failed.error
    except Exception as exc:  # a sqlglot bug on odd input must still fail closed, as a value
        return QueryError(
            kind="blocked",
            rule="unchecked",
            message=f"the guard could not check this statement ({type(exc).__name__}); rewrite it as plain SQL",
        )


def _blocked(rule: str, message: str, position: int | None = None) -> QueryFailed:
    return QueryFailed.of("blocked", message, rule=rule, position=position)


def _check(sql: str, dialect: str, extra: frozenset[str]) -> GuardedStatement:
    if len(sql) > MAX_SQL_CHARS:
        raise _blocked(
            "too_long",
            f"statement is {len(sql):,} characters; the limit is {MAX_SQL_CHARS:,}. Simplify the query.",
        )
    engine_dialect = Dialect.get_or_raise(dialect)
    try:
        tokens = engine_dialect.tokenize(sql)
    except TokenError as exc:
        raise QueryFailed.of(
            "syntax", f"cannot tokenize the statement ({exc}); check quotes and comments are closed"
        ) from exc
    _check_tokens(sql, tokens)
    try:
        parsed = engine_dialect.parser().parse(tokens, sql)
    except ParseError as exc:
        raise QueryFailed.of(
            "syntax", f"syntax error: {_first_error(exc)}", position=_error_offset(sql, exc)
        ) from exc
    except RecursionError as exc:
        raise _blocked("too_deep", "the statement nests too deeply to check; flatten the query") from exc
    statements = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
    if not statements:
        raise _blocked("empty", "the statement is empty; send one SELECT query")
    if len(statements) > 1:
        raise _blocked(
            "single_statement",
            f"found {len(statements)} statements; send exactly one SELECT query, without ';' separated parts",
        )
    root = statements[0]
    _check_tree(root, sql, dialect, extra)
    return GuardedStatement(
        sql=sql,
        dialect=dialect,
        expression=root,
        tables=_tables(root),
        has_order_by=root.args.get("order") is not None,
    )


def _check_tokens(sql: str, tokens: list[Token]) -> None:
    """Checks the AST cannot express, and what would make the parse itself too slow: executable
    comments, nesting depth, JOINs without a condition, invisible characters."""
    depth = 0
    scan_comments = "/*" in sql
    previous_end = -1
    bare = _bare_joins(tokens)
    if bare > MAX_BARE_JOINS:
        raise _blocked(
            "bare_joins",
            f"{bare} JOINs have no ON or USING condition (at most {MAX_BARE_JOINS}); give each JOIN its "
            "condition, or write CROSS JOIN or a comma for a cross product",
        )
    for token in tokens:
        if scan_comments:
            # Between two tokens there is only whitespace and comments: look at the raw text, because
            # tokenizers normalise hint and conditional-comment markers away.
            _check_gap(sql, previous_end + 1, token.start)
            previous_end = token.end
        if token.token_type == TokenType.L_PAREN:
            depth += 1
            if depth > MAX_PAREN_DEPTH:
                raise _blocked(
                    "too_deep",
                    f"parentheses nest more than {MAX_PAREN_DEPTH} levels; flatten the query",
                    token.start,
                )
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
    if scan_comments:
        _check_gap(sql, previous_end + 1, len(sql))
    if not sql.isascii():
        _check_characters(sql, tokens)


def _bare_joins(tokens: list[Token]) -> int:
    """JOINs (not CROSS or NATURAL) followed by another JOIN, or by the end of their parentheses, before
    any ON or USING at their own nesting level."""
    bare = 0
    pending: dict[int, bool] = {}  # nesting level -> its last JOIN has no condition yet
    depth = 0
    previous: TokenType | None = None
    for token in tokens:
        kind = token.token_type
        if kind == TokenType.JOIN:
            bare += pending.get(depth, False)
            pending[depth] = previous not in (TokenType.CROSS, TokenType.NATURAL)
        elif kind in (TokenType.ON, TokenType.USING):
            pending[depth] = False
        elif kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            bare += pending.pop(depth, False)
            depth -= 1
        previous = kind
    return bare + sum(pending.values())


def _check_gap(sql: str, start: int, end: int) -> None:
    gap = sql[start:end]
    for marker in EXECUTABLE_COMMENT_MARKERS:
        at = gap.find(marker)
        if at >= 0:
            raise _blocked(
                "executable_comment",
                f"comment {gap[at : at + 24]!r}... is executed or obeyed by some engines "
                "(conditional comment or optimizer hint); remove it",
                start + at,
            )


def _check_characters(sql: str, tokens: list[Token]) -> None:
    """Outside quotes, allow non-ASCII letters and digits only: no look-alike punctuation or spaces."""
    quoted = [(t.start, t.end) for t in tokens if t.token_type in _QUOTED_TOKENS]
    spans = iter(quoted)
    span = next(spans, None)
    for i, ch in enumerate(sql):
        while span is not None and i > span[1]:
            span = next(spans, None)
        if ch.isascii() or (span is not None and span[0] <= i <= span[1]):
            continue
        if unicodedata.category(ch)[0] not in "LNM":
            raise _blocked(
                "suspicious_character",
                f"character U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')}) outside quotes; "
                "use plain ASCII punctuation and spaces",
                i,
            )


def _check_tree(root: exp.Expr, sql: str, dialect: str, extra: frozenset[str]) -> None:
    root_kind = type(root).__name__
    if root_kind not in ALLOWED_ROOTS:
        rule, advice = BLOCKED_NODE_RULES.get(
            root_kind, ("read_only", "only SELECT queries (with WITH, UNION, INTERSECT, EXCEPT) are allowed")
        )
        raise _blocked(
            rule, f"{_describe(root, dialect)} statement is not allowed: {advice}", _position(root)
        )
    functions = ALLOWED_FUNCTIONS[dialect]
    path_chars = FILE_PATH_TABLE_CHARS.get(dialect)
    attribute_calls = dialect in ATTRIBUTE_NOTATION_DIALECTS
    for node in root.walk():
        kind = type(node).__name__
        if kind in ALLOWED_ONLY_IN and type(node.parent).__name__ in ALLOWED_ONLY_IN[kind]:
            continue
        if kind in BLOCKED_NODE_RULES:
            rule, advice = BLOCKED_NODE_RULES[kind]
            raise _blocked(rule, f"{_describe(node, dialect)} is not allowed: {advice}", _position(node))
        if isinstance(node, exp.Introducer) and any(c in node.expression.name for c in "'\\"):
            # MariaDB renders _charset'...' unescaped in its own description of the statement, so the calls
            # around such a literal could not be checked there (the engine check would read them wrongly).
            raise _blocked(
                "unchecked_literal",
                f"character set introducer {_describe(node, dialect)} holds a quote or backslash; write the "
                "text as a plain string literal",
                _position(node),
            )
        if attribute_calls and isinstance(node, exp.Dot) and isinstance(node.expression, exp.Identifier):
            # PostgreSQL reads (x).f as a call of f(x) unless f is a field of x's composite type.
            name = node.expression.name
            if name.upper() not in functions and name.upper() not in extra:
                raise _blocked(
                    "function_not_allowed",
                    f"{_describe(node, dialect)} calls function {name} in PostgreSQL (attribute "
                    f"notation: (x).f is f(x)), and {name} is not allowed; select a column by name or use "
                    "built-in scalar, aggregate and window functions only",
                    _position(node),
                )
        if isinstance(node, exp.Func):
            name = function_name(node)
            if name not in functions and name not in extra:
                raise _blocked(
                    "function_not_allowed",
                    f"function {_written_name(node)} is not allowed in the {dialect} dialect; use built-in "
                    "scalar, aggregate and window functions only (an administrator can allow a safe "
                    "function with guard.extra_functions)",
                    _position(node),
                )
        elif kind not in ALLOWED_NODES:
            raise _blocked(
                "node_not_allowed",
                f"{_describe(node, dialect)} ({kind}) is not allowed in a read query; rewrite it with plain SELECT syntax",
                _position(node),
            )
        elif isinstance(node, exp.Table):
            _check_table(node, sql, dialect, path_chars)
            name = node.name.upper()
            prefix = TABLE_FUNCTION_PREFIXES.get(dialect)
            if prefix and name.startswith(prefix.upper()) and name not in functions and name not in extra:
                raise _blocked(
                    "function_not_allowed",
                    f"table {node.name} is the function {node.name}() in {dialect}, and it is not allowed; read "
                    "the schema with pragma_table_info('t'), pragma_table_list or the schema tools",
                    _position(node),
                )


def _check_table(table: exp.Table, sql: str, dialect: str, path_chars: frozenset[str] | None) -> None:
    ident = table.this
    if not isinstance(ident, exp.Identifier):
        return  # a table function: checked as a function by the walk
    start = ident.meta_get("start")
    if isinstance(start, int) and 0 <= start < len(sql) and sql[start] == "'":
        end = ident.meta_get("end", start)
        raise _blocked(
            "file_path_table",
            f"string literal {sql[start : end + 1]} used as a table; name a table of the database instead",
            start,
        )
    if path_chars is not None and any(c in path_chars for c in ident.name):
        raise _blocked(
            "file_path_table",
            f"table name {ident.name!r} looks like a file path or URL, which the {dialect} engine would "
            "read from disk or network; name a table of the database instead",
            start if isinstance(start, int) else None,
        )


def _tables(root: exp.Expr) -> tuple[str, ...]:
    ctes = {cte.alias_or_name for cte in root.find_all(exp.CTE)}
    names: set[str] = set()
    for table in root.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue
        if table.name in ctes and not table.db:
            continue
        names.add(".".join(p for p in (table.catalog, table.db, table.name) if p))
    return tuple(sorted(names))


def _describe(node: exp.Expr, dialect: str) -> str:
    if isinstance(node, exp.Command):
        return f"command {str(node.this).upper()}"
    try:
        text = node.sql(dialect=dialect, unsupported_level=ErrorLevel.IGNORE).strip()
    except RecursionError:
        text = ""
    text = text or type(node).__name__.upper()
    return text if len(text) <= 60 else text[:57] + "..."


def _written_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous | exp.AnonymousAggFunc):
        return str(node.name)
    return node.sql_name().lower()


def _position(node: exp.Expr) -> int | None:
    for i, sub in enumerate(node.walk()):
        start = sub.meta_get("start")
        if isinstance(start, int):
            return start
        if i > 50:
            break
    return None


def _first_error(exc: ParseError) -> str:
    if exc.errors:
        err = exc.errors[0]
        near = (err.get("highlight") or "").strip()
        return f"{err.get('description', 'invalid syntax')}" + (f" near {near!r}" if near else "")
    return str(exc).splitlines()[0]


def _error_offset(sql: str, exc: ParseError) -> int | None:
    """sqlglot reports 1-based line/col (col at the end of the offending token); make a char offset."""
    if not exc.errors:
        return None
    line, col = exc.errors[0].get("line"), exc.errors[0].get("col")
    if not isinstance(line, int) or not isinstance(col, int):
        return None
    lines = sql.split("\n")
    offset = sum(len(text) + 1 for text in lines[: max(line - 1, 0)]) + max(col - 1, 0)
    return min(offset, max(len(sql) - 1, 0))
