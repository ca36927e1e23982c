"""Where the transformers backend runs and in which precision.

``resolve_device("auto")`` picks ``cuda`` when torch sees a CUDA (or ROCm) GPU, else ``mps`` on Apple
silicon, else ``cpu``; an explicit ``cpu``/``mps``/``cuda``/``cuda:N`` is checked against what this
machine has, so asking for a GPU that is not there is a ``config`` error naming the device at load
time instead of a crash deep in torch. ``resolve_dtype("auto", device)`` gives bfloat16 on a CUDA
device that supports it (compute capability 8.0+), float16 on other GPUs, float32 on CPU.
"""

from __future__ import annotations

import re
from typing import Any

from sqlr1.mcp_server.core.config import DEVICE_PATTERN, MODEL_DTYPES
from sqlr1.mcp_server.core.errors import QueryFailed

__all__ = ["resolve_device", "resolve_dtype"]


def _mps_available(torch: Any) -> bool:
    mps = getattr(getattr(torch, "backends", None), "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str = "auto") -> str:
    """The torch device string for ``spec`` (``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``).

    Raises ``QueryFailed`` (kind ``config``) naming the device when it is malformed or absent here.
    """
    import torch

    text = spec.strip().lower()
    if not re.match(DEVICE_PATTERN, text):
        raise QueryFailed.of("config", f"model.device {spec!r} is not one of auto, cpu, mps, cuda, cuda:N")
    if text == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available(torch) else "cpu"
    if text == "cpu":
        return text
    if text == "mps":
        if not _mps_available(torch):
            raise QueryFailed.of(
                "config", "model.device 'mps' was requested but torch sees no Apple MPS device here"
            )
        return text
    if not torch.cuda.is_available():
        gpu_build = torch.version.cuda is not None or getattr(torch.version, "hip", None) is not None
        build = "no visible GPU" if gpu_build else "a CPU-only torch build"
        raise QueryFailed.of(
            "config",
            f"model.device {spec!r} was requested but CUDA is not available here ({build}, "
            f"torch {torch.__version__}); use --device cpu or auto",
        )
    index = int(text.split(":", 1)[1]) if ":" in text else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise QueryFailed.of(
            "config", f"model.device {spec!r} was requested but only {count} CUDA device(s) are visible"
        )
    return text


def resolve_dtype(spec: str, device: str) -> Any:
    """The ``torch.dtype`` for ``spec`` on ``device`` (a :func:`resolve_device` result).

    Raises ``QueryFailed`` (kind ``config``) for an unknown name.
    """
    import torch

    if spec not in MODEL_DTYPES:
        raise QueryFailed.of("config", f"model.dtype {spec!r} is not one of {', '.join(MODEL_DTYPES)}")
    if spec != "auto":
        return getattr(torch, spec)
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        major, _minor = torch.cuda.get_device_capability(index)
        return torch.bfloat16 if major >= 8 else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32
