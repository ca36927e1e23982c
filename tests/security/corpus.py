"""The attack corpus, as data: statements a read-only SQL tool must never let through.

Organised by the failure modes seen in other database MCP servers and by an outside attack run on sqlr1
itself (parser differentials: PostgreSQL's attribute notation, string literals whose end depends on a
session setting); each entry is tagged with the engines it applies to (the guard checks it in that
engine's dialect, and the end-to-end test runs it there) and with its expected outcome: ``refused``
(blocked or a syntax error, by the guard) or ``harmless`` (it runs, because with sqlr1's pinned session
settings it is only a string, and returns nothing it should not). The canary table is
``canary(id INTEGER PRIMARY KEY, v TEXT)``; ``CANARY_FILE`` is a file outside the database that no
statement may read or write (its path is substituted at run time). ``HARMLESS_READS`` are reads that
must run on every engine (false refusals an outside review found).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALL", "CANARY_FILE", "CATEGORIES", "CORPUS", "HARMLESS_READS", "Attack", "for_engine"]

ENGINES = ("sqlite", "postgres", "mysql", "duckdb")
ALL = ENGINES
SQ = ("sqlite",)
PG = ("postgres",)
MY = ("mysql",)
DU = ("duckdb",)

# Substituted with the absolute path of a real file outside every database by the engine test.
CANARY_FILE = "@CANARY@"


@dataclass(frozen=True)
class Attack:
    sql: str
    category: str
    engines: tuple[str, ...]
    # "refused" by the guard; "engine": the guard reads a column, only the engine's own reading shows the call
    # (refused there); "harmless": runs, and only as a read of data
    expect: str = "refused"

    def render(self, canary_file: str) -> str:
        """The statement with the canary file's real path in place of ``CANARY_FILE``."""
        return self.sql.replace(CANARY_FILE, canary_file)


def _entries(category: str, rows: list[tuple[tuple[str, ...], str]], expect: str = "refused") -> list[Attack]:
    return [Attack(sql, category, engines, expect) for engines, sql in rows]


STACKED = _entries(
    "stacked_and_transaction_escapes",
    [
        (ALL, "SELECT 1; DROP TABLE canary"),
        (ALL, "SELECT 1;DROP TABLE canary"),
        (ALL, "SELECT 1; DELETE FROM canary"),
        (ALL, "SELECT 1; SELECT 2"),
        (ALL, "SELECT 1;; DROP TABLE canary"),
        (ALL, "DROP TABLE canary; SELECT 1"),
        (ALL, "SELECT * FROM canary WHERE id = 1; UPDATE canary SET v = 'x'"),
        (ALL, "SELECT 1 UNION SELECT 2; DELETE FROM canary"),
        (ALL, "SELECT 1; COMMIT; DROP TABLE canary"),
        (ALL, "COMMIT; DROP TABLE canary"),
        (ALL, "ROLLBACK; DELETE FROM canary"),
        (ALL, "BEGIN; DELETE FROM canary; COMMIT"),
        (ALL, "SELECT 1; ROLLBACK; INSERT INTO canary VALUES (99, 'x')"),
        (ALL, "COMMIT"),
        (ALL, "ROLLBACK"),
        (ALL, "BEGIN"),
        (ALL, "BEGIN TRANSACTION"),
        (PG + MY + DU, "START TRANSACTION"),
        (PG + MY, "START TRANSACTION READ WRITE"),
        (PG + MY, "SET TRANSACTION READ WRITE"),
        (PG, "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"),
        (PG, "ABORT"),
        (PG + SQ, "END"),
        (PG + SQ, "END; DROP TABLE canary"),
        (SQ, "END TRANSACTION; DELETE FROM canary"),
        (ALL, "SAVEPOINT a"),
        (ALL, "RELEASE SAVEPOINT a"),
        (ALL, "ROLLBACK TO SAVEPOINT a"),
        (PG + MY, "COMMIT AND CHAIN"),
        (ALL, "SELECT 1; -- trailing comment\nDROP TABLE canary"),
        (ALL, "SELECT 1 -- comment\n; DROP TABLE canary"),
        (ALL, "SELECT 1 /* ; */ ; DROP TABLE canary"),
        (ALL, "SELECT 1 /* x */; /* y */ DELETE FROM canary"),
        (ALL, "SELECT 1 /*! ; DROP TABLE canary */"),
        (ALL, "SELECT 1 /*!50000 ; DROP TABLE canary */"),
        (ALL, "SELECT 1 /*M! ; DELETE FROM canary */"),
        (ALL, "/*! DROP TABLE canary */ SELECT 1"),
        (ALL, "SELECT /*!32302 1 UNION */ SELECT 2"),
        (ALL, "SELECT 1 /*!UNION SELECT v FROM canary*/"),
        (MY, "SET autocommit = 1; DELETE FROM canary"),
        (SQ, "SELECT 1; PRAGMA query_only = 0; DELETE FROM canary"),
        (SQ, "SELECT 1; DETACH DATABASE main"),
        (PG, "SELECT 1; SET default_transaction_read_only = off; DROP TABLE canary"),
        (DU, "SELECT 1; SET enable_external_access = true"),
        (ALL, "SELECT 1;\n\nDROP TABLE canary;\n"),
        (ALL, "SELECT v FROM canary; TRUNCATE TABLE canary"),
        # quoting differentials: where the engine ends a string, the guard must end it too
        (SQ + PG + DU, r"SELECT 'a\'; DROP TABLE canary; -- '"),
        (MY, r"SELECT 'a\\'; DROP TABLE canary; -- '"),
        (ALL, "SELECT $$a$$; DROP TABLE canary"),
        (SQ + PG + DU, "SELECT 'it''s'; DELETE FROM canary; SELECT ''''"),
        (PG + DU, r"SELECT E'\\'; DROP TABLE canary; -- '"),
    ],
)

