"""The schema sidebar: database switcher, a filter, and tables → columns with types and keys."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Select, Tree

from sqlr1.mcp_server.catalog.schema import DatabaseSchema, TableSchema

__all__ = ["SchemaSidebar"]


def _column_label(table: TableSchema, name: str, type_: str, primary: bool) -> Text:
    label = Text(f"{name} ")
    if type_:
        label.append(type_.lower(), style="dim")
    if primary or name in table.primary_key:
        label.append(" PK", style="bold yellow")
    for fk in table.foreign_keys:
        if name in fk.columns:
            ref = fk.ref_columns[fk.columns.index(name)] if len(fk.ref_columns) == len(fk.columns) else ""
            label.append(f" → {fk.ref_table}{'.' + ref if ref else ''}", style="cyan")
    return label


def _table_label(table: TableSchema) -> Text:
    return Text.assemble((table.name, "bold"), (f"  ({len(table.columns)})", "dim"))


class SchemaSidebar(Vertical):
    """Posts :class:`SchemaSidebar.DatabaseChanged` when the user picks another database."""

    class DatabaseChanged(Message):
        def __init__(self, database: str) -> None:
            super().__init__()
            self.database = database

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.schema: DatabaseSchema | None = None
        self._quiet = False

    def compose(self) -> ComposeResult:
        yield Select[str]([], prompt="database", allow_blank=True, id="db-select", compact=True)
        yield Input(placeholder="filter tables/columns", id="schema-filter", compact=True)
        tree: Tree[str] = Tree("tables", id="schema-tree")
        tree.show_root = False
        yield tree

    def set_databases(self, names: list[str], current: str) -> None:
        select = self.query_one("#db-select", Select)
        self._quiet = True
        select.set_options([(n, n) for n in names])
        select.value = current
        self.call_after_refresh(self._unquiet)

    def _unquiet(self) -> None:
        self._quiet = False

    def set_schema(self, schema: DatabaseSchema) -> None:
        self.schema = schema
        self._fill(self.query_one("#schema-filter", Input).value)

    def _fill(self, needle: str) -> None:
        tree = self.query_one("#schema-tree", Tree)
        tree.clear()
        if self.schema is None:
            return
        needle = needle.strip().lower()
        for table in self.schema.tables:
            table_hit = not needle or needle in table.name.lower()
            cols = [c for c in table.columns if table_hit or needle in c.name.lower()]
            if not cols and not table_hit:
                continue
            node = tree.root.add(_table_label(table), data=table.name)
            for col in cols:
                node.add_leaf(
                    _column_label(table, col.name, col.type, col.primary_key), data=f"{table.name}.{col.name}"
                )
            if needle:
                node.expand()

    @on(Input.Changed, "#schema-filter")
    def _filter(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Select.Changed, "#db-select")
    def _database(self, event: Select.Changed) -> None:
        event.stop()
        if self._quiet or event.value is Select.NULL:
            return
        self.post_message(self.DatabaseChanged(str(event.value)))
