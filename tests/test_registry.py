"""Database registry: files, Spider/BIRD folders, URLs, names, and the errors for bad targets."""

from __future__ import annotations

import pickle
import shutil
import threading
from pathlib import Path

import pytest
from conftest import FIXTURES

from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig, GuardSettings
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.registry import Registry, specs_from_target

SPIDER = FIXTURES / "spider"


def _fail(targets: list, kind: str) -> str:
    with pytest.raises(QueryFailed) as info:
        Registry.from_targets(targets)
    assert info.value.error.kind == kind, info.value.error
    return info.value.error.message


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("{db}", None),
        ("pets={db}", "pets"),
        ("my db={db}", "my db"),  # cli.py once named it `my db`, registry.py read it as a path
        ("données={db}", "données"),
        ("a+b={db}", "a+b"),
    ],
)
def test_cli_and_registry_read_a_named_target_alike(spider_copy, value: str, name: str | None) -> None:
    """``--db`` and ``Registry.from_targets`` share one reading of ``NAME=TARGET``."""
    from sqlr1.mcp_server.cli.main import parse_db_flag

    target = value.format(db=spider_copy("pets_1"))
    flag = parse_db_flag(target)
    assert flag.name == name
    from_flag = Registry.from_targets([flag]).names()
    from_text = Registry.from_targets([target]).names()
    assert from_flag == from_text == [name or "pets_1"]


@pytest.mark.parametrize(
    "value",
    [
        "postgresql+psycopg://u@h:5432/db?application_name=x",
        "/data/a=b.sqlite",
        "C:\\data\\a=b.sqlite",
        "sqlite:///a=b.sqlite",
        "=x.sqlite",
    ],
)
def test_a_path_or_url_with_an_equals_sign_is_not_named(value: str) -> None:
    from sqlr1.mcp_server.cli.main import parse_db_flag
    from sqlr1.mcp_server.db.registry import split_named_target

    assert split_named_target(value) == (None, value)
    assert parse_db_flag(value).name is None and parse_db_flag(value).target == value


def test_empty_target_after_a_name_is_refused_by_both() -> None:
    from sqlr1.mcp_server.cli.main import UsageError, parse_db_flag

    with pytest.raises(UsageError, match="empty target after 'pg='"):
        parse_db_flag("pg=")
    assert "after 'pg='" in _fail(["pg="], "config")


def test_sqlite_file_named_by_stem(spider_copy) -> None:
    path = spider_copy("pets_1")
    reg = Registry.from_targets([str(path)])
    assert reg.names() == ["pets_1"]
    spec = reg.get("pets_1")
    assert spec.kind == "sqlite" and spec.path == path.resolve() and spec.url == f"sqlite:///{path.resolve()}"


def test_name_equals_target_and_config_entry(spider_copy) -> None:
    path = spider_copy("pets_1")
    reg = Registry.from_targets([f"pets={path}", DatabaseConfig(name="other", target=str(path))])
    assert reg.names() == ["pets", "other"]


def test_spider_folder_gives_one_database_per_db_id() -> None:
    reg = Registry.from_targets([str(SPIDER)])
    assert reg.names() == ["car_1", "concert_singer", "pets_1", "world_1"]
    assert all(reg.get(n).tables_json == (SPIDER / "tables.json").resolve() for n in reg.names())


def test_folder_with_database_child_and_tables_json_next_to_it(tmp_path: Path) -> None:
    root = tmp_path / "spider"
    for db in ("concert_singer", "pets_1"):
        (root / "database" / db).mkdir(parents=True)
        shutil.copyfile(SPIDER / db / f"{db}.sqlite", root / "database" / db / f"{db}.sqlite")
    shutil.copyfile(SPIDER / "tables.json", root / "tables.json")
    for target in (root, root / "database"):
        reg = Registry.from_targets([str(target)])
        assert reg.names() == ["concert_singer", "pets_1"]
        assert reg.get("pets_1").tables_json == (root / "tables.json").resolve()


def test_bird_layout_attaches_descriptions(tmp_path: Path) -> None:
    root = tmp_path / "dev"
    db_dir = root / "dev_databases" / "concert_singer"
    (db_dir / "database_description").mkdir(parents=True)
    (db_dir / "database_description" / "singer.csv").write_text("original_column_name\n", encoding="utf-8")
    shutil.copyfile(SPIDER / "concert_singer" / "concert_singer.sqlite", db_dir / "concert_singer.sqlite")
    (root / "dev_tables.json").write_text("[]", encoding="utf-8")
    spec = Registry.from_targets([str(root)]).get("concert_singer")
    assert spec.description_dir == (db_dir / "database_description").resolve()
    assert spec.tables_json == (root / "dev_tables.json").resolve()


