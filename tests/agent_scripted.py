"""A per-turn scripted model stand-in for control-flow tests of the agent and the chat.

Unlike ``scripted_backend.ScriptedBackend`` (same texts on every call), the i-th ``generate`` call
answers with the i-th script entry, so a test can script "broken query, then the fix"; it streams
word by word and polls ``should_stop`` like a real backend. It implements the real ``Backend``
protocol, so everything around it is real: the MCP server and transport, ``generate_sql`` (prompt,
parser, guarded execution, vote) and the database. Never the only test of a feature: the real
bundled model runs in the slow tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from scripted_backend import answer

from sqlr1.mcp_server.backends.base import Completion, PromptInput, SamplingParams


def sql_answer(sql: str, think: str = "I look at the schema and write the query.") -> str:
    return answer(sql, think)


class TurnScriptedBackend:
    """Answers the i-th ``generate`` call with ``script[i]`` (the last entry repeats).

    ``delay_s`` is slept between streamed words, polling ``should_stop`` like a real backend.
    """

    name = "scripted"
    model_id = "scripted-stand-in"
    has_chat_template = False

    def __init__(self, script: Sequence[str] | Callable[[PromptInput], str], *, delay_s: float = 0.0) -> None:
        self.script = script
        self.delay_s = delay_s
        self.prompts: list[PromptInput] = []
        self.stopped = threading.Event()

    def _next(self, prompt: PromptInput) -> str:
        if callable(self.script):
            return self.script(prompt)
        return self.script[min(len(self.prompts) - 1, len(self.script) - 1)]

    def generate(
        self,
        prompt: PromptInput,
        params: SamplingParams,
        *,
        on_text: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        self.prompts.append(prompt)
        text = self._next(prompt)
        out = ""
        for word in text.split(" "):
            if should_stop is not None and should_stop():
                self.stopped.set()
                return [
                    Completion(text=out, num_tokens=len(out.split()), finish_reason="cancelled")
                ] * params.n
            piece = word if not out else " " + word
            out += piece
            if on_text is not None:
                on_text(0, piece)
            if self.delay_s:
                time.sleep(self.delay_s)
        return [Completion(text=text, num_tokens=len(text.split()), logprob=-1.0) for _ in range(params.n)]

    def close(self) -> None:
        return None

    def user_messages(self, i: int = -1) -> str:
        """All message text of the i-th prompt, for assertions on what the model was told."""
        return "\n".join(m.content for m in self.prompts[i].messages)
