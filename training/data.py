"""Training data: SynSQL-2.5M, Spider and BIRD loaders, the filters, and prompt records.

Loaders read the official layouts and yield :class:`Example` values; :func:`filter_examples`
drops what must not be trained on, each with a logged reason (missing database, complexity,
a gold query that errors or times out, optionally an empty gold result); :func:`grpo_records` and
:func:`sft_records` render the SQL-R1 *training* prompt (``mcp_server.prompt``) over the schema DDL
(``mcp_server.schema``). Gold results go through :class:`training.gold.GoldResolver`, so each gold
query runs once per database content, ever.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlglot
from sqlglot import exp

from mcp_server.prompt import build_training_prompt, render_text
from training.gold import GoldResolver
from training.rewards import reward_sql

__all__ = [
    "DataSource",
    "Dropped",
    "Example",
    "SchemaDDL",
    "filter_examples",
    "grpo_records",
    "load_bird",
    "load_examples",
    "load_spider",
    "load_synsql",
    "sft_records",
    "sft_target",
]

log = logging.getLogger(__name__)

DataSource = Literal["spider", "bird", "synsql"]


@dataclass
class Example:
    """One question with its gold SQL on one database file."""

    source: str
    db_id: str
    db_path: str
    question: str
    gold_sql: str
    evidence: str = ""
    complexity: str = ""
    reasoning: str = ""  # a reference chain of thought, when the dataset has one (SynSQL ``cot``)
    index: int = 0


@dataclass
class Dropped:
    example: Example
    reason: str


def _read_json(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of examples")
    return data


def load_spider(root: str | Path, split: Literal["train", "dev"] = "train") -> list[Example]:
    """Spider: ``train_spider.json`` (+ ``train_others.json`` when present) or ``dev.json``, and
    ``database/<db_id>/<db_id>.sqlite``."""
    root = Path(root)
    files = ["train_spider.json", "train_others.json"] if split == "train" else ["dev.json"]
    out: list[Example] = []
    for name in files:
        path = root / name
        if not path.is_file():
            if name == "train_others.json":
                continue
            raise FileNotFoundError(f"Spider {split} file not found: {path}")
        for item in _read_json(path):
            db_id = item["db_id"]
            out.append(
                Example(
                    source="spider",
                    db_id=db_id,
                    db_path=str(root / "database" / db_id / f"{db_id}.sqlite"),
                    question=item["question"],
                    gold_sql=item["query"],
                    index=len(out),
                )
            )
    return out


def load_bird(root: str | Path, split: Literal["train", "dev"] = "dev") -> list[Example]:
    """BIRD: ``<split>.json`` with ``evidence`` and ``difficulty``, databases under
    ``<split>_databases/<db_id>/<db_id>.sqlite``."""
    root = Path(root)
    path = root / f"{split}.json"
    if not path.is_file():
        raise FileNotFoundError(f"BIRD {split} file not found: {path}")
    out: list[Example] = []
    for item in _read_json(path):
        db_id = item["db_id"]
        out.append(
            Example(
                source="bird",
                db_id=db_id,
                db_path=str(root / f"{split}_databases" / db_id / f"{db_id}.sqlite"),
                question=item["question"],
                gold_sql=item.get("SQL") or item.get("sql") or "",
                evidence=item.get("evidence") or "",
                complexity=item.get("difficulty") or "",
                index=len(out),
            )
        )
    return out


def load_synsql(root: str | Path, *, data_file: str = "data.json") -> list[Example]:
    """SynSQL-2.5M: ``data.json`` (question, sql, db_id, external_knowledge, sql_complexity, cot)
    and ``databases/<db_id>/<db_id>.sqlite``."""
    root = Path(root)
    path = root / data_file
    if not path.is_file():
        raise FileNotFoundError(f"SynSQL data file not found: {path}")
    out: list[Example] = []
    for item in _read_json(path):
        db_id = item["db_id"]
        out.append(
            Example(
                source="synsql",
                db_id=db_id,
                db_path=str(root / "databases" / db_id / f"{db_id}.sqlite"),
                question=item["question"],
                gold_sql=item["sql"],
                evidence=item.get("external_knowledge") or "",
                complexity=item.get("sql_complexity") or "",
                reasoning=item.get("cot") or "",
                index=len(out),
            )
        )
    return out


def load_examples(source: DataSource, root: str | Path, split: str = "train") -> list[Example]:
    if source == "spider":
        return load_spider(root, "dev" if split == "dev" else "train")
    if source == "bird":
        return load_bird(root, "train" if split == "train" else "dev")
    if source == "synsql":
        return load_synsql(root)
    raise ValueError(f"unknown data source {source!r}; use spider, bird or synsql")


@dataclass
class FilterReport:
    kept: list[Example] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)

    def reasons(self) -> dict[str, int]:
        return dict(Counter(d.reason.split(":", 1)[0] for d in self.dropped))

    def write(self, path: str | Path) -> None:
        """Dropped examples with their reasons, one JSON object a line."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8") as f:
            for d in self.dropped:
                f.write(json.dumps({"reason": d.reason, **asdict(d.example)}, ensure_ascii=False) + "\n")