def test_single_db_id_folder() -> None:
    reg = Registry.from_targets([str(SPIDER / "concert_singer")])
    assert reg.names() == ["concert_singer"]
    assert reg.get("concert_singer").tables_json == (SPIDER / "tables.json").resolve()


def test_description_dir_from_config(tmp_path: Path, spider_copy) -> None:
    path = spider_copy("pets_1")
    (tmp_path / "desc").mkdir()
    entry = DatabaseConfig(target=str(path), description_dir=str(tmp_path / "desc"))
    assert specs_from_target(entry)[0].description_dir == (tmp_path / "desc").resolve()


def test_urls() -> None:
    reg = Registry.from_targets(
        [
            "postgresql+psycopg://u:secret@db.example:5433/shop?sslmode=require&options=-csearch_path%3Dapp",
            "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4",
            "maria=mariadb://root@127.0.0.1/test",
        ]
    )
    assert reg.names() == ["shop", "test", "maria"]
    shop = reg.get("shop")
    assert shop.kind == "postgresql" and "secret" in shop.url and "secret" not in shop.display_url
    assert reg.get("test").kind == "mysql" and reg.get("maria").kind == "mysql"


def test_duckdb_url_and_file(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "shop.duckdb"
    duckdb.connect(str(path)).close()
    reg = Registry.from_targets([f"duckdb:///{path}", f"again={path}"])
    assert reg.get("shop").kind == "duckdb" and reg.get("again").kind == "duckdb"


def test_missing_path_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    assert str(missing) in _fail([str(missing)], "not_found")
    assert str(missing) in _fail([f"sqlite:///{missing}"], "not_found")


def test_unknown_url_option_is_an_error() -> None:
    message = _fail(["postgresql://u@h/db?sslmode=require&sslmod=x"], "config")
    assert "sslmod" in message and "sslmode" in message  # names the typo and what is allowed
    assert "foo" in _fail(["mysql+pymysql://u@h/db?foo=1"], "config")
    assert "mode" in _fail(["duckdb:////tmp/x.duckdb?mode=rw"], "config")


def test_unsupported_scheme_is_an_error() -> None:
    assert "oracle" in _fail(["oracle://u@h/db"], "config")
    assert "psycopg2" in _fail(["postgresql+psycopg2://u@h/db"], "config")


def test_url_without_database_is_an_error() -> None:
    assert "no database" in _fail(["postgresql://u@h"], "config")


def test_duplicate_names_are_an_error(spider_copy) -> None:
    path = spider_copy("pets_1")
    message = _fail([str(path), str(SPIDER)], "config")
    assert "duplicate database name 'pets_1'" in message


def test_name_for_a_multi_database_folder_is_an_error() -> None:
    assert "holds 4 databases" in _fail([f"spider={SPIDER}"], "config")


def test_not_a_sqlite_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello", encoding="utf-8")
    assert "not a SQLite database" in _fail([str(bad)], "config")


def test_empty_folder(tmp_path: Path) -> None:
    assert "no databases" in _fail([str(tmp_path)], "not_found")


def test_get_unknown_lists_available() -> None:
    reg = Registry.from_targets([str(SPIDER)])
    with pytest.raises(QueryFailed) as info:
        reg.get("concert")
    assert info.value.error.kind == "not_found"
    assert "concert_singer" in info.value.error.message and "pets_1" in info.value.error.message


def test_engine_is_created_once_even_under_concurrency() -> None:
    reg = Registry.from_targets([str(SPIDER)])
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(reg.engine("pets_1"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(e) for e in seen}) == 1 and seen[0].dialect == "sqlite"
    assert seen[0].execute("SELECT count(*) FROM pets", max_rows=1, timeout_s=5).rows == [(3,)]
    reg.close()


def test_from_config_and_pickle(spider_copy) -> None:
    path = spider_copy("pets_1")
    config = AppConfig(
        databases=[DatabaseConfig(target=str(path))], guard=GuardSettings(extra_functions=["hex"])
    )
    reg = Registry.from_config(config, extra_targets=[str(SPIDER / "car_1")])
    assert reg.names() == ["pets_1", "car_1"]
    reg.engine("pets_1")
    clone = pickle.loads(pickle.dumps(reg))
    assert clone.names() == reg.names() and clone.get("pets_1") == reg.get("pets_1")
    assert clone.engine("pets_1") is not reg.engine("pets_1")
    assert (
        clone.engine("car_1").execute("SELECT count(*) FROM cars_data", max_rows=1, timeout_s=5).rows[0][0]
        > 0
    )


def test_plain_folder_of_database_files(tmp_path: Path) -> None:
    for db in ("pets_1", "car_1"):
        shutil.copyfile(SPIDER / db / f"{db}.sqlite", tmp_path / f"{db}.sqlite")
    (tmp_path / "readme.txt").write_text("not a database", encoding="utf-8")
    assert Registry.from_targets([str(tmp_path)]).names() == ["car_1", "pets_1"]