HIDDEN_WRITES = _entries(
    "writes_hidden_in_reads",
    [
        (ALL, "WITH d AS (DELETE FROM canary RETURNING *) SELECT * FROM d"),
        (ALL, "WITH u AS (UPDATE canary SET v = 'x' RETURNING id) SELECT count(*) FROM u"),
        (ALL, "WITH i AS (INSERT INTO canary VALUES (9, 'x') RETURNING *) SELECT * FROM i"),
        (ALL, "WITH a AS (SELECT 1), d AS (DELETE FROM canary RETURNING id) SELECT * FROM a"),
        (ALL, "WITH x AS (SELECT 1) DELETE FROM canary"),
        (ALL, "WITH x AS (SELECT 9 AS id) INSERT INTO canary SELECT id, 'x' FROM x"),
        (ALL, "WITH x AS (SELECT 1) UPDATE canary SET v = 'x'"),
        (ALL, "SELECT * FROM (DELETE FROM canary RETURNING *) AS x"),
        (ALL, "SELECT (DELETE FROM canary RETURNING id)"),
        (
            ALL,
            "SELECT * FROM canary WHERE id IN (WITH d AS (DELETE FROM canary RETURNING id) SELECT id FROM d)",
        ),
        (ALL, "SELECT * INTO canary2 FROM canary"),
        (PG, "SELECT * INTO TEMP canary2 FROM canary"),
        (PG, "SELECT * INTO UNLOGGED canary2 FROM canary"),
        (PG, "SELECT * INTO TABLE canary2 FROM canary"),
        (MY, "SELECT v INTO @x FROM canary"),
        (MY, "SELECT v FROM canary INTO @x"),
        (MY, f"SELECT * FROM canary INTO OUTFILE '{CANARY_FILE}'"),
        (MY, f"SELECT v FROM canary INTO DUMPFILE '{CANARY_FILE}'"),
        (MY, f"SELECT * INTO OUTFILE '{CANARY_FILE}' FROM canary"),
        (PG + MY, "SELECT * FROM canary FOR UPDATE"),
        (PG + MY, "SELECT * FROM canary FOR SHARE"),
        (PG, "SELECT * FROM canary FOR NO KEY UPDATE"),
        (PG, "SELECT * FROM canary FOR KEY SHARE"),
        (PG + MY, "SELECT * FROM canary FOR UPDATE NOWAIT"),
        (PG + MY, "SELECT * FROM canary FOR UPDATE SKIP LOCKED"),
        (MY, "SELECT * FROM canary LOCK IN SHARE MODE"),
        (PG + MY, "SELECT 1 UNION SELECT id FROM canary FOR UPDATE"),
        (PG + MY, "SELECT * FROM (SELECT * FROM canary FOR UPDATE) AS x"),
        (ALL, "INSERT INTO canary VALUES (99, 'x')"),
        (ALL, "INSERT INTO canary SELECT id + 100, v FROM canary"),
        (PG + SQ + DU, "INSERT INTO canary VALUES (99, 'x') RETURNING *"),
        (ALL, "UPDATE canary SET v = (SELECT 'x')"),
        (ALL, "UPDATE canary SET v = 'x' WHERE id IN (SELECT id FROM canary)"),
        (ALL, "DELETE FROM canary WHERE id IN (SELECT id FROM canary)"),
        (PG + SQ + DU, "DELETE FROM canary RETURNING *"),
        (SQ + MY, "REPLACE INTO canary VALUES (1, 'x')"),
        (SQ, "INSERT OR REPLACE INTO canary VALUES (1, 'x')"),
        (PG + SQ + DU, "INSERT INTO canary VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET v = 'x'"),
        (MY, "INSERT INTO canary VALUES (1, 'x') ON DUPLICATE KEY UPDATE v = 'x'"),
        (PG + DU, "MERGE INTO canary USING (SELECT 1 AS id) s ON canary.id = s.id WHEN MATCHED THEN DELETE"),
        (ALL, "CREATE TABLE canary2 AS SELECT * FROM canary"),
        (ALL, "CREATE TEMP TABLE t AS SELECT 1"),
        (ALL, "CREATE TEMPORARY TABLE t (a INT)"),
        (ALL, "CREATE VIEW v AS SELECT * FROM canary"),
        (ALL, "CREATE INDEX i ON canary (v)"),
        (SQ, "CREATE TRIGGER tr AFTER INSERT ON canary BEGIN DELETE FROM canary; END"),
        (ALL, "DROP TABLE canary"),
        (ALL, "DROP TABLE IF EXISTS canary"),
        (ALL, "DROP VIEW v"),
        (ALL, "ALTER TABLE canary ADD COLUMN x INT"),
        (ALL, "ALTER TABLE canary RENAME TO c2"),
        (PG + MY + DU, "TRUNCATE TABLE canary"),
        (PG, "CREATE FUNCTION f() RETURNS int AS 'SELECT 1' LANGUAGE sql"),
        (PG + DU, "CREATE EXTENSION dblink"),
        (PG + MY, "GRANT ALL ON canary TO public"),
        (PG + MY, "REVOKE ALL ON canary FROM public"),
        (PG + DU, "COMMENT ON TABLE canary IS 'x'"),
        (ALL, "ANALYZE canary"),
        (PG + SQ + DU, "VACUUM"),
        (SQ + PG, "REINDEX canary"),
        (PG + MY, "EXPLAIN ANALYZE DELETE FROM canary"),
        (ALL, "EXPLAIN DELETE FROM canary"),
        (ALL, "EXPLAIN SELECT 1"),
        (PG, "LOCK TABLE canary IN ACCESS EXCLUSIVE MODE"),
        (MY, "LOCK TABLES canary WRITE"),
        (PG, "PREPARE p AS DELETE FROM canary"),
        (PG + MY, "EXECUTE p"),
        (PG, "DEALLOCATE ALL"),
        (PG, "DECLARE c CURSOR FOR SELECT 1"),
        (PG, "REFRESH MATERIALIZED VIEW v"),
        (PG + DU, "CHECKPOINT"),
        (PG, "DISCARD ALL"),
        (PG, "RESET ALL"),
        (PG, "NOTIFY c, 'x'"),
        (PG, "LISTEN c"),
        (PG + MY, "CALL p()"),
        (PG, "DO $$ BEGIN DELETE FROM canary; END $$"),
        (MY, "HANDLER canary OPEN"),
        (MY, "FLUSH TABLES"),
        (MY, "RENAME TABLE canary TO c2"),
        (MY, "OPTIMIZE TABLE canary"),
        (MY, "REPAIR TABLE canary"),
        (MY, "KILL 1"),
        (MY + DU, "USE mysql"),
        (MY + PG + DU, "SHOW TABLES"),
        (MY, "SHUTDOWN"),
        (MY, "INSTALL PLUGIN p SONAME 'x.so'"),
    ],
)

