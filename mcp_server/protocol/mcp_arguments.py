"""Tool arguments as clients send them: checked strictly against the published input schema, with one short
readable message per problem, and the schema itself in the single-``type`` JSON-schema dialect.

The SDK validates arguments with pydantic in lax mode (``"3"`` passes for an integer) and reports a failure
as pydantic's multi-line dump with documentation URLs. :func:`argument_problems` checks the arguments the
way a JSON-schema client reads the schema (JSON types are strict: a string is never an integer) before the
SDK sees them, and says what is wrong in words: which argument, what was expected, what was given.
:func:`single_types` rewrites ``"type": [..]`` lists, which single-``type`` dialects (the function
declaration subset some assistants use, the MCP Inspector's ``--strict``) reject, as ``anyOf``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

__all__ = ["ArgumentChecker", "argument_problems", "describe_value", "single_types", "type_lists"]

_JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
    "array": "an array",
    "object": "an object",
}
MAX_PROBLEMS = 5


def describe_value(value: Any) -> str:
    """``value`` as a message names it: its JSON type and, when short, the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return f"the string {text}" if len(text) <= 42 else f"a string of {len(value):,} characters"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value:g}"
    if isinstance(value, list):
        return f"an array of {len(value)} item(s)"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _expected(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, str):
        return _JSON_TYPES.get(kind, kind)
    options = [
        _expected(s) for s in schema.get("anyOf", []) if isinstance(s, dict) and s.get("type") != "null"
    ]
    return " or ".join(options) or "a valid value"


def _where(error: ValidationError) -> str:
    path = [str(p) for p in error.absolute_path]
    if not path:
        return "the arguments"
    head, rest = path[0], path[1:]
    return f"`{head}`" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in rest)


def _message(error: ValidationError) -> str:
    where, value = _where(error), error.instance
    given = describe_value(value)
    match error.validator:
        case "required":
            missing = str(error.message).split("'")[1] if "'" in error.message else "an argument"
            return f"`{missing}` is required"
        case "anyOf" | "oneOf":
            # A value of the right type that breaks a bound of its branch: say which bound.
            bounds = [e for e in error.context or () if e.validator not in ("type", "anyOf", "oneOf")]
            if bounds:
                return _message(bounds[0])
            return f"{where} must be {_expected(error.schema)}, got {given}"
        case "type" | "enum":
            return f"{where} must be {_expected(error.schema)}, got {given}"
        case "minimum" | "exclusiveMinimum":
            op = "at least" if error.validator == "minimum" else "more than"
            return f"{where} must be {op} {error.validator_value:g}, got {given}"
        case "maximum" | "exclusiveMaximum":
            op = "at most" if error.validator == "maximum" else "less than"
            return f"{where} must be {op} {error.validator_value:g}, got {given}"
        case "minLength":
            return (
                f"{where} must not be empty"
                if error.validator_value == 1
                else (f"{where} must be at least {error.validator_value} characters long")
            )
        case "maxLength":
            return f"{where} must be at most {error.validator_value} characters long"
        case "minItems" | "maxItems":
            op = "at least" if error.validator == "minItems" else "at most"
            return f"{where} must have {op} {error.validator_value} item(s), got {given}"
        case "additionalProperties":
            return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def argument_problems(validator: Draft202012Validator, arguments: dict[str, Any]) -> list[str]:
    """The problems of ``arguments`` under ``validator``'s schema, each one readable line (at most 5)."""
    errors = sorted(validator.iter_errors(arguments), key=lambda e: [str(p) for p in e.absolute_path])
    return [_message(e) for e in errors[:MAX_PROBLEMS]]


class ArgumentChecker:
    """Compiled validators of the published input schemas, one per tool, built on first use."""

    def __init__(self) -> None:
        self._validators: dict[str, tuple[int, Draft202012Validator]] = {}

    def problems(self, tool: str, schema: dict[str, Any], arguments: dict[str, Any]) -> list[str]:
        cached = self._validators.get(tool)
        if cached is None or cached[0] != id(schema):
            cached = (id(schema), Draft202012Validator(schema))
            self._validators[tool] = cached
        validator = cached[1]
        if validator.is_valid(arguments):
            return []
        return argument_problems(validator, arguments)


def single_types(schema: Any) -> Any:
    """A copy of ``schema`` where every ``"type": [a, b]`` is ``"anyOf": [{"type": a}, {"type": b}]``."""
    schema = copy.deepcopy(schema)
    _rewrite(schema)
    return schema


def _rewrite(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _rewrite(item)
        return
    if not isinstance(node, dict):
        return
    kinds = node.get("type")
    if isinstance(kinds, list):
        del node["type"]
        options = [{"type": k} for k in kinds]
        if "anyOf" in node:  # both: the value must satisfy the existing anyOf and one of the types
            node["allOf"] = [*node.get("allOf", []), {"anyOf": options}]
        else:
            node["anyOf"] = options
    for value in node.values():
        _rewrite(value)


def type_lists(schema: Any, path: str = "$") -> Iterator[str]:
    """Where ``schema`` holds a ``type`` that is a list (JSON paths), for tests and checks."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from type_lists(item, f"{path}[{i}]")
    elif isinstance(schema, dict):
        if isinstance(schema.get("type"), list):
            yield path
        for key, value in schema.items():
            yield from type_lists(value, f"{path}.{key}")
