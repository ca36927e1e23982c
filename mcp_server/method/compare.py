"""Result comparison: the one place that decides whether two query results are "the same".

Used by self-consistency voting (``result_key``), evaluation and training rewards. Two official
semantics are reproduced here, and nowhere else:

* BIRD (``evaluation_ex.py``): ``set(predicted_res) == set(ground_truth_res)`` over row tuples, so row
  order and duplicates are ignored, column order matters, and Python equality applies (``1 == 1.0 ==
  True``, ``'1' != 1``).
* Spider test-suite (``taoyds/test-suite-sql-eval``, ``exec_eval.result_eq``): bag (multiset) of rows,
  row order only when the gold query has ``ORDER BY``, any column permutation accepted; found by a quick
  rejection on order-free rows and a search over column permutations constrained by column values.
  By default the test-suite strips every ``DISTINCT`` token from both queries before running them
  (:func:`strip_distinct`) and decides ``order_matters`` from the gold query (:func:`order_matters_for`);
  :func:`spider_official_sql` is every rewrite it makes before running a query.

This module never executes SQL; callers pass rows (sequences of values) in.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Sequence
from itertools import product
from typing import Any, Literal

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError, TokenError
from sqlglot.tokens import TokenType

from sqlr1.mcp_server.core.errors import QueryFailed

__all__ = [
    "bird_equal",
    "order_matters_for",
    "result_key",
    "spider_equal",
    "spider_official_sql",
    "strip_distinct",
]

Rows = Iterable[Sequence[Any]]


def _hashable(value: Any) -> Hashable:
    """Make engine values hashable without changing equality for hashable ones.

    Hashable values are returned unchanged (so ``1``, ``1.0`` and ``True`` stay equal, as in the official
    scorers). Unhashable ones (PostgreSQL arrays/JSON as lists and dicts, bytearray/memoryview) become
    tagged tuples, so they compare equal only to equal containers of the same kind.
    """
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, Hashable) and not isinstance(value, tuple):
        return value
    if isinstance(value, tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, list):
        return ("<list>", tuple(_hashable(v) for v in value))
    if isinstance(value, dict):
        return ("<dict>", frozenset((_hashable(k), _hashable(v)) for k, v in value.items()))
    if isinstance(value, set):
        return ("<set>", frozenset(_hashable(v) for v in value))
    return ("<repr>", repr(value))


def _rows(rows: Rows) -> list[tuple[Hashable, ...]]:
    out = [row if type(row) is tuple else tuple(row) for row in rows]
    try:
        hash(tuple(out))  # the common case: every value is already hashable, nothing to convert
    except TypeError:
        return [tuple(_hashable(v) for v in row) for row in out]
    return out


# ---------------------------------------------------------------------------------------------- BIRD


def bird_equal(pred_rows: Rows, gold_rows: Rows) -> bool:
    """BIRD execution match: the two results are equal as *sets* of row tuples."""
    return set(_rows(pred_rows)) == set(_rows(gold_rows))


def result_key(rows: Rows) -> Hashable:
    """A key for grouping candidates by BIRD-style equivalence: ``key(a) == key(b)`` iff ``bird_equal(a, b)``.

    A ``frozenset`` of row tuples has exactly the set's equality, and needs no sorting, so mixed
    types (``None`` beside ints, strings beside floats) cannot break it.
    """
    return frozenset(_rows(rows))


# ------------------------------------------------------------------------------- Spider test-suite


def _unorder_row(row: tuple[Hashable, ...]) -> tuple[Hashable, ...]:
    # The test-suite sorts each row's values by ``str(x) + str(type(x))``, which never fails on mixed types.
    return tuple(sorted(row, key=lambda x: str(x) + str(type(x))))


def _quick_rej(
    result1: list[tuple[Hashable, ...]], result2: list[tuple[Hashable, ...]], order_matters: bool
) -> bool:
    """True when the results *may* be equal (a necessary condition, cheap); named as in the test-suite."""
    s1 = [_unorder_row(row) for row in result1]
    s2 = [_unorder_row(row) for row in result2]
    if order_matters:
        return s1 == s2
    return set(s1) == set(s2)


def _multiset_eq(l1: list[tuple[Hashable, ...]], l2: list[tuple[Hashable, ...]]) -> bool:
    return len(l1) == len(l2) and Counter(l1) == Counter(l2)


def _constrained_permutations(
    tab1_sets_by_columns: list[set[Hashable]], result2: list[tuple[Hashable, ...]]
) -> Iterator[tuple[int, ...]]:
    """Candidate column permutations (perm[i] = column of result2 that plays column i of result1).

    As in the test-suite: every permutation for up to 3 columns; otherwise 20 sampled rows of result2
    prune column pairs whose values cannot match. Pruning only drops impossible pairs, so the sampling
    (seeded here for reproducibility) never changes the verdict.
    """
    num_cols = len(result2[0])
    constraints = [set(range(num_cols)) for _ in range(num_cols)]
    if num_cols > 3:
        rng = random.Random(0)
        for _ in range(20):
            row = rng.choice(result2)
            for tab1_col in range(num_cols):
                for tab2_col in set(constraints[tab1_col]):
                    if row[tab2_col] not in tab1_sets_by_columns[tab1_col]:
                        constraints[tab1_col].remove(tab2_col)
    return product(*[sorted(c) for c in constraints])


def spider_equal(pred_rows: Rows, gold_rows: Rows, *, order_matters: bool) -> bool:
    """Spider test-suite denotation match (``exec_eval.result_eq(gold, pred, order_matters)``)."""
    result1 = _rows(gold_rows)
    result2 = _rows(pred_rows)
    if not result1 and not result2:
        return True
    if len(result1) != len(result2):
        return False
    num_cols = len(result1[0])
    if len(result2[0]) != num_cols:
        return False
    if not _quick_rej(result1, result2, order_matters):
        return False
    tab1_sets_by_columns = [{row[i] for row in result1} for i in range(num_cols)]
    for perm in _constrained_permutations(tab1_sets_by_columns, result2):
        if len(perm) != len(set(perm)):
            continue
        result2_perm = result2 if num_cols == 1 else [tuple(row[i] for i in perm) for row in result2]
        if order_matters:
            if result1 == result2_perm:
                return True
        elif set(result1) == set(result2_perm) and _multiset_eq(result1, result2_perm):
            return True
    return False


# ----------------------------------------------------------------------------- SQL-side helpers


def _parse(sql: str, dialect: str) -> exp.Expr:
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (SqlglotError, RecursionError) as exc:  # RecursionError: absurdly nested model output
        raise QueryFailed.of("syntax", f"cannot parse the query ({dialect}): {exc}") from exc
    if tree is None:
        raise QueryFailed.of("syntax", "empty query")
    return tree


def order_matters_for(
    gold_sql: str, dialect: str = "sqlite", *, rule: Literal["top_level", "official"] = "top_level"
) -> bool:
    """Whether row order counts when comparing against ``gold_sql``.

    ``rule="top_level"`` (default): the outermost query (a SELECT or a set operation, through
    parentheses) has an ORDER BY, found with sqlglot. ``rule="official"``: the test-suite's own test,
    ``'order by' in gold.lower()``, which also fires on an ORDER BY inside a subquery or a string literal;
    use it to reproduce official Spider numbers exactly.
    """
    if rule == "official":
        return "order by" in gold_sql.lower()
    tree = _parse(gold_sql, dialect)
    while isinstance(tree, exp.Subquery):
        tree = tree.this
    return tree.args.get("order") is not None


def strip_distinct(sql: str, dialect: str = "sqlite") -> str:
    """The test-suite's default "DISTINCT stripped" rewrite (``remove_distinct``), token for token.

    Like the official code (which drops every ``distinct`` token sqlparse finds), every ``DISTINCT``
    keyword token goes: ``SELECT DISTINCT`` everywhere, ``COUNT(DISTINCT x)`` (becomes ``COUNT( x)``),
    ``UNION DISTINCT``. String literals, quoted identifiers and comments that spell "distinct" stay.
    The rest of the text is kept byte for byte (sqlglot's tokenizer finds the keywords; nothing is
    regenerated), so the stripped query runs exactly as the official scorer would run it.
    """
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    except TokenError as exc:
        raise QueryFailed.of("syntax", f"cannot tokenize the query ({dialect}): {exc}") from exc
    parts: list[str] = []
    pos = 0
    for token in tokens:
        if token.token_type == TokenType.DISTINCT:
            parts.append(sql[pos : token.start])
            pos = token.end + 1
    parts.append(sql[pos:])
    return "".join(parts)


def _first_statement(sql: str, dialect: str) -> str:
    """The text up to and including the first ``;`` token (sqlparse's ``parse(s)[0]``), else all of it."""
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    except TokenError:
        return sql
    end = next((t.end for t in tokens if t.token_type == TokenType.SEMICOLON), None)
    return sql if end is None else sql[: end + 1]


# exec_eval.replace_cur_year, verbatim: the official rewrite is a regex over the text, so is this one.
_CUR_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)


def spider_official_sql(
    sql: str, *, prediction: bool, keep_distinct: bool = False, dialect: str = "sqlite"
) -> str:
    """The statement the official Spider test-suite scorer runs for ``sql``, rewrite for rewrite.

    In order: ``evaluation.py`` replaces the text ``value`` with ``1`` in a prediction (a leftover of
    value-free predictions: a column or string ``value`` changes too); ``exec_eval.postprocess`` joins
    ``> =``, ``< =``, ``! =``; unless ``keep_distinct``, ``remove_distinct`` drops every ``DISTINCT``
    token and, since it reads ``sqlparse.parse(s)[0]``, everything after the first statement;
    ``exec_on_db_`` replaces ``YEAR(CURDATE())`` with ``2020``. Decide ``order_matters`` on the gold's
    rewritten text (:func:`order_matters_for` with ``rule="official"``), as the scorer does.
    """
    if prediction:
        sql = sql.replace("value", "1")
    sql = sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")
    if not keep_distinct:
        sql = _first_statement(sql, dialect)
        with contextlib.suppress(QueryFailed):  # untokenizable: run as is, the engine reports the error
            sql = strip_distinct(sql, dialect)
    return _CUR_YEAR.sub("2020", sql)
