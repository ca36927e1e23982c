"""Structured query errors: what went wrong, which rule, and where.

Every failure a user or a model can act on is a :class:`QueryError` value; the
exception :class:`QueryFailed` carries one through the call stack. Over MCP a failed tool call is an
``isError`` result whose structured content is the :class:`QueryError` (and whose text says the same for
a person: ``Error executing tool NAME: kind [rule]: message``), so clients read it as data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ErrorKind = Literal["blocked", "syntax", "execution", "timeout", "not_found", "config", "invalid_arguments"]
"""``invalid_arguments``: a tool call's arguments break its input schema (checked before the tool runs)."""

__all__ = ["ErrorKind", "QueryError", "QueryFailed", "quoted"]


def quoted(value: str, limit: int = 80) -> str:
    """``repr(value)`` for a message, shortened when long: an error names a bad argument, it does not
    echo 100 kB of it back."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(value):,} characters)"


class QueryError(BaseModel):
    """An error a client can show to a person or feed back to a model."""

    kind: ErrorKind
    message: str = Field(description="What went wrong and how to fix the query.")
    rule: str | None = Field(default=None, description="The guard rule that blocked the statement.")
    position: int | None = Field(
        default=None, description="Character offset of the offending node, if known."
    )

    def __str__(self) -> str:
        rule = f" [{self.rule}]" if self.rule else ""
        return f"{self.kind}{rule}: {self.message}"


class QueryFailed(Exception):
    """Raised with a :class:`QueryError` attached."""

    def __init__(self, error: QueryError) -> None:
        super().__init__(str(error))
        self.error = error

    @classmethod
    def of(
        cls,
        kind: ErrorKind,
        message: str,
        *,
        rule: str | None = None,
        position: int | None = None,
    ) -> QueryFailed:
        return cls(QueryError(kind=kind, message=message, rule=rule, position=position))
