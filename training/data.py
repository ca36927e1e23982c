"""Training data: SynSQL-2.5M, Spider and BIRD loaders, the filters, and prompt records.

Loaders read the official layouts and yield :class:`Example` values. SynSQL-2.5M's ``data.json``
(9 GB) is streamed (:func:`iter_json_array`: one record in memory at a time), filtered as it streams
and, for a shuffled sample, reservoir-sampled; the SynSQL-Complex-5K parquet files that SQL-R1's RL
stage uses (``train.parquet`` 4,000 rows, ``test.parquet`` the 1,000 held-out rows) load too.
:func:`filter_examples` drops what must not be trained on, each with a logged reason (missing database,
complexity, held-out rows, a gold query that errors, times out or returns too many rows, optionally
an empty gold result); :func:`grpo_records` and :func:`sft_records` render a prompt variant
(``mcp_server.method.prompt``, the training prompt by default) over the database's one schema text
(:class:`SchemaDDL`: ``mcp_server.catalog.schema``, with the descriptions serving shows). Gold results go
through :class:`training.gold.GoldResolver`, so each gold query runs once per database content, ever.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlglot
from sqlglot import exp

from sqlr1.mcp_server.db.benchmark_layouts import SPIDER_FILES, bird_databases, database_file, read_items
from sqlr1.mcp_server.method.prompt import PreviousTurn, build_prompt, render_text
from sqlr1.training.gold import GoldResolver
from sqlr1.training.pool import ExecOutcome
from sqlr1.training.rewards import reward_sql

__all__ = [
    "DataSource",
    "Dropped",
    "Example",
    "SchemaDDL",
    "filter_examples",
    "grpo_records",
    "iter_json_array",
    "iter_synsql",
    "load_bird",
    "load_examples",
    "load_holdout",
    "load_spider",
    "load_synsql",
    "prompt_text",
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


def load_spider(root: str | Path, split: Literal["train", "dev"] = "train") -> list[Example]:
    """Spider: ``train_spider.json`` (+ ``train_others.json`` when present) or ``dev.json``, and
    ``database/<db_id>/<db_id>.sqlite`` (the layout read by :mod:`mcp_server.db.benchmark_layouts`)."""
    root = Path(root)
    out: list[Example] = []
    for name in SPIDER_FILES[split]:
        path = root / name
        if not path.is_file():
            if name == "train_others.json":
                continue
            raise FileNotFoundError(f"Spider {split} file not found: {path}")
        for item in read_items("spider", path):
            out.append(
                Example(
                    source="spider",
                    db_id=item.db_id,
                    db_path=str(database_file(root / "database", item.db_id)),
                    question=item.question,
                    gold_sql=item.gold_sql,
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
    return [
        Example(
            source="bird",
            db_id=item.db_id,
            db_path=str(database_file(bird_databases(root, split), item.db_id)),
            question=item.question,
            gold_sql=item.gold_sql,
            evidence=item.evidence,
            complexity="" if item.difficulty == "unknown" else item.difficulty,
            index=i,
        )
        for i, item in enumerate(read_items("bird", path))
    ]


_CHUNK = 1 << 20


def iter_json_array(path: str | Path, chunk_chars: int = _CHUNK) -> Iterator[Any]:
    """The items of the JSON array in ``path``, one at a time: memory holds one item and one chunk.

    Each item is decoded by ``json.JSONDecoder.raw_decode`` (the C decoder) from a sliding text
    buffer. Raises ``ValueError`` naming the file and the character offset of malformed input.
    """
    decoder = json.JSONDecoder()
    with Path(path).open(encoding="utf-8") as fh:
        buf, pos, offset, eof = "", 0, 0, False

        def fill() -> bool:
            nonlocal buf, pos, offset, eof
            more = fh.read(chunk_chars)
            offset += pos
            buf, pos = buf[pos:] + more, 0
            eof = not more
            return bool(more)

        def skip_ws() -> None:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf) or not fill():
                    return

        fill()
        skip_ws()
        if buf[pos : pos + 1] != "[":
            raise ValueError(f"{path}: expected a JSON array at character {offset + pos}")
        pos += 1
        first = True
        while True:
            skip_ws()
            if buf[pos : pos + 1] == "]":
                return
            if not first:
                if buf[pos : pos + 1] != ",":
                    raise ValueError(f"{path}: expected ',' or ']' at character {offset + pos}")
                pos += 1
                skip_ws()
            first = False
            while True:
                try:
                    item, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as exc:
                    if not eof and fill():  # the item runs past the buffer: read on
                        continue
                    raise ValueError(
                        f"{path}: invalid JSON at character {offset + exc.pos}: {exc.msg}"
                    ) from exc
                if end == len(buf) and not eof and fill():
                    continue  # a number may go on in the next chunk: decode it again whole
                break
            pos = end
            yield item


def _synsql_example(item: dict[str, Any], root: Path, index: int) -> Example:
    db_id = str(item["db_id"]).replace("\n", "")  # as SQL-R1's preprocessing
    return Example(
        source="synsql",
        db_id=db_id,
        db_path=str(root / "databases" / db_id / f"{db_id}.sqlite"),
        question=item["question"],
        gold_sql=item["sql"],
        evidence=item.get("external_knowledge") or "",
        complexity=item.get("sql_complexity") or "",
        reasoning=item.get("cot") or "",
        index=index,
    )


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    columns = ["db_id", "question", "sql", "external_knowledge", "sql_complexity", "cot"]
    table = pq.ParquetFile(path)
    present = [c for c in columns if c in table.schema_arrow.names]
    missing = {"db_id", "question", "sql"} - set(present)
    if missing:
        raise ValueError(f"{path}: not a SynSQL parquet file: no column(s) {', '.join(sorted(missing))}")
    for batch in table.iter_batches(columns=present, batch_size=1024):
        yield from batch.to_pylist()


def iter_synsql(root: str | Path, *, data_file: str = "data.json") -> Iterator[Example]:
    """SynSQL-2.5M examples, streamed: ``data.json`` (question, sql, db_id, external_knowledge,
    sql_complexity, cot) or a SynSQL-Complex-5K ``*.parquet`` file (the same columns, as SQL-R1's
    ``train.parquet``/``test.parquet``), with databases at ``databases/<db_id>/<db_id>.sqlite``."""
    root = Path(root)
    path = root / data_file
    if not path.is_file():
        raise FileNotFoundError(f"SynSQL data file not found: {path}")
    rows = _parquet_rows(path) if path.suffix == ".parquet" else iter_json_array(path)
    for i, item in enumerate(rows):
        yield _synsql_example(item, root, i)


def load_synsql(
    root: str | Path,
    *,
    data_file: str = "data.json",
    complexity: Sequence[str] = (),
    db_ids: Sequence[str] = (),
    sample: int | None = None,
    seed: int = 0,
) -> list[Example]:
    """SynSQL examples with the complexity / database filters applied while streaming; with ``sample``,
    a uniform random sample of that many of them (reservoir sampling, seeded), in file order. Only
    the kept examples are ever held in memory."""
    wanted = {c.lower() for c in complexity}
    rng = random.Random(seed)
    kept: list[Example] = []
    seen = 0
    for ex in iter_synsql(root, data_file=data_file):
        if (wanted and ex.complexity.lower() not in wanted) or (db_ids and ex.db_id not in db_ids):
            continue
        seen += 1
        if sample is None or len(kept) < sample:
            kept.append(ex)
        elif (j := rng.randrange(seen)) < sample:
            kept[j] = ex
    return sorted(kept, key=lambda e: e.index) if sample is not None else kept


def load_holdout(path: str | Path) -> set[tuple[str, str]]:
    """(db_id, question) of held-out rows (a SynSQL parquet or JSON file), e.g. SQL-R1's ``test.parquet``."""
    p = Path(path)
    rows = _parquet_rows(p) if p.suffix == ".parquet" else iter_json_array(p)
    return {(str(r["db_id"]).replace("\n", ""), str(r["question"])) for r in rows}


