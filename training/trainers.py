"""How a training config becomes a TRL run: data preparation, ``SFTTrainer`` / ``GRPOTrainer``,
resume, curves, and the run record (``run.json``) that ``sqlr1 train export`` turns into a manifest.

No trainer is written here: TRL does the optimisation, accelerate the distribution (launch this
under ``accelerate launch`` for DDP or DeepSpeed; see ``training/accelerate/``). Every rank prepares
the same data (gold results come from the shared on-disk cache, so only the first run executes
them); only the main process writes the run record.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlr1.mcp_server.method.prompt import prompt_spec
from sqlr1.training.config import DataSection, GRPOFile, SFTFile
from sqlr1.training.data import (
    Dropped,
    Example,
    FilterReport,
    SchemaDDL,
    filter_examples,
    grpo_records,
    load_examples,
    load_holdout,
    sft_records,
)
from sqlr1.training.gold import GoldCache, GoldResolver, default_cache_path
from sqlr1.training.limits import TimeLimitCallback
from sqlr1.training.model import Policy, load_policy, precision_flags, use_vllm
from sqlr1.training.multiturn import FeedbackRollout, turns_reward_for
from sqlr1.training.plot import CurvesCallback
from sqlr1.training.pool import ExecutionPool
from sqlr1.training.rewards import REWARD_NAMES, SQLR1Reward

__all__ = ["RUN_RECORD", "RunResult", "last_checkpoint", "run_grpo", "run_sft"]

log = logging.getLogger(__name__)
RUN_RECORD = "run.json"
FINAL_DIR = "final"


@dataclass
class RunResult:
    output_dir: Path
    final_dir: Path
    steps: int
    metrics: dict[str, float]
    record: dict[str, Any] = field(default_factory=dict)
    trainer: Any = None
    config: Any = None


def last_checkpoint(output_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    d = Path(output_dir)
    return get_last_checkpoint(str(d)) if d.is_dir() else None


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _prepare(data: DataSection, gold: GoldResolver | None) -> tuple[list[Example], FilterReport, list[str]]:
    # SynSQL streams: a shuffled run draws a random sample of twice the limit while reading (the gold
    # checks may drop some), instead of holding millions of examples
    sample = 2 * data.limit if data.source == "synsql" and data.shuffle and data.limit else None
    examples = load_examples(
        data.source,
        data.root,
        data.split,
        data_file=data.data_file,
        complexity=data.complexity,
        db_ids=data.db_ids,
        sample=sample,
        seed=data.seed,
    )
    report = filter_examples(
        examples,
        gold if data.check_gold else None,
        drop_empty_gold=data.drop_empty_gold,
        complexity=data.complexity,
        db_ids=data.db_ids,
        limit=data.limit,
        seed=data.seed,
        shuffle=data.shuffle,
        holdout=load_holdout(data.holdout) if data.holdout else None,
    )
    if not report.kept:
        raise ValueError(f"no training examples left after filtering: {report.reasons()}")
    name = data.data_file or data.split
    return report.kept, report, [f"{data.source}/{name}"]


def _prompt_record(data: DataSection) -> dict[str, Any]:
    """What the run's prompts were: recorded in run.json and the checkpoint manifest."""
    return {
        "prompt": {"variant": data.prompt, "version": prompt_spec(data.prompt).version},
        "schema_example_values": data.example_values,
    }


def _drop_long(
    examples: list[Example],
    records: list[dict[str, Any]],
    tokenizer: Any,
    text: Any,
    limit: int,
    report: FilterReport,
) -> list[dict[str, Any]]:
    """Drop records whose ``text(record)`` exceeds ``limit`` tokens (each with a reason)."""
    kept = []
    for ex, r in zip(examples, records, strict=True):
        n = len(tokenizer(text(r), add_special_tokens=False)["input_ids"])
        if n <= limit:
            kept.append(r)
        else:
            report.dropped.append(Dropped(ex, f"too long: {n} tokens > {limit}"))
    if len(kept) < len(records):
        log.info("data: dropped %d records longer than %d tokens", len(records) - len(kept), limit)
    if not kept:
        raise ValueError(f"every record is longer than {limit} tokens; raise the limit")
    return kept


