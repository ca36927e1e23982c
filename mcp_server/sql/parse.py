"""Reading one statement with sqlglot for the decoding and repair aids (alias binding, column hints,
join completion): a statement sqlglot cannot read is ``None`` for them, never an error (the guard and
the engine still judge every statement)."""

from __future__ import annotations

import sqlglot
from sqlglot import exp

__all__ = ["parse_statement"]


def parse_statement(sql: str, dialect: str) -> exp.Expr | None:
    """The statement's tree in ``dialect``, or ``None`` when sqlglot cannot read it."""
    try:
        return sqlglot.parse_one(sql, read=dialect)
    except (sqlglot.errors.SqlglotError, RecursionError):
        return None
