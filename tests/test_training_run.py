"""Real training on CPU with the bundled SmolLM2-135M: one SFT step, one GRPO step with the SQL-R1
reward, export with a manifest, and serving the export through the server's own loader.

Tiny on purpose (two student_1 questions from the shared Spider train set, 1 step each, short
completions) so the module stays within a few minutes on two cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sqlr1.training.config import (
    DataSection,
    GRPOFile,
    GRPOSection,
    ModelSection,
    RewardSection,
    SFTFile,
    SFTSection,
    TrainSection,
)

pytestmark = pytest.mark.slow

DB_ID = "student_1"


@pytest.fixture(scope="module", autouse=True)
def _real_vllm_detection():
    """Import TRL's trainers with ``tests/`` off ``sys.path``: the ``tests/vllm`` test package would
    otherwise pass for an installed vLLM (with no version) and break TRL's import-time check."""
    import sys

    here = Path(__file__).parent.resolve()
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    try:
        import trl.trainer.grpo_trainer
        import trl.trainer.sft_trainer  # noqa: F401
    finally:
        sys.path[:] = saved


def _adapter_tensors(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def data_section(shared_data: Path, tmp_path_factory) -> DataSection:
    cache = tmp_path_factory.mktemp("gold") / "gold.sqlite"
    return DataSection(
        source="spider",
        root=str(shared_data / "spider"),
        db_ids=[DB_ID],
        limit=2,
        shuffle=False,
        drop_empty_gold=True,
        gold_cache=str(cache),
    )


@pytest.fixture(scope="module")
def sft_run(data_section: DataSection, tmp_path_factory):
    from sqlr1.training.trainers import run_sft

    out = tmp_path_factory.mktemp("sft")
    cfg = SFTFile(
        model=ModelSection(lora_r=8, lora_alpha=16),
        data=data_section,
        train=TrainSection(
            output_dir=str(out),
            max_steps=2,
            learning_rate=2e-3,
            per_device_train_batch_size=2,
            save_steps=1,
            progress_bar=False,
            cpu_threads=1,  # OpenMP spinning on a shared 2-core machine costs 10x
        ),
        sft=SFTSection(max_length=1024),
    )
    return run_sft(cfg)


def test_sft_step_changes_weights_and_writes_the_run(sft_run):
    tensors = _adapter_tensors(sft_run.final_dir)
    lora_b = [t for k, t in tensors.items() if "lora_B" in k]
    assert lora_b, "no LoRA B matrices saved"
    # peft initialises every B matrix to zero: any non-zero entry was put there by the optimizer
    assert any(float(t.abs().sum()) > 0 for t in lora_b)
    record = json.loads((sft_run.output_dir / "run.json").read_text(encoding="utf-8"))
    assert record["stage"] == "sft" and record["base_model"] == "bundled" and record["steps"] == 2
    assert record["examples"] == 2 and "loss" in record["metrics"]
    assert (sft_run.output_dir / "training_curves.png").is_file()
    assert (sft_run.output_dir / "checkpoint-1" / "training_curves.png").is_file()


def test_sft_resumes_from_the_last_checkpoint(sft_run, tmp_path: Path):
    import shutil

    from transformers import TrainerCallback

    from sqlr1.training.trainers import run_sft

    class CountSteps(TrainerCallback):
        steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            CountSteps.steps += 1

    cfg = sft_run.config.model_copy(deep=True)
    cfg.train.output_dir = str(tmp_path / "resume")
    shutil.copytree(sft_run.output_dir, cfg.train.output_dir)
    cfg.train.max_steps = 3
    resumed = run_sft(cfg, callbacks=[CountSteps()])
    assert resumed.steps == 3 and CountSteps.steps == 1  # steps 1-2 came from checkpoint-2
    assert (resumed.output_dir / "checkpoint-3").is_dir()


def _tiny_grpo(sft_run, data_section: DataSection, out: Path, **sections) -> GRPOFile:
    """One GRPO step from the SFT run: 1 prompt x 2 rollouts of at most 24 tokens."""
    return GRPOFile(
        model=ModelSection(init_from=str(sft_run.final_dir)),
        data=data_section,
        train=TrainSection(
            output_dir=str(out),
            max_steps=1,
            learning_rate=1e-3,
            per_device_train_batch_size=2,
            save_steps=1,
            progress_bar=False,
            cpu_threads=1,  # OpenMP spinning on a shared 2-core machine costs 10x
        ),
        grpo=GRPOSection(
            num_generations=2,
            prompts_per_step=1,
            max_completion_length=24,
            max_prompt_length=1024,
            temperature=1.0,
            use_vllm="off",
        ),
        reward=RewardSection(timeout_s=10, workers=1),
        **sections,
    )


@pytest.fixture(scope="module")
def grpo_run(sft_run, data_section: DataSection, tmp_path_factory):
    from sqlr1.training.gold import GoldCache, GoldResolver
    from sqlr1.training.pool import ExecutionPool
    from sqlr1.training.rewards import SQLR1Reward
    from sqlr1.training.trainers import run_grpo

    cfg = _tiny_grpo(sft_run, data_section, tmp_path_factory.mktemp("grpo"))
    with ExecutionPool(workers=1, timeout_s=10) as pool:
        reward = SQLR1Reward(pool, GoldResolver(pool, GoldCache(data_section.gold_cache or "")))
        before = _adapter_tensors(sft_run.final_dir)
        result = run_grpo(cfg, reward=reward)
        yield result, reward, before


def test_grpo_step_calls_the_rewards_and_logs_them(grpo_run):
    result, reward, _ = grpo_run
    for func in reward.funcs:
        assert func.calls, f"{func.__name__} was never called"
        assert {"gold_sql", "db_path", "db_id"} <= set(func.calls[0])
    logged = {k for entry in result.trainer.state.log_history for k in entry}
    for name in ("format", "execution", "result", "length"):
        assert f"rewards/{name}_reward/mean" in logged
    assert "kl" in logged and "reward" in logged
    record = result.record
    assert record["stages"] == ["sft", "grpo"] and record["steps"] == 3
    assert record["reward_weights"] == {"format": 1.0, "execution": 1.0, "result": 1.0, "length": 1.0}
    assert (result.output_dir / "training_curves.png").is_file()


def test_grpo_step_changes_the_adapter(grpo_run):
    result, _, before = grpo_run
    after = _adapter_tensors(result.final_dir)
    assert set(after) == set(before)
    assert any(float((after[k] - before[k]).abs().max()) > 0 for k in after)


def test_multiturn_grpo_step_retries_with_feedback(sft_run, data_section: DataSection, tmp_path: Path):
    """A real GRPO step whose rollouts execute their SQL, read the review's feedback and answer again
    (training.multiturn): completions cut at 24 tokens hold no SQL, so every rollout is retried."""
    from sqlr1.training.config import MultiTurnSection
    from sqlr1.training.trainers import run_grpo

    cfg = _tiny_grpo(
        sft_run,
        data_section,
        tmp_path / "mt",
        multiturn=MultiTurnSection(enabled=True, max_turns=2, turn_cost=0.5),
    )
    before = _adapter_tensors(sft_run.final_dir)
    result = run_grpo(cfg)
    rollout = result.trainer.rollout_func
    assert rollout.stats["rollouts"] == 2 and rollout.stats["attempts"] == 4
    logged = {k: v for entry in result.trainer.state.log_history for k, v in entry.items()}
    assert logged["rewards/turns_reward/mean"] == -0.5 and logged["multiturn/retried"] == 1.0
    for name in ("format", "execution", "result", "length"):
        assert f"rewards/{name}_reward/mean" in logged
    record = result.record
    assert record["reward_weights"]["turns"] == 1.0
    assert record["reward_settings"]["multiturn"]["max_turns"] == 2
    assert "multi-turn" in record["rollouts"] and record["stages"] == ["sft", "grpo_multiturn"]
    after = _adapter_tensors(result.final_dir)
    assert any(float((after[k] - before[k]).abs().max()) > 0 for k in after)


def test_export_loads_in_the_server_and_answers(grpo_run, shared_data: Path, tmp_path: Path):
    from sqlr1.mcp_server.backends.loading import resolve_model
    from sqlr1.mcp_server.backends.manifest import read_manifest
    from sqlr1.mcp_server.backends.transformers_backend import TransformersBackend
    from sqlr1.mcp_server.catalog.schema import SchemaInspector
    from sqlr1.mcp_server.db.executor import Executor
    from sqlr1.mcp_server.db.registry import Registry
    from sqlr1.mcp_server.inference.generation import Generator
    from sqlr1.mcp_server.method.prompt import TRAIN_PROMPT_VERSION
    from sqlr1.training.export import export_checkpoint

    result, _, _ = grpo_run
    out = export_checkpoint(result.output_dir, tmp_path / "export", extra_metrics={"spider_dev_ex": 0.0})
    manifest = read_manifest(out)
    assert manifest is not None and manifest.weights == "adapter" and manifest.base_model == "bundled"
    assert manifest.prompt_version == TRAIN_PROMPT_VERSION and manifest.stages == ["sft", "grpo"]
    assert manifest.steps == 3 and manifest.reward_weights["result"] == 1.0
    # the reward settings and the schema text the run used travel with the checkpoint
    assert manifest.reward_settings["order_by"] == "top_level" and manifest.reward_settings["timeout_s"] > 0
    assert manifest.schema_example_values == 2
    assert "spider_dev_ex" in manifest.metrics and any(k.startswith("rewards/") for k in manifest.metrics)
    assert (
        json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
        == "bundled"
    )
    assert resolve_model(str(out)).kind == "adapter"
    # the shape a llama.cpp GGUF LoRA can express (mcp_server.backends.lora_gguf): LoRA A/B per layer on
    # the attention and MLP projections, nothing else saved, no DoRA, no rank or alpha patterns
    import re

    adapter_cfg = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter_cfg["peft_type"] == "LORA" and not adapter_cfg.get("modules_to_save")
    assert not (
        adapter_cfg.get("use_dora") or adapter_cfg.get("rank_pattern") or adapter_cfg.get("alpha_pattern")
    )
    key = re.compile(
        r"^base_model\.model\.model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.lora_[AB]\.weight$"
    )
    keys = list(_adapter_tensors(out))
    assert keys and all(key.match(k) for k in keys), [k for k in keys if not key.match(k)][:3]

    db = tmp_path / f"{DB_ID}.sqlite"
    db.write_bytes((shared_data / "spider" / "database" / DB_ID / f"{DB_ID}.sqlite").read_bytes())
    registry = Registry.from_targets([str(db)])
    backend = TransformersBackend(str(out))
    assert backend.prompt_version == TRAIN_PROMPT_VERSION
    gen = Generator(registry, Executor(registry), SchemaInspector(registry), backend, max_new_tokens=48)
    answer = gen.generate_sql(registry.names()[0], "How many teachers are there?", num_candidates=1)
    assert answer.candidates and answer.candidates[0].text.strip()
    assert answer.status


_TWO_PROCESS = {
    "sft": (
        "check_gold = false\n",
        "per_device_train_batch_size = 1",
        "[sft]\nmax_length = 1024\n",
    ),
    # multi-turn GRPO: both processes take every turn together (a gather decides whether to go on)
    "grpo": (
        "drop_empty_gold = true\n",
        "per_device_train_batch_size = 2",
        "[grpo]\nnum_generations = 2\nprompts_per_step = 2\nmax_completion_length = 24\nmax_prompt_length = 1024\n"
        'use_vllm = "off"\n\n[reward]\nworkers = 1\ntimeout_s = 10\n\n[multiturn]\nenabled = true\nmax_turns = 2\n',
    ),
}


@pytest.mark.parametrize("kind", sorted(_TWO_PROCESS))
def test_two_process_accelerate_run(kind: str, shared_data: Path, tmp_path: Path):
    """A real 2-process CPU run (torch.distributed on gloo) through `accelerate launch`, one step:
    SFT, and multi-turn GRPO."""
    import os
    import subprocess
    import sys

    data_extra, batch, section = _TWO_PROCESS[kind]
    out = tmp_path / "ddp"
    config = tmp_path / f"{kind}.toml"
    config.write_text(
        f"""
[model]
lora_r = 4
lora_alpha = 8

[data]
root = "{shared_data / "spider"}"
db_ids = ["{DB_ID}"]
limit = 2
shuffle = false
{data_extra}
[train]
output_dir = "{out}"
max_steps = 1
learning_rate = 1e-3
{batch}
save_steps = 1
progress_bar = false
cpu_threads = 1

{section}""",
        encoding="utf-8",
    )
    accelerate = Path(sys.executable).with_name("accelerate")
    repo = Path(__file__).parents[1]
    cmd = [
        str(accelerate), "launch", "--config_file", str(repo / "training" / "accelerate" / "cpu_2proc.yaml"),
        "-m", "sqlr1.training.cli", kind, "--config", str(config),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-4000:]
    record = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert record["world_size"] == 2 and record["stage_steps"] == 1
    assert (out / "final" / "adapter_model.safetensors").is_file()
    if kind == "grpo":
        assert record["stage"] == "grpo_multiturn" and record["metrics"]["multiturn/attempts_mean"] >= 1.0
