"""The policy to train: base model resolution, precision, LoRA, and rollouts (vLLM or ``generate``).

Models resolve and load through ``mcp_server.backends.loading`` (``"bundled"`` is the converted
SmolLM2-135M folder, a ``.gguf``, a folder, an adapter with its manifest, a hub id), never a copy. ``init_from`` continues from an
earlier stage: a LoRA folder keeps training the same adapter (so SFT then GRPO ships as one
adapter), a full-weights folder becomes the base. Runs unchanged on CPU and CUDA.
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from typing import Any

from sqlr1.training.config import GRPOSection, ModelSection, TrainSection

__all__ = ["Policy", "load_policy", "precision_flags", "use_vllm"]

log = logging.getLogger(__name__)


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def precision_flags(train: TrainSection) -> dict[str, bool]:
    """``bf16``/``fp16`` TrainingArguments flags; ``auto`` = bf16 on a capable GPU, fp32 elsewhere."""
    import torch

    p = train.precision
    if p == "auto":
        p = "bf16" if _cuda() and torch.cuda.is_bf16_supported() else "fp32"
    return {"bf16": p == "bf16", "fp16": p == "fp16"}


def _torch_dtype(section: ModelSection, flags: dict[str, bool]) -> Any:
    import torch

    if section.dtype != "auto":
        return getattr(torch, section.dtype)
    if flags["bf16"] and not section.lora:
        return torch.bfloat16
    return torch.float32


def use_vllm(grpo: GRPOSection) -> bool:
    if grpo.use_vllm == "on":
        return True
    if grpo.use_vllm == "off":
        return False
    try:  # an installed distribution, not just an importable folder named vllm
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return False
    return _cuda()


@dataclass
class Policy:
    model: Any
    tokenizer: Any
    base_model: str  # what the manifest records as the base ("bundled", a path or a hub id)
    base_path: str  # where the base weights were loaded from
    peft_config: Any | None  # a fresh LoRA to add (None when training full weights or continuing one)
    is_lora: bool


def load_policy(section: ModelSection, flags: dict[str, bool]) -> Policy:
    """Load tokenizer and model for training through the server's own loader
    (``mcp_server.backends.loading``), on CPU; the trainer moves it to the device.

    Raises ``QueryFailed`` (kind ``config``/``not_found``) for a model that cannot be resolved.
    """
    from sqlr1.mcp_server.backends.loading import load_model_and_tokenizer, resolve_model

    dtype = _torch_dtype(section, flags)
    resolved = resolve_model(section.init_from or section.base)
    peft_config = None
    is_lora = section.lora
    if resolved.kind == "adapter":
        from peft import PeftModel

        assert resolved.base is not None
        base_model = resolved.manifest.base_model if resolved.manifest else resolved.base.spec
        model, tokenizer = load_model_and_tokenizer(resolved.base, dtype=dtype, convert_gguf=True)
        model = PeftModel.from_pretrained(model, resolved.source, is_trainable=True)
        base_path = resolved.base.source
        is_lora = True
        log.info("continuing the LoRA adapter %s on %s", resolved.source, base_model)
    else:
        base_model = section.init_from or section.base
        model, tokenizer = load_model_and_tokenizer(resolved, dtype=dtype, convert_gguf=True)
        base_path = resolved.source
        if section.lora:
            from peft import LoraConfig

            peft_config = LoraConfig(
                r=section.lora_r,
                lora_alpha=section.lora_alpha,
                lora_dropout=section.lora_dropout,
                target_modules=section.lora_target_modules,
                task_type="CAUSAL_LM",
            )
    model.train()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Policy(model, tokenizer, base_model, base_path, peft_config, is_lora)
