"""SVG snapshots of the chat's main screens at 80×24 (pytest-textual-snapshot).

Update after an intended visual change with ``pytest tests/test_tui_snapshots.py --snapshot-update``
and look at the SVGs under ``tests/__snapshots__/test_tui_snapshots/``. Timings are hidden
(``show_timings=False``) so the pixels do not depend on the machine's speed; the model is the
per-turn scripted stand-in (the real model's text is not deterministic across machines).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent_scripted import TurnScriptedBackend, sql_answer
from test_tui_chat import BROKEN_THEN_FIXED, ask, make_app, wait_for
from textual.pilot import Pilot
from textual.widgets import Input

from sqlr1.tui.app import ChatApp
from sqlr1.tui.widgets.prompt_input import PromptInput


def _app(db: Path, tmp_path: Path, **kwargs: Any) -> ChatApp:
    return make_app(db, tmp_path, TurnScriptedBackend(BROKEN_THEN_FIXED), show_timings=False, **kwargs)


def _steady(app: ChatApp) -> None:
    # a blinking cursor would make the pixels depend on timing
    app.query_one(PromptInput).cursor_blink = False
    for box in app.query(Input):
        box.cursor_blink = False


async def _ready(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, ChatApp)
    _steady(app)
    await app.wait_until_ready()
    await pilot.pause()


async def _answered(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, ChatApp)
    _steady(app)
    await ask(pilot, app, "List artists")
    await wait_for(pilot, lambda: not app.busy)
    await pilot.pause(0.3)
    await pilot.wait_for_scheduled_animations()
    await pilot.pause(0.3)


def test_welcome_screen(snap_compare, chinook_copy: Path, tmp_path: Path) -> None:
    assert snap_compare(_app(chinook_copy, tmp_path), terminal_size=(80, 24), run_before=_ready)


def test_answer_after_self_correction_dark(snap_compare, chinook_copy: Path, tmp_path: Path) -> None:
    assert snap_compare(_app(chinook_copy, tmp_path), terminal_size=(80, 24), run_before=_answered)


def test_answer_light_theme(snap_compare, chinook_copy: Path, tmp_path: Path) -> None:
    app = _app(chinook_copy, tmp_path, theme="textual-light")
    assert snap_compare(app, terminal_size=(80, 24), run_before=_answered)


def test_help_screen(snap_compare, chinook_copy: Path, tmp_path: Path) -> None:
    assert snap_compare(_app(chinook_copy, tmp_path), terminal_size=(80, 24), run_before=_ready, press=["f1"])


def test_schema_sidebar_filtered(snap_compare, chinook_copy: Path, tmp_path: Path) -> None:
    async def filtered(pilot: Pilot[None]) -> None:
        await _ready(pilot)
        await pilot.press("ctrl+b")
        pilot.app.query_one("#schema-filter", Input).focus()
        await pilot.press(*"album")
        await pilot.pause(0.3)
        await pilot.wait_for_scheduled_animations()

    assert snap_compare(_app(chinook_copy, tmp_path), terminal_size=(80, 24), run_before=filtered)


def test_doubtful_answer(snap_compare, chinook_copy: Path, tmp_path: Path) -> None:
    """A shape mismatch that survives its retry: shown as doubtful, with why, not as "ok"."""

    async def doubtful(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, ChatApp)
        _steady(app)
        await ask(pilot, app, "How many tracks does each genre have?")
        await wait_for(pilot, lambda: not app.busy)
        await pilot.pause(0.3)
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.3)

    app = make_app(
        chinook_copy,
        tmp_path,
        TurnScriptedBackend([sql_answer("SELECT count(*) AS tracks FROM Track")]),
        show_timings=False,
    )
    assert snap_compare(app, terminal_size=(80, 24), run_before=doubtful)


def test_answer_after_f2_dark_to_light(snap_compare, chinook_copy: Path, tmp_path: Path) -> None:
    """F2 from dark to light recolours the SQL already on screen (no white text on a light background)."""

    async def switched(pilot: Pilot[None]) -> None:
        await _answered(pilot)
        await pilot.press("f2")
        await pilot.pause(0.3)

    script = [sql_answer("SELECT Name, Title FROM Album JOIN Artist USING (ArtistId) LIMIT 3")]
    app = make_app(chinook_copy, tmp_path, TurnScriptedBackend(script), show_timings=False)
    assert snap_compare(app, terminal_size=(80, 24), run_before=switched)
