"""The wall-clock limit of a training run: config, CLI override, and the callback's decision."""

from __future__ import annotations

import argparse

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from sqlr1.training.cli import _apply_overrides
from sqlr1.training.config import TrainSection
from sqlr1.training.limits import TimeLimitCallback


def test_callback_stops_and_saves_once_the_budget_is_spent(tmp_path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    state, control = TrainerState(), TrainerControl()
    cb = TimeLimitCallback(minutes=60)
    cb.on_train_begin(args, state, control)
    state.global_step = 1
    cb.on_step_end(args, state, control)
    assert not control.should_training_stop and cb.stopped_at_step is None

    spent = TimeLimitCallback(minutes=0.0)
    spent.on_train_begin(args, state, control)
    state.global_step = 2
    spent.on_step_end(args, state, control)
    assert control.should_training_stop and control.should_save
    assert spent.stopped_at_step == 2


def test_max_minutes_is_validated_and_overridable() -> None:
    with pytest.raises(ValueError):
        TrainSection(max_minutes=0)

    class Cfg:
        train = TrainSection()
        data = argparse.Namespace(limit=None)
        model = argparse.Namespace(init_from=None, base="qwen2.5-coder-0.5b")

    ns = argparse.Namespace(
        output_dir=None,
        max_steps=None,
        limit=None,
        init_from=None,
        no_resume=False,
        max_minutes=4.5,
        base=None,
    )
    cfg = Cfg()
    _apply_overrides(cfg, ns)
    assert cfg.train.max_minutes == 4.5 and cfg.model.base == "qwen2.5-coder-0.5b"
    _apply_overrides(cfg, argparse.Namespace(**{**vars(ns), "base": "bundled"}))
    assert cfg.model.base == "bundled"  # --base: a model name stays a name, a path becomes absolute
    _apply_overrides(cfg, argparse.Namespace(**{**vars(ns), "base": "./m.gguf"}))
    assert cfg.model.base.startswith("/") and cfg.model.base.endswith("m.gguf")


def test_set_overrides_any_key_and_names_a_bad_one() -> None:
    from sqlr1.mcp_server.core.errors import QueryFailed
    from sqlr1.training.cli import _apply_settings, _setting
    from sqlr1.training.config import CONFIGS_DIR, load_grpo_config

    cfg = load_grpo_config(CONFIGS_DIR / "grpo_mt_qwen05b_gpu.toml")
    sets = [
        "grpo.num_generations=2",
        "multiturn.max_turns=2",
        "data.db_ids=['student_1']",
        "model.base=bundled",
    ]
    out = _apply_settings(cfg, argparse.Namespace(set=[_setting(x) for x in sets]))
    assert (out.grpo.num_generations, out.multiturn.max_turns, out.data.db_ids) == (2, 2, ["student_1"])
    assert out.model.base == "bundled" and out.train.output_dir == cfg.train.output_dir
    with pytest.raises(QueryFailed, match=r"grpo\.num_generations"):
        _apply_settings(cfg, argparse.Namespace(set=[_setting("grpo.num_generations=1")]))
    with pytest.raises(QueryFailed, match="no section 'nope'"):
        _apply_settings(cfg, argparse.Namespace(set=[_setting("nope.x=1")]))
    with pytest.raises(argparse.ArgumentTypeError):
        _setting("num_generations=2")