def _common_args(cfg: SFTFile | GRPOFile, flags: dict[str, bool]) -> dict[str, Any]:
    t = cfg.train
    return {
        "output_dir": t.output_dir,
        "max_steps": t.max_steps,
        "num_train_epochs": t.num_train_epochs,
        "learning_rate": t.learning_rate,
        "lr_scheduler_type": t.lr_scheduler_type,
        "warmup_steps": t.warmup_ratio,  # a float < 1 is a ratio of the total steps
        "weight_decay": t.weight_decay,
        "max_grad_norm": t.max_grad_norm,
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "logging_steps": t.logging_steps,
        "save_strategy": "steps",
        "save_steps": t.save_steps,
        "save_total_limit": t.save_total_limit,
        "seed": t.seed,
        "report_to": t.report_to or "none",
        "dataloader_num_workers": t.dataloader_num_workers,
        "disable_tqdm": not t.progress_bar,
        "use_cpu": not _cuda_available(),
        # TRL turns it on by default; off is much faster for small models (and rollouts keep their KV cache)
        "gradient_checkpointing": cfg.model.gradient_checkpointing,
        **flags,
    }


def _limits(cfg: SFTFile | GRPOFile) -> list[Any]:
    return [TimeLimitCallback(cfg.train.max_minutes)] if cfg.train.max_minutes else []


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _set_threads(cfg: SFTFile | GRPOFile) -> None:
    if cfg.train.cpu_threads and not _cuda_available():
        import torch

        torch.set_num_threads(cfg.train.cpu_threads)


def _resume_from(cfg: SFTFile | GRPOFile) -> str | None:
    if not cfg.train.resume:
        return None
    ckpt = last_checkpoint(cfg.train.output_dir)
    if ckpt:
        log.info("resuming from %s", ckpt)
    return ckpt


def _build_record(
    stage: str,
    cfg: SFTFile | GRPOFile,
    policy: Policy,
    trainer: Any,
    data_used: list[str],
    report: FilterReport,
    num_records: int,
    started: float,
    extra: dict[str, Any],
) -> dict[str, Any]:
    state = trainer.state
    metrics: dict[str, float] = {}
    for entry in state.log_history:
        for k, v in entry.items():
            if isinstance(v, int | float) and k not in ("step", "epoch"):
                metrics[k] = float(v)  # the last logged value of each metric
    prior: dict[str, Any] = {}
    if policy.is_lora and cfg.model.init_from:
        prev = Path(cfg.model.init_from) / RUN_RECORD
        if not prev.is_file():
            prev = Path(cfg.model.init_from).parent / RUN_RECORD
        if prev.is_file():
            prior = json.loads(prev.read_text(encoding="utf-8"))
    return {
        "stage": stage,
        "stages": [*prior.get("stages", []), stage],
        "base_model": prior.get("base_model", policy.base_model),
        "weights": "adapter" if policy.is_lora else "merged",
        "data": sorted({*prior.get("data", []), *data_used}),
        "examples": num_records,
        "dropped": report.reasons(),
        "steps": int(state.global_step) + int(prior.get("steps", 0)),
        "stage_steps": int(state.global_step),
        "metrics": metrics,
        "seconds": round(time.time() - started, 1),
        "world_size": int(trainer.accelerator.num_processes),
        "config": cfg.model_dump(mode="json"),
        **extra,
    }


