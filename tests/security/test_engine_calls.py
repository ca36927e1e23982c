"""The engines' own reading of a statement (the second check), pinned lexing settings, and session resets.

* Each engine reports the functions it resolved (``mcp_server.db.engines.calls``) and ``guard.CallPolicy``
  refuses any outside the allowlist: proven on the calls the guard cannot see, and shown to refuse nothing
  the guard allows in real queries (every Spider dev gold query on all four engines).
* The settings that change how a server lexes SQL are pinned at connect time and checked; a URL that
  tries to set them is refused when the configuration is read, naming the setting.
* Nothing one statement did (an advisory lock, a setting, a user variable) survives into the next one.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from security.spider_engines import (
    GoldRun,
    build_duckdb,
    gold_refusals,
    load_mariadb,
    load_postgres,
    spec_for,
)
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.engines.base import DatabaseSpec
from sqlr1.mcp_server.db.engines.calls import (
    calls_in_postgres_plan,
    calls_in_rendering,
    variables_in_rendering,
)
from sqlr1.mcp_server.db.engines.duckdb import DuckdbEngine
from sqlr1.mcp_server.db.engines.mysql import MysqlEngine
from sqlr1.mcp_server.db.engines.postgres import PostgresEngine
from sqlr1.mcp_server.db.engines.sqlite import SqliteEngine
from sqlr1.mcp_server.db.registry import Registry
from sqlr1.mcp_server.sql.guard import CallPolicy

# --- reading an engine's rendering ------------------------------------------------------------------


def test_rendered_calls_skip_strings_names_types_and_cte_columns() -> None:
    mariadb = (
        "with recursive r(`n`) as (/* select#2 */ select 1 AS `n`) select ucase('b\\'s(') AS `upper(v)`,"
        "<cache>(convert(load_file('/x') using utf8mb4)),cast(1.5 as decimal(10,2)),`t`.`f`(1),trigcond(1)"
    )
    assert list(calls_in_rendering(mariadb, identifier_quote="`", backslash_escapes=True)) == [
        "ucase",
        "convert",
        "load_file",
        "cast",
        "t.f",
        "trigcond",
    ]
    postgres = (
        '(upper(t1.v)) pg_catalog.pg_read_file(\'x(y)\'::text) "left"(a, 2) (x)::numeric(10,2) "we""ird(".c'
    )
    assert list(calls_in_rendering(postgres, identifier_quote='"', backslash_escapes=False)) == [
        "upper",
        "pg_catalog.pg_read_file",
        "left",
    ]
    plan = [{"Plan": {"Node Type": "Function Scan", "Function Name": "generate_series", "Alias": "f(x)",
                      "Output": ["lower(f.x)"], "Filter": "(f.x <> 'a(b)'::text)"}}]  # fmt: skip
    assert sorted(calls_in_postgres_plan(plan)) == ["generate_series", "lower"]
    assert list(
        variables_in_rendering("select @@datadir,'@x',`@y`,@z", identifier_quote="`", backslash_escapes=True)
    ) == [
        "@@datadir",
        "@z",
    ]


def test_call_policy_names_the_function() -> None:
    policy = CallPolicy("postgresql", ["my_func"])
    assert policy.allows("upper") and policy.allows("pg_catalog.upper") and policy.allows("my_func")
    assert not policy.allows("public.upper") and not policy.allows("pg_read_file")
    with pytest.raises(QueryFailed) as info:
        policy.check(["upper", "pg_read_file"], "PostgreSQL")
    error = info.value.error
    assert (error.kind, error.rule) == ("blocked", "function_not_allowed")
    assert "PostgreSQL reads this statement as calling pg_read_file" in error.message
    assert CallPolicy("duckdb").allows("||") and not CallPolicy("sqlite").allows("||")


# --- no false refusals: Spider dev gold on every engine ----------------------------------------------


def _dev_gold(shared_data: Path) -> dict[str, list[str]]:
    by_db: dict[str, list[str]] = {}
    for item in json.loads((shared_data / "spider" / "dev.json").read_text(encoding="utf-8")):
        by_db.setdefault(item["db_id"], []).append(item["query"])
    return by_db


def _check_gold(kind: str, shared_data: Path, open_engine) -> None:  # type: ignore[no-untyped-def]
    run = GoldRun()
    for db_id, queries in _dev_gold(shared_data).items():
        engine = open_engine(db_id, shared_data / "spider" / "database" / db_id / f"{db_id}.sqlite")
        try:
            gold_refusals(engine, queries, run)
        finally:
            engine.close()
    print(
        f"{kind}: {run.queries} Spider dev gold queries checked by the engine, {len(run.refused or [])} refused"
    )
    assert run.queries > 1000
    assert not run.refused, "\n".join((run.refused or [])[:20])


def test_no_spider_gold_query_refused_by_sqlite(shared_data: Path) -> None:
    _check_gold("sqlite", shared_data, lambda db, path: SqliteEngine(spec_for("sqlite", db, path)))


def test_no_spider_gold_query_refused_by_duckdb(shared_data: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _check_gold(
            "duckdb",
            shared_data,
            lambda db, path: DuckdbEngine(spec_for("duckdb", db, build_duckdb(Path(folder), path))),
        )


@pytest.mark.services
def test_no_spider_gold_query_refused_by_postgres(shared_data: Path, postgres_url: str) -> None:
    _check_gold(
        "postgresql",
        shared_data,
        lambda db, path: PostgresEngine(spec_for("postgresql", db, load_postgres(postgres_url, path))),
    )


@pytest.mark.services
def test_no_spider_gold_query_refused_by_mariadb(shared_data: Path, mariadb_url: str) -> None:
    _check_gold(
        "mysql",
        shared_data,
        lambda db, path: MysqlEngine(spec_for("mysql", db, load_mariadb(mariadb_url, path))),
    )


# --- pinned lexing settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u@h/db?options=-c%20standard_conforming_strings%3Doff",
        "postgresql+psycopg://u@h/db?options=-cstandard_conforming_strings%3Doff",
        "postgresql+psycopg://u@h/db?options=--standard-conforming-strings%3Doff",
        "postgresql+psycopg://u@h/db?options=-c%20search_path%3Dx%20-c%20backslash_quote%3Don",
        "postgresql+psycopg://u@h/db?options=-c%20client_encoding%3DGBK",
        "mysql+pymysql://u@h/db?charset=gbk",
    ],
)
def test_urls_that_change_lexing_are_refused(url: str) -> None:
    with pytest.raises(QueryFailed) as info:
        Registry.from_targets([f"x={url}"])
    error = info.value.error
    assert error.kind == "config"
    assert any(
        name in error.message
        for name in ("standard_conforming_strings", "backslash_quote", "client_encoding", "charset")
    )


def test_other_url_options_still_work() -> None:
    Registry.from_targets(["x=postgresql+psycopg://u@h/db?options=-c%20search_path%3Dshop"])
    with pytest.raises(QueryFailed, match="only '-c name=value'"):
        Registry.from_targets(["x=postgresql+psycopg://u@h/db?options=-D%20/tmp"])


@pytest.mark.services
def test_postgres_session_that_cannot_be_pinned_is_refused(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection whose lexing settings differ (a proxy dropping the connect-time options, here simulated
    with a role default and no options) is refused with the setting named, before any statement runs."""
    role = "sqlr1_unpinned"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
        )
        conn.execute(sa.text(f"ALTER ROLE {role} SET standard_conforming_strings = off"))
    admin.dispose()
    monkeypatch.setattr(
        "sqlr1.mcp_server.db.engines.postgres.postgres_options", lambda options: options or ""
    )
    url = sa.engine.make_url(postgres_url).set(username=role).render_as_string(hide_password=False)
    engine = PostgresEngine(DatabaseSpec(name="x", kind="postgresql", url=url))
    try:
        with pytest.raises(QueryFailed) as info:
            engine.execute("SELECT 1", max_rows=1, timeout_s=5)
        assert info.value.error.kind == "config" and "standard_conforming_strings" in info.value.error.message
    finally:
        engine.close()
    monkeypatch.undo()  # pinned again: the same role's default is overridden and the statement runs
    engine = PostgresEngine(DatabaseSpec(name="x", kind="postgresql", url=url))
    try:
        assert engine.execute("SELECT 'a\\b'", max_rows=1, timeout_s=5).rows == [("a\\b",)]
    finally:
        engine.close()


