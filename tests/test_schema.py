"""Schema inspection on real SQLite copies: catalog vs pragmas, descriptions, cache, examples, quoting."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest
import sqlglot
from conftest import FIXTURES
from sqlglot import exp

from sqlr1.mcp_server.catalog.schema import (
    ColumnSchema,
    DatabaseSchema,
    SchemaInspector,
    TableSchema,
    prompt_identifier,
    render_ddl,
)
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.engines.base import DatabaseSpec
from sqlr1.mcp_server.db.registry import Registry

SPIDER_TABLES_JSON = FIXTURES / "spider" / "tables.json"


def sqlite_spec(path: Path, name: str | None = None, **extra: Path) -> DatabaseSpec:
    return DatabaseSpec(name=name or path.stem, kind="sqlite", url=f"sqlite:///{path}", path=path, **extra)


def inspector_for(path: Path, name: str | None = None, **extra: Path) -> tuple[SchemaInspector, str]:
    spec = sqlite_spec(path, name, **extra)
    return SchemaInspector(Registry([spec])), spec.name


def pragma_schema(path: Path) -> dict[str, dict]:
    """The truth, read with plain sqlite3 pragmas."""
    con = sqlite3.connect(path)
    try:
        out = {}
        names = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for t in names:
            q = exp.to_identifier(t, quoted=True).sql("sqlite")
            info = con.execute(f"PRAGMA table_info({q})").fetchall()
            fks: dict[int, list] = {}
            for fid, _seq, ref, frm, to, *_ in con.execute(f"PRAGMA foreign_key_list({q})").fetchall():
                fks.setdefault(fid, [[], ref, []])
                fks[fid][0].append(frm)
                fks[fid][2].append(to)
            out[t] = {
                "columns": [(r[1], r[2], not r[3]) for r in info],
                "pk": [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])],
                "fks": sorted((tuple(c), ref, tuple(rc)) for c, ref, rc in fks.values()),
            }
        return out
    finally:
        con.close()


@pytest.mark.parametrize("db_id", ["concert_singer", "pets_1", "world_1", "car_1", "chinook"])
def test_catalog_matches_sqlite_pragmas(db_id: str, spider_copy, chinook_copy: Path) -> None:
    path = chinook_copy if db_id == "chinook" else spider_copy(db_id)
    inspector, name = inspector_for(path)
    schema = inspector.describe(name)
    truth = pragma_schema(path)
    assert sorted(t.name for t in schema.tables) == sorted(truth)
    for table in schema.tables:
        want = truth[table.name]
        assert [(c.name, c.type, c.nullable) for c in table.columns] == want["columns"]
        assert table.primary_key == want["pk"]
        assert [c.name for c in table.columns if c.primary_key] == [
            c for c, *_ in want["columns"] if c in want["pk"]
        ]
        got_fks = sorted(
            (tuple(fk.columns), fk.ref_table, tuple(fk.ref_columns)) for fk in table.foreign_keys
        )
        assert got_fks == want["fks"]
    assert schema.fingerprint and schema.dialect == "sqlite"
    assert inspector.list_tables(name) == [t.name for t in schema.tables]


def test_spider_descriptions_and_table_order_from_tables_json(tmp_path: Path) -> None:
    # A Spider layout (database/<db_id>/<db_id>.sqlite + tables.json), found by the registry.
    root = tmp_path / "spider"
    (root / "database" / "pets_1").mkdir(parents=True)
    shutil.copyfile(FIXTURES / "spider/pets_1/pets_1.sqlite", root / "database/pets_1/pets_1.sqlite")
    shutil.copyfile(SPIDER_TABLES_JSON, root / "tables.json")
    inspector = SchemaInspector(Registry.from_targets([str(root)]))
    name = "pets_1"
    schema = inspector.describe(name)
    entry = next(e for e in json.loads(SPIDER_TABLES_JSON.read_text("utf-8")) if e["db_id"] == "pets_1")
    # Tables in tables.json order (Spider/OmniSQL prompts list them so), not alphabetical.
    assert [t.name for t in schema.tables] == entry["table_names_original"]
    for table in schema.tables:
        t_idx = entry["table_names_original"].index(table.name)
        assert table.description == entry["table_names"][t_idx]
        for col in table.columns:
            i = entry["column_names_original"].index([t_idx, col.name])
            assert col.description == entry["column_names"][i][1]
    student = schema.table("Student")
    assert student is not None
    lname = student.column("lname")
    assert lname is not None and lname.name == "LName" and lname.description == "last name"
    assert "    LName TEXT, -- last name, example: ['Smith', 'Kim']\n" in render_ddl(schema)


BIRD_DB = "student_club"


def build_bird_sqlite(shared: Path, dst: Path) -> Path:
    """A small SQLite database with exactly one BIRD dev schema (from dev_tables.json), a row per table."""
    entry = next(
        e
        for e in json.loads((shared / "bird/dev/dev_tables.json").read_text("utf-8"))
        if e["db_id"] == BIRD_DB
    )
    cols = entry["column_names_original"]
    pks = [p if isinstance(p, list) else [p] for p in entry["primary_keys"]]
    con = sqlite3.connect(dst)
    q = lambda n: exp.Identifier(this=n, quoted=True).sql("sqlite")  # noqa: E731
    for t_idx, table in enumerate(entry["table_names_original"]):
        lines = [
            f"{q(name)} {entry['column_types'][i].upper()}"
            for i, (ti, name) in enumerate(cols)
            if ti == t_idx
        ]
        pk = next((p for p in pks if cols[p[0]][0] == t_idx), None)
        if pk:
            lines.append("PRIMARY KEY (" + ", ".join(q(cols[i][1]) for i in pk) + ")")
        for src, ref in entry["foreign_keys"]:
            if cols[src][0] == t_idx:
                ref_table = entry["table_names_original"][cols[ref][0]]
                lines.append(f"FOREIGN KEY ({q(cols[src][1])}) REFERENCES {q(ref_table)} ({q(cols[ref][1])})")
        con.execute(f"CREATE TABLE {q(table)} (" + ", ".join(lines) + ")")
        sample = {"integer": "1", "real": "1.5", "text": "'x'"}
        values = [sample[entry["column_types"][i]] for i, (ti, _) in enumerate(cols) if ti == t_idx]
        con.execute(f"INSERT INTO {q(table)} VALUES (" + ", ".join(values) + ")")
    con.commit()
    con.close()
    return dst


def test_bird_descriptions_from_csv(shared_data: Path, tmp_path: Path) -> None:
    # A BIRD layout (dev_databases/<db>/<db>.sqlite + database_description/ + dev_tables.json).
    bird = shared_data / "bird/dev"
    root = tmp_path / "bird"
    db_dir = root / "dev_databases" / BIRD_DB
    db_dir.mkdir(parents=True)
    build_bird_sqlite(shared_data, db_dir / f"{BIRD_DB}.sqlite")
    shutil.copytree(
        bird / "dev_databases" / BIRD_DB / "database_description", db_dir / "database_description"
    )
    shutil.copyfile(bird / "dev_tables.json", root / "dev_tables.json")
    inspector = SchemaInspector(Registry.from_targets([str(root)]))
    name = BIRD_DB
    schema = inspector.describe(name)
    budget = schema.table("budget")
    assert budget is not None
    # budget.csv is latin-1 encoded; its descriptions still come through.
    spent = budget.column("spent")
    assert spent is not None
    assert spent.details == "The total amount spent in the budgeted category for an event."
    assert spent.value_description and spent.value_description.startswith("the unit is dollar")
    budget_id = budget.column("budget_id")
    assert budget_id is not None and budget_id.description == "budget id"
    # The prompt uses the natural name, and omits it where it only repeats the column name.
    ddl = render_ddl(schema)
    assert "CREATE TABLE budget (" in ddl
    assert "    spent REAL, -- example: [1.5]" in ddl
    member = schema.table("member")
    assert member is not None and any(fk.ref_table == "major" for fk in member.foreign_keys)
    assert [t.name for t in schema.tables][:3] == ["event", "major", "zip_code"]


def test_cache_is_reused_then_invalidated_by_schema_change(spider_copy) -> None:
    path = spider_copy("concert_singer")
    inspector, name = inspector_for(path)
    first = inspector.describe(name)
    assert inspector.describe(name) is first  # warm: the cached object
    subset = inspector.describe(name, ["singer"])
    assert inspector.describe(name, ["SINGER"]) is subset
    con = sqlite3.connect(path)
    con.execute('ALTER TABLE singer ADD COLUMN "nick name" TEXT')
    con.commit()
    con.close()
    after = inspector.describe(name)
    assert after is not first and after.fingerprint != first.fingerprint
    singer = after.table("singer")
    assert singer is not None and singer.columns[-1].name == "nick name"
    assert "`nick name` TEXT," in render_ddl(after)
    assert inspector.describe(name, ["singer"]).table("singer") == singer


def test_cache_is_thread_safe(spider_copy, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry([sqlite_spec(spider_copy("world_1"), "w")])
    engine = registry.engine("w")
    calls = []
    real_catalog = engine.catalog

    def counting_catalog():
        calls.append(1)
        return real_catalog()

    monkeypatch.setattr(engine, "catalog", counting_catalog)
    inspector = SchemaInspector(registry)
    results = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(inspector.describe("w"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 8 and all(r is results[0] for r in results)
    assert len(calls) == 1


def test_example_values_bounded_distinct_and_truncated(tmp_path: Path) -> None:
    path = tmp_path / "ex.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, n REAL, b BLOB, e TEXT)")
    rows = [(1, None, None, b"\x00\x01", None), (2, "", 1.5, b"\x02", None), (3, "a" * 500, 1.5, None, None)]
    rows += [(i, f"value {i % 7}", float(i), None, None) for i in range(4, 3000)]
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    inspector = SchemaInspector(
        Registry([sqlite_spec(path)]), examples=3, sample_rows=50, max_value_chars=100
    )
    table = inspector.describe("ex").tables[0]
    ex = {c.name: c.examples for c in table.columns}
    assert ex["id"] == [1, 2, 3]
    assert ex["s"] == ["a" * 100, "value 4", "value 5"]  # NULL and '' skipped, cut at 100
    assert ex["n"] == [1.5, 4.0, 5.0]  # distinct
    assert ex["b"] == []  # binary data is not an example
    assert ex["e"] == []  # all NULL
    ddl = render_ddl(inspector.describe("ex"))
    assert f"s TEXT, -- example: ['{'a' * 40}', 'value 4']" in ddl  # 2 values, 40 chars in the prompt
    assert "    e TEXT,\n" in ddl and "b BLOB,\n" in ddl
    assert render_ddl(inspector.describe("ex"), example_values=0).count("example") == 0
    assert inspector.sample_values("ex", "T", "S", limit=4) == ["", "a" * 500, "value 4", "value 5"]


WEIRD_TABLE = 'my "odd" table'
WEIRD_COLUMNS = ["select", "order", "col with space", 'quo"te', "back`tick", "1st", "Year", "plain_name"]


def test_weird_identifiers_are_quoted_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "weird.sqlite"
    q = lambda n: exp.Identifier(this=n, quoted=True).sql("sqlite")  # noqa: E731
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    con.execute(
        f"CREATE TABLE {q(WEIRD_TABLE)} ("
        + ", ".join(f"{q(c)} TEXT" for c in WEIRD_COLUMNS)
        + f", pid INTEGER REFERENCES parent, PRIMARY KEY ({q('select')}))"
    )
    con.execute(
        f"INSERT INTO {q(WEIRD_TABLE)} VALUES (" + ", ".join("?" * (len(WEIRD_COLUMNS) + 1)) + ")",
        [*(f"v{i}'s" for i in range(len(WEIRD_COLUMNS))), 1],
    )
    con.commit()
    con.close()
    inspector, name = inspector_for(path)
    schema = inspector.describe(name)  # the example query ran: every name was quoted
    table = schema.table(WEIRD_TABLE)
    assert table is not None
    assert [c.examples for c in table.columns][: len(WEIRD_COLUMNS)] == [
        [f"v{i}'s"] for i in range(len(WEIRD_COLUMNS))
    ]
    fk = table.foreign_keys[0]
    assert (fk.columns, fk.ref_table, fk.ref_columns) == (["pid"], "parent", ["id"])  # implicit: parent's PK
    ddl = render_ddl(schema)
    # The DDL is valid SQLite and names every column exactly.
    for statement in ddl.split(";\n\n"):
        tree = sqlglot.parse_one(statement.rstrip(";"), read="sqlite")
        assert isinstance(tree, exp.Create)
    con = sqlite3.connect(":memory:")
    con.executescript(ddl)
    created = [r[1] for r in con.execute(f"PRAGMA table_info({q(WEIRD_TABLE)})")]
    assert created == [*WEIRD_COLUMNS, "pid"]
    assert "plain_name TEXT" in ddl and "`Year` TEXT" in ddl and "`select` TEXT" in ddl
    assert prompt_identifier('a"b', "postgres") == '"a""b"' and prompt_identifier("a`b", "sqlite") == "`a``b`"
    assert inspector.sample_values(name, WEIRD_TABLE, 'quo"te') == ["v3's"]


def test_unknown_table_and_column_are_not_found_with_hints(spider_copy) -> None:
    inspector, name = inspector_for(spider_copy("car_1"))
    with pytest.raises(QueryFailed) as info:
        inspector.describe(name, ["car_maker", "cars_data"])
    assert info.value.error.kind == "not_found"
    assert "'car_maker'" in info.value.error.message and "car_makers" in info.value.error.message
    with pytest.raises(QueryFailed) as info:
        inspector.sample_values(name, "cars_data", "horsepowr")
    assert info.value.error.kind == "not_found" and "Horsepower" in info.value.error.message
    subset = inspector.describe(name, ["model_list", "CONTINENTS", "model_list"])
    assert [t.name for t in subset.tables] == ["continents", "model_list"]  # catalog order, deduplicated


GOLDEN_STADIUM = """CREATE TABLE stadium (
    Stadium_ID NUMERIC, -- example: [1, 2]
    Location TEXT, -- example: ['Raith Rovers', 'Ayr United']
    Name TEXT, -- example: ["Stark's Park", 'Somerset Park']
    Capacity NUMERIC, -- example: [10104, 11998]
    Highest NUMERIC, -- example: [4812, 2363]
    Lowest NUMERIC, -- example: [1294, 1057]
    Average NUMERIC, -- example: [2106, 1477]
    PRIMARY KEY (Stadium_ID)
);

