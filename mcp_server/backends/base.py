"""The one interface every model backend implements (transformers, vLLM, OpenAI-compatible).

A backend turns a rendered chat prompt into N sampled completions in one batched
call. It knows nothing about SQL, databases or voting: that is ``inference/generation.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sqlr1.mcp_server.method.prompt import ChatMessage, PromptInput  # the prompt's types (method layer)

__all__ = [
    "RUNAWAY_SLACK",
    "Backend",
    "ChatMessage",
    "CodeBlock",
    "Completion",
    "PromptInput",
    "SamplingParams",
    "block_end",
    "find_stop",
    "stop_index",
]


@dataclass(frozen=True)
class CodeBlock:
    """The fenced block a completion ends with (the SQL): once ``opener`` appears, a backend that
    supports grammars decodes the rest under ``grammar`` (GBNF whose ``root`` starts with ``opener``
    and whose ``body`` is what follows it, up to ``closer``), and every backend ends the candidate
    where ``closer`` closes the block (a backend that decodes grammars says ``supports_grammar = True``).
    ``opened``: the prompt's pre-fill already holds the opener, so
    the completion starts inside the block (under ``body``)."""

    opener: str = "```sql\n"
    closer: str = "```"
    grammar: str | None = None
    opened: bool = False


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    max_new_tokens: int = 1024
    seed: int | None = None
    stop: tuple[str, ...] = ()
    block: CodeBlock | None = None
    # Once half of the candidates are done, one that runs past this many times the longest done one (plus
    # RUNAWAY_SLACK tokens) is ended ("length"): a batched decode lasts as long as its longest candidate,
    # and a sample that rambles to max_new_tokens is never an answer. None: every candidate runs to its end.
    runaway_factor: float | None = None


RUNAWAY_SLACK = 32


@dataclass
class Completion:
    text: str  # the generated text only (the pre-fill is NOT included)
    num_tokens: int
    logprob: float | None = None  # sum of token log-probabilities, when the backend knows it
    finish_reason: Literal["stop", "length", "cancelled"] = "stop"
    extra: dict[str, object] = field(default_factory=dict)


TokenCallback = Callable[[int, str], None]  # (candidate index, new text) for streaming


class Backend(Protocol):
    """A loaded model. One instance per process, shared by all requests (thread-safe)."""

    name: str  # "transformers" | "vllm" | "openai"
    model_id: str  # what was loaded (path or id)
    has_chat_template: bool

    def generate(
        self,
        prompt: PromptInput,
        params: SamplingParams,
        *,
        on_text: TokenCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        """Return ``params.n`` completions for one prompt in one batched call.

        ``on_text`` streams text as it is produced; ``should_stop`` is polled so a
        user cancel stops generation (the completions then end with ``cancelled``).
        """
        ...

    def close(self) -> None: ...


def find_stop(text: str, stops: Sequence[str], search_from: int) -> int | None:
    """End index of the earliest stop string in ``text`` (the stop string is kept)."""
    best: int | None = None
    for s in stops:
        i = text.find(s, search_from)
        if i >= 0 and (best is None or i + len(s) < best):
            best = i + len(s)
    return best


def block_end(text: str, block: CodeBlock | None) -> int | None:
    """End index of ``block``'s closer after its first opener in ``text`` (``None``: not closed yet)."""
    if block is None:
        return None
    start = 0 if block.opened else text.find(block.opener)
    if start < 0:
        return None
    end = text.find(block.closer, start + (0 if block.opened else len(block.opener)))
    return None if end < 0 else end + len(block.closer)


def stop_index(text: str, params: SamplingParams, search_from: int = 0) -> int | None:
    """Where a completion ends: after the earliest stop string (from ``search_from``) or the closer of
    ``params.block``, whichever comes first (``None``: it goes on)."""
    stop_at = find_stop(text, params.stop, search_from)
    closed = block_end(text, params.block)
    if closed is not None and (stop_at is None or closed < stop_at):
        return closed
    return stop_at
