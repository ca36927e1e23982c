"""Make docs/chat.png: a real ``sqlr1 chat`` session (the default model, default settings) answering
one question on the bundled Chinook, with its real time in the status line.

The app is built from the same flags as ``sqlr1 chat`` and driven headless by Textual's pilot; the
screen is saved as SVG and turned into PNG with ``rsvg-convert`` (Debian's ``librsvg2-bin``; the SVG
stays beside it when that is missing). The model warms up the schema prefix first, as the chat does when it
starts, so the time shown is what a user sees once the chat is ready.

    PYTHONPATH=. python docs/chat_screenshot.py ["QUESTION"] [--size 120x34]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio

DOCS = Path(__file__).resolve().parent
QUESTION = "Which artist has released the most albums?"


async def main(question: str, width: int, height: int) -> None:
    from sqlr1.agent.cli import agent_source, model_description
    from sqlr1.mcp_server.cli.main import build_parser
    from sqlr1.tui.app import ChatApp
    from sqlr1.tui.history import InputHistory
    from sqlr1.tui.widgets.answer_view import AnswerView
    from sqlr1.tui.widgets.prompt_input import PromptInput

    args = build_parser().parse_args(["chat", "--no-history"])
    label, note = model_description(args)
    opener, _ = agent_source(args)  # starts warming the model and the schema prefix, as `sqlr1 chat` does
    app = ChatApp(opener, model_label=label, model_note=note, history=InputHistory(None))
    async with app.run_test(size=(width, height)) as pilot:
        await app.wait_until_ready()
        started = time.perf_counter()
        while any(t.name == "sqlr1-warm" for t in threading.enumerate()):  # model + schema prefix
            await pilot.pause(1.0)
        print(f"warm-up: {time.perf_counter() - started:.1f} s")
        app.query_one(PromptInput).focus()
        await pilot.press(*question, "enter")
        await pilot.pause(0.5)
        view = app.query(AnswerView).last()
        while view.answer is None:
            await pilot.pause(0.5)
        await pilot.pause(1.0)
        svg = DOCS / "chat.svg"
        app.save_screenshot(str(svg))
    print(f"answer: {view.answer.status} in {view.answer.elapsed_ms / 1000:.1f} s: {view.answer.sql}")
    if shutil.which("rsvg-convert"):
        png = DOCS / "chat.png"
        subprocess.run(
            ["rsvg-convert", "--dpi-x", "110", "--dpi-y", "110", "-o", str(png), str(svg)], check=True
        )
        svg.unlink()
        print(f"wrote {png}")
    else:
        print(f"wrote {svg} (apt-get install librsvg2-bin to make the PNG)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("question", nargs="?", default=QUESTION)
    parser.add_argument("--size", default="120x34")
    ns = parser.parse_args()
    w, h = (int(x) for x in ns.size.split("x"))
    sys.exit(anyio.run(main, ns.question, w, h))
