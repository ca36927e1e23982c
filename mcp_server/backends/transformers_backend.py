"""The transformers backend (default on CPU), with prompt-prefix KV reuse.

It owns one loaded model (see ``loading.py``: HF folder, GGUF, LoRA adapter, checkpoint, or the
bundled default) and a decoding loop that, unlike ``model.generate(num_return_sequences=N)``:

* computes a prompt's KV cache once and expands it to the N candidates (no N-fold prefill);
* keeps the KV cache of each prompt's schema prefix (``PromptInput.cache_prefix_text``) in an
  LRU keyed by its token ids, so a new question on the same database prefills only its suffix;
* streams text (``on_text``), polls ``should_stop`` for cancellation, stops at stop strings
  (the stop string is kept in the text, so ``</answer>`` survives for the format check) and sums
  each candidate's token log-probabilities (under the model's unscaled distribution).

The model runs on ``device`` (``auto``: CUDA, else MPS, else CPU; see ``device.py``) in ``dtype``;
every tensor the loop creates (input ids, row indices, the sampling generator) is made there, and
the cached prefix KV stays there, so prefix reuse works the same on any device.

Under greedy decoding the tokens are identical to plain ``model.generate`` (tested).
One generation runs at a time per model (a lock); :func:`get_backend` is the process-wide cache
that guarantees a model is loaded once. It never touches a database.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlr1.mcp_server.backends.base import (
    Completion,
    PromptInput,
    SamplingParams,
    TokenCallback,
    stop_index,
)
from sqlr1.mcp_server.backends.device import resolve_device, resolve_dtype
from sqlr1.mcp_server.backends.loading import ResolvedModel, load_model_and_tokenizer, resolve_model
from sqlr1.mcp_server.method.prompt import render_text, split_cached_prefix

__all__ = ["PrefixStats", "TransformersBackend", "get_backend"]

_MIN_PREFIX_TOKENS = 16  # shorter shared prefixes are not worth a cache entry


@dataclass
class PrefixStats:
    """Counters that show the prefix cache at work (tests and benchmarks read them)."""

    hits: int = 0
    misses: int = 0
    prefilled_tokens: int = 0  # prompt tokens actually run through the model


class TransformersBackend:
    """A transformers causal LM behind the :class:`~mcp_server.backends.base.Backend` protocol."""

    name = "transformers"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        prefix_cache_size: int = 8,
    ) -> None:
        """Load ``model`` onto ``device`` in ``dtype`` (both checked before any weights are read).

        Raises ``QueryFailed`` (kind ``config``) naming a device this machine lacks.
        """
        import torch

        self.device: str = resolve_device(device)
        self.dtype: Any = resolve_dtype(dtype, self.device)
        self.resolved: ResolvedModel = resolve_model(model)
        self.model_id = self.resolved.spec
        self.model, self.tokenizer = load_model_and_tokenizer(
            self.resolved, dtype=self.dtype, device=self.device
        )
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.prompt_version = self.resolved.prompt_version
        self._torch = torch
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        # transformers 5.x renamed ``past_key_values`` to ``cache`` (older 5.x releases use the old name).
        self._cache_kw = (
            "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"
        )
        self._lock = threading.Lock()
        self._prefix_cache: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._prefix_cache_size = prefix_cache_size
        self.stats = PrefixStats()
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_token_ids: frozenset[int] = frozenset(
            [eos] if isinstance(eos, int) else [int(e) for e in eos or []]
        )

    # -- text <-> tokens -------------------------------------------------------------------
    def render(self, prompt: PromptInput) -> str:
        """The exact prompt text (chat template or plain text, plus the pre-fill)."""
        return render_text(prompt, self.tokenizer if self.has_chat_template else None)

    def encode(self, text: str) -> list[int]:
        # Chat templates carry their own special tokens; plain text gets the tokenizer's defaults.
        ids = self.tokenizer(text, add_special_tokens=not self.has_chat_template)["input_ids"]
        return [int(i) for i in ids]

    def prompt_ids(self, prompt: PromptInput) -> tuple[list[int], int]:
        """Token ids of the rendered prompt and how many leading ones form the cacheable prefix."""
        rendered = self.render(prompt)
        ids = self.encode(rendered)
        prefix_text, _ = split_cached_prefix(rendered, prompt)
        if not prefix_text:
            return ids, 0
        prefix_ids = self.encode(prefix_text)
        n = 0  # BPE may merge across the boundary: keep only the tokens both agree on
        for a, b in zip(prefix_ids, ids, strict=False):
            if a != b:
                break
            n += 1
        n = min(n, len(ids) - 1)  # at least one token must be prefilled to get logits
        return ids, n if n >= _MIN_PREFIX_TOKENS else 0

    # -- prefill ---------------------------------------------------------------------------
    def _forward(self, ids: Sequence[int] | Any, cache: Any) -> Any:
        torch = self._torch
        input_ids = (
            ids
            if isinstance(ids, torch.Tensor)
            else torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        )
        kwargs = {self._cache_kw: cache}
        return self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **kwargs)

    def _prefill(self, ids: list[int], prefix_len: int) -> tuple[Any, Any]:
        """(last-position logits [1, V], KV cache of batch 1 covering all of ``ids``)."""
        cache = None
        start = 0
        if prefix_len:
            key = tuple(ids[:prefix_len])
            cached = self._prefix_cache.get(key)
            if cached is None:
                self.stats.misses += 1
                out = self._forward(ids[:prefix_len], None)
                self.stats.prefilled_tokens += prefix_len
                cached = _out_cache(out)
                self._prefix_cache[key] = cached
                while len(self._prefix_cache) > self._prefix_cache_size:
                    self._prefix_cache.popitem(last=False)
            else:
                self.stats.hits += 1
                self._prefix_cache.move_to_end(key)
            cache = copy.deepcopy(cached)
            start = prefix_len
        out = self._forward(ids[start:], cache)
        self.stats.prefilled_tokens += len(ids) - start
        return out.logits[:, -1, :], _out_cache(out)

    def clear_prefix_cache(self) -> None:
        with self._lock:
            self._prefix_cache.clear()

    # -- decoding --------------------------------------------------------------------------
    def _choose(self, logits: Any, params: SamplingParams, generator: Any) -> Any:
        torch = self._torch
        if params.temperature <= 0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits.float() / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            drop = sorted_p.cumsum(dim=-1) - sorted_p > params.top_p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    def generate(
        self,
        prompt: PromptInput,
        params: SamplingParams,
        *,
        on_text: TokenCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        """``params.n`` completions in one batched decode over a shared prompt KV cache."""
        with self._lock, self._torch.inference_mode():
            return self._generate(prompt, params, on_text, should_stop)

    def _generate(
        self,
        prompt: PromptInput,
        params: SamplingParams,
        on_text: TokenCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> list[Completion]:
        torch = self._torch
        n = max(1, params.n)
        generator = torch.Generator(device=self.device)
        if params.seed is not None:
            generator.manual_seed(params.seed)
        else:
            generator.seed()
        ids, prefix_len = self.prompt_ids(prompt)
        logits, cache = self._prefill(ids, prefix_len)
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.expand(n, -1)

        tokens: list[list[int]] = [[] for _ in range(n)]
        texts = [""] * n
        logprobs = [0.0] * n
        finish: list[str | None] = [None] * n
        active = list(range(n))  # candidate index of each row still in the cache
        max_stop = max((len(s) for s in params.stop), default=0)

        for _ in range(params.max_new_tokens):
            if should_stop is not None and should_stop():
                for row in active:
                    finish[row] = "cancelled"
                break
            chosen = self._choose(logits, params, generator)
            token_lp = torch.log_softmax(logits.float(), dim=-1).gather(-1, chosen[:, None]).squeeze(-1)
            # One device-to-host copy per step, not one per row (each would be a GPU sync).
            chosen_ids: list[int] = chosen.tolist()
            chosen_lps: list[float] = token_lp.tolist()
            keep: list[int] = []
            for j, row in enumerate(active):
                tok = chosen_ids[j]
                if tok in self.eos_token_ids:
                    finish[row] = "stop"
                    continue
                tokens[row].append(tok)
                logprobs[row] += chosen_lps[j]
                text = self.tokenizer.decode(tokens[row], skip_special_tokens=True)
                stop_at = stop_index(text, params, max(0, len(texts[row]) - max_stop))
                if stop_at is not None:
                    text, finish[row] = text[:stop_at], "stop"
                # An incomplete UTF-8 sequence decodes to U+FFFD: wait for the next token.
                text_out = texts[row] if text.endswith("\ufffd") and finish[row] is None else text
                if on_text is not None and len(text_out) > len(texts[row]):
                    on_text(row, text_out[len(texts[row]) :])
                texts[row] = text_out
                if finish[row] is None and len(tokens[row]) >= params.max_new_tokens:
                    finish[row] = "length"
                if finish[row] is None:
                    keep.append(j)
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, dtype=torch.long, device=self.device)
                cache.batch_select_indices(index)
                chosen = chosen[index]
                active = [active[j] for j in keep]
            logits = self._forward(chosen[:, None], cache).logits[:, -1, :]
        for row in range(n):
            if finish[row] is None:
                finish[row] = "length"
            final = self.tokenizer.decode(tokens[row], skip_special_tokens=True)
            if finish[row] == "stop" and (params.stop or params.block):
                cut = stop_index(final, params)
                final = final[:cut] if cut is not None else final
            if on_text is not None and len(final) > len(texts[row]) and final.startswith(texts[row]):
                on_text(row, final[len(texts[row]) :])
            texts[row] = final
        return [
            Completion(
                text=texts[i],
                num_tokens=len(tokens[i]),
                logprob=logprobs[i],
                finish_reason=finish[i],  # type: ignore[arg-type]
                extra={"token_ids": tokens[i], "prefix_tokens": prefix_len, "prompt_tokens": len(ids)},
            )
            for i in range(n)
        ]

    def close(self) -> None:
        with self._lock:
            self._prefix_cache.clear()


def _out_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


_backends: dict[tuple[str, str, str], TransformersBackend] = {}
_backends_lock = threading.Lock()


def get_backend(
    model: str | Path | None = None, *, device: str = "auto", dtype: str = "auto"
) -> TransformersBackend:
    """The process-wide backend for ``model`` (``None`` = bundled) on ``device`` in ``dtype``.

    Each (model, device, dtype) is loaded only once; ``auto`` shares the instance of what it
    resolves to (``auto`` and ``cpu`` on a CPU-only machine are one backend).
    """
    resolved_device = resolve_device(device)
    key = (
        str(model) if model is not None else "bundled",
        resolved_device,
        str(resolve_dtype(dtype, resolved_device)),
    )
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None:
            backend = TransformersBackend(model, device=resolved_device, dtype=dtype)
            _backends[key] = backend
        return backend
