"""A tiny OpenAI-compatible server for tests: ``/v1/chat/completions`` over any of our Backends.

It lets the OpenAI backend be exercised over real HTTP (loopback, uvicorn) against a real model
(the bundled SmolLM2 through the transformers backend), including ``n``, streaming (SSE),
``logprobs`` and vLLM's ``continue_final_message`` pre-fill extension. Not a product: test use only.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from sqlr1.mcp_server.backends.base import Backend, ChatMessage, Completion, PromptInput, SamplingParams


def build_app(
    backend: Backend, *, api_key: str | None = None, support_n: bool = True, support_logprobs: bool = True
) -> Starlette:
    """``support_n=False`` imitates servers that ignore ``n`` (one choice per request);
    ``support_logprobs=False`` those that reject ``logprobs`` with HTTP 400."""
    lock = threading.Lock()
    seen: list[dict[str, Any]] = []

    def parse(body: dict[str, Any]) -> tuple[PromptInput, SamplingParams]:
        msgs = list(body["messages"])
        prefill = ""
        if body.get("continue_final_message") and msgs and msgs[-1]["role"] == "assistant":
            prefill = msgs.pop()["content"]
        prompt = PromptInput(
            messages=tuple(ChatMessage(m["role"], m["content"]) for m in msgs), assistant_prefill=prefill
        )
        stop = body.get("stop") or ()
        params = SamplingParams(
            n=int(body.get("n", 1)) if support_n else 1,
            temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)),
            max_new_tokens=int(body.get("max_tokens", 16)),
            seed=body.get("seed"),
            stop=tuple([stop] if isinstance(stop, str) else stop),
        )
        return prompt, params

    def choice_logprobs(c: Completion, want: bool) -> dict[str, Any] | None:
        if not want or c.logprob is None:
            return None
        # Our Completion carries the sum only: report it as one entry so the sum is preserved.
        return {"content": [{"token": "", "logprob": c.logprob, "top_logprobs": []}]}

    async def completions(request: Request) -> Any:
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
        body = await request.json()
        seen.append(body)
        if body.get("model") != backend.model_id:
            return JSONResponse(
                {"error": {"message": f"model {body.get('model')!r} not found"}}, status_code=404
            )
        if body.get("logprobs") and not support_logprobs:
            return JSONResponse({"error": {"message": "logprobs is not supported"}}, status_code=400)
        prompt, params = parse(body)
        want_lp = bool(body.get("logprobs"))
        created = int(time.time())
        if not body.get("stream"):

            def run() -> list[Completion]:
                with lock:
                    return backend.generate(prompt, params)

            outs = await anyio.to_thread.run_sync(run)
            return JSONResponse(
                {
                    "id": "cmpl-test",
                    "object": "chat.completion",
                    "created": created,
                    "model": backend.model_id,
                    "choices": [
                        {
                            "index": i,
                            "message": {"role": "assistant", "content": c.text},
                            "finish_reason": c.finish_reason,
                            "logprobs": choice_logprobs(c, want_lp),
                        }
                        for i, c in enumerate(outs)
                    ],
                    "usage": {"completion_tokens": sum(c.num_tokens for c in outs)},
                }
            )

        events: queue.Queue[dict[str, Any] | None] = queue.Queue()

        def produce() -> None:
            def on_text(i: int, text: str) -> None:
                events.put({"choices": [{"index": i, "delta": {"content": text}, "finish_reason": None}]})

            try:
                with lock:
                    outs = backend.generate(prompt, params, on_text=on_text)
                for i, c in enumerate(outs):
                    events.put(
                        {
                            "choices": [
                                {
                                    "index": i,
                                    "delta": {},
                                    "finish_reason": c.finish_reason,
                                    "logprobs": choice_logprobs(c, want_lp),
                                }
                            ]
                        }
                    )
            finally:
                events.put(None)

        threading.Thread(target=produce, daemon=True).start()

        async def stream() -> AsyncIterator[bytes]:
            while True:
                item = await anyio.to_thread.run_sync(events.get)
                if item is None:
                    yield b"data: [DONE]\n\n"
                    return
                item |= {"object": "chat.completion.chunk", "model": backend.model_id, "created": created}
                yield f"data: {json.dumps(item)}\n\n".encode()

        return StreamingResponse(stream(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    app.state.seen = seen
    return app


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run ``app`` on a free loopback port in a thread; yields the ``/v1`` base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test OpenAI-compatible server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
