"""A PEFT LoRA adapter as a llama.cpp LoRA (GGUF), so a trained checkpoint runs on llama.cpp.

Owns :func:`gguf_lora_for`: for an adapter folder (``adapter_config.json`` +
``adapter_model.safetensors``, LoRA on the attention and MLP projections of a llama- or qwen2-style
model) it returns a GGUF LoRA: the one shipped in the folder (``*.gguf``), else a conversion written
once to the cache (keyed by the adapter's bytes), atomically. The conversion writes what llama.cpp's
``convert_lora_to_gguf.py`` writes: ``general.type = adapter``, ``adapter.type = lora``,
``adapter.lora.alpha``, and per projection ``blk.N.<tensor>.weight.lora_a`` (``[r, in]``) and
``.lora_b`` (``[out, r]``) in float32, named after the base GGUF's tensors. Anything else in an adapter
(other target modules, ``modules_to_save``, DoRA, rank patterns) is refused with ``None`` and the
model then runs on transformers. It never touches the base model file except to read its
architecture.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from sqlr1.mcp_server.core.locations import cache_root

__all__ = ["gguf_lora_for"]

_TENSORS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_KEY = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(.+)\.lora_([AB])\.weight$")
_FORMAT = "1"


def _architecture(base_gguf: Path) -> str | None:
    import gguf

    reader = gguf.GGUFReader(str(base_gguf))
    field = reader.fields.get("general.architecture")
    return bytes(field.parts[field.data[0]]).decode() if field is not None else None


def gguf_lora_for(adapter_dir: str | Path, base_gguf: Path) -> Path | None:
    """A llama.cpp LoRA for the PEFT adapter in ``adapter_dir`` over ``base_gguf`` (``None``: this
    adapter cannot be converted, or the ``gguf``/``safetensors`` packages are missing)."""
    folder = Path(adapter_dir)
    shipped = sorted(folder.glob("*.gguf"))
    if len(shipped) == 1:
        return shipped[0]
    weights = folder / "adapter_model.safetensors"
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
        digest = hashlib.sha256(weights.read_bytes() + _FORMAT.encode()).hexdigest()[:24]
    except (OSError, ValueError):
        return None
    if (
        config.get("peft_type") != "LORA"
        or config.get("modules_to_save")
        or config.get("use_dora")
        or config.get("rank_pattern")
        or config.get("alpha_pattern")
    ):
        return None
    target = cache_root() / "lora-gguf" / f"{folder.name}-{digest}.gguf"
    if target.is_file():
        return target
    try:
        return _convert(weights, config, base_gguf, target)
    except ImportError:
        return None


def _convert(weights: Path, config: dict[str, Any], base_gguf: Path, target: Path) -> Path | None:
    import gguf
    import numpy as np
    from safetensors import safe_open

    arch = _architecture(base_gguf)
    if arch is None:
        return None
    tensors: list[tuple[str, np.ndarray]] = []
    with safe_open(str(weights), framework="pt") as f:
        for key in sorted(f.keys()):
            m = _KEY.match(key)
            if m is None or m.group(2) not in _TENSORS:
                return None  # a module llama.cpp's LoRA cannot express here
            layer, module, ab = m.groups()
            name = f"blk.{layer}.{_TENSORS[module]}.weight.lora_{ab.lower()}"
            tensors.append((name, f.get_tensor(key).float().numpy()))
    from rich.console import Console

    Console(stderr=True).print(
        f"[bold cyan]sqlr1[/]: converting the adapter {weights.parent.name} to a llama.cpp LoRA (one time) → {target}"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_string("general.type", "adapter")
        writer.add_string("adapter.type", "lora")
        alpha = config["lora_alpha"] if "lora_alpha" in config else config.get("r", 8)
        writer.add_float32("adapter.lora.alpha", float(alpha))
        for name, array in tensors:
            writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
