"""``sqlr1 generate``: the direct single-shot path (reasoning, SQL, result table, exit codes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from model_fixtures import bundled_backend  # noqa: F401  (fixture)
from scripted_backend import ScriptedBackend, answer

from sqlr1.mcp_server.backends import factory
from sqlr1.mcp_server.cli import main as cli


def _script(monkeypatch, texts: list[str]) -> ScriptedBackend:
    backend = ScriptedBackend(texts)
    monkeypatch.setattr(factory, "load_backend", lambda config: backend)
    return backend


def test_prints_reasoning_sql_and_table(chinook_copy: Path, monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setenv("SQLR1_CACHE", str(tmp_path / "cache"))
    backend = _script(
        monkeypatch, [answer("SELECT Name FROM Artist WHERE Name = 'AC/DC'", think="Look up AC/DC.")]
    )
    code = cli.main(["--db", str(chinook_copy), "generate", "Is AC/DC an artist?", "--n", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Look up AC/DC." in out and "SELECT Name FROM Artist" in out and "AC/DC" in out
    assert "1 row(s)" in out and "2 of 2" in out
    assert backend.calls[0][1].n == 2
    assert '"AC/DC"' in backend.calls[0][0].messages[0].content  # value retrieval reached the prompt


def test_json_and_failure_exit_code(chinook_copy: Path, monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setenv("SQLR1_CACHE", str(tmp_path / "cache"))
    _script(monkeypatch, [answer("DROP TABLE Artist")])
    code = cli.main(
        ["--db", f"music={chinook_copy}", "generate", "--db", "music", "drop it", "--n", "1", "--json"]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["status"] == "no_executable_candidate"
    assert data["candidates"][0]["status"] == "blocked"


@pytest.mark.slow
def test_bundled_model_greedy(spider_copy, capsys, bundled_backend) -> None:  # noqa: F811
    db = spider_copy("pets_1")
    code = cli.main(
        ["generate", "--db", str(db), "How many pets are there?", "--n", "1", "--max-new-tokens", "24"]
    )
    out = capsys.readouterr().out
    assert code in (0, 1) and out.strip()


def test_generate_and_ask_read_db_the_same_way(spider_copy, monkeypatch, capsys, tmp_path: Path) -> None:
    """``generate --db FILE`` and ``ask --db FILE`` pick the database one way (``choose_database``): the
    file replaces the bundled example, and is the database asked. Before, generate kept Chinook and
    took the last name, ask replaced it."""
    from sqlr1.agent.cli import _config_and_database

    monkeypatch.setenv("SQLR1_CACHE", str(tmp_path / "cache"))
    pets = spider_copy("pets_1")
    parser = cli.build_parser()
    ask_config, ask_name = _config_and_database(parser.parse_args(["ask", "--db", str(pets), "q"]))
    assert [d.target for d in ask_config.databases] == [str(pets)] and ask_name is None
    gen_config = cli.resolve_config(parser.parse_args(["generate", "--db", str(pets), "q"]))
    assert cli.choose_database(gen_config, str(pets)) is None
    assert gen_config.databases == ask_config.databases
    named, _ = _config_and_database(parser.parse_args(["ask", "--db", f"pets={pets}", "q"]))
    assert [(d.name, d.target) for d in named.databases] == [("pets", str(pets))]

    backend = _script(monkeypatch, [answer("SELECT count(*) FROM Pets")])
    assert cli.main(["generate", "--db", str(pets), "How many pets?", "--n", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["database"] == "pets_1"
    assert "CREATE TABLE Artist" not in backend.calls[0][0].messages[0].content


def test_generate_with_several_databases_and_none_named_lists_them(
    chinook_copy: Path, spider_copy, capsys
) -> None:
    pets = spider_copy("pets_1")
    assert cli.main(["--db", str(chinook_copy), "--db", str(pets), "generate", "q", "--n", "1"]) == 2
    assert "several databases are configured; name one of: chinook, pets_1" in capsys.readouterr().err