FUNCTIONS = _entries(
    "side_effect_file_network_functions",
    [
        # PostgreSQL
        (PG, f"SELECT pg_read_file('{CANARY_FILE}')"),
        (PG, f"SELECT pg_read_binary_file('{CANARY_FILE}')"),
        (PG, "SELECT pg_read_file('/etc/passwd', 0, 100)"),
        (PG, "SELECT * FROM pg_ls_dir('.')"),
        (PG, "SELECT pg_ls_dir('/')"),
        (PG, f"SELECT * FROM pg_stat_file('{CANARY_FILE}')"),
        (PG, "SELECT * FROM pg_ls_logdir()"),
        (PG, "SELECT * FROM pg_ls_waldir()"),
        (PG, f"SELECT lo_import('{CANARY_FILE}')"),
        (PG, f"SELECT lo_export(1, '{CANARY_FILE}')"),
        (PG, "SELECT lo_create(0)"),
        (PG, "SELECT lo_unlink(1)"),
        (PG, "SELECT lo_from_bytea(0, 'x')"),
        (PG, "SELECT lo_put(1, 0, 'x')"),
        (PG, "SELECT lo_get(1)"),
        (PG + DU, f"COPY canary TO '{CANARY_FILE}'"),
        (PG + DU, f"COPY canary FROM '{CANARY_FILE}'"),
        (PG, "COPY (SELECT 1) TO PROGRAM 'id'"),
        (PG, "COPY canary FROM PROGRAM 'id'"),
        (PG, "COPY canary TO STDOUT"),
        (PG, "SELECT * FROM dblink('dbname=test', 'SELECT 1') AS t(a int)"),
        (PG, "SELECT dblink_exec('dbname=test', 'DROP TABLE canary')"),
        (PG, "SELECT dblink_connect('c', 'dbname=test')"),
        (PG, "SELECT pg_sleep(10)"),
        (PG, "SELECT pg_sleep_for('5 minutes')"),
        (PG, "SELECT pg_sleep_until(now() + interval '1 hour')"),
        (PG, "SELECT set_config('default_transaction_read_only', 'off', false)"),
        (PG, "SELECT set_config('statement_timeout', '0', false)"),
        (PG, "SELECT current_setting('data_directory')"),
        (PG, "SELECT pg_import_system_collations('pg_catalog')"),
        (PG, "SELECT pg_terminate_backend(1)"),
        (PG, "SELECT pg_cancel_backend(1)"),
        (PG, "SELECT pg_reload_conf()"),
        (PG, "SELECT pg_rotate_logfile()"),
        (PG, "SELECT pg_switch_wal()"),
        (PG, "SELECT pg_create_restore_point('x')"),
        (PG, "SELECT pg_advisory_lock(1)"),
        (PG, "SELECT pg_try_advisory_lock(1)"),
        (PG, "SELECT pg_notify('c', 'x')"),
        (PG, "SELECT pg_logical_emit_message(true, 'x', 'y')"),
        (PG, "SELECT nextval('s')"),
        (PG, "SELECT setval('s', 1)"),
        (PG, "SELECT txid_current()"),
        (PG, "SELECT pg_current_logfile()"),
        (PG, "SELECT inet_server_addr()"),
        (PG, "SELECT version()"),
        (PG, "SELECT pg_file_write('x', 'y', false)"),
        (PG, "SELECT * FROM canary WHERE id = (SELECT pg_sleep(5))::text::int"),
        # SQLite
        (SQ, "SELECT load_extension('/tmp/evil.so')"),
        (SQ, "SELECT load_extension('/tmp/evil.so', 'entry')"),
        (SQ, f"SELECT readfile('{CANARY_FILE}')"),
        (SQ, f"SELECT writefile('{CANARY_FILE}', 'pwned')"),
        (SQ, "SELECT edit('x')"),
        (SQ, "SELECT fts3_tokenizer('simple')"),
        (SQ, "SELECT * FROM fsdir('/')"),
        (SQ, f"ATTACH DATABASE '{CANARY_FILE}' AS x"),
        (SQ, "ATTACH 'file:/etc/passwd?mode=ro' AS x"),
        (SQ, "DETACH DATABASE x"),
        (SQ, f"VACUUM INTO '{CANARY_FILE}'"),
        (SQ, "PRAGMA writable_schema = ON"),
        (SQ, "PRAGMA query_only = 0"),
        (SQ, "PRAGMA journal_mode = DELETE"),
        (SQ, "PRAGMA table_info(canary)"),
        (SQ, "PRAGMA temp_store_directory = '/tmp'"),
        (SQ, "PRAGMA trusted_schema = 1"),
        (SQ, "SELECT * FROM pragma_database_list"),
        (SQ, "SELECT * FROM pragma_function_list"),
        (SQ, "SELECT sqlite_compileoption_get(0)"),
        (SQ, "SELECT randomblob(1000000000)"),
        (SQ, "SELECT zeroblob(1000000000)"),
        (SQ, "SELECT changes()"),
        (SQ, "SELECT last_insert_rowid()"),
        (SQ, "SELECT eval('DELETE FROM canary')"),
        # DuckDB
        (DU, f"SELECT * FROM read_csv('{CANARY_FILE}')"),
        (DU, f"SELECT * FROM read_csv_auto('{CANARY_FILE}')"),
        (DU, f"SELECT * FROM read_parquet('{CANARY_FILE}')"),
        (DU, f"SELECT * FROM read_json('{CANARY_FILE}')"),
        (DU, f"SELECT * FROM read_json_auto('{CANARY_FILE}')"),
        (DU, f"SELECT * FROM read_text('{CANARY_FILE}')"),
        (DU, f"SELECT * FROM read_blob('{CANARY_FILE}')"),
        (DU, f"SELECT * FROM parquet_scan('{CANARY_FILE}')"),
        (DU, "SELECT * FROM glob('/etc/*')"),
        (DU, f"SELECT * FROM sniff_csv('{CANARY_FILE}')"),
        (DU, f"COPY (SELECT * FROM canary) TO '{CANARY_FILE}' (FORMAT csv)"),
        (DU, "EXPORT DATABASE '/tmp/sqlr1_export'"),
        (DU, "IMPORT DATABASE '/tmp/sqlr1_export'"),
        (DU, "INSTALL httpfs"),
        (DU, "LOAD httpfs"),
        (DU, "FORCE INSTALL httpfs"),
        (DU, "SET enable_external_access = true"),
        (DU, "SET lock_configuration = false"),
        (DU, "RESET enable_external_access"),
        (DU, "PRAGMA enable_profiling"),
        (DU, f"SELECT * FROM '{CANARY_FILE}'"),
        (DU, "SELECT * FROM '/etc/passwd'"),
        (DU, f'SELECT * FROM "{CANARY_FILE}"'),
        (DU, "SELECT * FROM 'https://example.com/x.parquet'"),
        (DU, "SELECT * FROM 's3://bucket/key.parquet'"),
        (DU, f"FROM '{CANARY_FILE}'"),
        (DU, f"SELECT * FROM canary JOIN '{CANARY_FILE}' ON true"),
        (DU, "SELECT getenv('HOME')"),
        (DU, "SELECT current_setting('threads')"),
        (DU, "SELECT * FROM duckdb_settings()"),
        (DU, "SELECT * FROM duckdb_extensions()"),
        (DU, f"ATTACH '{CANARY_FILE}' AS x"),
        (DU, "DETACH x"),
        (DU, "CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')"),
        (DU, "SELECT * FROM query('DROP TABLE canary')"),
        (DU, "SELECT * FROM query_table('canary')"),
        # MariaDB / MySQL
        (MY, f"SELECT LOAD_FILE('{CANARY_FILE}')"),
        (MY, "SELECT LOAD_FILE('/etc/passwd')"),
        (MY, "SELECT SLEEP(10)"),
        (MY, "SELECT * FROM canary WHERE SLEEP(1) = 0"),
        (MY, "SELECT BENCHMARK(100000000, MD5('x'))"),
        (MY, "SELECT GET_LOCK('x', 10)"),
        (MY, "SELECT RELEASE_LOCK('x')"),
        (MY, "SELECT IS_FREE_LOCK('x')"),
        (MY, "SELECT MASTER_POS_WAIT('x', 1)"),
        (MY, "SELECT sys_exec('id')"),
        (MY, "SELECT sys_eval('id')"),
        (MY, f"LOAD DATA INFILE '{CANARY_FILE}' INTO TABLE canary"),
        (MY, f"LOAD DATA LOCAL INFILE '{CANARY_FILE}' INTO TABLE canary"),
        (MY, "SELECT @@datadir"),
        (MY, "SELECT @@version"),
        (MY, "SELECT @x := 1"),
        (MY, "SET @x = 1"),
        (MY, "SET GLOBAL max_statement_time = 0"),
        (MY, "SET SESSION max_statement_time = 0"),
        (MY, "SET max_execution_time = 0"),
        (MY, "SET sql_mode = ''"),
        (MY, "DO SLEEP(5)"),
        (MY, "SELECT EXTRACTVALUE(1, CONCAT(0x7e, @@version))"),
        (MY, "SELECT UPDATEXML(1, CONCAT(0x7e, USER()), 1)"),
        (MY, "SELECT DATABASE()"),
        (MY, "SELECT USER()"),
        (ALL, "SELECT * FROM canary WHERE v = ?"),
    ],
)

