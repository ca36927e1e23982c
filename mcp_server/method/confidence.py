"""How sure an answer is, and what that rests on: votes, the result's shape, retries.

Owns :class:`Confidence` (carried by ``generate_sql``'s result, the agent's ``Answer``, the chat and
``sqlr1 ask``) and :func:`assess`, the one rule that sets its level:

* ``refused``: nothing ran because the read-only guard refused the statement (the rule is named);
* ``failed``: no result (no SQL, or every query failed);
* ``cancelled``: stopped by the user;
* ``doubtful``: there is a result, but the result's shape does not fit the question
  (``mcp_server.method.shape``), the candidates disagree (at most half of those sampled agree on it), the
  loop ran out of attempts with a result its review still rejects (e.g. 0 rows), or the grammar, not the
  model, chose a column of the query (``rebound``: the model had qualified a column by a table that lacks it),
  or the query ran only once a table it forgot was joined for it (``joined``);
* ``ok``: none of the above.

Retries are recorded (``attempts``, ``retried_because``) but do not lower the level by themselves:
the level judges the final result, and a corrected query is judged like any other.

The rule was fixed before it was measured; ``benchmarks/confidence_bench.py`` measures how often an
"ok" answer is right and a "doubtful" one wrong on the Spider dev subset (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from sqlr1.mcp_server.core.errors import QueryError
from sqlr1.mcp_server.method.shape import ResultShape, ShapeCode, ShapeIssue, check_shape

__all__ = ["Confidence", "ConfidenceLevel", "assess"]

ConfidenceLevel = Literal["ok", "doubtful", "failed", "refused", "cancelled"]


class Confidence(BaseModel):
    """How sure an answer is, and what that rests on."""

    level: ConfidenceLevel = Field(
        description="ok, doubtful (a result that may be wrong: see reasons), failed (no result), "
        "refused (the read-only guard refused the statement) or cancelled."
    )
    reasons: list[str] = Field(
        default_factory=list, description="Why the level is not ok, in plain words (empty when ok)."
    )
    votes: int | None = Field(
        default=None, description="Candidates whose result agrees with the chosen one (None: not known)."
    )
    executed: int | None = Field(default=None, description="Candidates whose SQL executed.")
    candidates: int | None = Field(default=None, description="Candidates sampled.")
    attempts: int = Field(default=1, description="Attempts of the agent loop (generate, run, review).")
    retried_because: list[str] = Field(
        default_factory=list, description="The review's reason for each retry (e.g. execution, empty, shape)."
    )
    shape: list[ShapeCode] = Field(
        default_factory=list, description="The ways the result's shape does not fit the question."
    )

    def basis(self) -> str:
        """What the level rests on, in a few words ("1 of 1 candidate agrees · shape fits · 1 attempt")."""
        parts: list[str] = []
        if self.candidates:
            ran = (
                f" ({self.executed} ran)"
                if self.executed is not None and self.executed != self.candidates
                else ""
            )
            parts.append(f"{self.votes or 0} of {self.candidates} candidate(s) agree{ran}")
        if self.level in ("ok", "doubtful"):
            parts.append("shape fits the question" if not self.shape else "shape does not fit")
        retried = (
            f" (retried: {', '.join(dict.fromkeys(self.retried_because))})" if self.retried_because else ""
        )
        parts.append(f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}{retried}")
        return " · ".join(parts)

    def summary(self) -> str:
        """``level: reasons`` (or ``ok · basis``), one line for a status line or a log."""
        if self.reasons:
            return f"{self.level}: {'; '.join(self.reasons)}"
        return f"{self.level} · {self.basis()}"


def assess(
    question: str,
    *,
    result: ResultShape | None,
    sql: str | None = None,
    error: QueryError | None = None,
    cancelled: bool = False,
    votes: int | None = None,
    executed: int | None = None,
    candidates: int | None = None,
    attempts: int = 1,
    retried_because: Sequence[str] = (),
    unresolved: str | None = None,
    dialect: str | None = None,
    shape_issues: Sequence[ShapeIssue] | None = None,
    rebound: bool = False,
    joined: Sequence[str] = (),
) -> Confidence:
    """The confidence of an answer (see the module docstring for the rule).

    ``unresolved``: the review's complaint about the final result when the loop ran out of attempts
    (e.g. "0 rows"); ``shape_issues``: already computed shape issues (computed here when None).
    """
    base = Confidence(
        level="ok",
        votes=votes,
        executed=executed,
        candidates=candidates,
        attempts=attempts,
        retried_because=list(retried_because),
    )
    if cancelled:
        return base.model_copy(update={"level": "cancelled", "reasons": ["cancelled"]})
    if result is None:
        if error is not None and error.kind == "blocked":
            rule = f" (rule {error.rule})" if error.rule else ""
            reason = f"refused by the read-only guard{rule}: {error.message}"
            return base.model_copy(update={"level": "refused", "reasons": [reason]})
        reason = str(error) if error is not None else "no SQL was produced"
        return base.model_copy(update={"level": "failed", "reasons": [reason]})

    issues = (
        list(shape_issues)
        if shape_issues is not None
        else check_shape(question, result, sql, dialect=dialect)
    )
    reasons = [issue.note for issue in issues]
    if unresolved:
        reasons.append(unresolved)
    if rebound:
        reasons.append(
            "the model named a column its table lacks; the grammar chose one of that table instead"
        )
    if joined:
        reasons.append(
            f"the model did not join {', '.join(joined)}, whose column it named; the join was added "
            "along the foreign keys"
        )
    if candidates and candidates > 1 and votes is not None and 2 * votes <= candidates:
        reasons.append(f"only {votes} of {candidates} candidates agree on this result")
    return base.model_copy(
        update={
            "level": "doubtful" if reasons else "ok",
            "reasons": reasons,
            "shape": [issue.code for issue in issues],
        }
    )