CREATE TABLE concert (
    concert_ID NUMERIC, -- example: [1, 2]
    concert_Name TEXT, -- example: ['Auditions', 'Super bootcamp']
    Theme TEXT, -- example: ['Free choice', 'Free choice 2']
    Stadium_ID TEXT, -- example: ['1', '2']
    `Year` TEXT, -- example: ['2014', '2015']
    PRIMARY KEY (concert_ID),
    CONSTRAINT fk_concert_stadium_id FOREIGN KEY (Stadium_ID) REFERENCES stadium (Stadium_ID)
);"""


def test_golden_ddl(spider_copy) -> None:
    path = spider_copy("concert_singer")
    inspector, name = inspector_for(path, tables_json=SPIDER_TABLES_JSON)
    schema = inspector.describe(name, ["concert", "stadium"])
    assert render_ddl(schema) == GOLDEN_STADIUM
    assert inspector.ddl(name, ["concert", "stadium"]) is render_ddl(schema)  # memoized text


def test_composite_keys_render_in_column_order(spider_copy) -> None:
    inspector, name = inspector_for(spider_copy("concert_singer"), tables_json=SPIDER_TABLES_JSON)
    ddl = inspector.ddl(name, ["singer_in_concert"], example_values=0)
    assert ddl == (
        "CREATE TABLE singer_in_concert (\n"
        "    concert_ID NUMERIC,\n"
        "    Singer_ID TEXT,\n"
        "    PRIMARY KEY (concert_ID, Singer_ID),\n"
        "    CONSTRAINT fk_singer_in_concert_concert_id FOREIGN KEY (concert_ID) REFERENCES concert (concert_ID),\n"
        "    CONSTRAINT fk_singer_in_concert_singer_id FOREIGN KEY (Singer_ID) REFERENCES singer (Singer_ID)\n"
        ");"
    )


def test_unknown_database_is_not_found(spider_copy) -> None:
    inspector, _ = inspector_for(spider_copy("pets_1"))
    with pytest.raises(QueryFailed) as info:
        inspector.describe("nope")
    assert info.value.error.kind == "not_found"


def test_examples_across_many_tables_and_an_unreadable_view(tmp_path: Path) -> None:
    """More tables than one sampling batch, plus a view that fails at run time (integer overflow)."""
    path = tmp_path / "many.sqlite"
    con = sqlite3.connect(path)
    for i in range(130):
        con.execute(f"CREATE TABLE t{i:03d} (id INTEGER PRIMARY KEY, {'x TEXT, ' * (i % 3 == 0)}v INTEGER)")
        cols = "(id, x, v)" if i % 3 == 0 else "(id, v)"
        vals = f"(1, 'x{i}', {i})" if i % 3 == 0 else f"(1, {i})"
        con.execute(f"INSERT INTO t{i:03d} {cols} VALUES {vals}")
    con.execute("CREATE VIEW t050_bad AS SELECT abs(-9223372036854775807 - 1) AS boom")
    con.commit()
    con.close()
    inspector, name = inspector_for(path)
    schema = inspector.describe(name)
    assert len(schema.tables) == 131
    for table in schema.tables:
        if table.name == "t050_bad":
            assert [c.examples for c in table.columns] == [[]]  # described, without examples
            continue
        i = int(table.name[1:])
        v = table.column("v")
        assert v is not None and v.examples == [i]
        if i % 3 == 0:
            x = table.column("x")
            assert x is not None and x.examples == [f"x{i}"]


@pytest.mark.services
@pytest.mark.parametrize("kind", ["postgres", "mariadb", "duckdb"])
def test_other_engines_describe_and_quote(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The same inspection through the PostgreSQL, MariaDB and DuckDB engines (their catalogs, quoting)."""
    import sqlalchemy as sa

    suffix = uuid.uuid4().hex[:8]
    parent, odd = f"parent_{suffix}", f"Odd Table {suffix}"
    if kind == "duckdb":
        url = f"duckdb:///{tmp_path / 'x.duckdb'}"
        dialect, target = "duckdb", str(tmp_path / "x.duckdb")
    else:
        url = request.getfixturevalue("postgres_url" if kind == "postgres" else "mariadb_url")
        dialect, target = ("postgres" if kind == "postgres" else "mysql"), f"db={url}"
    q = lambda n: exp.Identifier(this=n, quoted=True).sql(dialect)  # noqa: E731
    ddl = [
        f"CREATE TABLE {q(parent)} (id INT PRIMARY KEY, name VARCHAR(50))",
        f"CREATE TABLE {q(odd)} ({q('select')} INT PRIMARY KEY, {q('col with space')} VARCHAR(200), pid INT, "
        f"FOREIGN KEY (pid) REFERENCES {q(parent)} (id))",
        f"INSERT INTO {q(parent)} VALUES (1, 'p1'), (2, 'p2')",
        f"INSERT INTO {q(odd)} VALUES (1, '{'x' * 60}', 1), (2, NULL, 2), (3, '', 1)",
    ]
    setup = sa.create_engine(url)
    with setup.begin() as conn:
        for statement in ddl:
            conn.execute(sa.text(statement))
    setup.dispose()
    registry = Registry.from_targets([target])
    name = registry.names()[0]
    try:
        inspector = SchemaInspector(registry)
        schema = inspector.describe(name, [odd, parent])
        assert {t.name for t in schema.tables} == {odd, parent}
        table = schema.table(odd)
        assert table is not None
        assert [c.name for c in table.columns] == ["select", "col with space", "pid"]
        assert table.primary_key == ["select"] and table.columns[0].primary_key
        assert [(f.columns, f.ref_table, f.ref_columns) for f in table.foreign_keys] == [
            (["pid"], parent, ["id"])
        ]
        assert [c.examples for c in table.columns] == [[1, 2, 3], ["x" * 60], [1, 2]]
        text = render_ddl(schema)
        quote = "`" if dialect == "mysql" else '"'
        assert f"CREATE TABLE {quote}{odd}{quote} (" in text
        assert f"    {quote}col with space{quote} " in text and f"    {quote}select{quote} " in text
        assert f"REFERENCES {parent} (id)" in text
        with pytest.raises(QueryFailed) as info:
            inspector.describe(name, [f"odd table {suffix}x"])
        assert info.value.error.kind == "not_found" and odd in info.value.error.message
    finally:
        registry.close()
        setup = sa.create_engine(url)
        with setup.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {q(odd)}"))
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {q(parent)}"))
        setup.dispose()


