"""Description files: every shared BIRD dev CSV and Spider/BIRD tables.json, quirks included."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FIXTURES

from sqlr1.mcp_server.catalog.descriptions import load_descriptions, read_bird_descriptions, read_tables_json
from sqlr1.mcp_server.db.engines.base import DatabaseSpec


def _bird_dirs(shared: Path) -> list[Path]:
    return sorted((shared / "bird/dev/dev_databases").glob("*/database_description"))


def test_every_bird_dev_description_folder_parses(shared_data: Path) -> None:
    dirs = _bird_dirs(shared_data)
    assert len(dirs) == 11
    tables = json.loads((shared_data / "bird/dev/dev_tables.json").read_text("utf-8"))
    by_id = {e["db_id"]: e for e in tables}
    for d in dirs:
        notes = read_bird_descriptions(d)
        entry = by_id[d.parent.name]
        assert len(notes) == len(list(d.glob("*.csv")))
        described = 0
        for t_idx, table in enumerate(entry["table_names_original"]):
            table_notes = notes.get(table.casefold())
            assert table_notes is not None, (d, table)
            for ti, col in entry["column_names_original"]:
                if ti == t_idx:
                    note = table_notes.column(col)
                    described += note is not None and note.description is not None
        assert described > 0, d


def test_bird_csv_quirks(shared_data: Path) -> None:
    root = shared_data / "bird/dev/dev_databases"
    # Stray spaces after names ("driverId ") still match the real column.
    results = read_bird_descriptions(root / "formula_1/database_description")["results"]
    assert results.column("driverId") is not None and results.column("time") is not None
    # A latin-1 file (not valid UTF-8) is read, not skipped.
    budget = read_bird_descriptions(root / "student_club/database_description")["budget"]
    note = budget.column("remaining")
    assert (
        note is not None
        and note.value_description
        and note.value_description.startswith("the unit is dollar")
    )
    assert note.data_format == "real"
    # A UTF-8 file with a BOM: the first header is still "original_column_name".
    frpm = read_bird_descriptions(root / "california_schools/database_description")["frpm"]
    cds = frpm.column("CDSCode")
    assert cds is not None and (cds.description, cds.data_format) == ("CDSCode", "integer")
    # Multi-line descriptions are collapsed into one line (they end up in ``--`` comments).
    for table in read_bird_descriptions(root / "california_schools/database_description").values():
        for n in table.columns.values():
            for text in (n.description, n.value_description):
                assert text is None or ("\n" not in text and text == text.strip())


def test_spider_tables_json_and_merge_with_csv(tmp_path: Path) -> None:
    entries = read_tables_json(FIXTURES / "spider/tables.json")
    assert set(entries) == {"pets_1", "concert_singer", "world_1", "car_1"}
    assert read_tables_json(FIXTURES / "spider/tables.json") is entries  # parsed once

    # A BIRD-style folder for "pets_1": CSV descriptions merge with tables.json names.
    desc = tmp_path / "database_description"
    desc.mkdir()
    (desc / "Pets.csv").write_bytes(
        "original_column_name,column_name,column_description,data_format,value_description\n"
        "PetID,,the pet's id,integer,\n"
        'weight ,pet weight,weight in kg,real,"measured\n   yearly"\n'.encode("latin-1")
    )
    spec = DatabaseSpec(
        name="my_pets",
        kind="sqlite",
        url="sqlite:///x",
        path=tmp_path / "pets_1.sqlite",  # the db_id is found from the file stem
        tables_json=FIXTURES / "spider/tables.json",
        description_dir=desc,
    )
    notes = load_descriptions(spec)
    assert list(notes) == ["student", "has_pet", "pets"]  # tables.json order
    pets = notes["pets"]
    assert pets.name == "pets"
    pet_id = pets.column("petid")
    assert pet_id is not None and (pet_id.name, pet_id.description) == ("pet id", "the pet's id")
    weight = pets.column("weight")
    assert weight is not None and weight.name == "weight"  # tables.json name wins over the CSV's
    assert weight.value_description == "measured yearly"
    empty = load_descriptions(DatabaseSpec(name="x", kind="sqlite", url="sqlite:///x"))
    assert empty == {}