# --- sessions are reset between statements -------------------------------------------------------------


@pytest.mark.services
def test_postgres_session_state_does_not_survive_a_statement(postgres_url: str) -> None:
    """With an administrator's extra_functions allowing them, a statement takes an advisory lock and changes a
    setting; the connection goes back to the pool reset (DISCARD ALL), so neither outlives the statement."""
    engine = PostgresEngine(
        DatabaseSpec(name="x", kind="postgresql", url=postgres_url),
        extra_functions=("pg_advisory_lock", "set_config", "current_setting"),
    )
    u = sa.engine.make_url(postgres_url)
    try:
        engine.execute("SELECT pg_advisory_lock(4242)", max_rows=1, timeout_s=5)
        with psycopg.connect(
            f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
        ) as watcher:
            held = watcher.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"
            )
            assert held.fetchone() == (0,)
        default = engine.execute("SELECT current_setting('work_mem')", max_rows=1, timeout_s=5).rows
        engine.execute("SELECT set_config('work_mem', '77MB', false)", max_rows=1, timeout_s=5)
        assert engine.execute("SELECT current_setting('work_mem')", max_rows=1, timeout_s=5).rows == default
        assert len(engine._pool.idle()) == 1  # the same pooled connection served every statement
    finally:
        engine.close()


