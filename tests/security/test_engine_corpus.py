"""The attack corpus end to end through the executor, on real SQLite, DuckDB, PostgreSQL and MariaDB.

For each engine: a database holding a ``canary`` table (SQLite: a copied Spider database; DuckDB: a
temporary file; PostgreSQL and MariaDB: a dedicated ``sqlr1_sec`` database) and a canary file outside
it. Every corpus statement for the engine goes through ``Executor.run``; afterwards the database's
content checksum and the canary file are unchanged and the file's secret never appeared in a result.

SQLite and DuckDB run in-process on throwaway copies, so there the corpus is also sent straight to
the engine with the guard bypassed: the engine's own read-only settings (defence in depth) must
make every statement fail or run harmlessly. That pass is not run on the shared PostgreSQL/MariaDB
servers, where the test connects as a superuser and a statement like SHUTDOWN would hit everyone.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from security.corpus import CATEGORIES, HARMLESS_READS, Attack, for_engine
from sqlr1.mcp_server.core.config import GuardSettings
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.executor import Executor
from sqlr1.mcp_server.db.registry import Registry

SEC_DB = "sqlr1_sec"
CANARY_ROWS = [(1, "alpha"), (2, "beta"), (3, None), (4, "delta ' quote")]
# Paths some attacks would create if they ran (DuckDB EXPORT DATABASE, dumps into /tmp).
WOULD_CREATE = [Path("/tmp/sqlr1_export")]


@dataclass
class CanaryFile:
    path: Path
    secret: str
    digest: str
    mtime_ns: int
    listing: list[str]

    @classmethod
    def create(cls, folder: Path) -> CanaryFile:
        folder.mkdir(parents=True, exist_ok=True)
        secret = f"sqlr1-canary-{uuid.uuid4().hex}"
        path = folder / "secret.txt"
        path.write_text(f"id,v\n1,{secret}\n", encoding="utf-8")
        st = path.stat()
        return cls(path, secret, _sha256(path.read_bytes()), st.st_mtime_ns, sorted(os.listdir(folder)))

    def assert_untouched(self) -> None:
        assert self.path.is_file(), "canary file was removed"
        assert _sha256(self.path.read_bytes()) == self.digest, "canary file was written"
        assert self.path.stat().st_mtime_ns == self.mtime_ns, "canary file was touched"
        assert sorted(os.listdir(self.path.parent)) == self.listing, "files appeared next to the canary"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _outcome(run: Callable[[str], object], sql: str, secret: str) -> str:
    try:
        result = run(sql)
    except QueryFailed as exc:
        return exc.error.kind
    assert secret not in repr(result), f"the canary file's content came back from {sql!r}"
    return "ran"


def _outcome_rule(run: Callable[[str], object], sql: str, secret: str) -> tuple[str, str | None]:
    try:
        result = run(sql)
    except QueryFailed as exc:
        return exc.error.kind, exc.error.rule
    assert secret not in repr(result), f"the canary file's content came back from {sql!r}"
    return "ran", None


def _run_corpus(
    engine: str,
    run: Callable[[str], object],
    canary: CanaryFile,
    *,
    strict: bool,
    attacks: list[Attack] | None = None,
) -> Counter[tuple[str, str]]:
    """Run the corpus; with ``strict`` each statement must meet its expected outcome (``Attack.expect``)."""
    outcomes: Counter[tuple[str, str]] = Counter()
    for attack in for_engine(engine) if attacks is None else attacks:
        sql = attack.render(str(canary.path))
        kind, rule = _outcome_rule(run, sql, canary.secret)
        outcomes[(attack.category, kind)] += 1
        if not strict:
            continue
        if attack.expect == "harmless":
            assert kind == "ran", f"{engine}: {sql[:200]!r} should run harmlessly ({kind}, {rule})"
        elif attack.expect == "engine":
            # the server's reading names a call outside the allowlist, or the role may not call it at all
            assert kind == "blocked" and rule in ("function_not_allowed", "engine_read_only"), (
                f"{engine}: {sql[:200]!r} was not refused by the engine's own reading ({kind}, {rule})"
            )
        else:
            assert kind in ("blocked", "syntax"), f"{engine}: {sql[:200]!r} was not rejected ({kind})"
    return outcomes


def _report(title: str, outcomes: Counter[tuple[str, str]]) -> None:
    kinds = sorted({k for _, k in outcomes})
    print(f"\n{title}: {sum(outcomes.values())} statements")
    for category in CATEGORIES:
        row = ", ".join(f"{k}={outcomes[(category, k)]}" for k in kinds if outcomes[(category, k)])
        print(f"  {category}: {row}")


def _assert_no_strays() -> None:
    for path in WOULD_CREATE:
        assert not path.exists(), f"{path} was created"


# --- SQLite --------------------------------------------------------------------------------------


def _sqlite_checksum(path: Path) -> str:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    siblings = sorted(p.name for p in path.parent.iterdir())
    return _sha256(path.read_bytes()) + _sha256(dump.encode()) + repr(siblings)


@pytest.fixture
def sqlite_db(spider_copy: Callable[[str], Path]) -> Path:
    path = spider_copy("concert_singer")
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE canary (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO canary VALUES (?, ?)", CANARY_ROWS)
    conn.close()
    return path


@pytest.mark.parametrize("mode", ["executor", "engine-only", "validate"])
def test_sqlite_corpus(sqlite_db: Path, tmp_path: Path, mode: str) -> None:
    """The corpus through ``execute_sql``'s executor, through the engine alone (guard bypassed), and
    through ``validate_sql``'s check, which must refuse what execution refuses."""
    bypass_guard = mode == "engine-only"
    canary = CanaryFile.create(tmp_path / "canary")
    before = _sqlite_checksum(sqlite_db)
    executor = Executor(Registry.from_targets([f"sec={sqlite_db}"]), GuardSettings(timeout_s=5, max_rows=50))
    try:
        if bypass_guard:
            engine = executor.registry.engine("sec")
            run: Callable[[str], object] = lambda sql: engine.execute(sql, max_rows=50, timeout_s=2)  # noqa: E731
        elif mode == "validate":
            run = lambda sql: executor.validate("sec", sql)  # noqa: E731
        else:
            run = lambda sql: executor.run("sec", sql)  # noqa: E731
        outcomes = _run_corpus("sqlite", run, canary, strict=not bypass_guard)
        outcomes += _run_corpus("sqlite", run, canary, strict=True, attacks=_harmless("sqlite"))
        assert executor.run("sec", "SELECT count(*) FROM canary").rows == [[len(CANARY_ROWS)]]
    finally:
        executor.registry.close()
    _report(f"sqlite ({mode})", outcomes)
    assert _sqlite_checksum(sqlite_db) == before, "SQLite database changed"
    canary.assert_untouched()
    _assert_no_strays()


