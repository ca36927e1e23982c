"""The llama.cpp backend (the default on CPU): quantized GGUF models through llama-cpp-python's C API.

It owns one llama.cpp model and context per model and process (:func:`get_backend`) and a decoding
loop that keeps what the transformers backend does, at several times its speed on a CPU:

* the prompt of the last request stays in sequence 0 of the KV cache, so the next question on the
  same database prefills only what differs from it (the schema prefix is reused in place, nothing is
  restored); every schema prefix computed is also saved (``llama_state_seq_get_data``) in a
  :class:`PrefixStore`, in memory and on disk, so another database, or the next ``sqlr1 ask``
  process, restores it in milliseconds instead of prefilling it again (a minute for Chinook on one
  busy core); :meth:`LlamaCppBackend.warm` computes a prefix ahead of time;
* ``n`` candidates in one batched decode: the prompt's KV cells are shared by ``n`` sequences (a
  unified KV cache, ``llama_memory_seq_cp``) and one ``llama_decode`` per step advances all of them;
* a candidate that runs far past the done ones is ended (``SamplingParams.runaway_factor``), so one
  rambling sample does not hold the batch to ``max_new_tokens``;
* streaming (``on_text``), cancellation (``should_stop`` polled between prefill chunks and decode
  steps), stop strings and the :class:`~mcp_server.backends.base.CodeBlock` closer (both kept in
  the text), summed token log-probabilities (of the unscaled distribution);
* the SQL block decoded under a GBNF grammar (``CodeBlock.grammar``, lazy: it starts at the block's
  opener, the reasoning before it stays free): the sampled token is checked first, and only when the
  grammar rejects it is the whole vocabulary filtered and the token drawn again;
* threads follow the cores other processes leave free (``cpu_threads.FreeCores``), measured before
  each request and every 32 decode steps: llama.cpp collapses when a thread shares a busy core.

Sampling runs in numpy on the logits (top-p over the 256 most likely tokens: the nucleus of a
0.95 top-p practically never reaches further). One generation runs at a time per model (a lock).
It never touches a database and never downloads anything.
"""

from __future__ import annotations

import codecs
import ctypes
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sqlr1.mcp_server.backends.base import (
    RUNAWAY_SLACK,
    CodeBlock,
    Completion,
    PromptInput,
    SamplingParams,
    TokenCallback,
    stop_index,
)
from sqlr1.mcp_server.backends.bundled import BUNDLED_SPEC, bundled_gguf_path
from sqlr1.mcp_server.backends.cpu_threads import FreeCores
from sqlr1.mcp_server.backends.loading import ResolvedModel, resolve_model
from sqlr1.mcp_server.backends.lora_gguf import gguf_lora_for
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.core.locations import cache_root
from sqlr1.mcp_server.method.prompt import render_text, split_cached_prefix

__all__ = [
    "THREADS_ENV",
    "LlamaCppBackend",
    "PrefixStats",
    "PrefixStore",
    "amx_in_build",
    "gguf_files",
    "grammar_accepts",
]

THREADS_ENV = "SQLR1_THREADS"  # a fixed thread count instead of following the free cores
_MIN_PREFIX_TOKENS = 16
_PREFILL_CHUNK = 256  # tokens per llama_decode while prefilling: the cancel granularity
_THREAD_CHECK_EVERY = 32  # decode steps between free-core measurements
_TOP_P_POOL = 256
_PREFIXES_IN_MEMORY = 4
_PREFIXES_ON_DISK = 32  # files kept per model (about 25 MB each for Chinook on the 0.5B)
_STORE_FORMAT = "1"
_GRAMMAR_TRIGGER = "[\\s\\S]*?({opener}[\\s\\S]*)"


@dataclass
class PrefixStats:
    """Counters that show the prefix reuse at work (tests and benchmarks read them)."""

    reused: int = 0  # requests whose schema prefix was already in the KV cache
    restored: int = 0  # ... put back from the prefix store (memory or disk)
    computed: int = 0  # ... prefilled from scratch (then stored)
    prefilled_tokens: int = 0
    threads: int = 0  # threads of the last decode step


def amx_in_build(lib: Any) -> bool:
    """Whether this llama.cpp build has ggml's AMX kernels (built natively on a CPU with AMX)."""
    return b"AMX_INT8 = 1" in lib.llama_print_system_info()