def _write_record(trainer: Any, folders: Sequence[Path], record: dict[str, Any]) -> None:
    if trainer.accelerator.is_main_process:
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _finish(
    stage: str,
    cfg: SFTFile | GRPOFile,
    policy: Policy,
    trainer: Any,
    data_used: list[str],
    report: FilterReport,
    num_records: int,
    started: float,
    extra: dict[str, Any],
) -> RunResult:
    out = Path(cfg.train.output_dir)
    final = out / FINAL_DIR
    trainer.save_model(str(final))
    record = _build_record(stage, cfg, policy, trainer, data_used, report, num_records, started, extra)
    _write_record(trainer, [out, final], record)
    if trainer.accelerator.is_main_process:
        policy.tokenizer.save_pretrained(str(final))
    return RunResult(out, final, int(trainer.state.global_step), record["metrics"], record, trainer, cfg)


def run_sft(cfg: SFTFile, *, callbacks: Sequence[Any] = ()) -> RunResult:
    """Supervised cold start on (training prompt, reasoning + gold answer) pairs.

    ``callbacks`` are extra ``transformers.TrainerCallback`` objects."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    started = time.time()
    _set_threads(cfg)
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    flags = precision_flags(cfg.train)
    policy = load_policy(cfg.model, flags)
    pool = ExecutionPool(workers=1, timeout_s=30.0) if cfg.data.check_gold else None
    try:
        gold = GoldResolver(pool, GoldCache(cfg.data.gold_cache or default_cache_path())) if pool else None
        kept, report, data_used = _prepare(cfg.data, gold)
    finally:
        if pool is not None:
            pool.close()
    records = sft_records(kept, policy.tokenizer, SchemaDDL(cfg.data.example_values), prompt=cfg.data.prompt)
    records = _drop_long(
        kept, records, policy.tokenizer, lambda r: r["prompt"] + r["completion"], cfg.sft.max_length, report
    )
    if _is_main():
        report.write(out / "dropped.jsonl")
    extra = _prompt_record(cfg.data)
    args = SFTConfig(
        **_common_args(cfg, flags),
        gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
        max_length=cfg.sft.max_length,
        completion_only_loss=cfg.sft.completion_only_loss,
        packing=cfg.sft.packing,
    )
    trainer = SFTTrainer(
        model=policy.model,
        args=args,
        train_dataset=Dataset.from_list(records),
        processing_class=policy.tokenizer,
        peft_config=policy.peft_config,
        callbacks=[CurvesCallback(title="SFT"), *_limits(cfg), *callbacks],
    )
    # a provisional record, so that `sqlr1 train export --checkpoint` works on an interrupted run
    _write_record(
        trainer,
        [out],
        _build_record("sft", cfg, policy, trainer, data_used, report, len(records), started, extra),
    )
    trainer.train(resume_from_checkpoint=_resume_from(cfg))
    return _finish("sft", cfg, policy, trainer, data_used, report, len(records), started, extra)


def grpo_batch_shape(cfg: GRPOFile, world_size: int) -> int:
    """Gradient accumulation so that one optimizer step sees ``prompts_per_step`` prompts with
    ``num_generations`` rollouts each. Raises ``ValueError`` when it does not divide."""
    g = cfg.grpo
    completions = g.prompts_per_step * g.num_generations
    per_step = cfg.train.per_device_train_batch_size * world_size
    if completions % per_step:
        raise ValueError(
            f"prompts_per_step × num_generations = {completions} completions per step must be a multiple of "
            f"per_device_train_batch_size × processes = {per_step}"
        )
    return completions // per_step


def run_grpo(cfg: GRPOFile, *, reward: SQLR1Reward | None = None, callbacks: Sequence[Any] = ()) -> RunResult:
    """GRPO with SQL-R1's four reward components (``training.rewards``); with ``multiturn.enabled``,
    multi-turn rollouts with execution feedback (``training.multiturn``) and the ``turns`` reward.

    ``reward`` may be passed in (tests inspect its calls); otherwise one is built over a fresh
    execution pool, closed at the end.
    """
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    started = time.time()
    _set_threads(cfg)
    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    flags = precision_flags(cfg.train)
    policy = load_policy(cfg.model, flags)
    r = cfg.reward
    own_pool = reward is None
    pool = (
        reward.pool
        if reward is not None
        else ExecutionPool(workers=r.workers, timeout_s=r.timeout_s, max_rows=r.max_rows, margin_s=r.margin_s)
    )
    try:
        gold = (
            reward.gold
            if reward is not None
            else GoldResolver(pool, GoldCache(cfg.data.gold_cache or default_cache_path()))
        )
        reward = reward or SQLR1Reward(pool, gold, length_norm_chars=r.length_norm_chars, order_by=r.order_by)
        kept, report, data_used = _prepare(cfg.data, gold)
        ddl = SchemaDDL(cfg.data.example_values)
        records = grpo_records(kept, policy.tokenizer, ddl, prompt=cfg.data.prompt)
        records = _drop_long(
            kept, records, policy.tokenizer, lambda r: r["prompt"], cfg.grpo.max_prompt_length, report
        )
        if _is_main():
            report.write(out / "dropped.jsonl")
        g, mt = cfg.grpo, cfg.multiturn
        stage = "grpo_multiturn" if mt.enabled else "grpo"
        vllm = use_vllm(g)
        vllm_args: dict[str, Any] = {}
        if vllm:
            vllm_args = {
                "use_vllm": True,
                "vllm_mode": g.vllm_mode,
                "vllm_gpu_memory_utilization": g.vllm_gpu_memory_utilization,
            }
            if g.vllm_server_base_url:
                vllm_args["vllm_server_base_url"] = g.vllm_server_base_url
        args = GRPOConfig(
            **_common_args(cfg, flags),
            gradient_accumulation_steps=grpo_batch_shape(cfg, _world_size()),
            num_generations=g.num_generations,
            max_completion_length=g.max_completion_length,
            temperature=g.temperature,
            top_p=g.top_p,
            beta=g.beta,
            epsilon=g.epsilon,
            num_iterations=g.num_iterations,
            loss_type=g.loss_type,
            entropy_coef=g.entropy_coef,
            scale_rewards=g.scale_rewards,
            mask_truncated_completions=g.mask_truncated_completions,
            steps_per_generation=g.steps_per_generation,
            reward_weights=[*r.weights.as_list(), *([1.0] if mt.enabled else [])],
            log_completions=g.log_completions,
            **vllm_args,
        )
        funcs: list[Any] = list(reward.funcs)
        rollout = None
        if mt.enabled:
            rollout = FeedbackRollout(records, pool, mt, ddl=ddl, variant=cfg.data.prompt)
            funcs.append(turns_reward_for(mt.turn_cost))
        trainer = GRPOTrainer(
            model=policy.model,
            reward_funcs=funcs,
            args=args,
            train_dataset=Dataset.from_list(records),
            processing_class=policy.tokenizer,
            peft_config=policy.peft_config,
            callbacks=[
                CurvesCallback(title="GRPO, multi-turn" if mt.enabled else "GRPO"),
                *_limits(cfg),
                *callbacks,
            ],
            rollout_func=rollout,
        )
        weights = dict(zip(REWARD_NAMES, r.weights.as_list(), strict=True))
        settings: dict[str, Any] = {**reward.settings(), "timeout_s": r.timeout_s, "max_rows": r.max_rows}
        if mt.enabled:
            weights["turns"] = 1.0
            settings["multiturn"] = mt.model_dump(mode="json")
        extra = {
            "reward_weights": weights,
            "reward_settings": settings,
            "rollouts": ("vllm" if vllm else "generate")
            + (", multi-turn with execution feedback" if mt.enabled else ""),
            **_prompt_record(cfg.data),
        }
        _write_record(
            trainer,
            [out],
            _build_record(stage, cfg, policy, trainer, data_used, report, len(records), started, extra),
        )
        trainer.train(resume_from_checkpoint=_resume_from(cfg))
        return _finish(stage, cfg, policy, trainer, data_used, report, len(records), started, extra)
    finally:
        if own_pool:
            pool.close()