OBFUSCATION = _entries(
    "obfuscation",
    [
        # case and whitespace games
        (ALL, "sElEcT 1; dRoP tAbLe canary"),
        (ALL, "select 1;delete from canary"),
        (SQ, "SeLeCt LoAd_ExTeNsIoN('/tmp/evil.so')"),
        (PG, "select PG_READ_FILE('/etc/passwd')"),
        (PG, "SELECT Pg_SlEeP(1)"),
        (MY, "SELECT sLeEp(5)"),
        (DU, "SELECT * FROM ReAd_CsV('/etc/passwd')"),
        (ALL, "SELECT\t1;\n\nDROP\tTABLE\ncanary"),
        (ALL, "SELECT 1;\r\nDELETE FROM canary"),
        (ALL, "SELECT\x0b1;\x0bDROP TABLE canary"),
        (ALL, "SELECT\x0c1;\x0cDROP TABLE canary"),
        (ALL, "   \n\n  DELETE   FROM\n canary  "),
        # comments inside keywords
        (ALL, "DR/**/OP TABLE canary"),
        (ALL, "DEL/* x */ETE FROM canary"),
        (ALL, "SELECT 1;/**/DROP/**/TABLE/**/canary"),
        (ALL, "SELECT/**/1;/**/DELETE/**/FROM/**/canary"),
        (ALL, "SELECT 1 --\n; DROP TABLE canary"),
        (ALL, "/**/DELETE/**/FROM/**/canary"),
        (ALL, "SELECT 1 /* nested /* comment */ ; DROP TABLE canary; /* */"),
        (MY, "SELECT 1 #\n; DROP TABLE canary"),
        (MY, "SELECT /*!50000 SLEEP(5) */ 1"),
        (MY, "/*!50000SELECT*/ 1"),
        (MY, "SELECT /*!LOAD_FILE('/etc/passwd')*/"),
        (MY, "SELECT /*+ MAX_EXECUTION_TIME(0) */ 1"),
        (MY, "SELECT /*+ SET_VAR(max_statement_time = 0) */ v FROM canary"),
        (ALL, "SELECT 1 /*+ hint */"),
        # unicode look-alikes and invisible characters
        (ALL, "SELECT 1\uff1b DROP TABLE canary"),
        (ALL, "SELECT 1\u037e DROP TABLE canary"),
        (ALL, "SELECT 1 \u204f DROP TABLE canary"),
        (ALL, "SELECT\u00a01; DROP TABLE canary"),
        (ALL, "SELECT\u00a01"),
        (ALL, "SELECT\u20001"),
        (ALL, "SELECT\u30001"),
        (ALL, "SELECT 1\u200b"),
        (ALL, "DR\u200bOP TABLE canary"),
        (PG, "SELECT pg_read\u200b_file('/etc/passwd')"),
        (ALL, "\ufeffDELETE FROM canary"),
        (ALL, "SELECT 1 \u2028; DROP TABLE canary"),
        (ALL, "SELECT 1 \u202e; DROP TABLE canary"),
        (ALL, "SELECT 1\u2029DELETE FROM canary"),
        (ALL, "\u0405ELECT 1; DROP TABLE canary"),
        (ALL, "SELECT 1 \uff35NION SELECT 2; DELETE FROM canary"),
        (ALL, "SELECT v FROM canary WHERE id = 1 \uff0f* *\uff0f; DROP TABLE canary"),
        (ALL, "SELECT 1\x00; DROP TABLE canary"),
        (ALL, "\x00DELETE FROM canary"),
        # quoted / qualified function names
        (PG, "SELECT \"pg_read_file\"('/etc/passwd')"),
        (PG, "SELECT pg_catalog.pg_read_file('/etc/passwd')"),
        (PG, "SELECT pg_catalog.pg_sleep(1)"),
        (PG, "SELECT public.f()"),
        (SQ, "SELECT \"load_extension\"('/tmp/evil.so')"),
        (SQ, "SELECT [readfile]('/etc/passwd')"),
        (MY, "SELECT `LOAD_FILE`('/etc/passwd')"),
        (MY, "SELECT `sleep`(5)"),
        (DU, "SELECT * FROM main.read_csv('/etc/passwd')"),
        (DU, "SELECT * FROM \"read_csv\"('/etc/passwd')"),
        # encoded arguments
        (MY, "SELECT LOAD_FILE(0x2f6574632f706173737764)"),
        (MY, "SELECT LOAD_FILE(CHAR(47, 101, 116, 99, 47, 112, 97, 115, 115, 119, 100))"),
        (PG, "SELECT pg_read_file(chr(47) || 'etc/passwd')"),
        (SQ, "SELECT readfile(char(47) || 'etc/passwd')"),
        (SQ, "SELECT load_extension(X'2f746d702f6576696c2e736f')"),
        (PG, "SELECT pg_read_file(convert_from('\\x2f6574632f706173737764', 'UTF8'))"),
        # string-concatenated dynamic SQL
        (PG, "SELECT query_to_xml('DEL' || 'ETE FROM canary', true, true, '')"),
        (PG, "SELECT * FROM query_to_xml('DELETE FROM canary RETURNING 1', true, true, '')"),
        (PG, "DO $$ BEGIN EXECUTE 'DROP ' || 'TABLE canary'; END $$"),
        (PG, "SELECT dblink_exec('dbname=test', 'DROP TABLE ' || 'canary')"),
        (PG, "SELECT * FROM ts_stat('DELETE FROM canary RETURNING v::tsvector')"),
        (PG, "SELECT table_to_xml('canary', true, true, '')"),
        (PG, "SELECT database_to_xml(true, true, '')"),
        (PG, "SELECT cursor_to_xml('c', 1, true, true, '')"),
        (PG, "SELECT xpath('/x', query_to_xml('SELECT 1', true, true, ''))"),
        (MY, "PREPARE s FROM CONCAT('DROP ', 'TABLE canary')"),
        (MY, "SET @q = 'DROP TABLE canary'; PREPARE s FROM @q; EXECUTE s"),
        (MY, "EXECUTE IMMEDIATE 'DROP TABLE canary'"),
        (MY, "EXECUTE IMMEDIATE CONCAT('DELETE ', 'FROM canary')"),
        (DU, "SELECT * FROM query('DROP ' || 'TABLE canary')"),
        (SQ, "SELECT eval('DELETE ' || 'FROM canary')"),
        # forbidden calls hidden deep inside otherwise legitimate reads
        (PG, "SELECT * FROM canary WHERE id = (SELECT pg_sleep(5))"),
        (PG, "SELECT CASE WHEN 1 = 1 THEN pg_sleep(5) END"),
        (MY, "SELECT 1 FROM canary ORDER BY (SELECT SLEEP(5))"),
        (SQ, "SELECT 1 GROUP BY load_extension('/tmp/evil.so')"),
        (PG, "SELECT ROW_NUMBER() OVER (ORDER BY pg_sleep(1)) FROM canary"),
        (SQ, "SELECT count(*) FROM canary HAVING count(*) > length(readfile('/etc/passwd'))"),
        (MY, "SELECT * FROM canary a JOIN canary b ON a.id = b.id AND SLEEP(1) = 0"),
        (PG, "SELECT * FROM canary LIMIT (SELECT pg_sleep(1))::int"),
        (PG, "WITH a AS (SELECT pg_read_file('/etc/passwd') AS c) SELECT * FROM a"),
        (SQ, "SELECT v FROM canary UNION SELECT readfile('/etc/passwd')"),
        (DU, "SELECT v FROM canary UNION ALL SELECT content FROM read_text('/etc/passwd')"),
        (MY, "SELECT (SELECT (SELECT LOAD_FILE('/etc/passwd')))"),
        (PG, "SELECT coalesce(NULL, pg_read_file('/etc/passwd'))"),
        (DU, "SELECT * FROM canary WHERE v IN (SELECT * FROM read_csv('/etc/passwd'))"),
        (SQ, "SELECT * FROM canary WHERE EXISTS (SELECT writefile('/tmp/x', 'y'))"),
        (PG, "SELECT cast(pg_ls_dir('.') AS text)"),
    ],
)


