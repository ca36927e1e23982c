"""Schema linking recall and prompt-token saving on Spider dev and BIRD dev gold (issue 15, item 3).

For every question: the tables ``mcp_server.catalog.linking.link_tables`` keeps, against the tables
and columns its gold SQL reads (gold columns resolved through aliases with sqlglot; a column counts
as kept when its table is, since linked tables keep all their columns). Schemas come from each
benchmark's ``tables.json`` (BIRD's databases are not here, its schemas are), rendered as prompt DDL
without example values (the realistic set's two databases: their live schemas with example values,
as prompted); tokens are the default model's (llama.cpp vocabulary), or characters / 3.5
without it. Two policies: ``forced`` links every schema; ``as served`` links only schemas larger than
``GenerationConfig.link_above_chars`` (smaller ones are prompted whole, so their recall is 100 %).

    PYTHONPATH=. python benchmarks/schema_linking_bench.py [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import sqlglot
from sqlglot import exp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlr1.mcp_server.catalog.linking import gold_tables, link_tables, subset
from sqlr1.mcp_server.catalog.schema import ColumnSchema, DatabaseSchema, ForeignKey, TableSchema, render_ddl
from sqlr1.mcp_server.core.config import GenerationConfig

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def schemas_from_tables_json(path: Path) -> dict[str, DatabaseSchema]:
    out: dict[str, DatabaseSchema] = {}
    for db in json.loads(path.read_text(encoding="utf-8")):
        names = db["table_names_original"]
        cols = db["column_names_original"]
        tables = [TableSchema(name=n, columns=[]) for n in names]
        for (ti, cname), ctype in zip(cols, db["column_types"], strict=True):
            if ti >= 0:
                tables[ti].columns.append(ColumnSchema(name=cname, type=ctype))
        for a, b in db["foreign_keys"]:
            (ta, ca), (tb, cb) = cols[a], cols[b]
            tables[ta].foreign_keys.append(ForeignKey(columns=[ca], ref_table=names[tb], ref_columns=[cb]))
        out[db["db_id"]] = DatabaseSchema(
            database=db["db_id"], dialect="sqlite", fingerprint="-", tables=tables
        )
    return out


def gold_columns(sql: str, schema: DatabaseSchema) -> set[tuple[str, str]]:
    """(table, column) pairs the gold query reads, aliases resolved; unresolvable columns dropped."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.SqlglotError:
        return set()
    by_fold = {t.name.casefold(): t for t in schema.tables}
    aliases: dict[str, str] = {}
    used: list[str] = []
    for t in tree.find_all(exp.Table):
        table = by_fold.get(t.name.casefold())
        if table is None:
            continue
        used.append(table.name)
        aliases[(t.alias or t.name).casefold()] = table.name
    out: set[tuple[str, str]] = set()
    for c in tree.find_all(exp.Column):
        name = c.name.casefold()
        owners = [aliases[c.table.casefold()]] if c.table and c.table.casefold() in aliases else used
        for owner in owners:
            table = by_fold[owner.casefold()]
            if any(col.name.casefold() == name for col in table.columns):
                out.add((table.name, name))
                break
    return out


class Tokens:
    def __init__(self) -> None:
        try:
            from sqlr1.mcp_server.backends.llamacpp_backend import LlamaCppBackend
            from sqlr1.mcp_server.backends.model_registry import DEFAULT_MODEL

            self.backend = LlamaCppBackend(DEFAULT_MODEL, n_ctx=512, n_seq_max=1)
            self.unit = "tokens"
        except Exception:  # no llama.cpp here: an estimate
            self.backend = None
            self.unit = "tokens (chars/3.5)"

    def __call__(self, text: str) -> int:
        return len(self.backend.encode(text)) if self.backend else round(len(text) / 3.5)


def realistic_schemas() -> tuple[list[dict], dict[str, DatabaseSchema]]:
    """The realistic evaluation set and its live schemas (with example values, as prompted)."""
    from sqlr1.mcp_server.catalog.schema import SchemaInspector
    from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig
    from sqlr1.mcp_server.db.registry import Registry

    items = json.loads((Path(__file__).parent / "realistic_eval.json").read_text(encoding="utf-8"))
    root = DATA / "sample_dbs"
    registry = Registry.from_config(AppConfig(databases=[DatabaseConfig(target=str(root))]))
    inspector = SchemaInspector(registry)
    return items, {db: inspector.describe(db) for db in {it["db_id"] for it in items}}


