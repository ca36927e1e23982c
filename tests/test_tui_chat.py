"""The chat driven through Textual's pilot over the real agent, MCP server and database.

The model is the per-turn scripted stand-in here (control flow); ``test_tui_real_model.py`` drives
the same app with the real bundled model.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import anyio
from agent_scripted import TurnScriptedBackend, sql_answer
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static, TextArea, Tree

from sqlr1.agent import Agent, embedded_server
from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig
from sqlr1.tui.app import ChatApp
from sqlr1.tui.history import InputHistory
from sqlr1.tui.screens.help import HelpScreen
from sqlr1.tui.screens.sql_editor import SqlEditorScreen
from sqlr1.tui.widgets.answer_view import AnswerView
from sqlr1.tui.widgets.prompt_input import PromptInput
from sqlr1.tui.widgets.result_table import ResultTable
from sqlr1.tui.widgets.schema_sidebar import SchemaSidebar

BROKEN_THEN_FIXED = [
    sql_answer("SELECT Nme FROM Artist"),
    sql_answer("SELECT Name, ArtistId FROM Artist ORDER BY ArtistId LIMIT 30"),
]


def make_app(
    db: Path,
    tmp_path: Path,
    model: TurnScriptedBackend,
    *,
    extra: dict[str, Path] | None = None,
    **kwargs: object,
) -> ChatApp:
    config = AppConfig(databases=[DatabaseConfig(name="chinook", target=str(db))])
    for name, path in (extra or {}).items():
        config.databases.append(DatabaseConfig(name=name, target=str(path)))
    config.generation.num_candidates = 2
    server = embedded_server(config, backend=model)
    return ChatApp(
        lambda: Agent.connect(server),
        model_label="scripted",
        history=InputHistory(tmp_path / "history.json"),
        export_dir=tmp_path / "exports",
        **kwargs,  # type: ignore[arg-type]
    )


async def wait_for(pilot: Pilot[None], predicate: Callable[[], object], timeout: float = 30.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await pilot.pause(0.05)


async def ask(pilot: Pilot[None], app: ChatApp, question: str, *, timeout: float = 30.0) -> AnswerView:
    await app.wait_until_ready()
    before = len(app.query(AnswerView))
    app.query_one(PromptInput).focus()
    await pilot.press(*question, "enter")
    await wait_for(pilot, lambda: len(app.query(AnswerView)) > before)
    view = app.query(AnswerView).last()
    await wait_for(pilot, lambda: view.answer is not None, timeout=timeout)
    await pilot.pause()
    return view


async def test_question_answer_table_and_self_correction(chinook_copy: Path, tmp_path: Path) -> None:
    app = make_app(chinook_copy, tmp_path, TurnScriptedBackend(BROKEN_THEN_FIXED))
    async with app.run_test(size=(100, 30)) as pilot:
        view = await ask(pilot, app, "List artists")
        assert view.answer is not None and view.answer.status == "ok"
        attempts = str(view.query_one(".attempts", Static).render())
        assert (
            "attempt 1: failed (execution): no such column: Nme" in attempts
            and "attempt 2: 30 rows" in attempts
        )
        table = view.query_one(ResultTable)
        assert table.table.row_count == 30 and len(table.table.columns) == 2
        assert table.table.get_row_at(0)[0] == "AC/DC"
        assert "30 rows" in str(table.query_one(".result-notice", Static).render())
        assert "ok in" in str(app.query_one("#status-text", Static).render())
        assert "2 attempts" in str(app.query_one("#status-text", Static).render())
        # the question is remembered in the persisted input history
        assert json.loads((tmp_path / "history.json").read_text(encoding="utf-8")) == ["List artists"]


async def test_export_copy_focus_and_toggle_keys(chinook_copy: Path, tmp_path: Path) -> None:
    app = make_app(chinook_copy, tmp_path, TurnScriptedBackend(BROKEN_THEN_FIXED[1:]), show_schema=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await ask(pilot, app, "List artists")
        await pilot.press("ctrl+s")
        assert app.last_export is not None and app.last_export.parent == tmp_path / "exports"
        with app.last_export.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["Name", "ArtistId"] and rows[1] == ["AC/DC", "1"] and len(rows) == 31

        await pilot.press("ctrl+o")
        assert app.clipboard == "SELECT Name, ArtistId FROM Artist ORDER BY ArtistId LIMIT 30"

        await pilot.press("ctrl+t")
        assert isinstance(app.focused, DataTable)

        sidebar = app.query_one(SchemaSidebar)
        assert not sidebar.has_class("-hidden")
        await pilot.press("ctrl+b")
        assert sidebar.has_class("-hidden")
        await pilot.press("ctrl+b")
        assert not sidebar.has_class("-hidden")

        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

        dark = app.current_theme.dark
        await pilot.press("f2")
        assert app.current_theme.dark is not dark

        await pilot.press("ctrl+n")
        await pilot.pause()
        assert not app.query(AnswerView) and app.agent is not None and len(app.agent.conversation) == 0


async def test_run_edited_sql_through_the_guard(chinook_copy: Path, tmp_path: Path) -> None:
    app = make_app(chinook_copy, tmp_path, TurnScriptedBackend(BROKEN_THEN_FIXED[1:]))
    async with app.run_test(size=(100, 30)) as pilot:
        await ask(pilot, app, "List artists")
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, SqlEditorScreen)
        editor = app.screen.query_one("#sql-editor", TextArea)
        assert editor.text.startswith("SELECT Name, ArtistId FROM Artist")
        editor.load_text("SELECT count(*) AS n FROM Album")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.query(AnswerView)) == 2 and app.query(AnswerView).last().answer)
        view = app.query(AnswerView).last()
        assert view.answer is not None and view.answer.status == "ok"
        assert [str(c) for c in view.query_one(ResultTable).table.get_row_at(0)] == ["347"]

        await pilot.press("ctrl+r")
        app.screen.query_one("#sql-editor", TextArea).load_text("DELETE FROM Album")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.query(AnswerView)) == 3 and app.query(AnswerView).last().answer)
        blocked = app.query(AnswerView).last()
        assert blocked.answer is not None and blocked.answer.error is not None
        assert blocked.answer.error.kind == "blocked"
        assert "refused by the read-only guard" in str(blocked.query_one(".notice.refused", Static).render())


async def test_history_up_down_persisted(chinook_copy: Path, tmp_path: Path) -> None:
    (tmp_path / "history.json").write_text(json.dumps(["old question"]), encoding="utf-8")
    app = make_app(chinook_copy, tmp_path, TurnScriptedBackend([sql_answer("SELECT 1")]))
    async with app.run_test(size=(100, 30)) as pilot:
        await ask(pilot, app, "new question")
        prompt = app.query_one(PromptInput)
        await pilot.press("up")
        assert prompt.text == "new question"
        await pilot.press("up")
        assert prompt.text == "old question"
        await pilot.press("down", "down")
        assert prompt.text == ""
        await pilot.press(*"two", "ctrl+j", *"lines")
        assert prompt.text == "two\nlines"
    assert InputHistory(tmp_path / "history.json").entries == ["old question", "new question"]


async def test_cancel_key_stops_the_model(chinook_copy: Path, tmp_path: Path) -> None:
    slow = TurnScriptedBackend([sql_answer("SELECT 1", think=" ".join(["hmm"] * 500))], delay_s=0.05)
    app = make_app(chinook_copy, tmp_path, slow)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.wait_until_ready()
        await pilot.press(*"anything", "enter")
        await wait_for(pilot, lambda: app.busy and slow.prompts)
        await pilot.press("escape")
        await wait_for(
            pilot, lambda: app.query(AnswerView) and app.query(AnswerView).last().answer, timeout=15
        )
        view = app.query(AnswerView).last()
        assert view.answer is not None and view.answer.status == "cancelled"
        assert app.query(".notice.cancelled")
        assert slow.stopped.wait(10)


async def test_schema_sidebar_filter_and_database_switch(
    chinook_copy: Path, tmp_path: Path, spider_copy: Callable[[str], Path]
) -> None:
    singer = spider_copy("concert_singer")
    app = make_app(
        chinook_copy,
        tmp_path,
        TurnScriptedBackend([sql_answer("SELECT 1")]),
        extra={"concert_singer": singer},
        show_schema=True,
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await app.wait_until_ready()
        tree = app.query_one("#schema-tree", Tree)
        assert len(tree.root.children) == 11
        app.query_one("#schema-filter", Input).focus()
        await pilot.press(*"album")
        await pilot.pause()
        names = [str(n.data) for n in tree.root.children]
        assert names == ["Album", "Track"]  # Track matches through its AlbumId column
        assert [str(c.data) for c in tree.root.children[1].children] == ["Track.AlbumId"]

        select = app.query_one("#db-select", Select)
        select.value = "concert_singer"
        await wait_for(pilot, lambda: app.agent is not None and app.agent.database == "concert_singer")
        await wait_for(
            pilot,
            lambda: (s := app.query_one(SchemaSidebar).schema) is not None and s.database == "concert_singer",
        )
        app.query_one("#schema-filter", Input).value = ""
        await pilot.pause()
        assert sorted(str(n.data) for n in tree.root.children) == [
            "concert",
            "singer",
            "singer_in_concert",
            "stadium",
        ]
        assert "concert_singer" in str(app.query_one("#status-text", Static).render())