# --- DuckDB --------------------------------------------------------------------------------------


def _duckdb_checksum(path: Path) -> str:
    import duckdb

    conn = duckdb.connect(str(path), read_only=True)
    try:
        tables = conn.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY ALL").fetchall()
        views = conn.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()
        rows = conn.execute("SELECT id, v FROM canary ORDER BY id").fetchall()
    finally:
        conn.close()
    siblings = sorted(p.name for p in path.parent.iterdir())
    return _sha256(path.read_bytes()) + repr((tables, views, rows, siblings))


@pytest.fixture
def duckdb_db(tmp_path: Path) -> Path:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "db" / "sec.duckdb"
    path.parent.mkdir()
    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE canary (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO canary VALUES (?, ?)", CANARY_ROWS)
    conn.close()
    return path


@pytest.mark.parametrize("mode", ["executor", "engine-only", "validate"])
def test_duckdb_corpus(duckdb_db: Path, tmp_path: Path, mode: str) -> None:
    """The corpus through ``execute_sql``'s executor, through the engine alone (guard bypassed), and
    through ``validate_sql``'s check, which must refuse what execution refuses."""
    bypass_guard = mode == "engine-only"
    canary = CanaryFile.create(tmp_path / "canary")
    before = _duckdb_checksum(duckdb_db)
    executor = Executor(Registry.from_targets([f"sec={duckdb_db}"]), GuardSettings(timeout_s=5, max_rows=50))
    try:
        if bypass_guard:
            engine = executor.registry.engine("sec")
            run: Callable[[str], object] = lambda sql: engine.execute(sql, max_rows=50, timeout_s=2)  # noqa: E731
        elif mode == "validate":
            run = lambda sql: executor.validate("sec", sql)  # noqa: E731
        else:
            run = lambda sql: executor.run("sec", sql)  # noqa: E731
        outcomes = _run_corpus("duckdb", run, canary, strict=not bypass_guard)
        outcomes += _run_corpus("duckdb", run, canary, strict=True, attacks=_harmless("duckdb"))
        assert executor.run("sec", "SELECT count(*) FROM canary").rows == [[len(CANARY_ROWS)]]
    finally:
        executor.registry.close()
    _report(f"duckdb ({mode})", outcomes)
    assert _duckdb_checksum(duckdb_db) == before, "DuckDB database changed"
    canary.assert_untouched()
    _assert_no_strays()


# --- PostgreSQL and MariaDB ----------------------------------------------------------------------


def _with_database(url: str, database: str) -> str:
    return sa.engine.make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture
def postgres_sec(postgres_url: str) -> Iterator[str]:
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {SEC_DB} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {SEC_DB}"))
    admin.dispose()
    url = _with_database(postgres_url, SEC_DB)
    _create_canary(url)
    with sa.create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
        # What some attacks reach for: a sequence, dblink, a function of the table's row (alias.f calls it).
        conn.execute(sa.text("CREATE SEQUENCE s"))
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS dblink"))
        # plpgsql is never inlined: EXPLAIN shows the call itself. A SQL function is inlined when planned,
        # so the server's reading shows its body's calls instead (pg_read_file here).
        conn.execute(
            sa.text(
                "CREATE FUNCTION sqlr1_row_function(canary) RETURNS int LANGUAGE plpgsql "
                "AS $$ BEGIN RETURN 1; END $$"
            )
        )
        conn.execute(
            sa.text(
                "CREATE FUNCTION sqlr1_inlined(canary) RETURNS text LANGUAGE sql "
                "AS $$ SELECT pg_read_file('/etc/hostname') $$"
            )
        )
        for statement in READER_SETUP["postgresql"]:
            conn.execute(sa.text(statement))
    yield url
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {SEC_DB} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def mariadb_sec(mariadb_url: str) -> Iterator[str]:
    admin = sa.create_engine(mariadb_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {SEC_DB}"))
        conn.execute(sa.text(f"CREATE DATABASE {SEC_DB}"))
    admin.dispose()
    url = _with_database(mariadb_url, SEC_DB)
    _create_canary(url)
    with sa.create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(sa.text("CREATE SEQUENCE s"))
        for statement in READER_SETUP["mysql"]:
            conn.execute(sa.text(statement))
    yield url
    admin = sa.create_engine(mariadb_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {SEC_DB}"))
    admin.dispose()


# The read-only role docs/security.md tells administrators to create (without its password: the local
# test servers trust loopback connections for PostgreSQL, and the MariaDB account has none).
READER = "sqlr1_reader"
READER_SETUP = {
    "postgresql": [
        f"DO $$ BEGIN CREATE ROLE {READER} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        f"GRANT CONNECT ON DATABASE {SEC_DB} TO {READER}",
        f"GRANT USAGE ON SCHEMA public TO {READER}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {READER}",
    ],
    "mysql": [
        f"CREATE USER IF NOT EXISTS '{READER}'@'%'",
        f"CREATE USER IF NOT EXISTS '{READER}'@'localhost'",
        f"GRANT SELECT, SHOW VIEW ON {SEC_DB}.* TO '{READER}'@'%'",
        f"GRANT SELECT, SHOW VIEW ON {SEC_DB}.* TO '{READER}'@'localhost'",
    ],
}


def _create_canary(url: str) -> None:
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE TABLE canary (id INTEGER PRIMARY KEY, v VARCHAR(100))"))
        conn.execute(
            sa.text("INSERT INTO canary (id, v) VALUES (:id, :v)"),
            [{"id": i, "v": v} for i, v in CANARY_ROWS],
        )
    eng.dispose()


def _as_reader(url: str) -> str:
    return sa.engine.make_url(url).set(username=READER, password=None).render_as_string(hide_password=False)


SERVER_STATE = {
    "postgresql": [
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
        "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
        "SELECT count(*) FROM pg_largeobject_metadata",
        "SELECT extname FROM pg_extension ORDER BY 1",
        "SELECT id, v FROM canary ORDER BY id",
    ],
    "mysql": [
        f"SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = '{SEC_DB}' ORDER BY 1",
        f"SELECT routine_name FROM information_schema.routines WHERE routine_schema = '{SEC_DB}' ORDER BY 1",
        "SELECT @@GLOBAL.max_statement_time, @@GLOBAL.sql_mode, @@GLOBAL.read_only, @@GLOBAL.autocommit",
        "SELECT id, v FROM canary ORDER BY id",
    ],
}


def _server_checksum(url: str, kind: str) -> str:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            state = [conn.execute(sa.text(q)).all() for q in SERVER_STATE[kind]]
    finally:
        eng.dispose()
    return _sha256(repr(state).encode())


def _server_corpus(url: str, kind: str, engine: str, tmp_path: Path, *, role: str) -> None:
    """The corpus through the executor as ``role`` (the superuser, or the read-only role of docs/security.md),
    then the statements that call functions straight to the engine with the guard bypassed: the server's own
    reading of each must refuse it (or find only a string), as that role too."""
    canary = CanaryFile.create(tmp_path / "canary")
    before = _server_checksum(url, kind)
    target = _as_reader(url) if role == "reader" else url
    executor = Executor(Registry.from_targets([f"sec={target}"]), GuardSettings(timeout_s=5, max_rows=50))
    engine_only = [a for a in for_engine(engine) if a.category in ENGINE_ONLY_CATEGORIES]
    try:
        outcomes = _run_corpus(engine, lambda sql: executor.run("sec", sql), canary, strict=True)
        harmless = _run_corpus(
            engine, lambda sql: executor.run("sec", sql), canary, strict=True, attacks=_harmless(engine)
        )
        # validate_sql's check (guard + the engine's own reading, no execution) refuses the same
        validated = _run_corpus(engine, lambda sql: executor.validate("sec", sql), canary, strict=True)
        validated += _run_corpus(
            engine, lambda sql: executor.validate("sec", sql), canary, strict=True, attacks=_harmless(engine)
        )
        server = executor.registry.engine("sec")
        bypassed = _run_corpus(
            engine,
            lambda sql: server.execute(sql, max_rows=50, timeout_s=5),
            canary,
            strict=False,
            attacks=engine_only,
        )
        for attack in engine_only:  # every one refused by the server's own check (or only a string)
            kind_, _rule = _outcome_rule(
                lambda sql: server.execute(sql, max_rows=50, timeout_s=5),
                attack.render(str(canary.path)),
                canary.secret,
            )
            assert kind_ != "ran" or attack.expect == "harmless", (
                f"{engine} engine, guard bypassed: {attack.sql[:160]!r} ran"
            )
        assert executor.run("sec", "SELECT count(*) FROM canary").rows == [[len(CANARY_ROWS)]]
        warnings = getattr(server, "warnings", [])
        assert bool(warnings) == (role != "reader"), warnings  # the superuser is warned about, the reader not
    finally:
        executor.registry.close()
    _report(f"{engine} (executor, {role})", outcomes + harmless)
    _report(f"{engine} (engine only, guard bypassed, {role})", bypassed)
    _report(f"{engine} (validate, {role})", validated)
    assert _server_checksum(url, kind) == before, f"{engine} database changed"
    canary.assert_untouched()
    _assert_no_strays()


# Categories whose statements only call functions: safe to send to a shared server with the guard bypassed
# (the others include SHUTDOWN, KILL and the like, which the engines' read-only sessions do not all stop).
ENGINE_ONLY_CATEGORIES = {
    "side_effect_file_network_functions",
    "calls_in_other_notations",
    "side_effects_in_read_only_transactions",
    "string_literals_under_session_settings",
}


def _harmless(engine: str) -> list[Attack]:
    return [a for a in HARMLESS_READS if engine in a.engines]


@pytest.mark.services
@pytest.mark.parametrize("role", ["superuser", "reader"])
def test_postgres_corpus(postgres_sec: str, tmp_path: Path, role: str) -> None:
    _server_corpus(postgres_sec, "postgresql", "postgres", tmp_path, role=role)


@pytest.mark.services
@pytest.mark.parametrize("role", ["superuser", "reader"])
def test_mariadb_corpus(mariadb_sec: str, tmp_path: Path, role: str) -> None:
    _server_corpus(mariadb_sec, "mysql", "mysql", tmp_path, role=role)


@pytest.mark.services
def test_postgres_corpus_under_hostile_server_defaults(postgres_sec: str, tmp_path: Path) -> None:
    """Database defaults that move where a string literal ends (standard_conforming_strings off): sqlr1 pins
    the session's own value, so the server still reads every statement as the guard does."""
    with sa.create_engine(postgres_sec, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(sa.text(f"ALTER DATABASE {SEC_DB} SET standard_conforming_strings = off"))
        conn.execute(sa.text(f"ALTER DATABASE {SEC_DB} SET backslash_quote = on"))
    _server_corpus(postgres_sec, "postgresql", "postgres", tmp_path, role="superuser")


@pytest.mark.services
def test_mariadb_corpus_under_hostile_server_defaults(mariadb_sec: str, tmp_path: Path) -> None:
    """A server whose sql_mode is ANSI plus NO_BACKSLASH_ESCAPES ("..." is a name, backslash no escape):
    sqlr1 sets its own sql_mode on every connection and statement."""
    with sa.create_engine(mariadb_sec, isolation_level="AUTOCOMMIT").connect() as conn:
        (previous,) = conn.execute(sa.text("SELECT @@GLOBAL.sql_mode")).one()
        conn.execute(sa.text("SET GLOBAL sql_mode = 'ANSI,NO_BACKSLASH_ESCAPES'"))
    try:
        _server_corpus(mariadb_sec, "mysql", "mysql", tmp_path, role="superuser")
    finally:
        with sa.create_engine(mariadb_sec, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(sa.text("SET GLOBAL sql_mode = :mode"), {"mode": previous})


def test_every_category_reaches_every_engine() -> None:
    for engine in ("sqlite", "postgres", "mysql", "duckdb"):
        assert {a.category for a in for_engine(engine)} == set(CATEGORIES)
    assert all(isinstance(a, Attack) for a in for_engine("sqlite"))