def run(
    name: str, items: list[dict], schemas: dict[str, DatabaseSchema], count: Tokens, example_values: int = 0
) -> dict:
    threshold = GenerationConfig().link_above_chars
    totals = {
        k: 0
        for k in ("gold_t", "kept_t", "gold_c", "kept_c", "served_t", "served_c", "full", "linked", "served")
    }
    perfect = 0
    ddl_cache: dict[str, tuple[str, int]] = {}
    for it in items:
        schema = schemas[it["db_id"]]
        sql = it.get("query") or it.get("SQL") or ""
        gold_t = gold_tables(sql, schema)
        gold_c = gold_columns(sql, schema)
        linked = link_tables(schema, it["question"], evidence=it.get("evidence")).tables
        kept = set(linked)
        if schema.database not in ddl_cache:
            ddl = render_ddl(schema, example_values=example_values)
            ddl_cache[schema.database] = (ddl, count(ddl))
        full_ddl, full_tokens = ddl_cache[schema.database]
        linked_tokens = count(render_ddl(subset(schema, linked), example_values=example_values))
        large = len(full_ddl) > threshold
        served_kept = kept if large else {t.name for t in schema.tables}
        totals["gold_t"] += len(gold_t)
        totals["kept_t"] += len(gold_t & kept)
        totals["served_t"] += len(gold_t & served_kept)
        totals["gold_c"] += len(gold_c)
        totals["kept_c"] += sum(1 for t, _ in gold_c if t in kept)
        totals["served_c"] += sum(1 for t, _ in gold_c if t in served_kept)
        totals["full"] += full_tokens
        totals["linked"] += linked_tokens
        totals["served"] += linked_tokens if large else full_tokens
        perfect += gold_t <= kept
    n = len(items)
    return {
        "set": name,
        "questions": n,
        "table_recall": 100 * totals["kept_t"] / max(1, totals["gold_t"]),
        "column_recall": 100 * totals["kept_c"] / max(1, totals["gold_c"]),
        "all_gold_tables_kept": 100 * perfect / n,
        "served_table_recall": 100 * totals["served_t"] / max(1, totals["gold_t"]),
        "served_column_recall": 100 * totals["served_c"] / max(1, totals["gold_c"]),
        "full_tokens": totals["full"] / n,
        "linked_tokens": totals["linked"] / n,
        "served_tokens": totals["served"] / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="record the table in benchmarks/RESULTS.md")
    args = parser.parse_args()
    count = Tokens()
    rows = [
        run(
            "Spider dev",
            json.loads((DATA / "spider" / "dev.json").read_text(encoding="utf-8")),
            schemas_from_tables_json(DATA / "spider" / "tables.json"),
            count,
        ),
        run(
            "BIRD dev",
            json.loads((DATA / "bird" / "dev" / "dev.json").read_text(encoding="utf-8")),
            schemas_from_tables_json(DATA / "bird" / "dev" / "dev_tables.json"),
            count,
        ),
    ]
    rows.append(run("realistic set (Chinook, Northwind)", *realistic_schemas(), count, example_values=2))
    threshold = GenerationConfig().link_above_chars
    lines = [
        "## Schema linking recall and prompt size (issue 15)",
        "",
        f"`PYTHONPATH=. python benchmarks/schema_linking_bench.py --write`. Every dev question; schemas from "
        f"tables.json rendered as prompt DDL without example values (realistic set: the live schemas with example values, as prompted), {count.unit}. *Forced*: every schema "
        f"linked; *as served*: only schemas over `link_above_chars` = {threshold:,} characters are linked "
        "(smaller ones are prompted whole and their prefix cached). Recall: share of the gold query's "
        "tables (columns) in the kept tables.",
        "",
        "| set | questions | table recall (forced) | column recall (forced) | all gold tables kept | "
        "table / column recall (as served) | schema tokens: full → linked (forced) | as served |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['questions']} | {r['table_recall']:.1f} % | {r['column_recall']:.1f} % | "
            f"{r['all_gold_tables_kept']:.1f} % | {r['served_table_recall']:.1f} % / "
            f"{r['served_column_recall']:.1f} % | {r['full_tokens']:.0f} → {r['linked_tokens']:.0f} "
            f"({100 * (1 - r['linked_tokens'] / r['full_tokens']):.0f} % fewer) | {r['served_tokens']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        from results_md import write_section

        write_section(lines[0], text)


if __name__ == "__main__":
    main()