def load_examples(
    source: DataSource,
    root: str | Path,
    split: str = "train",
    *,
    data_file: str | None = None,
    complexity: Sequence[str] = (),
    db_ids: Sequence[str] = (),
    sample: int | None = None,
    seed: int = 0,
) -> list[Example]:
    """Examples of ``source`` in its official layout. For SynSQL the filters (and ``sample``) apply while
    streaming; for the small datasets :func:`filter_examples` applies them."""
    if source == "spider":
        return load_spider(root, "dev" if split == "dev" else "train")
    if source == "bird":
        return load_bird(root, "train" if split == "train" else "dev")
    if source == "synsql":
        return load_synsql(
            root,
            data_file=data_file or "data.json",
            complexity=complexity,
            db_ids=db_ids,
            sample=sample,
            seed=seed,
        )
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
    holdout: set[tuple[str, str]] | None = None,
) -> FilterReport:
    """Keep what can be trained on; every drop has a reason (logged as counts).

    Order: database selection and presence, complexity, held-out rows (``holdout``: (db_id,
    question) pairs, e.g. SQL-R1's 1,000 test rows), then (after shuffling and before the limit, so
    ``limit`` counts kept examples) the gold must execute within the pool's timeout, return no more
    rows than the pool's ``max_rows`` (the reward cannot compare a longer result whole) and, with
    ``drop_empty_gold``, return rows (an empty gold lets an empty prediction earn the full result
    reward). ``gold=None`` skips the execution checks (SFT on trusted data).
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
        elif holdout and (ex.db_id, ex.question) in holdout:
            report.dropped.append(Dropped(ex, "held out: a row of the held-out set"))
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
        outcomes: Sequence[ExecOutcome | None]
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
            elif out is not None and out.truncated:
                report.dropped.append(Dropped(ex, "gold too large: more rows than the reward's max_rows"))
            elif out is not None and drop_empty_gold and not out.rows:
                report.dropped.append(Dropped(ex, "gold empty: the gold query returns no rows"))
            else:
                report.kept.append(ex)
    if report.dropped:
        log.info("data: kept %d, dropped %d %s", len(report.kept), len(report.dropped), report.reasons())
    return report


class SchemaDDL:
    """The schema text per database file, rendered once: the same text serving shows for that database
    (``mcp_server.catalog.schema.render_ddl`` over a registry spec that finds the same tables.json,
    database_description and CREATE-statement comments), with ``example_values`` values per column
    (0: the paper's "without values" ablation)."""

    def __init__(self, example_values: int = 2) -> None:
        self.example_values = example_values
        self._cache: dict[str, str] = {}

    def __call__(self, db_path: str) -> str:
        hit = self._cache.get(db_path)
        if hit is not None:
            return hit
        from sqlr1.mcp_server.catalog.schema import SchemaInspector, render_ddl
        from sqlr1.mcp_server.db.registry import Registry

        registry = Registry.from_targets([db_path])
        name = registry.names()[0]
        ddl = render_ddl(SchemaInspector(registry).describe(name), example_values=self.example_values)
        self._cache[db_path] = ddl
        return ddl


def prompt_text(
    ex: Example,
    ddl: Callable[[str], str],
    tokenizer: Any,
    variant: str,
    previous_turns: Sequence[PreviousTurn] = (),
) -> str:
    """The rendered ``variant`` prompt of ``ex`` (ending in its assistant pre-fill); with
    ``previous_turns``, the prompt of a later attempt, as the agent loop builds it when serving."""
    prompt = build_prompt(
        ddl(ex.db_path),
        ex.question,
        variant=variant,
        evidence=ex.evidence or None,
        complexity=ex.complexity or None,
        previous_turns=previous_turns,
    )
    return render_text(prompt, tokenizer)


def grpo_records(
    examples: Iterable[Example],
    tokenizer: Any,
    ddl: Callable[[str], str] | None = None,
    *,
    prompt: str = "training",
) -> list[dict[str, Any]]:
    """Records for ``GRPOTrainer``: ``prompt`` (the rendered ``prompt`` variant, ending in ``<think>``)
    and the columns the reward reads (``gold_sql``, ``db_path``) plus ``db_id``, ``question``,
    ``evidence``, ``complexity`` (what a multi-turn rollout needs to build a later turn) and ``source``."""
    ddl = ddl or SchemaDDL()
    return [
        {
            "prompt": prompt_text(ex, ddl, tokenizer, prompt),
            "gold_sql": ex.gold_sql,
            "db_path": ex.db_path,
            "db_id": ex.db_id,
            "question": ex.question,
            "evidence": ex.evidence,
            "complexity": ex.complexity,
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
    examples: Iterable[Example],
    tokenizer: Any,
    ddl: Callable[[str], str] | None = None,
    *,
    prompt: str = "training",
) -> list[dict[str, Any]]:
    """Prompt/completion records for ``SFTTrainer`` (loss on the completion only)."""
    ddl = ddl or SchemaDDL()
    return [
        {"prompt": prompt_text(ex, ddl, tokenizer, prompt), "completion": sft_target(ex)} for ex in examples
    ]
