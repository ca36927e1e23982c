"""Issue 16 on the training side: SynSQL streamed and in SQL-R1's parquet form, held-out rows, one
schema text for training and serving (tables.json, database_description, CREATE-statement comments),
the prompt variant and example-values setting recorded."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from parity_corpus import PARITY, build_databases

from sqlr1.mcp_server.catalog.schema import SchemaInspector
from sqlr1.mcp_server.db.registry import Registry
from sqlr1.mcp_server.method.prompt import SQLR1_RL_VERSION, build_prompt
from sqlr1.training.config import load_grpo_config
from sqlr1.training.data import (
    SchemaDDL,
    filter_examples,
    grpo_records,
    iter_json_array,
    iter_synsql,
    load_holdout,
    load_synsql,
)


def test_iter_json_array_reads_what_json_load_reads(tmp_path: Path) -> None:
    rng = random.Random(7)
    items: list[Any] = [
        {
            "n": rng.randint(-(10**12), 10**12),
            "f": rng.random(),
            "s": 'é"\\\n' * rng.randint(0, 30),
            "l": [1, [2, {}]],
        }
        for _ in range(300)
    ] + [123456789, "tail", None, [], {}]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(items, indent=rng.choice([None, 1])), encoding="utf-8")
    for chunk in (1, 7, 64, 1 << 20):  # chunk edges inside numbers, strings, escapes
        assert list(iter_json_array(path, chunk_chars=chunk)) == items
    (tmp_path / "empty.json").write_text(" [ ] ", encoding="utf-8")
    assert list(iter_json_array(tmp_path / "empty.json")) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1}', "expected a JSON array"),
        ("[1, 2 3]", "expected ',' or ']'"),
        ('[{"a": }]', "invalid JSON"),
    ],
)
def test_iter_json_array_names_malformed_input(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        list(iter_json_array(path, chunk_chars=3))


def _synsql_rows(n: int) -> list[dict[str, str]]:
    levels = ["Simple", "Moderate", "Complex", "Highly Complex"]
    return [
        {
            "db_id": "synsql_like",
            "sql_complexity": levels[i % 4],
            "question_style": "Formal",
            "question": f"Question {i}?",
            "external_knowledge": "",
            "cot": f"Reasoning {i}.",
            "sql": "SELECT name FROM universities",
        }
        for i in range(n)
    ]


@pytest.fixture
def synsql_root(tmp_path: Path) -> Path:
    """A SynSQL-2.5M folder: data.json, the SynSQL-Complex-5K parquet files in SQL-R1's released
    schema (its verl columns included), and a database with /* */ column descriptions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "synsql"
    db = root / "databases" / "synsql_like" / "synsql_like.sqlite"
    db.parent.mkdir(parents=True)
    with closing(sqlite3.connect(db)) as conn:
        conn.executescript((PARITY / "synsql_like.sql").read_text(encoding="utf-8"))
    rows = _synsql_rows(40)
    (root / "data.json").write_text(json.dumps(rows), encoding="utf-8")
    for name, part in (("train.parquet", rows[:30]), ("test.parquet", rows[30:])):
        released = [
            {
                **r,
                "data_source": "synsql",
                "prompt": [{"content": "…", "role": "user"}],
                "ability": "logic",
                "reward_model": {"ground_truth": {"db_id": r["db_id"], "sql": r["sql"]}, "style": "rule"},
                "extra_info": {"index": i, "split": name.split(".")[0]},
            }
            for i, r in enumerate(part)
        ]
        pq.write_table(pa.Table.from_pylist(released), root / name)
    return root


def test_synsql_streams_json_and_loads_the_released_parquet(synsql_root: Path) -> None:
    from_json = list(iter_synsql(synsql_root))
    from_parquet = list(iter_synsql(synsql_root, data_file="train.parquet"))
    assert len(from_json) == 40 and len(from_parquet) == 30
    assert [(e.question, e.gold_sql, e.complexity, e.reasoning) for e in from_parquet] == [
        (e.question, e.gold_sql, e.complexity, e.reasoning) for e in from_json[:30]
    ]
    assert from_parquet[0].db_path == str(synsql_root / "databases" / "synsql_like" / "synsql_like.sqlite")
    complex_ = load_synsql(synsql_root, complexity=["complex"])
    assert [e.index for e in complex_] == list(range(2, 40, 4))
    sample = load_synsql(synsql_root, complexity=["Complex"], sample=4, seed=3)
    assert len(sample) == 4 and {e.complexity for e in sample} == {"Complex"}
    assert sample == load_synsql(synsql_root, complexity=["Complex"], sample=4, seed=3)  # seeded
    assert sample != load_synsql(synsql_root, complexity=["Complex"], sample=4, seed=4)
    with pytest.raises(ValueError, match="not a SynSQL parquet file"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"x": [1]}), synsql_root / "other.parquet")
        list(iter_synsql(synsql_root, data_file="other.parquet"))


def test_held_out_rows_are_never_trained_on(synsql_root: Path) -> None:
    holdout = load_holdout(synsql_root / "test.parquet")
    assert len(holdout) == 10
    report = filter_examples(load_synsql(synsql_root), None, holdout=holdout)
    assert len(report.kept) == 30 and report.reasons() == {"held out": 10}


