"""OpenAI-compatible chat-completions backend (vLLM serve, SGLang, llama.cpp server, Ollama, ...).

Owns the HTTP protocol only: request shape (``n``, temperature, top_p, max_tokens, seed, stop,
logprobs), optional SSE streaming, and mapping choices to :class:`Completion`. Servers that
ignore ``n`` or reject ``logprobs`` are handled by topping up with more requests / retrying
without logprobs. An assistant pre-fill is sent as a final assistant message with vLLM's
``continue_final_message`` extension.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal

import httpx2 as httpx

from sqlr1.mcp_server.backends.base import Completion, PromptInput, SamplingParams, TokenCallback
from sqlr1.mcp_server.core.errors import QueryFailed

__all__ = ["OpenAIBackend"]

_FinishReason = Literal["stop", "length", "cancelled"]


class OpenAIBackend:
    """A model served behind ``{base_url}/chat/completions``. Thread-safe (httpx clients are)."""

    name = "openai"
    has_chat_template = True  # the server applies its own template

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 600.0,
        logprobs: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_id = model
        self._logprobs = logprobs
        self._logprobs_lock = threading.Lock()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            transport=transport,
        )

    # -- Backend --------------------------------------------------------------
    def generate(
        self,
        prompt: PromptInput,
        params: SamplingParams,
        *,
        on_text: TokenCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        """``params.n`` completions; raises ``QueryFailed`` (kind ``config``) when the server is unusable."""
        stream = on_text is not None or should_stop is not None
        out: list[Completion] = []
        # Servers that ignore ``n`` (llama.cpp, Ollama) return fewer choices: ask again for the rest.
        for _ in range(params.n):
            missing = params.n - len(out)
            if missing <= 0:
                break
            cb = _shifted(on_text, len(out))
            got = self._request(prompt, params, missing, stream=stream, on_text=cb, should_stop=should_stop)
            if not got:
                raise QueryFailed.of("config", f"model server {self.base_url} returned no choices")
            out.extend(got)
            if any(c.finish_reason == "cancelled" for c in got):
                break
        while len(out) < params.n:
            out.append(Completion(text="", num_tokens=0, finish_reason="cancelled"))
        return out[: params.n]

    def close(self) -> None:
        self._client.close()

    # -- HTTP -----------------------------------------------------------------
    def _body(self, prompt: PromptInput, params: SamplingParams, n: int, *, stream: bool) -> dict[str, Any]:
        messages: list[dict[str, str]] = [{"role": m.role, "content": m.content} for m in prompt.messages]
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p if params.temperature > 0 else 1.0,
            "max_tokens": params.max_new_tokens,
        }
        if prompt.assistant_prefill:
            messages.append({"role": "assistant", "content": prompt.assistant_prefill})
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if self._logprobs:
            body["logprobs"] = True
        if stream:
            body["stream"] = True
        return body

    def _request(
        self,
        prompt: PromptInput,
        params: SamplingParams,
        n: int,
        *,
        stream: bool,
        on_text: TokenCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> list[Completion]:
        for attempt in range(2):
            body = self._body(prompt, params, n, stream=stream)
            try:
                if stream:
                    return self._streamed(body, n, on_text, should_stop)
                resp = self._client.post("/chat/completions", json=body)
                self._check(resp)
                return self._parse(resp.json(), n)
            except _LogprobsRejected:
                if attempt == 0:
                    with self._logprobs_lock:
                        self._logprobs = False
                    continue
                raise
            except httpx.ConnectError as exc:
                raise QueryFailed.of(
                    "config",
                    f"cannot reach the OpenAI-compatible server at {self.base_url} ({exc}); "
                    "check model.base_url and that the server is running",
                ) from exc
            except httpx.TimeoutException as exc:
                raise QueryFailed.of(
                    "timeout", f"the model server at {self.base_url} did not answer in time: {exc}"
                ) from exc
        raise QueryFailed.of("config", f"{self.base_url}: request failed")

    def _check(self, resp: httpx.Response) -> None:
        if resp.status_code < 400:
            return
        resp.read()
        text = resp.text[:500]
        if resp.status_code in (400, 422) and self._logprobs and "logprob" in text.lower():
            raise _LogprobsRejected(text)
        hint = {
            401: "check model.api_key",
            403: "check model.api_key",
            404: f"check model.base_url (expects .../v1) and that model {self.model_id!r} is served",
        }.get(resp.status_code, "see the server's log")
        raise QueryFailed.of(
            "config", f"model server {self.base_url} answered HTTP {resp.status_code}: {text} ({hint})"
        )

    def _parse(self, data: dict[str, Any], n: int) -> list[Completion]:
        choices = sorted(data.get("choices", []), key=lambda c: c.get("index", 0))
        usage = data.get("usage") or {}
        per_choice_tokens = int(usage.get("completion_tokens", 0)) // max(1, len(choices))
        out = []
        for ch in choices[:n]:
            text = (ch.get("message") or {}).get("content") or ""
            lp_items = ((ch.get("logprobs") or {}).get("content")) or []
            logprob = sum(float(t["logprob"]) for t in lp_items) if lp_items else None
            out.append(
                Completion(
                    text=text,
                    num_tokens=len(lp_items) if lp_items else per_choice_tokens,
                    logprob=logprob,
                    finish_reason=_finish(ch.get("finish_reason")),
                )
            )
        return out

    def _streamed(
        self,
        body: dict[str, Any],
        n: int,
        on_text: TokenCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> list[Completion]:
        texts = [""] * n
        tokens = [0] * n
        logprobs: list[float | None] = [None] * n
        finish: list[_FinishReason] = ["stop"] * n
        cancelled = False
        with self._client.stream("POST", "/chat/completions", json=body) as resp:
            self._check(resp)
            for chunk in _sse(resp.iter_lines()):
                if should_stop is not None and should_stop():
                    cancelled = True
                    break
                for ch in chunk.get("choices", []):
                    i = int(ch.get("index", 0))
                    if i >= n:
                        continue
                    delta = (ch.get("delta") or {}).get("content") or ""
                    if delta:
                        texts[i] += delta
                        if on_text is not None:
                            on_text(i, delta)
                    lp_items = ((ch.get("logprobs") or {}).get("content")) or []
                    if lp_items:
                        logprobs[i] = (logprobs[i] or 0.0) + sum(float(t["logprob"]) for t in lp_items)
                        tokens[i] += len(lp_items)
                    elif delta:
                        tokens[i] += 1  # one streamed delta is one token on vLLM/llama.cpp
                    if ch.get("finish_reason"):
                        finish[i] = _finish(ch["finish_reason"])
        if cancelled:
            finish = ["cancelled"] * n
        return [
            Completion(text=texts[i], num_tokens=tokens[i], logprob=logprobs[i], finish_reason=finish[i])
            for i in range(n)
        ]


class _LogprobsRejected(Exception):
    """The server does not support ``logprobs``; retried once without it."""


def _shifted(on_text: TokenCallback | None, offset: int) -> TokenCallback | None:
    """Candidate indexes of a top-up request continue after the choices already received."""
    if on_text is None:
        return None
    callback = on_text
    return lambda i, text: callback(i + offset, text)


def _finish(reason: object) -> _FinishReason:
    return "length" if reason == "length" else "stop"


def _sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        if payload:
            yield json.loads(payload)