def _nest_parens(depth: int) -> str:
    return "SELECT " + "(" * depth + "1" + ")" * depth


RESOURCE = _entries(
    "very_long_or_deeply_nested",
    [
        (ALL, _nest_parens(65)),
        (ALL, _nest_parens(200)),
        (ALL, _nest_parens(5000)),
        (ALL, "SELECT * FROM " + "(SELECT * FROM " * 80 + "canary" + ") AS x" * 80),
        (ALL, "SELECT " + "NOT " * 5000 + "1"),
        (ALL, "SELECT " + "- " * 20000 + "1"),
        (ALL, "SELECT " + "CASE WHEN 1 = 1 THEN " * 3000 + "1" + " END" * 3000),
        (ALL, "SELECT 1" + " " * 100_001),
        (ALL, "SELECT '" + "a" * 100_001 + "'"),
        (ALL, "SELECT 1 /*" + "x" * 200_000 + "*/"),
        (ALL, "SELECT * FROM canary WHERE " + " OR ".join(["id = 1"] * 20_000)),
        (ALL, " UNION ".join(["SELECT 1"] * 20_000)),
        (ALL, "SELECT 1; " * 50_000),
        (ALL, "SELECT " + ", ".join(f"c{i}" for i in range(30_000)) + " FROM canary"),
    ],
)

