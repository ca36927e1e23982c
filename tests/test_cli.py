"""The ``sqlr1`` command through real subprocesses: dbs, schema, sql, exit codes and error messages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sqlr1.mcp_server.cli.main import build_parser, main, parse_db_flag

REPO = Path(__file__).resolve().parent.parent


def sqlr1(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sqlr1.mcp_server.cli.main", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def as_json(res: subprocess.CompletedProcess[str]) -> Any:
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "sqlr1"
    assert exe.exists(), "pip install -e . should install the sqlr1 console script"
    res = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    for sub in ("serve", "dbs", "schema", "sql"):
        assert sub in res.stdout


def test_default_database_is_bundled_chinook(tmp_path: Path) -> None:
    # run from elsewhere: the example is found next to the package, not via the working directory
    rows = as_json(sqlr1("dbs", "--json", cwd=tmp_path))
    assert [r["name"] for r in rows] == ["chinook"]
    assert rows[0]["kind"] == "sqlite" and rows[0]["target"].endswith("examples/chinook.sqlite")


def test_dbs_with_spider_folder_and_named_file(spider_copy: Any, chinook_copy: Path) -> None:
    spider_copy("concert_singer")
    folder = spider_copy("pets_1").parent.parent
    rows = as_json(sqlr1("--db", str(folder), "--db", f"music={chinook_copy}", "dbs", "--json"))
    assert {r["name"] for r in rows} == {"concert_singer", "pets_1", "music"}
    res = sqlr1("--db", str(folder), "dbs")
    assert res.returncode == 0 and "pets_1" in res.stdout


def test_schema_outputs(chinook_copy: Path) -> None:
    res = sqlr1("--db", str(chinook_copy), "schema", "--tables", "Album", "--ddl")
    assert res.returncode == 0, res.stderr
    assert "CREATE TABLE" in res.stdout and "Album" in res.stdout and "Track" not in res.stdout
    data = as_json(sqlr1("--db", str(chinook_copy), "schema", "chinook", "--json"))
    assert "Track" in {t["name"] for t in data["tables"]}
    res = sqlr1("--db", str(chinook_copy), "schema", "--tables", "Artist")
    assert res.returncode == 0 and "ArtistId" in res.stdout


def test_sql_table_and_json(chinook_copy: Path) -> None:
    res = sqlr1(
        "--db", str(chinook_copy), "sql", "chinook", "SELECT ArtistId, Name FROM Artist WHERE ArtistId <= 2"
    )
    assert res.returncode == 0, res.stderr
    assert "AC/DC" in res.stdout and "Accept" in res.stdout and "2 row(s)" in res.stdout
    data = as_json(
        sqlr1(
            "--db",
            str(chinook_copy),
            "sql",
            "chinook",
            "SELECT TrackId FROM Track",
            "--max-rows",
            "3",
            "--json",
        )
    )
    assert data["row_count"] == 3 and data["truncated"] is True


def test_sql_blocked_statement_exit_1_and_db_unchanged(chinook_copy: Path) -> None:
    before = chinook_copy.read_bytes()
    res = sqlr1("--db", str(chinook_copy), "sql", "chinook", "DELETE FROM Track")
    assert res.returncode == 1
    assert "blocked" in res.stderr
    assert chinook_copy.read_bytes() == before


ERROR_CASES = pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--db", "/no/such/dir/missing.sqlite", "dbs"], "/no/such/dir/missing.sqlite"),
        (["sql", "nope_db", "SELECT 1"], "nope_db"),
        (["--config", "/no/such/sqlr1.toml", "dbs"], "/no/such/sqlr1.toml"),
        (["schema", "--tables", "NoSuchTable"], "NoSuchTable"),
        (["frobnicate"], "invalid choice"),
        (["--db", "/no/such/serve.sqlite", "serve"], "/no/such/serve.sqlite"),
        (["serve", "--http", "--host", "10.1.2.3"], "non-loopback"),
    ],
)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The CLI in this process (faster than a subprocess; the subprocess tests above cover the wiring)."""
    try:
        code = main(args)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@ERROR_CASES
def test_errors_are_clear_with_exit_code_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(args, capsys)
    assert code == 2, (code, err)
    assert needle in err
    assert "Traceback" not in err