def gguf_files(resolved: ResolvedModel) -> tuple[Path, Path | None] | None:
    """(base GGUF, LoRA GGUF or ``None``) that run ``resolved`` on llama.cpp, else ``None``: a GGUF
    model, or a LoRA adapter on a GGUF base (the bundled SmolLM2 included) that converts to a
    llama.cpp LoRA (``lora_gguf.py``)."""
    if resolved.kind == "gguf":
        return Path(resolved.source), None
    base = resolved.base
    if resolved.kind != "adapter" or base is None:
        return None
    if base.kind == "gguf":
        base_gguf = Path(base.source)
    elif base.spec == BUNDLED_SPEC:
        base_gguf = bundled_gguf_path()
    else:
        return None
    lora = gguf_lora_for(resolved.source, base_gguf)
    return (base_gguf, lora) if lora is not None else None


def _model_key(gguf: Path, lora: Path | None) -> str:
    """What a saved state is valid for: the model and LoRA files, llama.cpp's version, our format."""
    import llama_cpp

    parts = [_STORE_FORMAT, llama_cpp.__version__]
    for f in (gguf, lora):
        if f is not None:
            st = f.stat()
            parts += [str(f.resolve()), str(st.st_size), str(st.st_mtime_ns)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


class PrefixStore:
    """Saved KV states of schema prefixes, by their token ids: a small LRU in memory over files in
    the cache (``prefix-kv/<model key>/``, the most recently used :data:`_PREFIXES_ON_DISK` kept).
    Files are written atomically; an unreadable one is a miss."""

    def __init__(self, model_key: str, root: Path | None = None) -> None:
        self.dir = (root or cache_root()) / "prefix-kv" / model_key
        self._memory: OrderedDict[str, bytes] = OrderedDict()

    @staticmethod
    def _name(key: tuple[int, ...]) -> str:
        return hashlib.sha256(np.asarray(key, dtype=np.int32).tobytes()).hexdigest()[:32]

    def get(self, key: tuple[int, ...]) -> bytes | None:
        name = self._name(key)
        state = self._memory.get(name)
        if state is None:
            path = self.dir / f"{name}.kv"
            try:
                state = path.read_bytes()
                os.utime(path)  # most recently used: pruned last
            except OSError:
                return None
        self._remember(name, state)
        return state

    def put(self, key: tuple[int, ...], state: bytes) -> None:
        name = self._name(key)
        self._remember(name, state)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=self.dir)
            with os.fdopen(fd, "wb") as f:
                f.write(state)
            os.replace(tmp, self.dir / f"{name}.kv")
            files = sorted(self.dir.glob("*.kv"), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in files[_PREFIXES_ON_DISK:]:
                old.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only or full cache costs speed only

    def clear(self, *, disk: bool) -> None:
        self._memory.clear()
        if disk:
            for f in self.dir.glob("*.kv"):
                f.unlink(missing_ok=True)

    def _remember(self, name: str, state: bytes) -> None:
        self._memory[name] = state
        self._memory.move_to_end(name)
        while len(self._memory) > _PREFIXES_IN_MEMORY:
            self._memory.popitem(last=False)


class _ChatTemplate:
    """A GGUF's chat template, rendered as transformers renders it (``prompt.render_text`` uses it)."""

    def __init__(self, template: str, bos_token: str, eos_token: str) -> None:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise ValueError(message)

        def tojson(value: Any, indent: int | None = None, **_: Any) -> str:
            return json.dumps(value, ensure_ascii=False, indent=indent)

        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.globals["raise_exception"] = raise_exception
        env.filters["tojson"] = tojson
        self.chat_template = template
        self._template = env.from_string(template)
        self._special = {"bos_token": bos_token, "eos_token": eos_token}

    def apply_chat_template(
        self, conversation: Any, *, add_generation_prompt: bool = True, tokenize: bool = False, **_: Any
    ) -> str:
        return self._template.render(
            messages=conversation, add_generation_prompt=add_generation_prompt, **self._special
        )


class _Grammar:
    """One candidate's grammar sampler (llama.cpp GBNF, lazy from the block opener)."""

    def __init__(self, lib: Any, vocab: Any, block: CodeBlock) -> None:
        import re

        self._lib = lib
        gbnf = (block.grammar or "").encode()
        if block.opened:  # the pre-fill opened the block: constrained from the first token
            self.sampler = lib.llama_sampler_init_grammar(vocab, gbnf, b"body")
        else:
            pattern = _GRAMMAR_TRIGGER.format(opener=re.escape(block.opener)).encode()
            patterns = (ctypes.c_char_p * 1)(pattern)
            self.sampler = lib.llama_sampler_init_grammar_lazy_patterns(
                vocab, gbnf, b"root", patterns, 1, None, 0
            )
        if not self.sampler:
            raise QueryFailed.of("config", "llama.cpp rejected the SQL grammar (see its log on stderr)")

    def allows(self, token: int, one: Any) -> bool:
        one.data[0].id = token
        one.data[0].logit = 0.0
        one.data[0].p = 0.0
        one.size = 1
        one.selected = -1
        one.sorted = False
        self._lib.llama_sampler_apply(self.sampler, ctypes.byref(one))
        return bool(np.isfinite(one.data[0].logit))

    def accept(self, token: int) -> None:
        self._lib.llama_sampler_accept(self.sampler, token)

    def close(self) -> None:
        if self.sampler:
            self._lib.llama_sampler_free(self.sampler)
            self.sampler = None


class LlamaCppBackend:
    """A GGUF model in llama.cpp behind the :class:`~mcp_server.backends.base.Backend` protocol."""

    name = "llamacpp"
    device = "cpu"
    supports_grammar = True  # decodes a CodeBlock's grammar (the others only end at its closer)

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        n_ctx: int = 16384,
        n_seq_max: int = 8,
        threads: int | None = None,
    ) -> None:
        """Load ``model`` (a GGUF, a named GGUF model, or an adapter folder holding a GGUF LoRA).

        Raises ``QueryFailed`` (kind ``config``) when llama-cpp-python is missing or cannot load it.
        """
        try:
            import llama_cpp
            from llama_cpp import _logger
        except ImportError as exc:
            raise QueryFailed.of(
                "config", f"the llamacpp backend needs llama-cpp-python ({exc}); run scripts/setup.sh"
            ) from exc
        _logger.logger.setLevel(logging.CRITICAL)  # llama.cpp speaks on stderr; failures raise QueryFailed
        self._lib = lib = llama_cpp
        self.resolved: ResolvedModel = resolve_model(model)
        self.model_id = self.resolved.spec
        self.prompt_version = self.resolved.prompt_version
        gguf, lora = self._files(self.resolved)
        lib.llama_backend_init()
        mparams = lib.llama_model_default_params()
        if amx_in_build(lib):
            # ggml's AMX matmul crashes (SIGSEGV) on Sapphire Rapids-class CPUs that a native build
            # enables it on (ggml-org/llama.cpp#20824): load the weights as llama.cpp's --no-repack does
            mparams.use_extra_bufts = False
        self._model = lib.llama_model_load_from_file(str(gguf).encode(), mparams)
        if not self._model:
            raise QueryFailed.of("config", f"llama.cpp cannot load {gguf}")
        self._vocab = lib.llama_model_get_vocab(self._model)
        self.n_vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        self.fixed_threads = threads or (
            int(os.environ[THREADS_ENV]) if os.environ.get(THREADS_ENV) else None
        )
        self._cores = FreeCores()
        first_threads = self.fixed_threads or self._cores.cores
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = min(n_ctx, int(lib.llama_n_ctx_train(self._model)) or n_ctx)
        cparams.n_batch = cparams.n_ubatch = max(_PREFILL_CHUNK, n_seq_max)
        cparams.n_seq_max = n_seq_max
        cparams.kv_unified = True
        cparams.n_threads = cparams.n_threads_batch = first_threads
        self._ctx = lib.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            raise QueryFailed.of("config", f"llama.cpp cannot create a context of {n_ctx} tokens for {gguf}")
        self._mem = lib.llama_get_memory(self._ctx)
        self._lora = None
        if lora is not None:
            self._lora = lib.llama_adapter_lora_init(self._model, str(lora).encode())
            if not self._lora:
                raise QueryFailed.of("config", f"llama.cpp cannot load the LoRA {lora} on {gguf}")
            adapters = (lib.llama_adapter_lora_p_ctypes * 1)(self._lora)
            scales = (ctypes.c_float * 1)(1.0)
            lib.llama_set_adapters_lora(self._ctx, adapters, 1, scales)
        self.n_ctx = int(lib.llama_n_ctx(self._ctx))
        self.n_seq_max = n_seq_max
        self._batch = lib.llama_batch_init(max(_PREFILL_CHUNK, n_seq_max), 0, 1)
        self._one_data = (lib.llama_token_data * 1)()  # kept referenced: _one points into it
        self._one = lib.llama_token_data_array(
            data=ctypes.cast(self._one_data, lib.llama_token_data_p), size=1, selected=-1, sorted=False
        )
        self._pool = np.zeros(
            self.n_vocab,
            dtype=np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True),
        )
        self._pool["id"] = np.arange(self.n_vocab, dtype=np.intc)
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._resident: list[int] = []  # tokens held by sequence 0
        self._store = PrefixStore(_model_key(gguf, lora))
        self._lock = threading.Lock()
        self.stats = PrefixStats()
        template = lib.llama_model_chat_template(self._model, None)
        self.tokenizer = (
            _ChatTemplate(
                template.decode("utf-8"),
                self._piece(lib.llama_vocab_bos(self._vocab), special=True),
                self._piece(lib.llama_vocab_eos(self._vocab), special=True),
            )
            if template
            else None
        )
        self.has_chat_template = self.tokenizer is not None
        self.threads = first_threads

    @staticmethod
    def _files(resolved: ResolvedModel) -> tuple[Path, Path | None]:
        files = gguf_files(resolved)
        if files is None:
            raise QueryFailed.of(
                "config",
                f"the llamacpp backend runs GGUF models and LoRA adapters on them; {resolved.spec!r} is a "
                f'{resolved.kind} model it cannot run: set [model] backend = "transformers"',
            )
        return files

    # -- text <-> tokens -------------------------------------------------------------------
    def _piece(self, token: int, *, special: bool = False) -> str:
        n = self._lib.llama_token_to_piece(self._vocab, token, self._piece_buf, 256, 0, special)
        return self._piece_buf.raw[: max(0, n)].decode("utf-8", errors="replace")

    def _piece_bytes(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            n = self._lib.llama_token_to_piece(self._vocab, token, self._piece_buf, 256, 0, False)
            piece = self._pieces[token] = self._piece_buf.raw[: max(0, n)]
        return piece

    def render(self, prompt: PromptInput) -> str:
        """The exact prompt text (the GGUF's chat template, or plain text, plus the pre-fill)."""
        return render_text(prompt, self.tokenizer)

    def encode(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 16
        buf = (self._lib.llama_token * size)()
        # A chat template writes its own special tokens; plain text gets the model's BOS.
        n = self._lib.llama_tokenize(
            self._vocab, data, len(data), buf, size, not self.has_chat_template, True
        )
        if n < 0:
            raise QueryFailed.of("config", f"llama.cpp could not tokenize a prompt of {len(data)} bytes")
        return list(buf[:n])

    def decode(self, tokens: list[int]) -> str:
        return b"".join(self._piece_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    def prompt_ids(self, prompt: PromptInput) -> tuple[list[int], int]:
        """Token ids of the rendered prompt and how many leading ones form the cacheable prefix."""
        rendered = self.render(prompt)
        ids = self.encode(rendered)
        prefix_text, _ = split_cached_prefix(rendered, prompt)
        if not prefix_text:
            return ids, 0
        n = 0  # BPE may merge across the boundary: keep only the tokens both agree on
        for a, b in zip(self.encode(prefix_text), ids, strict=False):
            if a != b:
                break
            n += 1
        n = min(n, len(ids) - 1)
        return ids, n if n >= _MIN_PREFIX_TOKENS else 0

    # -- KV cache --------------------------------------------------------------------------
    def _set_threads(self, fresh: bool) -> None:
        threads = self.fixed_threads or self._cores.measure(fresh=fresh)
        if threads != self.threads:
            self._lib.llama_set_n_threads(self._ctx, threads, threads)
            self.threads = threads
        self.stats.threads = threads

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One ``llama_decode`` of (token, position, sequence, wants logits) entries."""
        batch = self._batch
        for i, (tok, pos, seq, logits) in enumerate(entries):
            batch.token[i] = tok
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits
        batch.n_tokens = len(entries)
        rc = self._lib.llama_decode(self._ctx, batch)
        if rc != 0:
            raise QueryFailed.of(
                "execution",
                f"llama.cpp decode failed ({rc}): the prompt and candidates exceed the "
                f"context of {self.n_ctx} tokens",
            )

    def _logits(self, i: int) -> np.ndarray:
        ptr = self._lib.llama_get_logits_ith(self._ctx, i)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def _save_prefix(self, key: tuple[int, ...]) -> None:
        """Store sequence 0's state (it holds exactly ``key``) for later requests and processes."""
        size = self._lib.llama_state_seq_get_size(self._ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        written = self._lib.llama_state_seq_get_data(self._ctx, buf, size, 0)
        if written:
            self._store.put(key, bytes(buf)[:written])

    def _restore(self, key: tuple[int, ...]) -> bool:
        state = self._store.get(key)
        if state is None:
            return False
        self._lib.llama_memory_clear(self._mem, True)
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if not self._lib.llama_state_seq_set_data(self._ctx, buf, len(state), 0):
            self._lib.llama_memory_clear(self._mem, True)
            self._resident = []
            return False
        self._resident = list(key)
        return True

    def _run(self, ids: list[int], start: int, end: int, should_stop: Callable[[], bool] | None) -> bool:
        """Decode ``ids[start:end]`` into sequence 0 in chunks (logits for ``ids[-1]`` only); False if
        cancelled between chunks."""
        for at in range(start, end, _PREFILL_CHUNK):
            if should_stop is not None and should_stop():
                return False
            chunk = ids[at : min(end, at + _PREFILL_CHUNK)]
            self._decode([(t, at + i, 0, at + i == len(ids) - 1) for i, t in enumerate(chunk)])
            self._resident = ids[: at + len(chunk)]
            self.stats.prefilled_tokens += len(chunk)
        return True

    def _prefill(
        self, ids: list[int], prefix_len: int, should_stop: Callable[[], bool] | None
    ) -> np.ndarray | None:
        """Make sequence 0 hold ``ids``; the last position's logits (``None``: cancelled).

        The schema prefix (``ids[:prefix_len]``) is reused when sequence 0 already holds it, else
        restored from the prefix store, else computed and stored."""
        lib = self._lib
        for seq in range(1, self.n_seq_max):
            lib.llama_memory_seq_rm(self._mem, seq, -1, -1)
        common = _common_prefix(self._resident, ids)
        if prefix_len and common >= prefix_len:
            self.stats.reused += 1
        elif prefix_len:
            key = tuple(ids[:prefix_len])
            if self._restore(key):
                self.stats.restored += 1
                common = prefix_len
            else:
                self.stats.computed += 1
                lib.llama_memory_seq_rm(self._mem, 0, common, -1)
                self._resident = ids[:common]
                if not self._run(ids, common, prefix_len, should_stop):
                    return None
                self._save_prefix(key)
                common = prefix_len
        common = min(common, len(ids) - 1)  # the last prompt token is run again for its logits
        lib.llama_memory_seq_rm(self._mem, 0, common, -1)
        self._resident = ids[:common]
        if not self._run(ids, common, len(ids), should_stop):
            return None
        return self._logits(-1)

    def warm(self, prompt: PromptInput, should_stop: Callable[[], bool] | None = None) -> int:
        """Compute ``prompt``'s schema prefix into the KV cache now; returns its length in tokens."""
        ids, prefix_len = self.prompt_ids(prompt)
        if not prefix_len:
            return 0
        with self._lock:
            self._set_threads(fresh=True)
            self._prefill(ids[: prefix_len + 1], prefix_len, should_stop)
        return prefix_len

    def clear_prefix_cache(self, *, disk: bool = False) -> None:
        """Forget the prefixes in memory (and on disk with ``disk``)."""
        with self._lock:
            self._lib.llama_memory_clear(self._mem, True)
            self._resident = []
            self._store.clear(disk=disk)

    # -- decoding --------------------------------------------------------------------------
    def _choose(
        self, logits: np.ndarray, params: SamplingParams, rng: np.random.Generator, grammar: _Grammar | None
    ) -> tuple[int, float]:
        token = _sample(logits, params, rng)
        if grammar is not None and not grammar.allows(token, self._one):
            pool = self._pool
            pool["logit"] = logits
            pool["p"] = 0.0
            arr = self._lib.llama_token_data_array(
                data=pool.ctypes.data_as(self._lib.llama_token_data_p),
                size=self.n_vocab,
                selected=-1,
                sorted=False,
            )
            self._lib.llama_sampler_apply(grammar.sampler, ctypes.byref(arr))
            masked = pool["logit"][: arr.size].copy()
            if not np.isfinite(masked).any():
                raise QueryFailed.of("execution", "the SQL grammar allows no next token")
            logits = np.full_like(logits, -np.inf)
            logits[pool["id"][: arr.size]] = masked
            token = _sample(logits, params, rng)
            pool["id"] = np.arange(self.n_vocab, dtype=np.intc)  # llama.cpp may have reordered the pool
        if grammar is not None:
            grammar.accept(token)
        finite = logits[np.isfinite(logits)]
        top = float(finite.max())
        return token, float(logits[token]) - (top + float(np.log(np.exp(finite - top).sum())))

    def generate(
        self,
        prompt: PromptInput,
        params: SamplingParams,
        *,
        on_text: TokenCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        """``params.n`` completions, decoded ``n_seq_max`` at a time over one shared prompt KV."""
        ids, prefix_len = self.prompt_ids(prompt)
        if len(ids) + params.max_new_tokens > self.n_ctx:
            raise QueryFailed.of(
                "config",
                f"the prompt ({len(ids)} tokens) plus max_new_tokens ({params.max_new_tokens}) exceed the "
                f"model context of {self.n_ctx} tokens: prompt fewer tables or lower max_new_tokens",
            )
        n = max(1, params.n)
        rng = np.random.default_rng(params.seed)
        out: list[Completion] = []
        with self._lock:
            self._set_threads(fresh=True)
            logits = self._prefill(ids, prefix_len, should_stop)
            room = max(1, (self.n_ctx - len(ids)) // max(1, params.max_new_tokens))
            per_round = max(1, min(self.n_seq_max, room))
            while len(out) < n:
                rows = min(per_round, n - len(out))
                if logits is None:  # cancelled during the prefill
                    out += [_cancelled(len(ids), prefix_len) for _ in range(rows)]
                    continue
                out += self._decode_rows(
                    ids, prefix_len, logits, rows, len(out), params, rng, on_text, should_stop
                )
        return out

    def _decode_rows(
        self,
        ids: list[int],
        prefix_len: int,
        logits0: np.ndarray,
        rows: int,
        first_index: int,
        params: SamplingParams,
        rng: np.random.Generator,
        on_text: TokenCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> list[Completion]:
        lib = self._lib
        start = len(ids)
        for seq in range(1, rows):
            lib.llama_memory_seq_cp(self._mem, 0, seq, -1, -1)
        block = params.block
        grammars = [
            _Grammar(lib, self._vocab, block) if block and block.grammar else None for _ in range(rows)
        ]
        tokens: list[list[int]] = [[] for _ in range(rows)]
        decoders = [codecs.getincrementaldecoder("utf-8")(errors="replace") for _ in range(rows)]
        texts = [""] * rows
        logprobs = [0.0] * rows
        finish: list[str | None] = [None] * rows
        active = list(range(rows))
        logits = [logits0] * rows
        max_stop = max((len(s) for s in params.stop), default=0)
        try:
            for step in range(params.max_new_tokens):
                if should_stop is not None and should_stop():
                    for row in active:
                        finish[row] = "cancelled"
                    break
                if step and step % _THREAD_CHECK_EVERY == 0:
                    self._set_threads(fresh=False)
                keep: list[int] = []
                for j, row in enumerate(active):
                    tok, lp = self._choose(logits[j], params, rng, grammars[row])
                    if lib.llama_vocab_is_eog(self._vocab, tok):
                        finish[row] = "stop"
                        continue
                    tokens[row].append(tok)
                    logprobs[row] += lp
                    text = texts[row] + decoders[row].decode(self._piece_bytes(tok))
                    cut = stop_index(text, params, max(0, len(texts[row]) - max_stop))
                    if cut is not None:
                        text, finish[row] = text[:cut], "stop"
                    if on_text is not None and len(text) > len(texts[row]):
                        on_text(first_index + row, text[len(texts[row]) :])
                    texts[row] = text
                    if finish[row] is None and len(tokens[row]) >= params.max_new_tokens:
                        finish[row] = "length"
                    if finish[row] is None:
                        keep.append(row)
                keep = self._end_runaways(keep, tokens, finish, params)
                for row in active:
                    if row not in keep and row:
                        lib.llama_memory_seq_rm(self._mem, row, -1, -1)  # free its cells now
                active = keep
                if not active:
                    break
                self._decode([(tokens[r][-1], start + len(tokens[r]) - 1, r, True) for r in active])
                logits = [self._logits(i) for i in range(len(active))]
        finally:
            for g in grammars:
                if g is not None:
                    g.close()
            for seq in range(1, rows):
                lib.llama_memory_seq_rm(self._mem, seq, -1, -1)
            lib.llama_memory_seq_rm(self._mem, 0, start, -1)  # sequence 0 keeps the prompt only
            self._resident = ids[:start]
        return [
            Completion(
                text=texts[i],
                num_tokens=len(tokens[i]),
                logprob=logprobs[i],
                finish_reason=finish[i] or "length",  # type: ignore[arg-type]
                extra={"token_ids": tokens[i], "prefix_tokens": prefix_len, "prompt_tokens": len(ids)},
            )
            for i in range(rows)
        ]

    @staticmethod
    def _end_runaways(
        keep: list[int], tokens: list[list[int]], finish: list[str | None], params: SamplingParams
    ) -> list[int]:
        """End (``length``) the candidates that run far past the done ones (``params.runaway_factor``)."""
        done = [len(tokens[r]) for r, f in enumerate(finish) if f == "stop"]
        if params.runaway_factor is None or not keep or 2 * len(done) < len(finish):
            return keep
        limit = params.runaway_factor * max(done) + RUNAWAY_SLACK
        for row in keep:
            if len(tokens[row]) > limit:
                finish[row] = "length"
        return [row for row in keep if finish[row] is None]

    def close(self) -> None:
        with self._lock:
            if self._ctx:
                self._lib.llama_batch_free(self._batch)
                self._lib.llama_free(self._ctx)
                self._ctx = None
            if self._model:
                self._lib.llama_model_free(self._model)
                self._model = None


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _cancelled(prompt_tokens: int, prefix_len: int) -> Completion:
    return Completion(
        text="",
        num_tokens=0,
        logprob=0.0,
        finish_reason="cancelled",
        extra={"token_ids": [], "prefix_tokens": prefix_len, "prompt_tokens": prompt_tokens},
    )


def _sample(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    if params.temperature <= 0:
        return int(np.argmax(logits))
    pool = min(_TOP_P_POOL, logits.shape[0] - 1)
    top = np.argpartition(-logits, pool)[:pool]
    z = logits[top] / params.temperature
    order = np.argsort(-z)
    top, z = top[order], z[order]
    p = np.exp(z - z[0])
    p /= p.sum()
    if params.top_p < 1.0:
        keep = np.cumsum(p) - p < params.top_p
        p = np.where(keep, p, 0.0)
        p /= p.sum()
    return int(top[rng.choice(len(top), p=p)])


def grammar_accepts(backend: LlamaCppBackend, gbnf: str, text: str) -> bool:
    """Whether ``gbnf`` (root from the start) accepts ``text`` as tokenized by ``backend``'s model,
    token by token as constrained decoding would see it (tests and benchmarks use it)."""
    lib = backend._lib
    sampler = lib.llama_sampler_init_grammar(backend._vocab, gbnf.encode(), b"root")
    if not sampler:
        raise QueryFailed.of("config", "llama.cpp rejected the grammar (see its log on stderr)")
    grammar = _Grammar.__new__(_Grammar)
    grammar._lib, grammar.sampler = lib, sampler
    try:
        for token in backend.encode(text):
            if not grammar.allows(token, backend._one):
                return False
            grammar.accept(token)
        return True
    finally:
        grammar.close()
