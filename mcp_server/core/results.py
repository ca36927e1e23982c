"""Query results: column metadata, JSON-safe rows, limits and timing."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import uuid
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "MAX_SAFE_INTEGER",
    "Column",
    "JSONScalar",
    "JSONValue",
    "QueryResult",
    "column",
    "json_safe",
    "safe_integers",
]

JSONValue = str | int | float | bool | None
# The same values with a JSON schema of one ``anyOf`` of four single types instead of pydantic's five
# (integer is a number): no ``type`` lists, which single-``type`` schema dialects reject.
JSONScalar = Annotated[
    JSONValue,
    WithJsonSchema(
        {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}
    ),
]

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a JavaScript number (an IEEE double) holds exactly; larger ones go as strings."""

# Cells are typed in the model (the server validates them) but not in the published JSON schema: a client
# that validates tool output with ``jsonschema`` (the MCP SDK's does) pays ~10 µs per typed cell, about
# 100 ms for 1,000 rows of 9 columns, against 7 ms with rows typed as arrays only.
_ROWS_SCHEMA = WithJsonSchema({"type": "array", "items": {"type": "array"}})


class Column(BaseModel):
    """One result column (immutable, so results can share instances: see :func:`column`)."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: str | None = Field(default=None, description="Declared or inferred type, as the engine reports it.")


@lru_cache(maxsize=4096)
def column(name: str, type: str | None) -> Column:
    """The :class:`Column` for ``name`` and ``type``, built once (a query's columns repeat call after call)."""
    return Column(name=name, type=type)


class QueryResult(BaseModel):
    """A guarded query's result, capped by rows and characters."""

    columns: list[Column]
    rows: Annotated[list[list[JSONValue]], _ROWS_SCHEMA] = Field(
        description="One array per row, in `columns` order, with one JSON scalar (string, number, boolean or "
        "null) per column."
    )
    row_count: int = Field(description="Rows returned (after capping).")
    truncated: bool = Field(description="True when more rows (or characters) existed than were returned.")
    elapsed_ms: float
    raw_rows: SkipJsonSchema[list[tuple[Any, ...]] | None] = Field(
        default=None,
        exclude=True,
        description="Engine-native rows (uncapped by characters), kept for result comparison; never serialized.",
    )

    def to_json_dict(self) -> dict[str, Any]:
        """The result as the ``execute_sql`` tool sends it (``raw_rows`` left out)."""
        return self.model_dump(mode="json", by_alias=True)


def _unsafe(value: object) -> bool:
    return type(value) is int and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


def safe_integers(values: list[Any]) -> list[Any]:
    """``values`` (scalars, or rows of scalars) with every integer beyond ±(2^53 - 1) as its decimal
    string, so a JavaScript client keeps every digit; ``values`` itself when it holds none (no copy)."""
    top, low = MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER
    if values and type(values[0]) is list:
        if not any(type(c) is int and (c > top or c < low) for row in values for c in row):
            return values
    elif not any(type(v) is int and (v > top or v < low) for v in values):
        return values
    return [
        [str(c) if _unsafe(c) else c for c in v] if type(v) is list else str(v) if _unsafe(v) else v
        for v in values
    ]


def json_safe(value: Any) -> JSONValue:
    """Convert an engine value to something JSON can carry without losing meaning."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return value
    if isinstance(value, decimal.Decimal):
        if value == value.to_integral_value() and abs(value) < 2**53:
            return int(value)
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(raw).decode("ascii")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)
