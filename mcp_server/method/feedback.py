"""Execution feedback: whether an attempt's outcome is acceptable, and what to tell the model if not.

The one home of the text a model reads about its previous SQL, for the agent loop at serving time
(``agent.loop`` → ``generate_sql(feedback=...)``) and for multi-turn RL (``training.multiturn``),
so a checkpoint trained to act on feedback sees in training exactly the sentences it sees when
served. :func:`review` decides: the query failed (blocked, syntax, execution, timeout), returned no
rows where rows were expected, or returned an implausible shape (many rows for a "how many"
question); :func:`value_hints` is the sentence added to "0 rows" feedback; :func:`shape_review` turns
the softer question-vs-result checks of ``mcp_server.method.shape`` ("each" answered with one row, "top 5"
with 100) into feedback of reason ``shape`` (the agent retries on it, then keeps the answer as
doubtful). The feedback then becomes a turn of the prompt through
:class:`mcp_server.method.prompt.PreviousTurn`. This module reads SQL only through sqlglot and never runs
anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import sqlglot
from sqlglot import exp

from sqlr1.mcp_server.core.errors import QueryError
from sqlr1.mcp_server.core.results import QueryResult
from sqlr1.mcp_server.method.shape import ShapeIssue, check_shape, expects_single_value

__all__ = [
    "FeedbackReason",
    "Verdict",
    "expects_single_value",
    "review",
    "shape_review",
    "value_hints",
]

FeedbackReason = Literal[
    "no_sql",
    "blocked",
    "syntax",
    "execution",
    "timeout",
    "not_found",
    "config",
    "empty",
    "implausible",
    "shape",
]

_ALLOWS_EMPTY = re.compile(r"\b(any|whether|is there|are there|does|do any)\b", re.I)


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: FeedbackReason | None = None
    feedback: str | None = None


def value_hints(hits: Sequence[tuple[str, str, str]], *, limit: int = 5) -> str:
    """The sentence appended to "0 rows" feedback: stored values (table, column, value) that may match."""
    shown = [f"{table}.{column} = {value!r}" for table, column, value in hits[:limit]]
    return f" Values in the database that may match: {'; '.join(shown)}." if shown else ""


def _has_grouping(sql: str, dialect: str | None) -> bool:
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (sqlglot.errors.SqlglotError, RecursionError):
        return False
    return tree.find(exp.Group) is not None


def _error_feedback(error: QueryError) -> tuple[FeedbackReason, str]:
    msg = error.message.rstrip(".")
    if error.kind == "blocked":
        rule = f" (rule {error.rule})" if error.rule else ""
        return "blocked", (
            f"Your query was refused by the read-only guard{rule}: {msg}. "
            "Write exactly one read-only SELECT statement."
        )
    if error.kind == "timeout":
        return "timeout", (
            f"Your query timed out: {msg}. Simplify it: join on keys, filter early, avoid cross joins "
            "and recursion."
        )
    if error.kind in ("syntax", "execution", "not_found", "config"):
        return (
            error.kind,
            f"Your query failed with: {msg}. Fix the query using only the tables and columns in the schema.",
        )
    return "execution", f"Your query failed with: {msg}."


def review(
    question: str,
    sql: str | None,
    result: QueryResult | None,
    error: QueryError | None,
    *,
    dialect: str | None = None,
) -> Verdict:
    """Accept the attempt, or say what is wrong with it in words the model can act on."""
    if not sql:
        return Verdict(
            False,
            "no_sql",
            (
                "Your answer did not contain an SQL query. Answer with one SQL query inside ```sql ... ``` "
                "in the <answer> block."
            ),
        )
    if error is not None:
        reason, text = _error_feedback(error)
        return Verdict(False, reason, text)
    if result is None:
        return Verdict(False, "execution", "Your query did not return a result. Write one SELECT statement.")
    if result.row_count == 0 and not _ALLOWS_EMPTY.search(question):
        return Verdict(
            False,
            "empty",
            (
                "Your query returned 0 rows; check the values and joins: compare literals with the exact values "
                "stored in the database (spelling, case, format) and make sure every join uses matching keys."
            ),
        )
    if expects_single_value(question) and result.row_count > 1 and not _has_grouping(sql, dialect):
        shown = f"{result.row_count}{'+' if result.truncated else ''}"
        return Verdict(
            False,
            "implausible",
            (
                f"Your query returned {shown} rows, but the question asks for a single number. "
                "Aggregate (for example COUNT(...)) instead of listing rows."
            ),
        )
    return Verdict(True)


def shape_review(
    question: str, sql: str | None, result: QueryResult, *, dialect: str | None = None
) -> tuple[Verdict, list[ShapeIssue]]:
    """The shape checks of an accepted attempt (``mcp_server.method.shape.check_shape``): accepted when the
    result fits the question, else reason ``shape`` with every issue's feedback, and the issues."""
    issues = check_shape(question, result, sql, dialect=dialect)
    if not issues:
        return Verdict(True), []
    return Verdict(False, "shape", " ".join(issue.feedback for issue in issues)), issues