def test_training_and_serving_render_one_schema_text(tmp_path: Path, synsql_root: Path) -> None:
    """Bug 3: the training prompt's schema text is serving's, descriptions included, for a Spider
    folder (tables.json), a BIRD folder (database_description/*.csv) and a SynSQL database (/* */)."""
    spider = tmp_path / "spider" / "database"
    build_databases(spider)
    shutil.copy(PARITY / "tables.json", spider.parent / "tables.json")
    bird = tmp_path / "bird" / "dev_databases"
    build_databases(bird)
    desc = bird / "parity" / "database_description"
    desc.mkdir()
    (desc / "singer.csv").write_text(
        "original_column_name,column_name,column_description,data_format,value_description\n"
        "net_worth,,net worth of the singer in millions of dollars,real,\n",
        encoding="utf-8",
    )
    cases = [
        (spider, "parity", "net worth in millions"),
        (bird, "parity", "net worth of the singer in millions of dollars"),
        (synsql_root / "databases", "synsql_like", "Unique identifier for each university"),
    ]
    for folder, db_id, description in cases:
        serving = Registry.from_targets([str(folder)])  # what `sqlr1 serve --db FOLDER` shows
        served = SchemaInspector(serving).ddl(db_id)
        trained = SchemaDDL()(str(folder / db_id / f"{db_id}.sqlite"))
        assert trained == served
        assert f"-- {description}" in trained
    no_values = SchemaDDL(example_values=0)(str(synsql_root / "databases/synsql_like/synsql_like.sqlite"))
    assert "example:" not in no_values and "-- Unique identifier for each university" in no_values


def test_sqlr1_rl_records_and_settings(synsql_root: Path, tmp_path: Path) -> None:
    from test_parity_prompts import _Qwen25ChatML

    ex = load_synsql(synsql_root, data_file="train.parquet")[2]
    record = grpo_records([ex], _Qwen25ChatML(), prompt="sqlr1_rl")[0]
    assert "SQL Complexity Level: Complex\n" in record["prompt"]
    assert record["prompt"].endswith(
        f"<|im_start|>user\n{ex.question}\n<|im_end|>\n<|im_start|>assistant\n<think>"
    )
    expected = build_prompt(SchemaDDL()(ex.db_path), ex.question, variant="sqlr1_rl", complexity="Complex")
    assert expected.messages[0].content in record["prompt"]
    cfg = tmp_path / "g.toml"
    cfg.write_text('[data]\nprompt = "sqlr1_rl"\nexample_values = 0\n', encoding="utf-8")
    loaded = load_grpo_config(cfg)
    assert (loaded.data.prompt, loaded.data.example_values) == ("sqlr1_rl", 0)
    cfg.write_text('[data]\nprompt = "nope"\n', encoding="utf-8")
    from sqlr1.mcp_server.core.errors import QueryFailed

    with pytest.raises(QueryFailed, match="unknown prompt variant 'nope'"):
        load_grpo_config(cfg)
    assert SQLR1_RL_VERSION == "sqlr1-paper-rl-v1"


def test_7b_preset_follows_sqlr1s_verl_run() -> None:
    """sh/train.sh + verl/trainer/config/ppo_trainer.yaml of IDEA-FinAI/SQL-R1, setting by setting."""
    from sqlr1.training.config import CONFIGS_DIR

    cfg = load_grpo_config(CONFIGS_DIR / "grpo_sqlr1_7b.toml")
    g, t, d, r = cfg.grpo, cfg.train, cfg.data, cfg.reward
    assert (g.num_generations, g.prompts_per_step, g.temperature, g.top_p) == (8, 8, 1.1, 1.0)
    assert (g.max_prompt_length, g.max_completion_length, g.beta, g.epsilon) == (4096, 2048, 0.001, 0.2)
    assert (g.loss_type, g.entropy_coef) == ("bnpo", 0.001)  # token-mean; entropy_coeff
    assert (t.learning_rate, t.lr_scheduler_type, t.warmup_ratio) == (3e-7, "constant", 0.0)
    assert (t.weight_decay, t.max_grad_norm, t.num_train_epochs) == (0.01, 1.0, 10)
    assert (d.data_file, d.prompt, d.complexity) == ("train.parquet", "sqlr1_rl", ["Complex"])
    assert d.holdout is not None and d.holdout.endswith("test.parquet") and d.limit is None
    assert (r.timeout_s, r.order_by) == (30, "anywhere")


def test_render_ddl_keeps_a_column_subset_and_its_keys(tmp_path: Path) -> None:
    from sqlr1.mcp_server.catalog.schema import render_ddl

    build_databases(tmp_path)
    schema = SchemaInspector(Registry.from_targets([str(tmp_path / "parity")])).describe("parity")
    text = render_ddl(schema, columns={"SINGER": ["Name", "singer_id"], "concert": ["singer_id", "venue"]})
    assert "    name TEXT," in text and "age" not in text and "attendance" not in text
    assert "PRIMARY KEY (singer_id)" in text and "PRIMARY KEY (concert_id)" not in text
    assert "FOREIGN KEY (singer_id) REFERENCES singer (singer_id)" in text
    only_singer = render_ddl(schema, columns={"concert": []})
    assert "CREATE TABLE concert" not in only_singer and "CREATE TABLE singer" in only_singer
    assert render_ddl(schema) == render_ddl(schema, columns=None)  # the full text is unchanged
