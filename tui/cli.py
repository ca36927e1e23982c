"""``sqlr1 chat``: open the Textual chat on the configured databases and model.

Registered through the ``sqlr1.commands`` entry point group; the connection flags are the agent's
(``agent.cli.add_connection_args``), so ``chat`` and ``ask`` reach the same server the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["cmd_chat", "register"]


def register(subparsers: Any) -> None:
    from sqlr1.agent.cli import add_connection_args

    p = subparsers.add_parser(
        "chat",
        help="chat with your data (Textual UI: questions → SQL → results, with self-correction)",
        description="Ask questions in plain words; the model writes SQL, the server runs it read-only, "
        "and failed attempts are corrected. F1 inside shows every key.",
    )
    add_connection_args(p)
    p.add_argument("--theme", choices=["dark", "light"], help="colour theme (default: dark)")
    p.add_argument(
        "--export-dir", metavar="DIR", help="where ctrl+s writes CSV files (default: current directory)"
    )
    p.add_argument("--no-history", action="store_true", help="do not read or save the input history")
    p.set_defaults(handler=cmd_chat)


def cmd_chat(args: argparse.Namespace) -> int:
    from sqlr1.agent.cli import agent_source, model_description
    from sqlr1.tui.app import ChatApp
    from sqlr1.tui.history import InputHistory, default_history_path

    label, note = model_description(args)
    opener, _ = agent_source(args)
    history = InputHistory(None if args.no_history else default_history_path())
    theme = {"dark": "textual-dark", "light": "textual-light"}.get(args.theme or "")
    app = ChatApp(
        opener,
        model_label=label,
        model_note=note,
        history=history,
        export_dir=Path(args.export_dir) if args.export_dir else None,
        theme=theme,
    )
    app.run()
    return 0
