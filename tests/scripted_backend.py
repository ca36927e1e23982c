"""A scripted Backend stand-in for unit tests of control flow (voting, HTTP plumbing, tools).

Never the only test of a feature: the real bundled model runs in the slow tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from sqlr1.mcp_server.backends.base import Completion, PromptInput, SamplingParams, TokenCallback


def answer(sql: str, think: str = "Reasoning.") -> str:
    """A well-formed SQL-R1 completion around ``sql``."""
    return f"<think>\n{think}\n</think>\n<answer>\n```sql\n{sql}\n```\n</answer>"


class ScriptedBackend:
    """Returns the scripted texts in order (cycling); records every call."""

    name = "scripted"
    model_id = "scripted-model"
    has_chat_template = True

    def __init__(
        self,
        texts: Sequence[str],
        logprobs: Sequence[float | None] | None = None,
        *,
        delay_s: float = 0.0,
        prompt_version: str | None = None,
        wait_for_stop: bool = False,
    ) -> None:
        self.texts = list(texts)
        self.logprobs = list(logprobs) if logprobs is not None else None
        self.delay_s = delay_s
        self.prompt_version = prompt_version
        self.wait_for_stop = wait_for_stop  # block (up to 20 s) until should_stop() turns true
        self.stopped = threading.Event()
        self.calls: list[tuple[PromptInput, SamplingParams]] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def generate(
        self,
        prompt: PromptInput,
        params: SamplingParams,
        *,
        on_text: TokenCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        with self._lock:
            self.calls.append((prompt, params))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.wait_for_stop and should_stop is not None:
                deadline = time.monotonic() + 20
                while not should_stop() and time.monotonic() < deadline:
                    time.sleep(0.01)
                if should_stop():
                    self.stopped.set()
            out = []
            for i in range(params.n):
                text = self.texts[i % len(self.texts)]
                if should_stop is not None and should_stop():
                    out.append(Completion(text="", num_tokens=0, finish_reason="cancelled"))
                    continue
                words = text.split(" ")
                if on_text is not None:
                    for j, w in enumerate(words):
                        on_text(i, w if j == 0 else " " + w)
                lp = self.logprobs[i % len(self.logprobs)] if self.logprobs else None
                out.append(Completion(text=text, num_tokens=len(words), logprob=lp))
            return out
        finally:
            with self._lock:
                self.active -= 1

    def close(self) -> None:
        return None
