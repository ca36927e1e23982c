"""The behaviour every engine must show, run against real databases by tests/test_engines_*.py.

A subclass provides the ``engine`` fixture (Spider's concert_singer loaded), ``write_attempts``
(statements the engine itself must refuse even with the guard bypassed) and ``json_sql`` /
``json_expected`` (bytes, decimals, dates as the engine returns them).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest
import sqlglot

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.engines.base import CancelHandle, Engine
from sqlr1.mcp_server.db.executor import cap_result

TABLES = ("concert", "singer", "singer_in_concert", "stadium")
# Ends after 1000 steps on every engine (MySQL caps recursion), then a 10^12-row cross join.
RUNAWAY = (
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) "
    "SELECT count(*) FROM r AS a, r AS b, r AS c, r AS d"
)


def q(engine: Engine, sql: str) -> str:
    """Write the test SQL once (SQLite dialect, double-quoted names) and transpile it per engine."""
    return sqlglot.transpile(sql, read="sqlite", write=engine.dialect)[0]


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in TABLES:
        raw = engine.execute(q(engine, f'SELECT * FROM "{table}"'), max_rows=10_000, timeout_s=10)
        out[table] = sorted(tuple(str(v) for v in row) for row in raw.rows)
    return out


class EngineContract:
    write_attempts: ClassVar[tuple[str, ...]] = ()
    json_sql: ClassVar[str] = ""
    json_expected: ClassVar[tuple[Any, ...]] = ()

    def test_select(self, engine: Engine) -> None:
        raw = engine.execute(
            q(engine, 'SELECT "Name", "Age" FROM singer ORDER BY "Singer_ID"'), max_rows=100, timeout_s=10
        )
        assert [c.name for c in raw.columns] == ["Name", "Age"]
        assert all(c.type for c in raw.columns)
        assert len(raw.rows) == 6 and raw.rows[0][0] == "Joe Sharp"
        assert int(raw.rows[0][1]) == 52
        assert raw.truncated is False and raw.elapsed_ms >= 0

    def test_row_cap_sets_truncated(self, engine: Engine) -> None:
        capped = engine.execute(q(engine, "SELECT * FROM singer"), max_rows=2, timeout_s=10)
        assert len(capped.rows) == 2 and capped.truncated is True
        exact = engine.execute(q(engine, "SELECT * FROM singer"), max_rows=6, timeout_s=10)
        assert len(exact.rows) == 6 and exact.truncated is False

    def test_row_cap_on_a_huge_result(self, engine: Engine) -> None:
        sql = (
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000) "
            "SELECT a.n, b.n FROM r AS a, r AS b"
        )
        raw = engine.execute(q(engine, sql), max_rows=10, timeout_s=20)
        assert len(raw.rows) == 10 and raw.truncated is True
        assert engine.execute(q(engine, "SELECT 1"), max_rows=1, timeout_s=5).rows[0][0] == 1

    def test_fingerprint_streams_the_whole_result_past_the_cap(self, engine: Engine) -> None:
        """Issue 16, bug 2: with a fingerprint the engine reads every row (keeping only max_rows), and
        results that differ only after the cap fingerprint differently."""
        from sqlr1.mcp_server.db.engines.base import ResultFingerprint

        def numbers(last: int) -> str:
            return q(
                engine,
                f"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < {last}) SELECT n FROM r",
            )

        fp = ResultFingerprint()
        raw = engine.execute(numbers(999), max_rows=10, timeout_s=10, fingerprint=fp)
        assert raw.truncated and len(raw.rows) == 10  # the preview stays capped
        direct = ResultFingerprint(stable=fp.key()[0] == "stable")  # DuckDB's worker digests stably
        for n in range(1, 1000):
            direct.add((n,))
        assert fp.rows == 999 and fp.key() == direct.key()
        other = ResultFingerprint()
        engine.execute(numbers(998), max_rows=10, timeout_s=10, fingerprint=other)
        assert other.key() != fp.key()
        zero = ResultFingerprint()
        engine.execute(numbers(999), max_rows=0, timeout_s=10, fingerprint=zero)
        assert zero.key() == fp.key()

    def test_empty_result_keeps_columns(self, engine: Engine) -> None:
        raw = engine.execute(q(engine, 'SELECT "Name" FROM singer WHERE 1 = 0'), max_rows=5, timeout_s=10)
        assert raw.rows == [] and [c.name for c in raw.columns] == ["Name"] and raw.truncated is False

    def test_character_cap(self, engine: Engine) -> None:
        raw = engine.execute(q(engine, "SELECT * FROM singer"), max_rows=100, timeout_s=10)
        result = cap_result(raw, max_chars=60)
        assert result.truncated is True and 1 <= result.row_count < 6
        assert len(result.raw_rows or []) == result.row_count

    def test_json_safe_values(self, engine: Engine) -> None:
        result = cap_result(engine.execute(self.json_sql, max_rows=5, timeout_s=10), max_chars=10_000)
        assert result.rows[0] == list(self.json_expected)
        json.dumps(result.model_dump())

    def test_writes_refused_by_the_engine(self, engine: Engine) -> None:
        before = snapshot(engine)
        for sql in self.write_attempts:
            with pytest.raises(QueryFailed) as info:
                engine.execute(sql, max_rows=5, timeout_s=5)
            assert info.value.error.kind in ("blocked", "syntax", "execution"), sql
        assert snapshot(engine) == before

    def test_missing_table_and_column_errors(self, engine: Engine) -> None:
        with pytest.raises(QueryFailed) as info:
            engine.execute(q(engine, "SELECT * FROM no_such_table"), max_rows=5, timeout_s=5)
        assert info.value.error.kind == "execution"
        assert "no_such_table" in info.value.error.message and "hint" in info.value.error.message
        with pytest.raises(QueryFailed) as info:
            engine.execute(q(engine, "SELECT no_such_column FROM singer"), max_rows=5, timeout_s=5)
        assert info.value.error.kind == "execution" and "hint" in info.value.error.message

    def test_syntax_error(self, engine: Engine) -> None:
        with pytest.raises(QueryFailed) as info:
            engine.execute("SELEC 1", max_rows=5, timeout_s=5)
        assert info.value.error.kind in ("syntax", "blocked")

    def test_explain(self, engine: Engine) -> None:
        engine.explain(q(engine, 'SELECT "Name" FROM singer'), timeout_s=5)
        with pytest.raises(QueryFailed) as info:
            engine.explain(q(engine, "SELECT no_such_column FROM singer"), timeout_s=5)
        assert info.value.error.kind == "execution"

    def test_catalog(self, engine: Engine) -> None:
        tables = {t.name: t for t in engine.catalog()}
        assert set(TABLES) <= set(tables)
        singer = tables["singer"]
        assert [c.name for c in singer.columns][:3] == ["Singer_ID", "Name", "Country"]
        assert singer.primary_key == ["Singer_ID"]
        fks = tables["singer_in_concert"].foreign_keys
        assert any(fk.ref_table.endswith("concert") and fk.columns == ["concert_ID"] for fk in fks)

    def test_fingerprint_is_stable(self, engine: Engine) -> None:
        assert engine.fingerprint() == engine.fingerprint()

    def test_missing_column_message_gives_a_precise_hint(self, engine: Engine) -> None:
        """The engine's own "no such column" message names the alias and column that column_hint reads,
        and with the engine's catalog the hint says which table the alias is and where the column is."""
        from sqlr1.mcp_server.sql.column_hint import column_hint, missing_column

        sql = q(engine, 'SELECT T1."Capacity" FROM concert AS T1, stadium AS T2')  # T2 holds Capacity
        with pytest.raises(QueryFailed) as failed:
            engine.execute(sql, max_rows=10, timeout_s=10)
        message = failed.value.error.message
        named = missing_column(message)
        assert named is not None, message
        assert (named[0] or "").lower() == "t1" and named[1].lower() == "capacity"
        tables = {t.name: [c.name for c in t.columns] for t in engine.catalog()}
        hint = column_hint(message, sql, engine.dialect, tables)
        assert hint is not None and hint.lower() == (
            "t1 is concert, which has no column capacity; capacity is a column of stadium (t2)."
        )

    def test_ambiguous_column_message_gives_a_precise_hint(self, engine: Engine) -> None:
        """The engine's "ambiguous column" message carries the generic column hint (the executor puts the
        precise one in its place), and column_hint names each reference of the query that holds it."""
        from sqlr1.mcp_server.db.engines.base import COLUMN_HINT
        from sqlr1.mcp_server.sql.column_hint import ambiguous_column, column_hint

        sql = q(engine, 'SELECT "Name" FROM singer AS s, stadium AS t')
        with pytest.raises(QueryFailed) as failed:
            engine.execute(sql, max_rows=10, timeout_s=10)
        message = failed.value.error.message
        assert message.endswith(COLUMN_HINT) and (ambiguous_column(message) or "").lower() == "name", message
        tables = {t.name: [c.name for c in t.columns] for t in engine.catalog()}
        hint = column_hint(message, sql, engine.dialect, tables)
        assert hint is not None and hint.lower() == (
            "name is a column of singer (s) and stadium (t); qualify it by the one you mean: s.name or t.name."
        )

    def test_timeout_stops_the_engine(self, engine: Engine) -> None:
        started = time.monotonic()
        with pytest.raises(QueryFailed) as info:
            engine.execute(q(engine, RUNAWAY), max_rows=5, timeout_s=1.0)
        elapsed = time.monotonic() - started
        assert info.value.error.kind == "timeout" and "1.0 s" in info.value.error.message
        assert elapsed < 2.0  # the product promise: stopped within timeout + 1 s
        assert engine.execute(q(engine, "SELECT 1"), max_rows=1, timeout_s=5).rows[0][0] == 1

    def test_cancel_handle_stops_only_that_query(self, engine: Engine) -> None:
        handle = CancelHandle()
        timer = threading.Timer(0.3, handle.cancel)
        timer.start()
        with pytest.raises(QueryFailed) as info:
            engine.execute(q(engine, RUNAWAY), max_rows=5, timeout_s=30, cancel=handle)
        timer.join()
        assert info.value.error.kind == "execution" and "cancelled" in info.value.error.message
        assert engine.execute(q(engine, "SELECT 2"), max_rows=1, timeout_s=5).rows[0][0] == 2

    def test_already_cancelled_handle_stops_at_once(self, engine: Engine) -> None:
        handle = CancelHandle()
        handle.cancel()
        started = time.monotonic()
        with pytest.raises(QueryFailed) as info:
            engine.execute(q(engine, RUNAWAY), max_rows=5, timeout_s=30, cancel=handle)
        assert "cancelled" in info.value.error.message and time.monotonic() - started < 5
        assert engine.execute(q(engine, "SELECT 3"), max_rows=1, timeout_s=5).rows[0][0] == 3

    def test_concurrent_queries(self, engine: Engine) -> None:
        sql = q(engine, 'SELECT count(*) FROM singer WHERE "Age" > 20')
        with ThreadPoolExecutor(4) as pool:
            results = list(
                pool.map(lambda _: engine.execute(sql, max_rows=5, timeout_s=10).rows[0][0], range(20))
            )
        assert len(set(results)) == 1 and int(results[0]) > 0
