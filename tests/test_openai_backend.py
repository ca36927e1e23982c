"""The OpenAI-compatible backend over real HTTP on loopback.

Fast tests put a scripted model behind the test server (tests/openai_compat_server.py) to check
the protocol handling; the slow test serves the real bundled model through our transformers
backend and generates with it over HTTP.
"""

from __future__ import annotations

import socket

import pytest
from model_fixtures import bundled_backend  # noqa: F401  (fixture)
from openai_compat_server import build_app, serve
from scripted_backend import ScriptedBackend, answer

from sqlr1.mcp_server.backends.base import ChatMessage, PromptInput, SamplingParams
from sqlr1.mcp_server.backends.openai_backend import OpenAIBackend
from sqlr1.mcp_server.core.errors import QueryFailed

PROMPT = PromptInput(messages=(ChatMessage("user", "How many singers are there?"),))
TEXTS = [answer("SELECT count(*) FROM singer"), answer("SELECT 1"), "no sql here"]


def test_n_choices_text_logprobs_and_request_fields() -> None:
    model = ScriptedBackend(TEXTS, logprobs=[-1.5, -2.0, -3.0])
    app = build_app(model, api_key="sekret")
    with serve(app) as url:
        backend = OpenAIBackend(url, model.model_id, api_key="sekret")
        params = SamplingParams(
            n=3, temperature=0.8, top_p=0.9, max_new_tokens=64, seed=7, stop=("</answer>",)
        )
        out = backend.generate(PROMPT, params)
        backend.close()
    assert [c.text for c in out] == TEXTS
    assert [c.logprob for c in out] == [-1.5, -2.0, -3.0]
    body = app.state.seen[0]
    assert body["n"] == 3 and body["temperature"] == 0.8 and body["top_p"] == 0.9
    assert body["max_tokens"] == 64 and body["seed"] == 7 and body["stop"] == ["</answer>"]
    assert body["messages"] == [{"role": "user", "content": "How many singers are there?"}]
    (sent_prompt, sent_params) = model.calls[0]
    assert sent_prompt == PROMPT and sent_params.n == 3


def test_server_ignoring_n_is_topped_up() -> None:
    model = ScriptedBackend(TEXTS)
    app = build_app(model, support_n=False)
    with serve(app) as url:
        backend = OpenAIBackend(url, model.model_id)
        out = backend.generate(PROMPT, SamplingParams(n=3, temperature=0.8))
    assert len(out) == 3
    assert len(app.state.seen) == 3  # one request per missing choice
    assert [b["n"] for b in app.state.seen] == [3, 2, 1]


def test_logprobs_rejected_is_retried_without() -> None:
    model = ScriptedBackend(TEXTS[:1])
    app = build_app(model, support_logprobs=False)
    with serve(app) as url:
        backend = OpenAIBackend(url, model.model_id)
        out = backend.generate(PROMPT, SamplingParams(n=1))
        again = backend.generate(PROMPT, SamplingParams(n=1))
    assert out[0].text == TEXTS[0] and out[0].logprob is None and again[0].text == TEXTS[0]
    # first request asked for logprobs and got a 400; the retry and later requests do not ask again
    assert [bool(b.get("logprobs")) for b in app.state.seen] == [True, False, False]
    assert len(model.calls) == 2


def test_streaming_calls_on_text_and_stops() -> None:
    model = ScriptedBackend(TEXTS[:2])
    app = build_app(model)
    streamed: dict[int, str] = {}
    with serve(app) as url:
        backend = OpenAIBackend(url, model.model_id)
        out = backend.generate(
            PROMPT,
            SamplingParams(n=2, temperature=0.5),
            on_text=lambda i, t: streamed.__setitem__(i, streamed.get(i, "") + t),
        )
        cancelled = backend.generate(PROMPT, SamplingParams(n=2), should_stop=lambda: True)
    assert [c.text for c in out] == TEXTS[:2]
    assert streamed == {0: TEXTS[0], 1: TEXTS[1]}
    assert app.state.seen[0]["stream"] is True
    assert [c.finish_reason for c in cancelled] == ["cancelled", "cancelled"]


def test_prefill_uses_continue_final_message() -> None:
    model = ScriptedBackend(["x</think>"])
    app = build_app(model)
    prompt = PromptInput(
        messages=(ChatMessage("system", "s"), ChatMessage("user", "q")), assistant_prefill="<think>"
    )
    with serve(app) as url:
        OpenAIBackend(url, model.model_id).generate(prompt, SamplingParams())
    body = app.state.seen[0]
    assert body["messages"][-1] == {"role": "assistant", "content": "<think>"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert model.calls[0][0].assistant_prefill == "<think>"


def test_errors_are_actionable() -> None:
    model = ScriptedBackend(TEXTS)
    with serve(build_app(model, api_key="right")) as url:
        with pytest.raises(QueryFailed) as auth:
            OpenAIBackend(url, model.model_id, api_key="wrong").generate(PROMPT, SamplingParams())
        with pytest.raises(QueryFailed) as missing:
            OpenAIBackend(url, "no-such-model", api_key="right").generate(PROMPT, SamplingParams())
    assert auth.value.error.kind == "config" and "api_key" in auth.value.error.message
    assert "404" in missing.value.error.message and "no-such-model" in missing.value.error.message
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(QueryFailed) as down:
        OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m").generate(PROMPT, SamplingParams())
    assert down.value.error.kind == "config" and "base_url" in down.value.error.message


@pytest.mark.slow
def test_real_model_over_http(bundled_backend) -> None:  # noqa: F811
    """The bundled SmolLM2, served over loopback HTTP, generates through the OpenAI backend."""
    app = build_app(bundled_backend)
    prompt = PromptInput(
        messages=(ChatMessage("user", "Write a SQL query that counts the rows of table singer."),)
    )
    with serve(app) as url:
        backend = OpenAIBackend(url, bundled_backend.model_id)
        greedy = backend.generate(prompt, SamplingParams(n=1, max_new_tokens=16))
        direct = bundled_backend.generate(prompt, SamplingParams(n=1, max_new_tokens=16))
        streamed: list[str] = []
        sampled = backend.generate(
            prompt,
            SamplingParams(n=2, temperature=0.8, max_new_tokens=12, seed=1),
            on_text=lambda i, t: streamed.append(t),
        )
    assert greedy[0].text and greedy[0].text == direct[0].text  # same model, same greedy text
    assert len(sampled) == 2 and all(c.text for c in sampled)
    assert "".join(streamed)


def test_factory_shares_one_instance_and_names_missing_settings() -> None:
    from sqlr1.mcp_server.backends.factory import load_backend
    from sqlr1.mcp_server.core.config import ModelConfig

    model = ScriptedBackend(TEXTS[:1])
    with serve(build_app(model)) as url:
        config = ModelConfig(backend="openai", base_url=url, model=model.model_id)
        first = load_backend(config)
        assert load_backend(ModelConfig(backend="openai", base_url=url, model=model.model_id)) is first
        assert first.generate(PROMPT, SamplingParams())[0].text == TEXTS[0]
    with pytest.raises(QueryFailed) as err:
        load_backend(ModelConfig(backend="openai", model="m"))
    assert err.value.error.kind == "config" and "base_url" in err.value.error.message
