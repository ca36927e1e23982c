"""``sqlr1 train export``: a servable checkpoint folder with its manifest.

Takes a run folder (its ``final/`` or a ``checkpoint-N``) and writes either the LoRA adapter as is
(base + adapter) or merged full weights, the tokenizer, the run record and curves, and the
:class:`mcp_server.backends.manifest.CheckpointManifest` (base model, the prompt variant's version
and schema example values the run trained with, reward weights and settings, data, stages, steps,
metrics), so that ``sqlr1 serve --model DIR`` and
``sqlr1 chat --model DIR`` load it through ``mcp_server.backends.loading`` with no other flags.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from sqlr1.mcp_server.backends.manifest import CheckpointManifest, GenerationDefaults, write_manifest
from sqlr1.mcp_server.method.prompt import TRAIN_PROMPT_VERSION
from sqlr1.training.plot import PLOT_NAME
from sqlr1.training.trainers import FINAL_DIR, RUN_RECORD, last_checkpoint

__all__ = ["export_checkpoint", "find_source"]

_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)
_DTYPES = ("keep", "bf16", "fp16", "fp32")
_METRIC_PREFIXES = ("rewards/", "reward", "kl", "loss", "train_loss", "mean_token_accuracy", "eval_")


def find_source(run_dir: str | Path, checkpoint: str | None = None) -> Path:
    """The folder holding the weights to export: ``checkpoint`` (a name or path), else ``final/``,
    else the last ``checkpoint-N``. Raises ``FileNotFoundError`` naming what was looked for."""
    run = Path(run_dir)
    if checkpoint:
        c = Path(checkpoint)
        c = c if c.is_dir() else run / checkpoint
        if not c.is_dir():
            raise FileNotFoundError(f"checkpoint not found: {checkpoint} (in {run})")
        return c
    if (run / FINAL_DIR).is_dir():
        return run / FINAL_DIR
    last = last_checkpoint(run)
    if last:
        return Path(last)
    if (run / "adapter_config.json").is_file() or (run / "config.json").is_file():
        return run
    raise FileNotFoundError(f"{run}: no final/ folder and no checkpoint-N to export")


def _record(run: Path, source: Path) -> dict[str, Any]:
    """The run record; for a ``checkpoint-N`` its steps and metrics come from the checkpoint's
    ``trainer_state.json`` (so an interrupted run exports what it had trained)."""
    record: dict[str, Any] | None = None
    for p in (source / RUN_RECORD, run / RUN_RECORD):
        if p.is_file():
            record = json.loads(p.read_text(encoding="utf-8"))
            break
    if record is None:
        raise FileNotFoundError(
            f"no {RUN_RECORD} in {source} or {run}: export a folder written by `sqlr1 train`"
        )
    state_file = source / "trainer_state.json"
    if state_file.is_file():
        state = json.loads(state_file.read_text(encoding="utf-8"))
        prior = int(record.get("steps", 0)) - int(record.get("stage_steps", 0))
        record["stage_steps"] = int(state.get("global_step", 0))
        record["steps"] = prior + record["stage_steps"]
        metrics: dict[str, float] = {}
        for entry in state.get("log_history", []):
            metrics.update(
                {k: float(v) for k, v in entry.items() if isinstance(v, int | float) and k != "step"}
            )
        record["metrics"] = metrics
    return record


def _cast_safetensors(path: Path, dtype: str) -> None:
    """Rewrite ``path`` with its floating-point tensors in ``dtype`` (metadata kept)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    target = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    cast = {k: t.to(target) if t.is_floating_point() else t for k, t in tensors.items()}
    save_file(cast, str(path), metadata=metadata)


def _select_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and k.startswith(_METRIC_PREFIXES)
    }


def export_checkpoint(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    checkpoint: str | None = None,
    merge: bool = False,
    extra_metrics: Mapping[str, float] | None = None,
    notes: str = "",
    generation: GenerationDefaults | None = None,
    dtype: str = "keep",
) -> Path:
    """Write the servable folder ``out_dir``; returns it. ``merge`` folds a LoRA into full weights.

    ``dtype`` (``keep``, ``bf16``, ``fp16``, ``fp32``) stores an adapter's floating-point tensors in
    that type: a LoRA trained in fp32 ships at half the size in bf16."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, not {dtype!r}")
    run = Path(run_dir)
    source = find_source(run, checkpoint)
    record = _record(run, source)
    out = Path(out_dir)
    if out.resolve() == source.resolve():
        raise ValueError("export into a new folder, not the checkpoint itself")
    out.mkdir(parents=True, exist_ok=True)
    is_adapter = (source / "adapter_config.json").is_file()
    base_spec = str(record.get("base_model", "bundled"))

    if is_adapter and not merge:
        for name in _ADAPTER_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, out / name)
        if dtype != "keep" and (out / "adapter_model.safetensors").is_file():
            _cast_safetensors(out / "adapter_model.safetensors", dtype)
        cfg_path = out / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg["base_model_name_or_path"] = base_spec  # portable: "bundled" instead of a cache path
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        weights: Literal["adapter", "merged"] = "adapter"
    else:
        from sqlr1.mcp_server.backends.loading import load_model_and_tokenizer, resolve_model

        if is_adapter:
            from peft import PeftModel

            base, _ = load_model_and_tokenizer(resolve_model(base_spec))
            model = PeftModel.from_pretrained(base, str(source)).merge_and_unload()
        else:
            model, _ = load_model_and_tokenizer(resolve_model(str(source)))
        model.save_pretrained(str(out))
        weights = "merged"
    for name in _TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    if not (out / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        from sqlr1.mcp_server.backends.loading import resolve_model

        AutoTokenizer.from_pretrained(resolve_model(base_spec).source).save_pretrained(str(out))
    for extra in (run / PLOT_NAME, source / PLOT_NAME):
        if extra.is_file():
            shutil.copy2(extra, out / PLOT_NAME)
    (out / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    metrics = _select_metrics(record.get("metrics", {}))
    metrics.update({k: float(v) for k, v in (extra_metrics or {}).items()})
    manifest = CheckpointManifest(
        base_model=base_spec,
        weights=weights,
        prompt_version=str((record.get("prompt") or {}).get("version") or TRAIN_PROMPT_VERSION),
        schema_example_values=int(record.get("schema_example_values", 2)),
        generation=generation or GenerationDefaults(),
        reward_weights={k: float(v) for k, v in (record.get("reward_weights") or {}).items()},
        reward_settings=dict(record.get("reward_settings") or {}),
        data=list(record.get("data", [])),
        stages=list(record.get("stages", [record.get("stage", "")])),
        steps=int(record.get("steps", 0)),
        metrics=metrics,
        created_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        notes=notes or f"exported from {source}",
    )
    write_manifest(out, manifest)
    return out
