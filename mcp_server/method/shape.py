"""Does a result's shape fit its question? The one home of the question-vs-result checks.

"How many tracks does each genre have?" answered with one row, "the top 5" answered with 100 rows,
"how many …" answered with a list or a name, "list the …" answered with one aggregate number, or a
single NULL: each is a :class:`ShapeIssue` with a note for a person and feedback for the model.
Serving (``generate_sql``'s confidence), the agent loop (doubt and a retry) and training (the
"implausible" verdict of ``mcp_server.method.feedback.review``) read them here, so the three agree.

The checks are word patterns over the question and counts over the result (plus, when the SQL is
given, whether it aggregates or groups, read with sqlglot); they never run anything. They are tuned to
stay silent on correct answers: the gold queries of the Spider dev set trigger them rarely
(``tests/test_shape.py`` pins the rate).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import sqlglot
from sqlglot import exp

__all__ = [
    "ResultShape",
    "ShapeCode",
    "ShapeIssue",
    "SqlFacts",
    "check_shape",
    "expects_single_value",
    "requested_rows",
    "sql_facts",
]

ShapeCode = Literal[
    "one_row_per_group",  # "… for each X" answered with one row
    "too_many_rows",  # "top 5" / "the 3 oldest" answered with more rows
    "count_many_rows",  # "how many …" answered with several rows
    "count_not_number",  # "how many …" answered with text
    "list_got_number",  # "list / which …" answered with one aggregate number
    "only_null",  # one row of NULLs (an aggregate over nothing)
]


class _Column(Protocol):
    @property
    def name(self) -> str: ...


class ResultShape(Protocol):
    """What the checks read of a result: ``QueryResult`` and ``generation.ResultPreview`` both fit."""

    @property
    def columns(self) -> Sequence[_Column]: ...

    @property
    def rows(self) -> Sequence[Sequence[object]]: ...

    @property
    def row_count(self) -> int: ...

    @property
    def truncated(self) -> bool: ...


@dataclass(frozen=True)
class ShapeIssue:
    code: ShapeCode
    note: str  # for a person: what does not fit
    feedback: str  # for the model: what to change


@dataclass(frozen=True)
class SqlFacts:
    """What the checks need to know about the SQL (all False when it does not parse)."""

    grouped: bool = False  # a GROUP BY anywhere
    aggregate_only: bool = False  # the outer SELECT aggregates without GROUP BY (one row by design)


# Questions that ask for one number; "how many ... for each/per ..." asks for one per group.
_SINGLE_VALUE = re.compile(
    r"^\s*(how many|how much|what is the (total|number|count|average|mean|sum|maximum|minimum|max|min)\b"
    r"|what's the (total|number|count|average)\b|count\b|(give|tell|show)( me)? the (total )?number of)",
    re.I,
)
_PER_GROUP_WORDS = re.compile(r"\b(each|per|every|by|for all|respectively|grouped)\b", re.I)
# One value per group: "for each X", "each X", "per X" (not "miles per gallon"), "for every X".
_PER_GROUP = re.compile(
    r"\b(each(?! time)|for every|per (?!gallon|hour|capita|cent)\w+|grouped by|broken down by)\b", re.I
)
_AGGREGATE_WORDS = re.compile(
    r"\b(how many|number of|count|total|average|avg|mean|sum|maximum|minimum|max|min|most|least)\b", re.I
)
# Words that make a question ask for numbers rather than a list of things.
_NUMERIC_WORDS = re.compile(
    r"\b(how (many|much|old|long|big|large|tall|often)|number|count|total|average|avg|mean|sum|maximum|"
    r"minimum|max|min|highest|lowest|largest|smallest|most|least|percent(age)?|ratio|proportion|"
    r"difference|age|year|id|ids|code|price|amount|rate)\b",
    re.I,
)
_LIST_START = re.compile(
    r"^\s*(list|show|which|find|give|return|name|what are|what were|display|tell me)\b", re.I
)
_COUNT_START = re.compile(r"^\s*(how many|what is the (total )?number of|count\b|what is the count)", re.I)

_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twenty": 20,
}
_N = r"(\d{1,3}|" + "|".join(_NUMBER_WORDS) + ")"
_RANKED = (
    r"(most|least|highest|lowest|largest|smallest|biggest|oldest|youngest|newest|latest|earliest|longest|"
    r"shortest|best|worst|cheapest|fewest|greatest|top|bottom|last|first)"
)
_TOP_N = re.compile(
    rf"\b(?:top|first|last|bottom)\s+{_N}\b(?!\s*(%|percent|years?|days?|months?))"
    rf"|\b(?:the|only)\s+{_N}\s+(?:\w+\s+)?{_RANKED}\b"
    rf"|^\s*(?:list|show|return|give|find|what are)\s+(?:me\s+)?{_N}\s+(?:\w+\s+)?{_RANKED}\b",
    re.I,
)


def expects_single_value(question: str) -> bool:
    """True for "how many …"-style questions that want one number rather than one per group."""
    return bool(_SINGLE_VALUE.search(question)) and not _PER_GROUP_WORDS.search(question)


def requested_rows(question: str) -> int | None:
    """N of "top N" / "the N most …" / "first N" in the question, else None."""
    match = _TOP_N.search(question)
    if match is None:
        return None
    word = next(g for g in match.groups() if g is not None).lower()
    return int(word) if word.isdigit() else _NUMBER_WORDS[word]


def sql_facts(sql: str | None, dialect: str | None = None) -> SqlFacts:
    """Whether ``sql`` groups and whether its outer SELECT is a plain aggregate (one row by design)."""
    if not sql:
        return SqlFacts()
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (sqlglot.errors.SqlglotError, RecursionError, ValueError):
        return SqlFacts()
    if tree is None:
        return SqlFacts()
    grouped = tree.find(exp.Group) is not None
    outer = tree if isinstance(tree, exp.Select) else None
    aggregate_only = False
    if outer is not None and outer.args.get("group") is None:
        aggregate_only = bool(outer.expressions) and all(
            e.find(exp.AggFunc) is not None for e in outer.expressions
        )
    return SqlFacts(grouped=grouped, aggregate_only=aggregate_only)


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _rows(n: int, truncated: bool = False) -> str:
    return f"{n}{'+' if truncated else ''} row{'s' if n != 1 or truncated else ''}"


def check_shape(
    question: str,
    result: ResultShape,
    sql: str | None = None,
    *,
    dialect: str | None = None,
) -> list[ShapeIssue]:
    """The ways ``result`` (of ``sql``, when given) does not fit ``question``; empty when it fits.

    An empty result is not a shape issue here (``feedback.review`` handles 0 rows).
    """
    n = result.row_count
    if n == 0:
        return []
    facts = sql_facts(sql, dialect)
    issues: list[ShapeIssue] = []
    first = list(result.rows[0]) if result.rows else []
    single_cell = n == 1 and len(result.columns) == 1 and len(first) == 1

    if n == 1 and first and all(v is None for v in first):
        issues.append(
            ShapeIssue(
                "only_null",
                "the result is a single row of NULL (an aggregate over no rows?)",
                "Your query returned only NULL: its filter or join matched no rows. Check the values "
                "(exact spelling and case as stored) and the join keys.",
            )
        )
        return issues

    if (
        n == 1
        and not result.truncated
        and _PER_GROUP.search(question)
        and _AGGREGATE_WORDS.search(question)
        and (sql is None or facts.aggregate_only)
    ):
        issues.append(
            ShapeIssue(
                "one_row_per_group",
                "the question asks for a value per group, but the result has one row",
                "Your query returned 1 row, but the question asks for one value for each group. "
                "GROUP BY the grouping column and select it next to the aggregate.",
            )
        )

    wanted = requested_rows(question)
    if wanted is not None and n > wanted:
        issues.append(
            ShapeIssue(
                "too_many_rows",
                f"the question asks for {wanted} row{'s' if wanted != 1 else ''}, the result has "
                f"{_rows(n, result.truncated)}",
                f"Your query returned {_rows(n, result.truncated)}, but the question asks for {wanted}. "
                f"ORDER BY the ranking column and add LIMIT {wanted}.",
            )
        )

    if expects_single_value(question) and n > 1:
        issues.append(
            ShapeIssue(
                "count_many_rows",
                f"the question asks for one number, the result has {_rows(n, result.truncated)}",
                f"Your query returned {_rows(n, result.truncated)}, but the question asks for a single "
                "number. Aggregate (for example COUNT(...)) instead of listing rows or groups.",
            )
        )

    if _COUNT_START.search(question) and single_cell and not _is_number(first[0]) and first[0] is not None:
        issues.append(
            ShapeIssue(
                "count_not_number",
                "the question asks how many, the result is not a number",
                "The question asks how many, but your query returned a text value. Return the count "
                "(COUNT(...)).",
            )
        )

    if (
        single_cell
        and facts.aggregate_only
        and _LIST_START.search(question)
        and not _NUMERIC_WORDS.search(question)
        and _is_number(first[0])
    ):
        issues.append(
            ShapeIssue(
                "list_got_number",
                "the question asks for a list, the result is one aggregate number",
                "The question asks for the matching rows, but your query returned one aggregate number. "
                "Select the requested columns instead of aggregating.",
            )
        )
    return issues
