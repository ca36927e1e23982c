"""Value retrieval on real SQLite databases: matching, disk cache, invalidation after a change."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sqlr1.mcp_server.core.config import GuardSettings
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.executor import Executor
from sqlr1.mcp_server.db.registry import Registry
from sqlr1.mcp_server.method.values import ValueIndex, _phrases


def _index(db: Path, cache: Path) -> tuple[ValueIndex, str]:
    registry = Registry.from_targets([str(db)])
    name = registry.names()[0]
    return ValueIndex(registry, Executor(registry, GuardSettings()), cache_dir=cache), name


def test_acdc_is_found_in_artist_name(chinook_copy: Path, tmp_path: Path) -> None:
    index, db = _index(chinook_copy, tmp_path / "cache")
    hits = index.search(db, "Which albums were released by AC/DC?")
    assert hits, "no value hit for AC/DC"
    top = hits[0]
    assert (top.table, top.column, top.value, top.score) == ("Artist", "Name", "AC/DC", 100.0)


def test_retrieved_hits_go_into_the_prompt_as_they_are(chinook_copy: Path, tmp_path: Path) -> None:
    """One ``ValueHit``: what retrieval returns is what the prompt renders (there were two classes)."""
    from sqlr1.mcp_server.method import prompt

    index, db = _index(chinook_copy, tmp_path / "cache")
    hits = index.search(db, "Which albums were released by AC/DC?")
    assert prompt.ValueHit is type(hits[0])
    content = prompt.build_prompt("CREATE TABLE Artist (Name TEXT);", "q?", values=hits).messages[0].content
    assert '- Artist.Name: "AC/DC"' in content


def test_multiword_and_fuzzy_values(chinook_copy: Path, tmp_path: Path) -> None:
    index, db = _index(chinook_copy, tmp_path / "cache")
    exact = index.search(db, "list the tracks of led zeppelin")
    assert ("Artist", "Name", "Led Zeppelin") in {(h.table, h.column, h.value) for h in exact}
    fuzzy = index.search(db, "customers living in Brazill")  # a typo still finds the stored spelling
    assert any(
        h.value == "Brazil" and h.column in ("Country", "BillingCountry") and h.score < 100 for h in fuzzy
    )
    assert index.search(db, "how many of them are there") == []  # stopwords only: nothing


def test_phrases_skip_stopword_edges() -> None:
    phrases = _phrases('Albums by "Iron Maiden" of AC/DC?')
    assert "iron maiden" in phrases and "ac/dc" in phrases
    assert "of ac/dc" not in phrases and "of" not in phrases


def test_disk_cache_reused_and_invalidated_after_change(chinook_copy: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    index, db = _index(chinook_copy, cache)
    assert not index.search(db, "songs by Zzyzx Band")
    files = list(cache.glob("*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text(encoding="utf-8"))
    assert "ac/dc" in data["entries"]

    # A fresh index (a new process) loads the file instead of querying: prove it by poisoning the file.
    data["entries"]["marker zebra"] = [["Artist", "Name", "Marker Zebra"]]
    files[0].write_text(json.dumps(data), encoding="utf-8")
    fresh, _ = _index(chinook_copy, cache)
    assert fresh.search(db, "marker zebra")[0].value == "Marker Zebra"

    # Change the database: the fingerprint changes, the index is rebuilt and the old file goes away.
    with sqlite3.connect(chinook_copy) as conn:
        conn.execute("INSERT INTO Artist (ArtistId, Name) VALUES (9999, 'Zzyzx Band')")
    hits = fresh.search(db, "songs by Zzyzx Band")
    assert hits and hits[0].value == "Zzyzx Band" and hits[0].table == "Artist"
    assert not fresh.search(db, "marker zebra")
    after = list(cache.glob("*.json"))
    assert len(after) == 1 and after[0] != files[0]


def test_spider_db_and_unknown_database(spider_copy, tmp_path: Path) -> None:
    index, db = _index(spider_copy("concert_singer"), tmp_path / "cache")
    hits = index.search(db, "What is the capacity of Stark's Park stadium?")
    assert any(h.table == "stadium" and h.value == "Stark's Park" for h in hits)
    with pytest.raises(QueryFailed) as err:
        index.search("no_such_db", "x")
    assert err.value.error.kind == "not_found"