UNPARSEABLE = _entries(
    "unparseable",
    [
        (ALL, "SELECT FROM WHERE"),
        (ALL, "SELEC 1"),
        (ALL, "SELECT (1"),
        (ALL, "SELECT 'abc"),
        (ALL, 'SELECT "abc'),
        (ALL, "SELECT 1 /* unterminated"),
        (ALL, "))) DROP TABLE canary"),
        (ALL, "SELECT * FROM"),
        (ALL, "DROP"),
        (ALL, "'; DROP TABLE canary; --"),
        (ALL, "1; DROP TABLE canary"),
        (ALL, '" OR 1=1 --'),
        (ALL, "admin'--"),
        (ALL, "SELECT * FROM canary WHERE v = '' OR ''=''; DROP TABLE canary"),
        (ALL, "SELECT 1 FROM canary WHERE"),
        (ALL, "GRANT"),
        (ALL, "*"),
        (ALL, ""),
        (ALL, "   "),
        (ALL, ";"),
        (ALL, "--"),
        (ALL, "/* */"),
        (PG, "SELECT $$abc"),
        (ALL, "SELECT 1 FROM canary WHERE id IN ("),
        (ALL, "SELECT * FROM canary ORDER BY"),
        (ALL, "SELECT CAST(1 AS) FROM canary"),
        (ALL, "WITH x AS SELECT 1"),
        (ALL, "WITH x AS (SELECT 1)"),
        (ALL, "SELECT 1 UNION"),
        (ALL, "SELECT 1 UNION DELETE FROM canary"),
        (ALL, "SELECT * FROM canary WHERE v = 'a' ;;; DROP TABLE canary --"),
        (ALL, "\\"),
        (ALL, "SELECT 1 FROM canary; ' ; DROP TABLE canary; --"),
        (SQ + MY, "SELECT `x"),
        (ALL, "SELECT [x"),
    ],
)

