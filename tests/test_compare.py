"""Scorer parity: tricky prediction/gold pairs with the verdicts the official scorers give, by hand.

BIRD = ``evaluation_ex.py`` (``set(pred) == set(gold)``); SPIDER = test-suite ``exec_eval.result_eq``
with ``order_matters`` taken from the gold query. Each case states why.
"""

from __future__ import annotations

import random
import sqlite3
from itertools import pairwise
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.method.compare import (
    bird_equal,
    order_matters_for,
    result_key,
    spider_equal,
    strip_distinct,
)


class Case(NamedTuple):
    name: str
    pred: list[tuple[Any, ...]]
    gold: list[tuple[Any, ...]]
    order_matters: bool
    bird: bool
    spider: bool
    why: str


CASES = [
    Case("identical", [(1, "a"), (2, "b")], [(1, "a"), (2, "b")], False, True, True, "same rows, same order"),
    Case(
        "row order, no ORDER BY",
        [(2, "b"), (1, "a")],
        [(1, "a"), (2, "b")],
        False,
        True,
        True,
        "both ignore row order when the gold has no ORDER BY",
    ),
    Case(
        "row order, gold ORDER BY",
        [(2, "b"), (1, "a")],
        [(1, "a"), (2, "b")],
        True,
        True,
        False,
        "BIRD compares sets (never order); Spider requires the gold's order",
    ),
    Case(
        "duplicates missing",
        [(1,)],
        [(1,), (1,)],
        False,
        True,
        False,
        "BIRD's set drops duplicates; Spider compares bags and row counts differ",
    ),
    Case(
        "duplicates extra",
        [(1,), (1,), (2,)],
        [(1,), (2,)],
        False,
        True,
        False,
        "set{1,2} == set{1,2}; bag sizes 3 vs 2",
    ),
    Case(
        "duplicate multiplicity swapped",
        [(1,), (1,), (2,)],
        [(1,), (2,), (2,)],
        False,
        True,
        False,
        "same set; same length but the multiset counts differ",
    ),
    Case(
        "column permutation",
        [("a", 1), ("b", 2)],
        [(1, "a"), (2, "b")],
        False,
        False,
        True,
        "BIRD tuples are ordered; Spider accepts any column permutation",
    ),
    Case(
        "column permutation, ordered",
        [("a", 1), ("b", 2)],
        [(1, "a"), (2, "b")],
        True,
        False,
        True,
        "column permutation is accepted with ORDER BY too, rows in the same order",
    ),
    Case(
        "column permutation, wrong row order",
        [("b", 2), ("a", 1)],
        [(1, "a"), (2, "b")],
        True,
        False,
        False,
        "a column permutation does not excuse a row-order mismatch under ORDER BY",
    ),
    Case(
        "permutation that mixes columns",
        [(1, 2), (2, 1)],
        [(1, 1), (2, 2)],
        False,
        False,
        False,
        "row (1,2) unordered is (1,2), never (1,1): quick rejection",
    ),
    Case(
        "swapped same-valued columns",
        [(2, 1), (1, 2)],
        [(1, 2), (2, 1)],
        False,
        True,
        True,
        "rows are a set-permutation; also a column swap",
    ),
    Case(
        "extra column",
        [(1, "a", "x")],
        [(1, "a")],
        False,
        False,
        False,
        "different column counts never match",
    ),
    Case("missing column", [(1,)], [(1, "a")], False, False, False, "tuples of different width"),
    Case("both empty", [], [], False, True, True, "empty == empty for both"),
    Case("both empty, ordered", [], [], True, True, True, "empty == empty whatever the order rule"),
    Case("empty vs rows", [], [(1,)], False, False, False, "row counts differ"),
    Case(
        "single NULL vs empty", [(None,)], [], False, False, False, "a NULL row is a row: {(None,)} != set()"
    ),
    Case("NULL equals NULL", [(None, 1)], [(None, 1)], False, True, True, "Python None == None"),
    Case("NULL vs 0", [(None,)], [(0,)], False, False, False, "None != 0"),
    Case("NULL vs empty string", [(None,)], [("",)], False, False, False, "None != ''"),
    Case("int vs float", [(1,)], [(1.0,)], False, True, True, "Python equality: 1 == 1.0, same hash"),
    Case("int vs numeric string", [(1,)], [("1",)], False, False, False, "type affinity: '1' != 1"),
    Case("float vs numeric string", [(1.0,)], [("1.0",)], False, False, False, "'1.0' is text"),
    Case("bool vs int", [(True,)], [(1,)], False, True, True, "True == 1 in Python"),
    Case(
        "float rounding",
        [(0.1 + 0.2,)],
        [(0.3,)],
        False,
        False,
        False,
        "no tolerance: 0.30000000000000004 != 0.3",
    ),
    Case(
        "rounded floats", [(round(2 / 3, 2),)], [(0.67,)], False, True, True, "round() gives the same float"
    ),
    Case("case of strings", [("France",)], [("france",)], False, False, False, "string comparison is exact"),
    Case("trailing space", [("a ",)], [("a",)], False, False, False, "no trimming"),
    Case(
        "DISTINCT vs not (rows)",
        [("a",), ("a",), ("b",)],
        [("a",), ("b",)],
        False,
        True,
        False,
        "a missing DISTINCT only matters to Spider, whose bag sees 3 vs 2 rows",
    ),
    Case(
        "many columns permuted",
        [(4, 3, 2, 1, "x")],
        [("x", 1, 2, 3, 4)],
        False,
        False,
        True,
        "5 columns: the constrained permutation search finds the reversal",
    ),
    Case(
        "many columns, values swapped across rows",
        [(1, 2, 3, 4), (5, 6, 7, 8)],
        [(1, 2, 3, 8), (5, 6, 7, 4)],
        False,
        False,
        False,
        "same values per column but not per row: no column permutation fixes it",
    ),
    Case(
        "mixed None and ints",
        [(None,), (1,), ("a",)],
        [("a",), (None,), (1,)],
        False,
        True,
        True,
        "mixed types never break the comparison (no sorting of values)",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_official_verdicts(case: Case) -> None:
    assert bird_equal(case.pred, case.gold) is case.bird, case.why
    assert spider_equal(case.pred, case.gold, order_matters=case.order_matters) is case.spider, case.why
    assert (result_key(case.pred) == result_key(case.gold)) is case.bird, case.why


def test_lists_and_unhashable_values() -> None:
    # Rows as JSON lists (QueryResult.rows) and PostgreSQL arrays/JSON values.
    assert bird_equal([[1, "a"]], [(1, "a")])
    assert bird_equal([([1, 2], {"k": 1})], [([1, 2], {"k": 1})])
    assert not bird_equal([([1, 2],)], [((1, 2),)])  # a list value is not a tuple value
    assert spider_equal([[{"k": [1]}]], [[{"k": [1]}]], order_matters=False)
    assert result_key([[bytearray(b"x")]]) == result_key([[b"x"]])


def test_spider_is_symmetric_on_the_corpus() -> None:
    for c in CASES:
        assert spider_equal(c.gold, c.pred, order_matters=c.order_matters) is c.spider, c.name


row = st.tuples(
    st.one_of(st.none(), st.integers(-3, 3), st.floats(-2, 2, allow_nan=False), st.text(max_size=2)),
    st.one_of(st.none(), st.integers(-3, 3), st.booleans()),
)


@given(st.lists(row, max_size=6), st.lists(row, max_size=6))
def test_result_key_agrees_with_bird_equal(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    assert (result_key(a) == result_key(b)) == bird_equal(a, b)
    assert hash(result_key(a)) == hash(result_key(list(reversed(a))))


@given(st.lists(row, max_size=6), st.randoms())
def test_spider_accepts_any_row_shuffle_and_column_swap(
    rows: list[tuple[Any, ...]], rnd: random.Random
) -> None:
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    swapped = [(b, a) for a, b in shuffled]
    assert spider_equal(swapped, rows, order_matters=False)
    assert spider_equal([(b, a) for a, b in rows], rows, order_matters=True)


def test_scorers_on_real_sqlite_results() -> None:
    """The cases above as SQLite really returns them (types included)."""
    con = sqlite3.connect(":memory:")
    con.executescript(
        "CREATE TABLE t (id INTEGER, name TEXT, score REAL, tag);"
        "INSERT INTO t VALUES (1, 'a', 1.0, '1'), (2, 'b', 2.5, 1), (3, 'a', NULL, NULL);"
    )

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return con.execute(sql).fetchall()

    gold = "SELECT id, name FROM t ORDER BY id DESC"
    om = order_matters_for(gold)
    assert om
    assert not spider_equal(rows("SELECT id, name FROM t ORDER BY id"), rows(gold), order_matters=om)
    assert bird_equal(rows("SELECT id, name FROM t ORDER BY id"), rows(gold))
    # 1.0 stored as REAL equals the integer 1 (Python equality, as both scorers use).
    assert bird_equal(rows("SELECT score FROM t WHERE id = 1"), rows("SELECT 1"))
    # '1' stored as TEXT under no affinity is not the integer 1.
    assert not bird_equal(rows("SELECT tag FROM t WHERE id = 1"), rows("SELECT tag FROM t WHERE id = 2"))
    gold_distinct = "SELECT DISTINCT name FROM t"
    pred = "SELECT name FROM t"
    assert not spider_equal(rows(pred), rows(gold_distinct), order_matters=False)
    # The test-suite strips DISTINCT from both queries by default, which makes them equal.
    assert spider_equal(rows(strip_distinct(pred)), rows(strip_distinct(gold_distinct)), order_matters=False)


@pytest.mark.parametrize(
    ("sql", "top_level", "official"),
    [
        ("SELECT a FROM t ORDER BY a", True, True),
        ("SELECT a FROM t", False, False),
        ("select a from t order by a desc limit 1", True, True),
        ("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1", True, True),
        ("(SELECT a FROM t ORDER BY a)", True, True),
        ("WITH c AS (SELECT a FROM t ORDER BY a) SELECT a FROM c", False, True),
        ("SELECT a FROM t WHERE a = (SELECT b FROM u ORDER BY b LIMIT 1)", False, True),
        ("SELECT 'order by' AS x FROM t", False, True),
        ("SELECT a FROM t ORDER\nBY a", True, False),
    ],
)
def test_order_matters(sql: str, top_level: bool, official: bool) -> None:
    assert order_matters_for(sql, "sqlite") is top_level
    assert order_matters_for(sql, "sqlite", rule="official") is official


@pytest.mark.parametrize(
    ("sql", "stripped"),
    [
        # Token removal keeps the surrounding text, exactly as the official ``remove_distinct`` does.
        ("SELECT DISTINCT a FROM t", "SELECT  a FROM t"),
        ("SELECT COUNT(DISTINCT a) FROM t", "SELECT COUNT( a) FROM t"),
        (
            "SELECT a FROM t WHERE b IN (SELECT DISTINCT b FROM u)",
            "SELECT a FROM t WHERE b IN (SELECT  b FROM u)",
        ),
        ("SELECT a FROM t UNION DISTINCT SELECT a FROM u", "SELECT a FROM t UNION  SELECT a FROM u"),
        ("select distinct T1.name FROM t AS T1", "select  T1.name FROM t AS T1"),
        (
            "SELECT 'distinct', \"distinct\" FROM t -- distinct",
            "SELECT 'distinct', \"distinct\" FROM t -- distinct",
        ),
        ("SELECT a FROM t", "SELECT a FROM t"),
    ],
)
def test_strip_distinct(sql: str, stripped: str) -> None:
    assert strip_distinct(sql, "sqlite") == stripped


def test_unparseable_sql_is_a_syntax_error() -> None:
    with pytest.raises(QueryFailed) as info:
        order_matters_for("SELECT FROM WHERE (", "sqlite")
    assert info.value.error.kind == "syntax"


def test_strip_distinct_on_spider_dev_golds(shared_data) -> None:
    """Every Spider dev gold still runs after stripping, with the bag semantics the test-suite expects."""
    import json

    dev = json.loads((shared_data / "spider/dev.json").read_text("utf-8"))
    with_distinct = select_only = 0
    for item in dev:
        gold = item["query"]
        stripped = strip_distinct(gold)
        if stripped == gold:
            continue
        with_distinct += 1
        assert "distinct" not in stripped.lower().replace("'distinct'", "")
        db = shared_data / "spider/database" / item["db_id"] / f"{item['db_id']}.sqlite"
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        try:
            plain = con.execute(gold).fetchall()
            bag = con.execute(stripped).fetchall()
        finally:
            con.close()
        tokens = Dialect.get_or_raise("sqlite").tokenize(gold)
        only_select_distinct = all(
            prev.token_type == TokenType.SELECT
            for prev, tok in pairwise(tokens)
            if tok.token_type == TokenType.DISTINCT
        )
        if only_select_distinct:
            # Removing SELECT DISTINCT only adds duplicate rows: the same set of rows either way.
            # (COUNT(DISTINCT x) -> COUNT( x) changes values, for gold and prediction alike, as officially.)
            select_only += 1
            assert bird_equal(bag, plain), gold
    assert with_distinct > 50 and select_only > 40


def test_spider_official_sql_rewrites_as_the_test_suite() -> None:
    from sqlr1.mcp_server.method.compare import spider_official_sql

    # evaluation.py: "value" -> "1" in predictions only; postprocess; remove_distinct (first statement)
    assert spider_official_sql("SELECT x AS value FROM t", prediction=True) == "SELECT x AS 1 FROM t"
    assert spider_official_sql("SELECT x AS value FROM t", prediction=False) == "SELECT x AS value FROM t"
    assert spider_official_sql("SELECT DISTINCT a FROM t WHERE b > = 2; DROP t", prediction=False) == (
        "SELECT  a FROM t WHERE b >= 2;"
    )
    assert (
        spider_official_sql("SELECT 1; SELECT 2", prediction=True, keep_distinct=True) == "SELECT 1; SELECT 2"
    )
    assert spider_official_sql("SELECT YEAR ( CURDATE() ) - 1", prediction=True) == "SELECT 2020- 1"
