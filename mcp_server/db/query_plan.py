"""A statement's query plan as text, from the rows each engine's EXPLAIN returns (``Engine.explain``).

* SQLite: ``EXPLAIN QUERY PLAN`` rows (id, parent, notused, detail) drawn as the tree the sqlite3 shell
  shows;
* PostgreSQL: the ``EXPLAIN (VERBOSE, FORMAT JSON)`` plan as indented nodes with estimated cost and rows;
* DuckDB: the text of its ``EXPLAIN``;
* MariaDB/MySQL: the guard's check runs EXPLAIN but keeps no rows, so no plan (``None``).
"""

from __future__ import annotations

import json
from typing import Any

from sqlr1.mcp_server.db.engines.base import RawResult

__all__ = ["MAX_PLAN_CHARS", "plan_text"]

MAX_PLAN_CHARS = 20_000


def plan_text(kind: str, raw: RawResult) -> str | None:
    """The plan of ``raw`` (an ``Engine.explain`` result of a ``kind`` engine), or None when it holds none."""
    if not raw.rows:
        return None
    if kind == "sqlite":
        text = _sqlite(raw.rows)
    elif kind == "postgresql":
        text = _postgres(raw.rows[0][0])
    else:
        text = "\n".join(str(row[-1]) for row in raw.rows)
    if len(text) > MAX_PLAN_CHARS:
        text = text[:MAX_PLAN_CHARS] + "\n…"
    return text or None


def _sqlite(rows: list[tuple[Any, ...]]) -> str:
    depth: dict[Any, int] = {0: -1}
    lines = ["QUERY PLAN"]
    for node, parent, _unused, detail in rows:
        level = depth.get(parent, -1) + 1
        depth[node] = level
        lines.append("  " * level + "|--" + str(detail))
    return "\n".join(lines)


def _postgres(plan: Any) -> str:
    if isinstance(plan, str):
        plan = json.loads(plan)
    root = plan[0]["Plan"] if isinstance(plan, list) else plan["Plan"]
    lines: list[str] = []
    _pg_node(root, 0, lines)
    return "\n".join(lines)


def _pg_node(node: dict[str, Any], level: int, lines: list[str]) -> None:
    label = str(node.get("Node Type", "?"))
    if node.get("Join Type") and "Join" in label:
        label = f"{node['Join Type']} {label}"
    if node.get("Relation Name"):
        label += f" on {node['Relation Name']}"
        if node.get("Alias") and node["Alias"] != node["Relation Name"]:
            label += f" {node['Alias']}"
    cost = f"(cost={node.get('Startup Cost', 0):.2f}..{node.get('Total Cost', 0):.2f} rows={node.get('Plan Rows', 0)})"
    prefix = "  " * level + ("->  " if level else "")
    lines.append(f"{prefix}{label}  {cost}")
    for key in ("Index Cond", "Hash Cond", "Merge Cond", "Join Filter", "Filter"):
        if node.get(key):
            lines.append("  " * (level + 1) + f"{key}: {node[key]}")
    for child in node.get("Plans", []):
        _pg_node(child, level + 1, lines)
