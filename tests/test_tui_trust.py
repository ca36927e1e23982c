"""The chat as a person meets it at 80×24 (issue 19): how sure each answer is, a status line in plain
words, and the bugs found driving it in tmux, each pinned here through Textual's pilot over the real
agent, MCP server and database (the model is the scripted stand-in; control flow only).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent_scripted import TurnScriptedBackend, sql_answer
from test_tui_chat import ask, make_app, wait_for
from textual.color import Color
from textual.geometry import Region
from textual.widgets import Collapsible, Input, Static

from sqlr1.mcp_server.backends.base import Completion, PromptInput, SamplingParams
from sqlr1.tui.screens.help import HelpScreen
from sqlr1.tui.screens.sql_editor import SqlEditorScreen
from sqlr1.tui.widgets.answer_view import AnswerView
from sqlr1.tui.widgets.prompt_input import PLACEHOLDER
from sqlr1.tui.widgets.prompt_input import PromptInput as Prompt
from sqlr1.tui.widgets.schema_sidebar import SchemaSidebar
from sqlr1.tui.widgets.sql_view import SqlView

SIZE = (80, 24)
EACH = "How many tracks does each genre have?"


def status_text(app: object) -> str:
    return str(app.query_one("#status-text", Static).render())  # type: ignore[attr-defined]


def notifications(app: object) -> list[str]:
    return [n.message for n in app._notifications]  # type: ignore[attr-defined]


async def test_doubtful_answer_is_shown_as_doubtful(chinook_copy: Path, tmp_path: Path) -> None:
    app = make_app(chinook_copy, tmp_path, TurnScriptedBackend([sql_answer("SELECT count(*) FROM Track")]))
    async with app.run_test(size=SIZE) as pilot:
        view = await ask(pilot, app, EACH)
        assert view.answer is not None and view.answer.confidence is not None
        assert view.answer.confidence.level == "doubtful"
        line = str(view.query_one(".confidence", Static).render())
        assert line.startswith("? doubtful: the question asks for a value per group")
        assert "1 of 2 candidate(s) agree" not in line  # both scripted candidates agree: 2 of 2
        assert "2 of 2 candidate(s) agree" in line
        assert view.query_one(".confidence").has_class("doubtful")
        assert "doubtful in" in status_text(app) and "ok in" not in status_text(app)
        attempts = str(view.query_one(".attempts", Static).render())
        assert attempts.splitlines() == [
            "attempt 1: 1 row, looks wrong (the question asks for a value per group, but the result has one row)",
            "attempt 2: 1 row, kept as doubtful",
        ]


async def test_ok_answer_says_what_it_rests_on(chinook_copy: Path, tmp_path: Path) -> None:
    app = make_app(chinook_copy, tmp_path, TurnScriptedBackend([sql_answer("SELECT count(*) FROM Track")]))
    async with app.run_test(size=SIZE) as pilot:
        view = await ask(pilot, app, "How many tracks are there?")
        line = str(view.query_one(".confidence", Static).render())
        assert line == "✓ ok · 2 of 2 candidate(s) agree · shape fits the question · 1 attempt"
        assert "ok in" in status_text(app)


async def test_refusal_is_labelled_refused_with_the_rule(chinook_copy: Path, tmp_path: Path) -> None:
    from sqlr1.agent import Agent, AgentSettings, embedded_server
    from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig
    from sqlr1.tui.app import ChatApp
    from sqlr1.tui.history import InputHistory

    config = AppConfig(databases=[DatabaseConfig(name="chinook", target=str(chinook_copy))])
    server = embedded_server(config, backend=TurnScriptedBackend([sql_answer("DELETE FROM Artist")]))
    app = ChatApp(
        lambda: Agent.connect(server, settings=AgentSettings(max_turns=1)),
        model_label="scripted",
        history=InputHistory(tmp_path / "h.json"),
    )
    async with app.run_test(size=SIZE) as pilot:
        view = await ask(pilot, app, "Remove all artists")
        attempts = str(view.query_one(".attempts", Static).render())
        assert "attempt 1: refused (read-only guard, rule" in attempts and "failed" not in attempts
        notice = str(view.query_one(".notice.refused", Static).render())
        assert notice.startswith("⊘ refused: refused by the read-only guard (rule ")
        assert "refused in" in status_text(app) and "failed" not in status_text(app)


async def test_status_line_speaks_plainly_with_elapsed_time(chinook_copy: Path, tmp_path: Path) -> None:
    slow = TurnScriptedBackend([sql_answer("SELECT 1", think=" ".join(["hmm"] * 120))], delay_s=0.03)
    app = make_app(chinook_copy, tmp_path, slow)
    app.model_label = "SmolLM2-135M (bundled)"  # what the status line said while another model ran
    seen: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_ready()
        app.query_one(Prompt).focus()
        await pilot.press(*"anything", "enter")
        with_tokens = re.compile(r"thinking · \d+ s · \d+ tokens")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (seen and with_tokens.search(seen[-1])):
            seen.append(status_text(app))
            await pilot.pause(0.1)
        assert any(with_tokens.search(s) for s in seen), seen[-5:]
        assert not any("prompt ready" in s or "sampling" in s for s in seen)
        assert "escape cancels" in seen[-1]
        await wait_for(pilot, lambda: not app.busy)
        # the status line names the model and runtime the server really ran, not the configured label
        final = status_text(app)
        assert "scripted-stand-in · scripted" in final and "SmolLM2" not in final


async def test_cancel_keeps_the_partial_reasoning(chinook_copy: Path, tmp_path: Path) -> None:
    slow = TurnScriptedBackend([sql_answer("SELECT 1", think=" ".join(["hmm"] * 500))], delay_s=0.05)
    app = make_app(chinook_copy, tmp_path, slow)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_ready()
        await pilot.press(*"anything", "enter")
        await wait_for(
            pilot, lambda: app.query(AnswerView) and "hmm hmm" in app.query(AnswerView).last()._reasoning
        )
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.query(AnswerView).last().answer is not None, timeout=15)
        view = app.query(AnswerView).last()
        assert view.answer is not None and view.answer.status == "cancelled"
        box = view.query_one(".reasoning", Collapsible)
        assert box.display and not box.collapsed and "cancelled" in str(box.title)
        assert "hmm hmm" in str(view.query_one(".reasoning-text", Static).render())


class SplitTagBackend:
    """Streams ``<think>…</`` then stops until released, so the chat sees a closing tag cut by the stream."""

    name = "scripted"
    model_id = "split-tag"
    has_chat_template = False

    def __init__(self) -> None:
        self.release = threading.Event()

    def generate(
        self,
        prompt: PromptInput,
        params: SamplingParams,
        *,
        on_text: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        text = sql_answer("SELECT 1", think="I read the schema.")
        cut = text.index("</think>") + 2  # "...schema.\n</"
        for piece in (text[:cut],):
            if on_text is not None:
                time.sleep(0.6)  # past the progress throttle, so this text is reported
                on_text(0, piece)
        self.release.wait(20)
        if on_text is not None:
            time.sleep(0.6)
            on_text(0, text[cut:])
        return [Completion(text=text, num_tokens=20) for _ in range(params.n)]

    def close(self) -> None:
        return None


async def test_a_closing_tag_cut_by_the_stream_is_not_shown(chinook_copy: Path, tmp_path: Path) -> None:
    backend = SplitTagBackend()
    app = make_app(chinook_copy, tmp_path, backend)  # type: ignore[arg-type]
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_ready()
        await pilot.press(*"anything", "enter")
        try:
            await wait_for(
                pilot, lambda: app.query(AnswerView) and "schema" in app.query(AnswerView).last()._reasoning
            )
            shown = str(app.query(AnswerView).last().query_one(".reasoning-text", Static).render())
            assert shown == "I read the schema." and "<" not in shown
        finally:
            backend.release.set()
        await wait_for(pilot, lambda: not app.busy)


async def test_retry_notes_are_cut_at_a_word(chinook_copy: Path, tmp_path: Path) -> None:
    long_name = "this column name is deliberately long so that the error message must be shortened somewhere"
    model = TurnScriptedBackend([sql_answer(f"SELECT [{long_name}] FROM Artist"), sql_answer("SELECT 1")])
    app = make_app(chinook_copy, tmp_path, model)
    async with app.run_test(size=SIZE) as pilot:
        view = await ask(pilot, app, "Show it")
        lines = str(view.query_one(".attempts", Static).render()).splitlines()
        words = set(long_name.split()) | {"column:", "column", "such", "no"}
        assert len(lines) >= 2
        for line in lines:
            if line.endswith("…"):
                assert line[:-1].split()[-1].rstrip(",;:") in words, line  # a whole word, then "…"


async def test_sidebar_closed_while_its_filter_has_focus(chinook_copy: Path, tmp_path: Path) -> None:
    app = make_app(chinook_copy, tmp_path, TurnScriptedBackend([sql_answer("SELECT 1")]), show_schema=True)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_ready()
        app.query_one("#schema-filter", Input).focus()
        await pilot.press(*"alb")
        await pilot.press("ctrl+b")
        assert app.query_one(SchemaSidebar).has_class("-hidden")
        assert isinstance(app.focused, Prompt)
        await pilot.press(*"hi")
        assert app.query_one(Prompt).text == "hi"


def _near_white(colour: Color | None) -> bool:
    return colour is not None and colour.brightness > 0.85


async def test_f2_recolours_the_sql_for_the_light_theme(chinook_copy: Path, tmp_path: Path) -> None:
    app = make_app(
        chinook_copy, tmp_path, TurnScriptedBackend([sql_answer("SELECT Name FROM Artist LIMIT 3")])
    )
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, app, "List three artists")
        code = app.query_one(SqlView).query_one(".sql-code", Static)

        def foregrounds() -> list[Color | None]:
            strips = code.render_lines(Region(0, 0, code.size.width, code.size.height))
            return [
                Color.from_rich_color(seg.style.color) if seg.style and seg.style.color else None
                for s in strips
                for seg in s
                if seg.text.strip()
            ]

        assert app.current_theme.dark and any(_near_white(c) for c in foregrounds())
        await pilot.press("f2")
        await pilot.pause()
        assert not app.current_theme.dark
        assert not any(_near_white(c) for c in foregrounds()), "light text left on the light background"


async def test_help_close_hint_is_at_the_top(chinook_copy: Path, tmp_path: Path) -> None:
    app = make_app(chinook_copy, tmp_path, TurnScriptedBackend([sql_answer("SELECT 1")]))
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_ready()
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        title = app.screen.query_one("#help-title", Static)
        assert "escape" in str(title.render()) and "closes" in str(title.render())
        assert title.region.y < 5 and app.screen.region.contains_region(title.region)


async def test_placeholder_fits_at_80_columns(chinook_copy: Path, tmp_path: Path) -> None:
    app = make_app(chinook_copy, tmp_path, TurnScriptedBackend([sql_answer("SELECT 1")]))
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_ready()
        prompt = app.query_one(Prompt)
        assert prompt.placeholder == PLACEHOLDER
        assert prompt.content_region.width >= len(PLACEHOLDER)
        await pilot.pause()
        row = "".join(seg.text for seg in prompt.render_line(0))
        assert PLACEHOLDER in row


async def test_ctrl_a_selects_all_in_the_sql_editor(chinook_copy: Path, tmp_path: Path) -> None:
    app = make_app(
        chinook_copy, tmp_path, TurnScriptedBackend([sql_answer("SELECT Name FROM Artist LIMIT 3")])
    )
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, app, "List three artists")
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, SqlEditorScreen)
        editor = app.screen.query_one("#sql-editor")
        await pilot.press("ctrl+a")
        assert editor.selected_text == editor.text == "SELECT Name FROM Artist LIMIT 3"  # type: ignore[attr-defined]
        await pilot.press(*"SELECT 2")
        assert editor.text == "SELECT 2"  # type: ignore[attr-defined]


async def test_copy_says_what_it_did_not_what_it_cannot_know(chinook_copy: Path, tmp_path: Path) -> None:
    app = make_app(chinook_copy, tmp_path, TurnScriptedBackend([sql_answer("SELECT 1")]))
    async with app.run_test(size=SIZE) as pilot:
        await ask(pilot, app, "one")
        await pilot.press("ctrl+o")
        assert app.clipboard == "SELECT 1"
        said = notifications(app)[-1]
        assert "OSC 52" in said and "terminal must allow it" in said and "copied" not in said.lower()