@pytest.mark.services
def test_mariadb_session_state_does_not_survive_a_statement(mariadb_url: str) -> None:
    engine = MysqlEngine(
        DatabaseSpec(name="x", kind="mysql", url=mariadb_url), extra_functions=("get_lock", "is_used_lock")
    )
    u = sa.engine.make_url(mariadb_url)
    try:
        assert engine.execute("SELECT GET_LOCK('sqlr1_reset', 0)", max_rows=1, timeout_s=5).rows == [(1,)]
        watcher = pymysql.connect(
            host=u.host, port=u.port or 3306, user=u.username, password=u.password or ""
        )
        try:
            with watcher.cursor() as cur:
                cur.execute("SELECT IS_USED_LOCK('sqlr1_reset')")
                assert cur.fetchone() == (None,)
        finally:
            watcher.close()
        assert len(engine._pool.idle()) == 1
    finally:
        engine.close()


# --- least privilege, visible ------------------------------------------------------------------------


@pytest.mark.services
async def test_list_databases_warns_about_a_powerful_role(postgres_url: str, mariadb_url: str) -> None:
    """The superuser and root are named as such in list_databases; a role that may only read is not."""
    from mcp import Client

    from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig
    from sqlr1.mcp_server.protocol.server import build_server

    role = "sqlr1_only_reads"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                f"DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
        )
    admin.dispose()
    reader = sa.engine.make_url(postgres_url).set(username=role).render_as_string(hide_password=False)
    config = AppConfig(
        databases=[
            DatabaseConfig(name="pg_super", target=postgres_url),
            DatabaseConfig(name="pg_reader", target=reader),
            DatabaseConfig(name="maria_root", target=mariadb_url),
        ]
    )
    async with Client(build_server(config)) as client:
        result = await client.call_tool("list_databases", {})
    warnings = {d["name"]: d["warnings"] for d in result.structured_content["databases"]}
    assert any("superuser" in w for w in warnings["pg_super"])
    assert warnings["pg_reader"] == []
    assert any("FILE" in w for w in warnings["maria_root"])