def test_config_file_unknown_key_is_named(
    tmp_path: Path, chinook_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "sqlr1.toml"
    cfg.write_text(
        f'[guard]\ntimeout_s = 5\nmax_rowz = 10\n\n[[databases]]\nname = "music"\ntarget = "{chinook_copy}"\n',
        encoding="utf-8",
    )
    for command in ("dbs", "serve"):  # a typo in a guard setting stops the server too
        code, _, err = run_main(["--config", str(cfg), command], capsys)
        assert code == 2 and "max_rowz" in err
    cfg.write_text(
        f'[guard]\nmax_rows = 2\n\n[[databases]]\nname = "music"\ntarget = "{chinook_copy}"\n',
        encoding="utf-8",
    )
    code, out, err = run_main(
        ["--config", str(cfg), "sql", "music", "SELECT Name FROM Genre", "--json"], capsys
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["row_count"] == 2 and data["truncated"] is True


def test_parse_db_flag() -> None:
    assert parse_db_flag("music=/tmp/a.sqlite").name == "music"
    url = "postgresql+psycopg://u@h:5432/db?application_name=x"
    assert parse_db_flag(url).name is None and parse_db_flag(url).target == url
    assert parse_db_flag(f"pg={url}").target == url


def test_plugin_subcommands_register_through_entry_points(tmp_path: Path) -> None:
    """An installed ``sqlr1.commands`` entry point adds a subcommand without mcp_server importing it."""
    dist = tmp_path / "sqlr1_fake_plugin-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sqlr1-fake-plugin\nVersion: 0.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        "[sqlr1.commands]\nhello = sqlr1_fake_plugin:register\n", encoding="utf-8"
    )
    (tmp_path / "sqlr1_fake_plugin.py").write_text(
        "def register(sub):\n"
        "    p = sub.add_parser('hello', help='say hello')\n"
        "    p.set_defaults(handler=lambda args: print('hello from plugin') or 0)\n",
        encoding="utf-8",
    )
    env = {"PYTHONPATH": str(tmp_path)}
    res = sqlr1("hello", env=env)
    assert res.returncode == 0 and "hello from plugin" in res.stdout
    (tmp_path / "sqlr1_fake_plugin.py").write_text("raise ImportError('boom')\n", encoding="utf-8")
    res = sqlr1("--help", env=env)  # a broken plugin is reported, the core commands still work
    assert res.returncode == 0 and "hello" in res.stderr and "boom" in res.stderr and "serve" in res.stdout
    assert sqlr1("dbs", "--json", env=env).returncode == 0


def test_parser_has_global_flags() -> None:
    args = build_parser(plugins=False).parse_args(
        ["--db", "a.sqlite", "--db", "b=c.sqlite", "--model", "m", "dbs"]
    )
    assert args.db == ["a.sqlite", "b=c.sqlite"] and args.model == "m"
    assert shutil.which("sqlr1", path=str(Path(sys.executable).parent))


def test_core_commands_do_not_import_upper_layers() -> None:
    from sqlr1.mcp_server.cli.main import _needs_plugins

    assert not _needs_plugins(["--db", "serve", "serve", "--http"])  # "serve" after --db is its value
    assert not _needs_plugins(["--config", "x.toml", "sql", "chinook", "SELECT 1"])
    assert _needs_plugins(["--db", "x.sqlite", "chat"])
    assert _needs_plugins(["--help"])
    code = "import sys; from sqlr1.mcp_server.cli.main import main; main(['dbs', '--json']); print(sorted(m for m in sys.modules if m.split('.')[:2] in (['sqlr1', 'agent'], ['sqlr1', 'tui'], ['sqlr1', 'training'])))"
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_missing_database_exit_code_through_a_real_process() -> None:
    res = sqlr1("--db", "/no/such/dir/missing.sqlite", "sql", "missing", "SELECT 1")
    assert (
        res.returncode == 2 and "/no/such/dir/missing.sqlite" in res.stderr and "Traceback" not in res.stderr
    )


def test_dbs_never_shows_passwords(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(
        ["--db", "pg=postgresql+psycopg://reader:hunter2@127.0.0.1:1/shop", "dbs", "--json"], capsys
    )
    assert code == 0, err
    assert "hunter2" not in out and json.loads(out)[0]["target"].startswith("postgresql+psycopg://reader:")
