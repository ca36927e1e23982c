"""SQLite engine on a copy of Spider's concert_singer: read-only file, authorizer, deadline, cancel."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest
from engine_contract import EngineContract
from sqlite_lock import exclusive_lock

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.engines.base import DatabaseSpec
from sqlr1.mcp_server.db.engines.sqlite import SqliteEngine


def _engine(path: Path) -> SqliteEngine:
    return SqliteEngine(DatabaseSpec(name=path.stem, kind="sqlite", url=f"sqlite:///{path}", path=path))


@pytest.fixture
def db_path(spider_copy) -> Path:
    return spider_copy("concert_singer")


@pytest.fixture
def engine(db_path: Path) -> Iterator[SqliteEngine]:
    eng = _engine(db_path)
    yield eng
    eng.close()


class TestSqliteEngine(EngineContract):
    write_attempts = (
        "INSERT INTO singer (Singer_ID, Name) VALUES (99, 'x')",
        "UPDATE singer SET Age = 0",
        "DELETE FROM singer",
        "CREATE TABLE evil (a)",
        "CREATE TEMP TABLE evil (a)",
        "DROP TABLE singer",
        "ATTACH DATABASE 'evil.db' AS evil",
        "PRAGMA query_only = OFF",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA writable_schema = ON",
        "SELECT 1; DELETE FROM singer",
        "BEGIN IMMEDIATE",
        "VACUUM",
        "REINDEX",
        "SELECT load_extension('evil')",
        "SELECT randomblob(1000000000)",
        "SELECT * FROM pragma_database_list",
        "UPDATE sqlite_master SET sql = 'x'",
    )
    json_sql = "SELECT X'0102' AS b, X'FF00' AS nb, 1.5 AS f, NULL AS n, 'é' AS s"
    json_expected = ("\x01\x02", "base64:/wA=", 1.5, None, "é")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_bytes_unchanged_after_write_attempts(engine: SqliteEngine, db_path: Path) -> None:
    before = _digest(db_path)
    for sql in TestSqliteEngine.write_attempts:
        with pytest.raises(QueryFailed):
            engine.execute(sql, max_rows=5, timeout_s=5)
    assert _digest(db_path) == before
    assert not (db_path.parent / "evil.db").exists() and not Path("evil.db").exists()


def test_authorizer_refusal_is_blocked_with_rule(engine: SqliteEngine) -> None:
    with pytest.raises(QueryFailed) as info:
        engine.execute("SELECT load_extension('x')", max_rows=1, timeout_s=5)
    # SQLite's own reading (its authorizer) names the function: refused as the guard would refuse it.
    assert info.value.error.kind == "blocked" and info.value.error.rule == "function_not_allowed"
    assert "SQLite reads this statement as calling load_extension" in info.value.error.message


def test_allowlisted_builtins_work(engine: SqliteEngine) -> None:
    raw = engine.execute(
        "SELECT count(*), max(Age), upper(Name) LIKE 'J%', substr(Name, 1, 3), "
        "strftime('%Y', '2020-01-02'), iif(1, 'a', 'b'), json_extract('{\"a\": 1}', '$.a') "
        "FROM singer WHERE Name GLOB '*a*'",
        max_rows=5,
        timeout_s=5,
    )
    assert raw.rows[0][0] >= 1 and raw.rows[0][4] == "2020"
    raw = engine.execute("SELECT count(*) FROM json_each('[1, 2, 3]')", max_rows=1, timeout_s=5)
    assert raw.rows[0][0] == 3


def test_extra_functions_are_allowed(db_path: Path) -> None:
    eng = _engine(db_path)
    try:
        with pytest.raises(QueryFailed):
            eng.execute("SELECT sqlite_version()", max_rows=1, timeout_s=5)
        eng.allow_functions(["SQLITE_VERSION"])
        assert (
            eng.execute("SELECT sqlite_version()", max_rows=1, timeout_s=5).rows[0][0]
            == apsw.sqlite_lib_version()  # the SQLite APSW bundles, not the system's
        )
    finally:
        eng.close()


def test_fingerprint_changes_with_the_schema(db_path: Path) -> None:
    eng = _engine(db_path)
    try:
        before = eng.fingerprint()
        writer = sqlite3.connect(db_path)
        writer.execute("CREATE TABLE added (a INTEGER)")
        writer.commit()
        writer.close()
        assert eng.fingerprint() != before
        assert "added" in {t.name for t in eng.catalog()}
    finally:
        eng.close()


def test_catalog_of_a_thousand_tables_is_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "wide.sqlite"
    writer = sqlite3.connect(path)
    ddl = "".join(
        f'CREATE TABLE "t{i}" (id INTEGER PRIMARY KEY, name TEXT, parent INTEGER REFERENCES "t0"(id));'
        for i in range(1000)
    )
    writer.executescript(f"BEGIN; {ddl} COMMIT;")  # one transaction: one fsync, not a thousand
    writer.close()
    eng = _engine(path)
    try:
        tables = eng.catalog()
        assert len(tables) == 1000 and all(len(t.columns) == 3 for t in tables)
        assert all(t.primary_key == ["id"] for t in tables)
        assert tables[5].foreign_keys[0].ref_table == "t0"
    finally:
        eng.close()


def test_deleted_file_gives_a_clear_error(tmp_path: Path, spider_copy) -> None:
    path = spider_copy("pets_1")
    eng = _engine(path)
    try:
        path.unlink()
        with pytest.raises(QueryFailed) as info:
            eng.execute("SELECT 1", max_rows=1, timeout_s=5)
        assert info.value.error.kind == "not_found" and str(path) in info.value.error.message
    finally:
        eng.close()


def test_corrupted_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    eng = _engine(path)
    try:
        with pytest.raises(QueryFailed) as info:
            eng.execute("SELECT * FROM t", max_rows=1, timeout_s=5)
        assert info.value.error.kind == "execution" and str(path) in info.value.error.message
    finally:
        eng.close()


def test_locked_file_gives_a_clear_error(spider_copy) -> None:
    path = spider_copy("pets_1")
    eng = SqliteEngine(
        DatabaseSpec(name="pets_1", kind="sqlite", url=f"sqlite:///{path}", path=path), busy_timeout_s=0.2
    )
    try:
        with exclusive_lock(path):
            with pytest.raises(QueryFailed) as info:
                eng.execute("SELECT count(*) FROM pets", max_rows=1, timeout_s=5)
            assert info.value.error.kind == "execution" and "locked" in info.value.error.message
        assert eng.execute("SELECT count(*) FROM pets", max_rows=1, timeout_s=5).rows == [(3,)]
    finally:
        eng.close()


def test_huge_value_blowup_is_bounded(engine: SqliteEngine) -> None:
    with pytest.raises(QueryFailed) as info:
        engine.execute(
            "SELECT length(replace(printf('%.*c', 1000000, 'x'), 'x', '" + "y" * 100 + "'))",
            max_rows=1,
            timeout_s=5,
        )
    assert info.value.error.kind == "execution" and "MiB" in info.value.error.message
    assert engine.execute("SELECT length(printf('%.*c', 1000, 'x'))", max_rows=1, timeout_s=5).rows == [
        (1000,)
    ]


def test_a_second_statement_never_runs(engine: SqliteEngine, db_path: Path) -> None:
    """The engine alone (no guard): APSW would run every statement of a text; the exec tracer stops it."""
    before = db_path.read_bytes()
    for sql in ("SELECT 1; SELECT 2", "SELECT Name FROM singer WHERE 0; SELECT 2", "SELECT 1;\nSELECT 2;"):
        with pytest.raises(QueryFailed) as info:
            engine.execute(sql, max_rows=10, timeout_s=5)
        assert info.value.error.kind == "blocked" and info.value.error.rule == "engine_read_only"
        assert "only one statement" in info.value.error.message
    # Comments or empty statements after the ``;`` do nothing: allowed, like in the standard library.
    for sql in ("SELECT 1;  -- done\n", "SELECT 1; /* done */", "SELECT 1; ;", "SELECT 1;\n\n"):
        assert engine.execute(sql, max_rows=10, timeout_s=5).rows == [(1,)], sql
    assert db_path.read_bytes() == before


def test_columns_of_an_empty_result(engine: SqliteEngine) -> None:
    raw = engine.execute("SELECT Name, Age AS years FROM singer WHERE 0", max_rows=10, timeout_s=5)
    assert raw.rows == [] and [c.name for c in raw.columns] == ["Name", "years"]


def test_the_tracer_refuses_a_statement_sqlite_marks_as_writing(tmp_path: Path) -> None:
    """Behind the authorizer: a statement SQLite does not mark read-only never takes its first step."""
    from sqlr1.mcp_server.db.engines.sqlite import _Conn, _Running

    raw = apsw.Connection(str(tmp_path / "w.sqlite"))  # writable on purpose, no authorizer
    conn = _Conn(raw, _Running(), (0, 0), -1)
    raw.exec_trace = conn.trace
    with pytest.raises(apsw.ExecTraceAbort):
        raw.execute("CREATE TABLE t (x)")
    assert conn.refused == "the statement would write to the database"
    conn.description = conn.refused = None
    assert raw.execute("SELECT count(*) FROM sqlite_schema").fetchall() == [(0,)]  # nothing was created
    raw.close()


def test_nul_in_a_statement_is_refused(engine: SqliteEngine) -> None:
    with pytest.raises(QueryFailed) as info:
        engine.execute("SELECT 1\x00; DELETE FROM singer", max_rows=10, timeout_s=5)
    assert info.value.error.kind == "blocked" and "NUL" in info.value.error.message


def test_text_that_is_not_utf8_is_a_precise_execution_error(db_path: Path) -> None:
    """Not a guard block (it used to read 'blocked: NUL character'): an execution error naming the row and
    how to read the value."""
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("CREATE TABLE legacy (id INTEGER, t TEXT)")
        conn.execute("INSERT INTO legacy VALUES (1, 'fine'), (2, CAST(X'FF41' AS TEXT))")
    conn.close()
    eng = _engine(db_path)
    try:
        assert eng.execute("SELECT t FROM legacy WHERE id = 1", max_rows=5, timeout_s=5).rows == [("fine",)]
        with pytest.raises(QueryFailed) as info:
            eng.execute("SELECT t FROM legacy ORDER BY id", max_rows=5, timeout_s=5)
        error = info.value.error
        assert error.kind == "execution" and error.rule is None
        assert (
            "row 2" in error.message and "UTF-8" in error.message and "CAST(column AS BLOB)" in error.message
        )
        raw = eng.execute("SELECT CAST(t AS BLOB) FROM legacy WHERE id = 2", max_rows=5, timeout_s=5)
        assert raw.rows == [(b"\xffA",)]
    finally:
        eng.close()