# PostgreSQL reads (x).f and alias.f as a call of f(x): a notation sqlglot reads as a column. The other
# engines' ways of writing a call the guard might not take for one: quoted and qualified names, DuckDB's
# x.f() method calls. Each refused by the guard, and by the engine's own reading with the guard bypassed.
NOTATIONS = _entries(
    "calls_in_other_notations",
    [
        (PG, f"SELECT ('{CANARY_FILE}'::text).pg_read_file"),
        (PG, f"SELECT ('{CANARY_FILE}'::text).pg_read_binary_file"),
        (PG, "SELECT ('.'::text).pg_ls_dir"),
        (PG, f"SELECT ('{CANARY_FILE}'::text).pg_stat_file"),
        (PG, f"SELECT ('{CANARY_FILE}'::text).lo_import"),
        (PG, "SELECT ('data_directory'::text).current_setting"),
        (PG, "SELECT ('dbname=test'::text).dblink_connect"),
        (PG, "SELECT ('c'::text).dblink_disconnect"),
        (PG, "SELECT (42::bigint).pg_advisory_lock"),
        (PG, "SELECT (42::bigint).pg_advisory_xact_lock"),
        (PG, "SELECT (42::bigint).pg_try_advisory_lock"),
        (PG, "SELECT (0.5::float8).setseed"),
        (PG, "SELECT (1).pg_terminate_backend"),
        (PG, "SELECT (1).pg_cancel_backend"),
        (PG, "SELECT ('canary'::regclass).pg_stat_reset_single_table_counters"),
        (PG, "SELECT ('canary'::regclass::oid).pg_stat_reset_single_table_counters"),
        (PG, "SELECT ('s'::regclass).nextval"),
        (PG, "SELECT ('s'::regclass).currval"),
        (PG, "SELECT (10::float8).pg_sleep"),
        (PG, "SELECT ('x'::text).pg_notify"),
        (PG, "SELECT (v).pg_read_file FROM canary"),
        (PG, "SELECT (c.v).pg_read_file FROM canary AS c"),
        (PG, "SELECT * FROM canary WHERE (v).pg_read_file IS NOT NULL"),
        (PG, "SELECT (SELECT ('/etc/passwd'::text).pg_read_file)"),
        (PG, "WITH x AS (SELECT ('/etc/passwd'::text) AS p) SELECT (p).pg_read_file FROM x"),
        (PG, """SELECT (('/etc/passwd')::text)."pg_read_file\""""),
        (SQ, f"""SELECT "readfile"('{CANARY_FILE}')"""),
        (SQ, "SELECT [load_extension]('/tmp/evil.so')"),
        (SQ, "SELECT `randomblob`(1000000000)"),
        (SQ, "SELECT main.readfile('/etc/passwd')"),
        (MY, f"SELECT `load_file`('{CANARY_FILE}')"),
        (MY, f"SELECT LOAD_FILE ('{CANARY_FILE}')"),
        (MY, "SELECT sqlr1_sec.LOAD_FILE('/etc/passwd')"),
        (MY, "SELECT GET_LOCK ('x', 1)"),
        (MY, "SELECT `sleep` (5)"),
        (DU, "SELECT 'HOME'.getenv()"),
        (DU, "SELECT ('threads').current_setting()"),
        (DU, f"SELECT '{CANARY_FILE}'.read_text()"),
        (DU, "SELECT 42.setseed()"),
        (DU, """SELECT 'abc'."getenv"()"""),
    ],
)

# Functions with side effects that run inside a read-only transaction: locks, backend signals, random
# seeds, statistics resets, settings, sequences, notifications, large objects, cross-session SQL.
SIDE_EFFECTS = _entries(
    "side_effects_in_read_only_transactions",
    [
        (PG, "SELECT pg_advisory_lock_shared(1)"),
        (PG, "SELECT pg_advisory_xact_lock(1)"),
        (PG, "SELECT pg_try_advisory_xact_lock_shared(1)"),
        (PG, "SELECT pg_advisory_unlock_all()"),
        (PG, "SELECT pg_stat_reset()"),
        (PG, "SELECT pg_stat_reset_shared('bgwriter')"),
        (PG, "SELECT pg_stat_reset_single_table_counters('canary'::regclass)"),
        (PG, "SELECT set_config('search_path', 'pg_catalog', false)"),
        (PG, "SELECT set_config('standard_conforming_strings', 'off', false)"),
        (PG, "SELECT dblink_exec('dbname=sqlr1_sec', 'DELETE FROM canary')"),
        (PG, "SELECT dblink_connect('dbname=sqlr1_sec')"),
        (
            PG,
            "SELECT * FROM dblink('dbname=sqlr1_sec', 'INSERT INTO canary VALUES (77, 1) RETURNING id') AS t(i int)",
        ),
        (PG, "SELECT lo_creat(-1)"),
        (PG, "SELECT lo_open(1, 131072)"),
        (PG, "SELECT pg_notify('c', 'x')"),
        (PG, "SELECT lastval()"),
        (PG, "SELECT pg_backend_pid()"),
        (PG, "SELECT pg_signal_backend(1, 15)"),
        (PG, "SELECT pg_log_backend_memory_contexts(1)"),
        (PG, "SELECT pg_prewarm('canary')"),
        (PG, "SELECT txid_current_if_assigned()"),
        (MY, "SELECT RELEASE_ALL_LOCKS()"),
        (MY, "SELECT IS_USED_LOCK('x')"),
        (MY, "SELECT NEXTVAL(s)"),
        (MY, "SELECT SETVAL(s, 1)"),
        (MY, "SELECT LASTVAL(s)"),
        (MY, "SELECT LAST_INSERT_ID(5)"),
        (MY, "SELECT CONNECTION_ID()"),
        (MY, "SELECT MASTER_GTID_WAIT('0-1-1', 1)"),
        (MY, "SELECT FOUND_ROWS()"),
        (DU + PG, "SELECT setseed(0.5)"),
        (DU, "SELECT nextval('s')"),
        (DU + PG, "SELECT currval('s')"),
        (DU, "SELECT getvariable('x')"),
        (DU, "SELECT current_setting('memory_limit')"),
        (DU, "SELECT * FROM duckdb_secrets()"),
        (SQ, "SELECT changes(), total_changes()"),
        (SQ, "SELECT last_insert_rowid()"),
        (SQ, "SELECT sqlite_offset(v) FROM canary"),
        (SQ, "SELECT fts3_tokenizer('simple')"),
        (SQ, "SELECT sqlite_source_id()"),
    ],
)