def test_render_leaves_out_tables_without_columns() -> None:
    # No engine here reports one (PostgreSQL allows CREATE TABLE t (), its catalog join drops it), but
    # the renderer follows OmniSQL and leaves such a table out rather than printing an empty body.
    schema = DatabaseSchema(
        database="d",
        dialect="postgres",
        fingerprint="f",
        tables=[
            TableSchema(name="empty", columns=[]),
            TableSchema(name="t", columns=[ColumnSchema(name="Order", type="integer", examples=[3])]),
        ],
    )
    assert render_ddl(schema) == 'CREATE TABLE t (\n    "Order" integer, -- example: [3]\n);'


# Every keyword-named table/column in Spider (train+dev tables.json) and BIRD dev that OmniSQL's prompts quote;
# names such as rank, status, number, text, level or uuid stay bare there, so they stay bare here.
OMNISQL_QUOTED_KEYWORDS = {
    "CAST", "CHARACTER", "COMMENT", "COUNT", "CROSS", "DATE", "DAY", "DEC", "DOUBLE", "END", "FROM", "MATCH",
    "MONTH", "NO", "ORDER", "POSITION", "RANGE", "ROLE", "START", "TIME", "USER", "YEAR",
}  # fmt: skip


def test_prompt_quoting_matches_omnisql_on_spider_and_bird_names(shared_data: Path) -> None:
    names: set[str] = set()
    for f in ("spider/tables.json", "bird/dev/dev_tables.json"):
        for entry in json.loads((shared_data / f).read_text("utf-8")):
            names.update(c for _, c in entry["column_names_original"][1:])
            names.update(entry["table_names_original"])
    quoted = {n for n in names if prompt_identifier(n, "sqlite") != n}
    plain_but_quoted = {n.upper() for n in quoted if n.replace("_", "a").isalnum() and not n[0].isdigit()}
    assert plain_but_quoted == OMNISQL_QUOTED_KEYWORDS
    for n in quoted:
        assert prompt_identifier(n, "sqlite") == "`" + n.replace("`", "``") + "`"
    assert (
        prompt_identifier("Percent (%) Eligible Free (K-12)", "sqlite")
        == "`Percent (%) Eligible Free (K-12)`"
    )
    assert prompt_identifier("rank", "sqlite") == "rank" and prompt_identifier("Year", "sqlite") == "`Year`"
