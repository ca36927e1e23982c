"""The SQLite function allowlists agree: the guard's (sqlglot names), the engine's (SQLite's own names)
and the inline subset all live in ``mcp_server.sql.dialects`` and never contradict each other."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import apsw
import pytest

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.engines.sqlite import SqliteEngine
from sqlr1.mcp_server.db.registry import Registry
from sqlr1.mcp_server.sql import guard
from sqlr1.mcp_server.sql.dialects import ALLOWED_FUNCTIONS, SQLITE_INLINE_FUNCTIONS


def test_inline_functions_are_guard_allowed_functions() -> None:
    assert not SQLITE_INLINE_FUNCTIONS - ALLOWED_FUNCTIONS["sqlite"]


@pytest.fixture
def engine(tmp_path: Path) -> SqliteEngine:
    path = tmp_path / "t.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    conn.close()
    engine = Registry.from_targets([str(path)]).engine("t")
    assert isinstance(engine, SqliteEngine)
    return engine


def test_every_sqlite_builtin_the_guard_admits_the_engine_admits(engine: SqliteEngine) -> None:
    """Each built-in function of the engine's SQLite, called by its own name: the guard refuses it, or
    SQLite cannot prepare the call, or the engine's function check (``dialects.ENGINE_FUNCTIONS``) lets
    every function SQLite resolves through. A guard-allowed call the engine refuses is a disagreement."""
    listed = apsw.Connection(":memory:").execute("SELECT DISTINCT name, narg, type FROM pragma_function_list")
    builtins = sorted((str(name), int(narg), str(kind)) for name, narg, kind in listed)
    checked, disagreements = 0, []
    for name, narg, kind in builtins:
        args = ", ".join(["'1'"] * (narg if narg >= 0 else 1))
        sql = f"SELECT {name}({args}){' OVER ()' if kind == 'w' else ''} FROM t"
        try:
            statement = guard.check(sql, "sqlite")
            calls = engine.read_calls(statement.sql)
        except QueryFailed:
            continue  # refused by the guard, or not a call SQLite can prepare with these arguments
        checked += 1
        refused = [c for c in calls if not engine.calls.allows(c)]
        if refused:
            disagreements.append((statement.sql, refused))
    assert checked >= 80, f"only {checked} built-ins got past the guard: the probe no longer works"
    assert not disagreements, disagreements
