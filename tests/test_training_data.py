"""Training data: the Spider/BIRD/SynSQL loaders, the filters and their reasons, prompt records,
the training configs (presets, unknown keys), and the ``sqlr1 train`` command registration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.method.answer import parse_answer
from sqlr1.mcp_server.method.prompt import THINK_PREFILL
from sqlr1.training.config import CONFIGS_DIR, GRPOFile, load_grpo_config, load_sft_config
from sqlr1.training.data import (
    Example,
    filter_examples,
    grpo_records,
    load_bird,
    load_spider,
    load_synsql,
    sft_records,
    sft_target,
)
from sqlr1.training.gold import GoldCache, GoldResolver
from sqlr1.training.pool import ExecutionPool
from sqlr1.training.trainers import grpo_batch_shape

FIXTURES = Path(__file__).parent / "data" / "spider"
RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


@pytest.fixture(scope="module")
def pool():
    with ExecutionPool(workers=1, timeout_s=1.0, margin_s=3.0) as p:
        yield p


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from sqlr1.mcp_server.backends.bundled import ensure_bundled_model

    return AutoTokenizer.from_pretrained(str(ensure_bundled_model()))


@pytest.fixture
def synsql(tmp_path: Path) -> Path:
    """A SynSQL-2.5M-shaped folder: data.json + databases/<db_id>/<db_id>.sqlite."""
    root = tmp_path / "synsql"
    db = root / "databases" / "concert_singer" / "concert_singer.sqlite"
    db.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "concert_singer" / "concert_singer.sqlite", db)
    items = [
        {
            "db_id": "concert_singer",
            "question": "How many French singers are there?",
            "sql": "SELECT count(*) FROM singer WHERE country = 'France'",
            "external_knowledge": "French singers have country 'France'.",
            "sql_complexity": "Simple",
            "cot": "Count the rows of singer whose country is France.",
        },
        {
            "db_id": "concert_singer",
            "question": "Which singers older than the average sang in a concert?",
            "sql": "SELECT DISTINCT s.name FROM singer s JOIN singer_in_concert c ON s.singer_id = c.singer_id "
            "WHERE s.age > (SELECT avg(age) FROM singer)",
            "external_knowledge": "",
            "sql_complexity": "Complex",
            "cot": "Join singer with singer_in_concert and compare ages with the average.",
        },
    ]
    (root / "data.json").write_text(json.dumps(items), encoding="utf-8")
    return root


def test_spider_loader_reads_the_official_layout(shared_data: Path):
    train = load_spider(shared_data / "spider", "train")
    dev = load_spider(shared_data / "spider", "dev")
    assert len(dev) == 1034 and len(train) > 1000
    ex = next(e for e in train if e.db_id == "student_1")
    assert ex.source == "spider" and ex.gold_sql and ex.question
    assert Path(ex.db_path).is_file() and ex.db_path.endswith("database/student_1/student_1.sqlite")


def test_bird_loader_keeps_evidence_and_reports_missing_databases(shared_data: Path, pool):
    dev = load_bird(shared_data / "bird" / "dev", "dev")
    assert len(dev) == 1534
    assert any(e.evidence for e in dev) and {e.complexity for e in dev} >= {"simple", "moderate"}
    report = filter_examples(dev[:5], GoldResolver(pool))
    # the BIRD SQLite files are not shipped here: every example is dropped, each with the reason
    assert not report.kept and report.reasons() == {"database missing": 5}


def test_synsql_loader_and_complexity_filter(synsql: Path, pool):
    examples = load_synsql(synsql)
    assert [e.complexity for e in examples] == ["Simple", "Complex"]
    assert examples[0].evidence.startswith("French singers") and examples[0].reasoning
    report = filter_examples(examples, GoldResolver(pool), complexity=["Complex"])
    assert [e.question for e in report.kept] == [examples[1].question]
    assert report.reasons() == {"complexity": 1}


def test_filters_drop_bad_golds_with_reasons(spider_copy, pool, tmp_path: Path):
    db = str(spider_copy("concert_singer"))

    def ex(sql: str) -> Example:
        return Example(source="spider", db_id="concert_singer", db_path=db, question="q", gold_sql=sql)

    examples = [
        ex("SELECT count(*) FROM singer"),
        ex("SELECT nope FROM singer"),
        ex(RUNAWAY),
        ex("SELECT name FROM singer WHERE age > 1000"),
        Example(
            source="spider",
            db_id="gone",
            db_path=str(tmp_path / "gone.sqlite"),
            question="q",
            gold_sql="SELECT 1",
        ),
    ]
    gold = GoldResolver(pool, GoldCache(tmp_path / "gold.sqlite"))
    kept_all = filter_examples(examples, gold)
    assert len(kept_all.kept) == 2  # the empty gold is kept unless asked
    report = filter_examples(examples, gold, drop_empty_gold=True)
    assert [e.gold_sql for e in report.kept] == ["SELECT count(*) FROM singer"]
    assert report.reasons() == {"gold error": 1, "gold timeout": 1, "gold empty": 1, "database missing": 1}
    report.write(tmp_path / "dropped.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {x["reason"].split(":")[0] for x in lines} == {
        "gold error",
        "gold timeout",
        "gold empty",
        "database missing",
    }
    # limit counts kept examples; the gold results came from the cache the second time
    assert len(filter_examples(examples, gold, limit=1).kept) == 1


def test_prompt_records_use_the_training_prompt(synsql: Path, tokenizer):
    examples = load_synsql(synsql)
    records = grpo_records(examples, tokenizer)
    first = records[0]
    assert first["prompt"].endswith(THINK_PREFILL)
    assert "CREATE TABLE" in first["prompt"] and "singer" in first["prompt"]
    assert "French singers have country 'France'." in first["prompt"]  # external knowledge
    assert examples[0].question in first["prompt"]
    assert first["gold_sql"] == examples[0].gold_sql and first["db_path"] == examples[0].db_path
    assert set(first) == {
        "prompt",
        "gold_sql",
        "db_path",
        "db_id",
        "question",
        "evidence",
        "complexity",
        "source",
    }
    assert first["evidence"] == "French singers have country 'France'." and first["complexity"] == "Simple"
    sft = sft_records(examples, tokenizer)
    assert sft[0]["prompt"] == first["prompt"]
    assert sft[0]["completion"] == sft_target(examples[0])


def test_sft_target_passes_the_reward_format_check(synsql: Path):
    for ex in load_synsql(synsql):
        parsed = parse_answer(sft_target(ex), prefilled_think=True)
        assert parsed.format_ok and parsed.sql == ex.gold_sql
        assert parsed.think == ex.reasoning
    spider_like = Example(
        "spider", "x", "x.sqlite", "q", "SELECT a, count(*) FROM t JOIN u ON t.id = u.id GROUP BY a"
    )
    parsed = parse_answer(sft_target(spider_like), prefilled_think=True)
    assert parsed.format_ok and "`t`, `u`" in (parsed.think or "")


def test_presets_load_and_unknown_keys_are_errors(tmp_path: Path):
    for preset in sorted(CONFIGS_DIR.glob("*.toml")):
        loader = load_grpo_config if preset.name.startswith("grpo") else load_sft_config
        cfg = loader(preset)
        assert Path(cfg.train.output_dir).is_absolute()
    sqlr1 = load_grpo_config(CONFIGS_DIR / "grpo_sqlr1_7b.toml")
    g = sqlr1.grpo
    assert (g.num_generations, g.temperature, g.beta, g.prompts_per_step) == (8, 1.1, 0.001, 8)
    assert (g.max_prompt_length, g.max_completion_length, sqlr1.train.learning_rate) == (4096, 2048, 3e-7)
    bad = tmp_path / "bad.toml"
    bad.write_text("[grpo]\nnum_generation = 4\n", encoding="utf-8")
    with pytest.raises(QueryFailed, match="num_generation"):
        load_grpo_config(bad)
    with pytest.raises(QueryFailed, match="not found"):
        load_sft_config(tmp_path / "missing.toml")


def test_presets_train_only_on_training_splits_and_their_batches_divide():
    for preset in sorted(CONFIGS_DIR.glob("*.toml")):
        is_grpo = preset.name.startswith("grpo")
        cfg = (load_grpo_config if is_grpo else load_sft_config)(preset)
        # Spider dev, Spider-Syn/DK and BIRD dev are evaluation sets: no preset may name them
        assert cfg.data.split == "train" and cfg.data.source in ("spider", "synsql"), preset.name
        if is_grpo:
            assert isinstance(cfg, GRPOFile)
            assert grpo_batch_shape(cfg, 1) >= 1
            spg = cfg.grpo.steps_per_generation
            assert (
                spg is None or (spg * cfg.train.per_device_train_batch_size) % cfg.grpo.num_generations == 0
            )


def test_qwen_presets_name_their_base_and_pair_single_and_multi_turn():
    for size in ("05b", "15b"):
        sft = load_sft_config(CONFIGS_DIR / f"sft_qwen{size}_gpu.toml")
        single = load_grpo_config(CONFIGS_DIR / f"grpo_qwen{size}_gpu.toml")
        multi = load_grpo_config(CONFIGS_DIR / f"grpo_mt_qwen{size}_gpu.toml")
        name = f"qwen2.5-coder-{size[0]}.{size[1]}b"
        assert sft.model.base == single.model.base == multi.model.base == name  # kept as a model name
        assert not single.multiturn.enabled and multi.multiturn.enabled and multi.multiturn.max_turns == 3
        # the two GRPO runs differ only in the multi-turn rollouts and their output folder
        a, b = single.model_dump(), multi.model_dump()
        for d in (a, b):
            d.pop("multiturn")
            d["train"].pop("output_dir")
        assert a == b
        assert sft.train.max_minutes and single.train.max_minutes and sft.model.lora and single.model.lora


def test_grpo_batch_shape(tmp_path: Path):
    cfg = load_grpo_config(CONFIGS_DIR / "grpo_sqlr1_7b.toml")  # 8 prompts × 8 rollouts, 8 per device
    assert grpo_batch_shape(cfg, 1) == 8 and grpo_batch_shape(cfg, 8) == 1
    cfg.train.per_device_train_batch_size = 3
    with pytest.raises(ValueError, match="multiple"):
        grpo_batch_shape(cfg, 1)


def test_train_command_is_registered(capsys):
    from sqlr1.mcp_server.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("sft", "grpo", "export", "plot"))
    assert main(["train", "sft", "--config", str(tmp_missing := Path("/nonexistent/sft.toml"))]) == 2
    assert str(tmp_missing) in capsys.readouterr().err
