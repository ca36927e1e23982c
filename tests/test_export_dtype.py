"""`sqlr1 train export --dtype`: an adapter's weights stored in another floating-point type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sqlr1.training.export import export_checkpoint


def _adapter_run(tmp_path: Path) -> Path:
    final = tmp_path / "run" / "final"
    final.mkdir(parents=True)
    (final / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2}), encoding="utf-8")
    save_file(
        {"a.lora_A.weight": torch.randn(2, 4), "step": torch.tensor([3], dtype=torch.int64)},
        str(final / "adapter_model.safetensors"),
        metadata={"format": "pt"},
    )
    (final / "tokenizer_config.json").write_text("{}", encoding="utf-8")
    record = {"stage": "grpo", "stages": ["sft", "grpo"], "base_model": "bundled", "steps": 7, "metrics": {}}
    (tmp_path / "run" / "run.json").write_text(json.dumps(record), encoding="utf-8")
    return tmp_path / "run"


def _dtypes(path: Path) -> dict[str, torch.dtype]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118


def test_bf16_halves_float_tensors_and_keeps_the_rest(tmp_path: Path) -> None:
    run = _adapter_run(tmp_path)
    before = (run / "final" / "adapter_model.safetensors").stat().st_size
    out = export_checkpoint(run, tmp_path / "out", dtype="bf16")
    weights = out / "adapter_model.safetensors"
    assert _dtypes(weights) == {"a.lora_A.weight": torch.bfloat16, "step": torch.int64}
    assert weights.stat().st_size < before
    # the run's own checkpoint is untouched
    assert _dtypes(run / "final" / "adapter_model.safetensors")["a.lora_A.weight"] == torch.float32


def test_keep_is_the_default_and_unknown_types_are_refused(tmp_path: Path) -> None:
    run = _adapter_run(tmp_path)
    out = export_checkpoint(run, tmp_path / "kept")
    assert _dtypes(out / "adapter_model.safetensors")["a.lora_A.weight"] == torch.float32
    with pytest.raises(ValueError, match="dtype must be one of"):
        export_checkpoint(run, tmp_path / "bad", dtype="int4")