# Where a server ends a string literal depends on session settings (PostgreSQL standard_conforming_strings,
# MariaDB NO_BACKSLASH_ESCAPES / ANSI_QUOTES): a call the guard reads as part of a string would run under
# another setting. sqlr1 pins those settings, so the server reads each of these the way the guard does:
# the first group hides a call only under the settings sqlr1 pins off, so it is a plain string (harmless);
# the second shows a call to the guard, which refuses it.
# alias.f is a column to any reader but PostgreSQL, which calls f(alias) when alias has no column f and f
# takes its whole row (a user function; ``pg_typeof`` takes anything): only the server's own reading shows it.
ENGINE_ONLY = _entries(
    "calls_in_other_notations",
    [
        (PG, "SELECT c.sqlr1_row_function FROM canary AS c"),
        (PG, "SELECT canary.sqlr1_row_function FROM canary"),
        (PG, "SELECT c.pg_typeof FROM canary AS c"),
        (PG, "SELECT count(*) FROM canary AS c WHERE c.sqlr1_row_function > 0"),
        (PG, "SELECT c.sqlr1_inlined FROM canary AS c"),
    ],
    expect="engine",
)

LEXING_HARMLESS = _entries(
    "string_literals_under_session_settings",
    [
        (PG, f"SELECT E'a\\' , pg_read_file(''{CANARY_FILE}'') , ' AS s"),
        (PG, f"SELECT 'a\\'' , pg_read_file(''{CANARY_FILE}'') , ''' AS s"),
        (MY, f"SELECT 'a\\' , LOAD_FILE(\\'{CANARY_FILE}\\') , ' AS s"),
        (MY, f"""SELECT "a\\" , LOAD_FILE('{CANARY_FILE}') , " AS s"""),
        (SQ, f"SELECT 'a\\' || ', readfile(''{CANARY_FILE}'')' AS s"),
        (DU, f"SELECT 'a\\' || ', read_text(''{CANARY_FILE}'')' AS s"),
    ],
    expect="harmless",
)
LEXING_REFUSED = _entries(
    "string_literals_under_session_settings",
    [
        (PG, f"SELECT 'a\\' , pg_read_file('{CANARY_FILE}') --'"),
        (PG, f"SELECT 'a\\' , pg_read_file('{CANARY_FILE}', 0, 100) , '\\'"),
        (PG, f"SELECT U&'a\\0027' , pg_read_file('{CANARY_FILE}') --'"),
        (MY, f"SELECT 'a'' , LOAD_FILE(''{CANARY_FILE}'') , ''' , LOAD_FILE('{CANARY_FILE}')"),
        (MY, f"""SELECT "a" , LOAD_FILE('{CANARY_FILE}') -- \""""),
        (MY, f"SELECT `a` , LOAD_FILE('{CANARY_FILE}') FROM canary"),
        (SQ, f"SELECT 'a\\' , readfile('{CANARY_FILE}') --'"),
        (DU, f"SELECT 'a\\' , read_text('{CANARY_FILE}') --'"),
    ],
)

CORPUS: list[Attack] = (
    STACKED
    + HIDDEN_WRITES
    + FUNCTIONS
    + OBFUSCATION
    + RESOURCE
    + UNPARSEABLE
    + NOTATIONS
    + ENGINE_ONLY
    + SIDE_EFFECTS
    + LEXING_HARMLESS
    + LEXING_REFUSED
)

# Harmless reads an outside review found refused: each must run on its engine, through the guard and the
# engine's own check alike.
HARMLESS_READS: list[Attack] = _entries(
    "harmless_reads",
    [
        (PG, "VALUES (1), (2)"),
        (ALL, "SELECT id FROM canary WHERE v LIKE 'a%' ORDER BY id"),
        (MY, "SELECT _utf8mb4'abc', _latin1'x'"),
        (SQ + DU, "VALUES (1), (2)"),
        (SQ, "SELECT name, type FROM pragma_table_info('canary')"),
        (SQ, "SELECT name FROM pragma_table_list WHERE name = 'canary'"),
        (SQ, "SELECT count(*) FROM pragma_index_list('canary')"),
        (DU, "SELECT {'a': 1, 'b': 'x'} AS s"),
        (DU, "SELECT unnest([1, 2]) AS n"),
        (DU, "SELECT COLUMNS('v') FROM canary"),
        (DU, "SELECT list_transform([1, 2], lambda x: x + 1) AS l"),
        (DU, "SELECT [x * 2 FOR x IN [1, 2]] AS l"),
    ],
    expect="harmless",
)
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(a.category for a in CORPUS))


def for_engine(engine: str) -> list[Attack]:
    """The corpus entries that apply to one engine."""
    return [a for a in CORPUS if engine in a.engines]