def filter_examples(
    examples: Sequence[Example],
    gold: GoldResolver | None,
    *,
    drop_empty_gold: bool = False,
    complexity: Sequence[str] = (),
    db_ids: Sequence[str] = (),
    limit: int | None = None,
    seed: int = 0,
    shuffle: bool = False,
) -> FilterReport:
    """Keep what can be trained on; every drop has a reason (logged as counts).

    Order: database selection and presence, complexity, then (after shuffling and before the
    limit, so ``limit`` counts kept examples) the gold must execute within the pool's timeout
    and, with ``drop_empty_gold``, return rows (an empty gold lets an empty prediction earn the
    full result reward). ``gold=None`` skips the execution checks (SFT on trusted data).
    """
    report = FilterReport()
    wanted = {c.lower() for c in complexity}
    candidates: list[Example] = []
    for ex in examples:
        if db_ids and ex.db_id not in db_ids:
            continue
        if not Path(ex.db_path).is_file():
            report.dropped.append(Dropped(ex, f"database missing: {ex.db_path}"))
        elif wanted and ex.complexity.lower() not in wanted:
            report.dropped.append(Dropped(ex, f"complexity: {ex.complexity or 'unknown'}"))
        elif not ex.gold_sql.strip():
            report.dropped.append(Dropped(ex, "gold error: empty gold SQL"))
        else:
            candidates.append(ex)
    if shuffle:
        random.Random(seed).shuffle(candidates)
    batch = 64
    i = 0
    while i < len(candidates) and (limit is None or len(report.kept) < limit):
        chunk = candidates[i : i + batch]
        i += batch
        if gold is None:
            outcomes = [None] * len(chunk)
        else:
            outcomes = gold.resolve([(ex.db_path, reward_sql(ex.gold_sql)) for ex in chunk])
        for ex, out in zip(chunk, outcomes, strict=True):
            if limit is not None and len(report.kept) >= limit:
                break
            if out is not None and not out.ok:
                kind = "gold timeout" if out.error_kind == "timeout" else "gold error"
                report.dropped.append(Dropped(ex, f"{kind}: {out.error_kind}: {out.error_message}"))
            elif out is not None and drop_empty_gold and not out.rows:
                report.dropped.append(Dropped(ex, "gold empty: the gold query returns no rows"))
            else:
                report.kept.append(ex)
    if report.dropped:
        log.info("data: kept %d, dropped %d %s", len(report.kept), len(report.dropped), report.reasons())
    return report


class SchemaDDL:
    """Schema DDL per database file, rendered once (``mcp_server.schema``)."""

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def __call__(self, db_path: str) -> str:
        hit = self._cache.get(db_path)
        if hit is not None:
            return hit
        from mcp_server.registry import Registry
        from mcp_server.schema import SchemaInspector, render_ddl

        registry = Registry.from_targets([db_path])
        name = registry.names()[0]
        ddl = render_ddl(SchemaInspector(registry).describe(name))
        self._cache[db_path] = ddl
        return ddl


def _prompt_text(ex: Example, ddl: Callable[[str], str], tokenizer: Any) -> str:
    prompt = build_training_prompt(ddl(ex.db_path), ex.question, evidence=ex.evidence or None)
    return render_text(prompt, tokenizer)


def grpo_records(
    examples: Iterable[Example], tokenizer: Any, ddl: Callable[[str], str] | None = None
) -> list[dict[str, Any]]:
    """Records for ``GRPOTrainer``: ``prompt`` (rendered training prompt ending in ``<think>``) and
    the columns the reward reads (``gold_sql``, ``db_path``) plus ``db_id``/``question``/``source``."""
    ddl = ddl or SchemaDDL()
    return [
        {
            "prompt": _prompt_text(ex, ddl, tokenizer),
            "gold_sql": ex.gold_sql,
            "db_path": ex.db_path,
            "db_id": ex.db_id,
            "question": ex.question,
            "source": ex.source,
        }
        for ex in examples
    ]


def _describe_sql(sql: str) -> str:
    """A short, honest reasoning text derived from the gold query's structure (Spider has no CoT)."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError:
        return "I write the query that selects exactly what the question asks for."
    tables = sorted({t.name for t in tree.find_all(exp.Table) if t.name})
    parts = []
    if tables:
        names = ", ".join(f"`{t}`" for t in tables)
        parts.append(f"The question needs the table{'s' if len(tables) > 1 else ''} {names}")
        if len(tables) > 1:
            parts[-1] += ", joined on their keys"
    if tree.find(exp.Where):
        parts.append("the rows are filtered by the conditions in the question")
    if tree.find(exp.Group):
        parts.append("results are grouped")
    if tree.find(exp.AggFunc):
        parts.append("an aggregate computes the requested value")
    if tree.find(exp.Order):
        parts.append("the result is ordered as asked")
    if tree.find(exp.Limit):
        parts.append("only the top rows are kept")
    if isinstance(tree, exp.Union | exp.Intersect | exp.Except):
        parts.append("two result sets are combined")
    return ("; ".join(parts) or "The query selects exactly what the question asks for") + "."


def sft_target(ex: Example) -> str:
    """The completion after the ``<think>`` pre-fill: reasoning, then the gold SQL in the answer."""
    reasoning = (ex.reasoning or _describe_sql(ex.gold_sql)).strip()
    return f"\n{reasoning}\n</think>\n<answer>\n```sql\n{ex.gold_sql.strip()}\n```\n</answer>"


def sft_records(
    examples: Iterable[Example], tokenizer: Any, ddl: Callable[[str], str] | None = None
) -> list[dict[str, Any]]:
    """Prompt/completion records for ``SFTTrainer`` (loss on the completion only)."""
    ddl = ddl or SchemaDDL()
    return [{"prompt": _prompt_text(ex, ddl, tokenizer), "completion": sft_target(ex)} for ex in examples]
