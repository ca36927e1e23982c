"""A query result: a scrollable data table, its row count and a truncation notice; CSV export."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from sqlr1.mcp_server.core.results import QueryResult

__all__ = ["ResultTable", "write_csv"]


def write_csv(result: QueryResult, path: Path) -> Path:
    """Write the result's columns and rows (as shown: capped) to ``path`` as UTF-8 CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([c.name for c in result.columns])
        writer.writerows(["" if v is None else v for v in row] for row in result.rows)
    return path


def _cell(value: object) -> Text | str:
    if value is None:
        return Text("NULL", style="dim italic")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Text(str(value), justify="right")
    text = str(value)
    return text if len(text) <= 60 else text[:59] + "…"


class ResultTable(Vertical):
    """Rows of one result; ``show`` replaces them."""

    def __init__(self, result: QueryResult, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.result = result

    def compose(self) -> ComposeResult:
        table: DataTable[object] = DataTable(zebra_stripes=True, cursor_type="row")
        yield table
        yield Static(self._notice(), classes="result-notice")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*[c.name for c in self.result.columns])
        table.add_rows([[_cell(v) for v in row] for row in self.result.rows])

    def _notice(self) -> str:
        r = self.result
        rows = f"{r.row_count} row{'s' if r.row_count != 1 else ''}"
        more = (
            " · [b]truncated[/b]: more rows exist than shown (add LIMIT or aggregate)" if r.truncated else ""
        )
        took = f" · {r.elapsed_ms:.0f} ms" if getattr(self.app, "show_timings", True) else ""
        return f"{rows}{took}{more}"

    @property
    def table(self) -> DataTable[object]:
        return self.query_one(DataTable)
