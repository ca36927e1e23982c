"""One home per concept: a public name is defined once, the cache root is decided once, gold results
are cached once for training and evaluation."""

from __future__ import annotations

import ast
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import REPO

from sqlr1.agent.evaluation.scoring import Scorer, ScoreTask
from sqlr1.mcp_server.backends import bundled, model_registry
from sqlr1.mcp_server.core import locations
from sqlr1.mcp_server.db import result_cache
from sqlr1.mcp_server.db.result_cache import ResultCache
from sqlr1.training import gold
from sqlr1.training.pool import InProcessExecutor

PACKAGES = ("mcp_server", "agent", "training")
# The same name on purpose, one per plug-in module: CLI entry points, each backend's factory and counters.
SEPARATE_ON_PURPOSE = {"main", "register", "get_backend", "PrefixStats"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(REPO)), ast.parse(path.read_text(encoding="utf-8")))
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
    ]


def _exported(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            return {str(e.value) for e in getattr(node.value, "elts", []) if isinstance(e, ast.Constant)}
    return set()


def test_each_public_name_is_defined_in_one_module() -> None:
    """Two exported definitions of one name (two ``ValueHit``s, two ``result_key``s) are two homes."""
    homes: dict[str, list[str]] = defaultdict(list)
    for module, tree in _modules():
        exported = _exported(tree)
        for node in tree.body:
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and node.name in exported
            ):
                homes[node.name].append(module)
    twice = {
        name: where for name, where in homes.items() if len(where) > 1 and name not in SEPARATE_ON_PURPOSE
    }
    assert not twice, twice


def test_only_locations_decides_the_cache_root() -> None:
    """No module but ``mcp_server/core/locations.py`` reads ``SQLR1_CACHE`` or asks platformdirs for a cache dir."""
    deciders = set()
    for module, tree in _modules():
        for node in ast.walk(tree):
            reads_env = isinstance(node, ast.Constant) and node.value == "SQLR1_CACHE"
            asks_platform = isinstance(node, ast.Attribute | ast.Name) and "user_cache_dir" in (
                getattr(node, "attr", None),
                getattr(node, "id", None),
            )
            if reads_env or asks_platform:
                deciders.add(module)
    assert deciders == {"mcp_server/core/locations.py"}


def test_every_cache_lives_under_the_one_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SQLR1_CACHE", str(tmp_path))
    assert locations.cache_root() == tmp_path
    assert gold.default_cache_path() == result_cache.default_cache_path() == tmp_path / "gold.sqlite"
    assert bundled.bundled_model_dir().is_relative_to(tmp_path)
    named = model_registry.lookup(model_registry.DEFAULT_MODEL)
    assert named is not None and model_registry.gguf_path(named).is_relative_to(tmp_path)


def test_gold_computed_for_training_is_a_cache_hit_for_evaluation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Training's rewards and ``sqlr1 eval`` share one gold cache: neither runs a gold the other ran."""
    monkeypatch.setenv("SQLR1_CACHE", str(tmp_path / "cache"))
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2), (2);")
    conn.close()
    gold_sql = "SELECT a FROM t WHERE a > 1"
    with InProcessExecutor() as pool:
        resolver = gold.GoldResolver(pool, ResultCache(gold.default_cache_path()))
        (outcome,) = resolver.resolve([(str(db), gold_sql)])
    assert outcome.ok and outcome.rows == [(2,), (2,)] and resolver.executed == 1
    task = ScoreTask(idx=0, db_files=[str(db)], pred_sql="SELECT 2", gold_sql=gold_sql)
    (verdict,) = Scorer("bird", cache_path=result_cache.default_cache_path()).score_inline([task])
    assert verdict.correct and verdict.gold_cached


def test_training_and_evaluation_read_the_official_layouts_alike(shared_data: Path) -> None:
    """Spider dev and BIRD dev read by training (``load_spider``/``load_bird``) and by evaluation
    (``load_items`` + ``database_file``): the same questions, gold SQL, evidence and database files."""
    from sqlr1.agent.evaluation.datasets import load_items
    from sqlr1.mcp_server.db.benchmark_layouts import database_file
    from sqlr1.training.data import load_bird, load_spider

    spider = shared_data / "spider"
    trained = load_spider(spider, "dev")
    evaluated = load_items("spider", spider / "dev.json")
    assert [(e.db_id, e.question, e.gold_sql) for e in trained] == [
        (i.db_id, i.question, i.gold_sql) for i in evaluated
    ]
    assert {e.db_path for e in trained} == {
        str(database_file(spider / "database", i.db_id)) for i in evaluated
    }
    bird = shared_data / "bird" / "dev"
    trained_bird = load_bird(bird, "dev")
    evaluated_bird = load_items("bird", bird / "dev.json")
    assert [(e.question, e.gold_sql, e.evidence, e.complexity) for e in trained_bird] == [
        (i.question, i.gold_sql, i.evidence, i.difficulty) for i in evaluated_bird
    ]
