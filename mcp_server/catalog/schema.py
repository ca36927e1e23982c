"""Schema inspection: tables, columns, keys, example values and descriptions, in two renderings.

Owns :class:`SchemaInspector` (cached per database, keyed by ``engine.fingerprint()``, thread-safe) and
:func:`render_ddl`, the SQL-R1/OmniSQL prompt form of a schema::

    CREATE TABLE Student (
        StuID NUMERIC, -- student id, example: [1001, 1002]
        LName TEXT, -- last name, example: ['Smith', 'Kim']
        `Year` TEXT, -- example: ['2014', '2015']
        PRIMARY KEY (StuID),
        CONSTRAINT fk_student_advisor FOREIGN KEY (Advisor) REFERENCES Faculty (FacID)
    );

It reads the catalog through the engine protocol only. Every table or column name in a query it runs
is quoted by sqlglot (syntax-tree builders, or ``exp.to_identifier(name, quoted=True)``), never
interpolated raw. Example values come from bounded reads of the first ``sample_rows`` rows of a table
(on SQLite up to 100 tables per ``UNION ALL`` query), only for the tables a caller asks for, then cached.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.generator import Generator

from sqlr1.mcp_server.catalog.descriptions import TableNotes, ddl_column_comments, load_descriptions
from sqlr1.mcp_server.core.errors import QueryFailed, quoted
from sqlr1.mcp_server.core.results import JSONValue, json_safe
from sqlr1.mcp_server.db.engines.base import CatalogTable, Engine

__all__ = [
    "ColumnSchema",
    "DatabaseSchema",
    "ForeignKey",
    "SchemaInspector",
    "TableSchema",
    "prompt_identifier",
    "render_ddl",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ models


class ForeignKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    columns: list[str]
    ref_table: str
    ref_columns: list[str] = Field(
        description="Referenced columns (the referenced primary key when implicit)."
    )


class ColumnSchema(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    type: str = Field(description="Declared type as the engine reports it (may be empty in SQLite).")
    nullable: bool = True
    primary_key: bool = False
    description: str | None = Field(
        default=None, description="Short natural-language name or description (the prompt's comment)."
    )
    details: str | None = Field(default=None, description="Longer description (BIRD column_description).")
    value_description: str | None = Field(default=None, description="What the values mean (BIRD).")
    examples: list[JSONValue] = Field(default_factory=list, description="A few distinct non-null values.")


class TableSchema(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    schema_name: str | None = Field(default=None, description="Namespace (e.g. PostgreSQL schema), if any.")
    description: str | None = None
    columns: list[ColumnSchema]
    primary_key: list[str] = Field(default_factory=list)
    foreign_keys: list[ForeignKey] = Field(default_factory=list)

    def column(self, name: str) -> ColumnSchema | None:
        """The column called ``name`` (exact, then case-insensitive)."""
        for col in self.columns:
            if col.name == name:
                return col
        folded = name.casefold()
        return next((c for c in self.columns if c.name.casefold() == folded), None)


class DatabaseSchema(BaseModel):
    """A database's schema (all tables, or the ones asked for). Shared from the cache: do not mutate."""

    model_config = ConfigDict(frozen=True)

    database: str
    dialect: str = Field(description="sqlglot dialect of the database.")
    fingerprint: str = Field(description="Changes whenever the schema changes.")
    tables: list[TableSchema]
    _ddl_cache: dict[tuple[int, int, bool], str] = PrivateAttr(default_factory=dict)

    def table(self, name: str) -> TableSchema | None:
        for t in self.tables:
            if t.name == name:
                return t
        folded = name.casefold()
        return next((t for t in self.tables if t.name.casefold() == folded), None)


# -------------------------------------------------------------------------------------- rendering

# SQL reserved words: a name equal to one is quoted in the prompt, as OmniSQL/SQL-R1 prompts do. Kept to
# reserved words on purpose: common column names such as rank, status, number, level or text stay bare,
# exactly as the models saw them in training (every Spider/BIRD name is quoted as OmniSQL quotes it).
_RESERVED = frozenset(
    """
    ACCESS ADD ALL ALTER ANALYZE AND ANY AS ASC AVG BEGIN BETWEEN BIGINT BINARY BIT BLOB BOOLEAN BOTH BY
    CALL CASCADE CASE CAST CHAR CHARACTER CHECK CLOB COLLATE COLUMN COMMENT COMMIT CONDITION CONNECT
    CONSTRAINT CONTINUE CONVERT COUNT CREATE CROSS CUBE CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP
    CURRENT_USER CURSOR DATABASE DATE DAY DEC DECIMAL DECLARE DEFAULT DELETE DESC DESCRIBE DISTINCT DO
    DOUBLE DROP EACH ELSE ELSEIF END ESCAPE EXCEPT EXEC EXECUTE EXISTS EXIT EXPLAIN EXTERNAL FALSE
    FETCH FILTER FLOAT FOR FOREIGN FROM FULL FUNCTION GLOBAL GRANT GROUP HAVING HOUR IF
    IGNORE ILIKE IN INDEX INNER INOUT INSERT INT INTEGER INTERSECT INTERVAL INTO IS JOIN KEY LEADING
    LEFT LIKE LIMIT LOCAL LOCK MATCH MAX MERGE MIN MINUTE MONTH NATURAL NCHAR NO NOT NULL
    NUMERIC OF OFFSET OLD ON ONLY OPEN OR ORDER OUT OUTER OVER PARTITION PERCENT POSITION PRECISION PRIMARY
    PROCEDURE RANGE REAL RECURSIVE REFERENCES REGEXP RELEASE RENAME REPEAT REPLACE RESTRICT RETURN
    REVOKE RIGHT RLIKE ROLE ROLLBACK ROW ROWNUM ROWS SAVEPOINT SCHEMA SELECT SESSION SET SIGNAL
    SMALLINT SOME SQL START SUM SYSDATE TABLE THEN TIME TIMESTAMP TO TOP TRAILING
    TRIGGER TRUE UNDO UNION UNIQUE UNKNOWN UNLOCK UPDATE USAGE USER USING VALUE VALUES VARCHAR VARYING VIEW
    WHEN WHERE WHILE WITH WITHIN YEAR ZONE
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@functools.lru_cache(maxsize=65536)
def prompt_identifier(name: str, dialect: str) -> str:
    """``name`` as the prompt shows it: bare when it is a plain non-keyword name, else quoted by sqlglot.

    SQLite names are quoted with backticks (valid SQLite, and what OmniSQL/SQL-R1 prompts use); other
    dialects use their own quote character.
    """
    if _PLAIN_NAME.fullmatch(name) and name.upper() not in _RESERVED:
        return name
    quote_dialect = "mysql" if dialect == "sqlite" else dialect
    return exp.to_identifier(name, quoted=True).sql(dialect=quote_dialect)


_TYPE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _(),.[]")


def _prompt_type(declared: str) -> str:
    """A declared column type as the prompt shows it: as is when it is a plain type name, else quoted.

    A type is data from the database file (SQLite accepts any text there); quoting it (one line,
    escaped) keeps newlines, fences and tags in it from faking prompt structure.
    """
    if all(ch in _TYPE_CHARS for ch in declared):
        return declared
    quoted = exp.to_identifier(declared, quoted=True).sql(dialect="sqlite")
    return quoted.replace("\r", "\\r").replace("\n", "\\n")


def _constraint_name(table: str, columns: Sequence[str]) -> str:
    # OmniSQL: fk_<table>_<column>, lower-cased with spaces as underscores; other odd characters are
    # replaced too so the constraint name stays a valid bare identifier.
    raw = "_".join([table, *columns]).lower()
    return "fk_" + re.sub(r"[^a-z0-9_]", "_", raw)


def _trivial_comment(column: str, comment: str) -> bool:
    """OmniSQL drops a comment that only repeats the column name."""
    c = comment.lower()
    return column.lower() in (c, c.replace(" ", "_"), c.replace(" ", "")) or not comment.strip()


def _render_table(
    table: TableSchema,
    dialect: str,
    example_values: int,
    max_value_chars: int,
    comments: bool,
    keep: Collection[str] | None = None,
) -> str:
    q = prompt_identifier
    lines: list[str] = []
    kept = table.columns if keep is None else [c for c in table.columns if c.name.casefold() in keep]
    names = {c.name for c in kept}
    for col in kept:
        values = [v[:max_value_chars] if isinstance(v, str) else v for v in col.examples[:example_values]]
        line = (
            f"    {q(col.name, dialect)} {_prompt_type(col.type)},"
            if col.type
            else f"    {q(col.name, dialect)},"
        )
        comment = col.description if comments else None
        if comment and not _trivial_comment(col.name, comment):
            line += f" -- {comment}"
            if values:
                line += f", example: {values!r}"
        elif values:
            line += f" -- example: {values!r}"
        lines.append(line)
    pk = [c.name for c in kept if c.name in set(table.primary_key)]
    if pk:
        lines.append("    PRIMARY KEY (" + ", ".join(q(c, dialect) for c in pk) + "),")
    for fk in table.foreign_keys:
        if not names.issuperset(fk.columns):
            continue  # a key whose columns were left out
        lines.append(
            f"    CONSTRAINT {_constraint_name(table.name, fk.columns)} FOREIGN KEY "
            f"({', '.join(q(c, dialect) for c in fk.columns)}) REFERENCES {q(fk.ref_table, dialect)} "
            f"({', '.join(q(c, dialect) for c in fk.ref_columns)}),"
        )
    body = f"CREATE TABLE {q(table.name, dialect)} (\n" + "\n".join(lines)
    if body.endswith(","):  # as OmniSQL: only a trailing comma outside a comment is removed
        body = body[:-1]
    return body + "\n);"


def render_ddl(
    schema: DatabaseSchema,
    *,
    example_values: int = 2,
    max_value_chars: int = 40,
    comments: bool = True,
    columns: Mapping[str, Collection[str]] | None = None,
) -> str:
    """The SQL-R1/OmniSQL prompt form: one ``CREATE TABLE`` per table, separated by blank lines.

    The one schema text of a database, for serving and training alike. Each column line is
    ``name TYPE,`` followed by ``-- description, example: [...]`` (the description is left out when it
    only repeats the name; up to ``example_values`` values, strings cut at ``max_value_chars``;
    ``example_values=0`` is the paper's "without values" ablation), then ``PRIMARY KEY (...)`` and one
    ``CONSTRAINT fk_... FOREIGN KEY`` per key. Identifiers are quoted only when needed
    (:func:`prompt_identifier`). A subset of tables is ``describe(db, tables=...)``; ``columns`` (table
    name -> column names, case-insensitive) keeps only those columns of the tables it names, and the
    keys over them (schema linking). The text is memoized on the (immutable, cached) schema object.
    """
    keep = (
        {t.casefold(): {c.casefold() for c in cols} for t, cols in columns.items()}
        if columns is not None
        else None
    )
    key = (example_values, max_value_chars, comments)
    cached = schema._ddl_cache.get(key) if keep is None else None
    if cached is None:
        cached = "\n\n".join(
            _render_table(
                t,
                schema.dialect,
                example_values,
                max_value_chars,
                comments,
                keep.get(t.name.casefold()) if keep is not None else None,
            )
            for t in schema.tables
            # as OmniSQL: a table without (kept) columns is left out
            if t.columns and (keep is None or keep.get(t.name.casefold(), True))
        )
        if keep is None:
            schema._ddl_cache[key] = cached
    return cached


# -------------------------------------------------------------------------------------- inspector


_MAX_SUBSETS = 256  # memoized table subsets per database
_BATCH_TABLES = 100  # SQLite tables sampled per query (SQLite allows 500 compound arms)
_BATCH_MAX_WIDTH = 200  # wider tables are sampled alone (SQLite allows 2,000 result columns)


class EngineRegistry(Protocol):
    """What the inspector needs from :class:`mcp_server.db.registry.Registry`."""

    def engine(self, name: str) -> Engine: ...


@dataclass
class _Entry:
    fingerprint: str
    dialect: str
    order: list[str]  # table keys in catalog order
    bare: dict[str, TableSchema]  # tables without example values
    lookup: dict[str, str]  # exact name, casefolded name and "schema.name" -> key
    complete: dict[str, TableSchema] = field(default_factory=dict)  # with example values
    full: DatabaseSchema | None = None
    subsets: dict[tuple[str, ...], DatabaseSchema] = field(default_factory=dict)


class SchemaInspector:
    """Describes registry databases; results are cached per database until its fingerprint changes.

    ``examples`` distinct values per column are taken from the first ``sample_rows`` rows of a table
    (one query per table, run only when that table is described), strings cut at ``max_value_chars``.
    """

    def __init__(
        self,
        registry: EngineRegistry,
        *,
        examples: int = 3,
        sample_rows: int = 1000,
        max_value_chars: int = 100,
        timeout_s: float = 30.0,
    ) -> None:
        self.registry = registry
        self.examples = examples
        self.sample_rows = sample_rows
        self.max_value_chars = max_value_chars
        self.timeout_s = timeout_s
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- public API ----------------------------------------------------------------------------

    def describe(self, database: str, tables: Sequence[str] | None = None) -> DatabaseSchema:
        """The schema of ``database`` (all tables, or ``tables`` in catalog order).

        Raises ``QueryFailed`` (kind ``not_found``) for an unknown database (from the registry) or table,
        naming the closest existing tables.
        """
        engine = self.registry.engine(database)
        with self._lock(database):
            entry = self._entry(database, engine)
            if tables is None:
                if entry.full is None:
                    entry.full = self._assemble(database, engine, entry, entry.order)
                return entry.full
            wanted = set(self._resolve(database, entry, tables))
            ordered = tuple(k for k in entry.order if k in wanted)
            subset = entry.subsets.get(ordered)
            if subset is None:
                subset = self._assemble(database, engine, entry, list(ordered))
                if len(entry.subsets) >= _MAX_SUBSETS:
                    entry.subsets.clear()
                entry.subsets[ordered] = subset
            return subset

    def ddl(self, database: str, tables: Sequence[str] | None = None, **render: Any) -> str:
        """``render_ddl(describe(database, tables), **render)``, memoized with the description."""
        return render_ddl(self.describe(database, tables), **render)

    def list_tables(self, database: str) -> list[str]:
        """Table names in catalog order (no example values are computed)."""
        engine = self.registry.engine(database)
        with self._lock(database):
            entry = self._entry(database, engine)
            return [entry.bare[k].name for k in entry.order]

    def sample_values(self, database: str, table: str, column: str, limit: int = 10) -> list[JSONValue]:
        """Up to ``limit`` distinct non-null values of one column (names resolved against the catalog)."""
        engine = self.registry.engine(database)
        with self._lock(database):
            entry = self._entry(database, engine)
            tbl = entry.bare[self._resolve(database, entry, [table])[0]]
        col = tbl.column(column)
        if col is None:
            known = ", ".join(c.name for c in tbl.columns)
            raise QueryFailed.of(
                "not_found",
                f"column {quoted(column)} does not exist in table {tbl.name!r}; its columns are: {known}",
            )
        ident = exp.column(col.name, quoted=True)
        query = (
            exp.select(ident)
            .distinct()
            .from_(exp.table_(tbl.name, db=tbl.schema_name, quoted=True))
            .where(exp.Not(this=exp.Is(this=ident.copy(), expression=exp.Null())))
            .limit(max(0, limit))
        )
        raw = engine.execute(
            query.sql(dialect=engine.dialect), max_rows=max(0, limit), timeout_s=self.timeout_s
        )
        return [json_safe(row[0]) for row in raw.rows]

    def invalidate(self, database: str | None = None) -> None:
        """Forget cached descriptions (of one database, or all)."""
        with self._locks_guard:
            if database is None:
                self._entries.clear()
            else:
                self._entries.pop(database, None)

    # -- internals -----------------------------------------------------------------------------

    def _lock(self, database: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(database)
            if lock is None:
                lock = self._locks[database] = threading.Lock()
            return lock

    def _entry(self, database: str, engine: Engine) -> _Entry:
        """The cache entry for ``database``; rebuilt when the fingerprint moved. Call with its lock held."""
        fingerprint = engine.fingerprint()
        with self._locks_guard:
            entry = self._entries.get(database)
        if entry is not None and entry.fingerprint == fingerprint:
            return entry
        entry = self._build(engine, fingerprint)
        with self._locks_guard:
            self._entries[database] = entry
        return entry

    def _build(self, engine: Engine, fingerprint: str) -> _Entry:
        notes = load_descriptions(engine.spec)
        # List tables in the description files' order (tables.json: creation order, as Spider/BIRD
        # prompts show them); tables they do not know keep the catalog's order, after them.
        rank = {key: i for i, key in enumerate(notes)}
        catalog = sorted(engine.catalog(), key=lambda t: rank.get(t.name.casefold(), len(rank)))
        by_fold = {t.name.casefold(): t for t in catalog}
        order: list[str] = []
        bare: dict[str, TableSchema] = {}
        lookup: dict[str, str] = {}
        for t in catalog:
            key = t.name if t.name not in bare else f"{t.schema}.{t.name}"
            order.append(key)
            bare[key] = _table_schema(t, notes.get(t.name.casefold()), by_fold)
            for alias in (t.name, t.name.casefold(), *((f"{t.schema}.{t.name}",) if t.schema else ())):
                lookup.setdefault(alias, key)
            if t.schema:
                lookup.setdefault(f"{t.schema}.{t.name}".casefold(), key)
        return _Entry(fingerprint=fingerprint, dialect=engine.dialect, order=order, bare=bare, lookup=lookup)

    def _resolve(self, database: str, entry: _Entry, names: Sequence[str]) -> list[str]:
        keys: list[str] = []
        missing: list[str] = []
        for name in names:
            key = entry.lookup.get(name) or entry.lookup.get(name.casefold())
            if key is None:
                missing.append(name)
            elif key not in keys:
                keys.append(key)
        if missing:
            names_by_fold = {entry.bare[k].name.casefold(): entry.bare[k].name for k in entry.order}
            hints: list[str] = []
            for name in missing:
                for close in difflib.get_close_matches(name.casefold(), list(names_by_fold), n=3, cutoff=0.6):
                    if names_by_fold[close] not in hints:
                        hints.append(names_by_fold[close])
            hint = f" Did you mean: {', '.join(hints)}?" if hints else ""
            listed = ", ".join(quoted(n) for n in missing)
            raise QueryFailed.of(
                "not_found",
                f"table {listed} does not exist in database {database!r}.{hint} "
                "Call list_tables to see every table.",
            )
        return keys

    def _assemble(self, database: str, engine: Engine, entry: _Entry, keys: Sequence[str]) -> DatabaseSchema:
        todo = [k for k in keys if k not in entry.complete]
        if todo:
            self._fill_examples(engine, entry, todo)
        return DatabaseSchema(
            database=database,
            dialect=entry.dialect,
            fingerprint=entry.fingerprint,
            tables=[entry.complete[k] for k in keys],
        )

    def _fill_examples(self, engine: Engine, entry: _Entry, keys: Sequence[str]) -> None:
        """Sample rows for ``keys``: SQLite reads up to ``_BATCH_TABLES`` tables per query (UNION ALL of
        per-table samples, which SQLite allows across column types), other engines one table per query."""
        tables = [entry.bare[k] for k in keys]
        if self.examples <= 0:
            entry.complete.update(zip(keys, tables, strict=True))
            return
        batch_size = _BATCH_TABLES if engine.dialect == "sqlite" else 1
        generator = Dialect.get_or_raise(engine.dialect).generator()
        batch: list[tuple[str, TableSchema]] = []
        width = 0
        for key, table in zip(keys, tables, strict=True):
            if not table.columns:  # PostgreSQL allows tables without columns: nothing to sample
                entry.complete[key] = table
                continue
            if batch and (len(batch) >= batch_size or max(width, len(table.columns)) > _BATCH_MAX_WIDTH):
                self._sample_batch(engine, entry, batch, width, generator)
                batch, width = [], 0
            batch.append((key, table))
            width = max(width, len(table.columns))
        if batch:
            self._sample_batch(engine, entry, batch, width, generator)

    def _sample_query(self, table: TableSchema, generator: Generator) -> str:
        """``SELECT <columns> FROM <table> LIMIT <sample_rows>`` in the engine's dialect."""
        query = (
            exp.Select(expressions=[exp.column(c.name, quoted=True) for c in table.columns])
            .from_(exp.table_(table.name, db=table.schema_name, quoted=True), copy=False)
            .limit(exp.Literal.number(self.sample_rows), copy=False)
        )
        return generator.generate(query)

    def _sqlite_sample_arm(self, table: TableSchema, tag: int, width: int) -> str:
        """One arm of a SQLite UNION ALL sample: ``SELECT * FROM (SELECT tag, cols.., NULL.. LIMIT n)``.

        Written from identifiers quoted by sqlglot (cached per name: tables share column names), as
        generating a syntax tree per table dominated a cold describe of a 1,000-table database.
        """
        q = _quoted_sqlite
        cols = ", ".join(
            [str(tag), *(q(c.name) for c in table.columns), *["NULL"] * (width - len(table.columns))]
        )
        source = q(table.name) if table.schema_name is None else f"{q(table.schema_name)}.{q(table.name)}"
        return f"SELECT * FROM (SELECT {cols} FROM {source} LIMIT {int(self.sample_rows)})"

    def _sample_batch(
        self,
        engine: Engine,
        entry: _Entry,
        batch: list[tuple[str, TableSchema]],
        width: int,
        generator: Generator,
    ) -> None:
        if len(batch) == 1:
            key, table = batch[0]
            try:
                raw = engine.execute(
                    self._sample_query(table, generator),
                    max_rows=self.sample_rows,
                    timeout_s=self.timeout_s,
                )
            except QueryFailed as exc:
                # A table that cannot be read (timeout, broken view) is still described, without examples.
                log.warning("no example values for %s: %s", table.name, exc.error)
                entry.complete[key] = table
                return
            entry.complete[key] = self._with_examples(table, raw.rows, 0)
            return
        sql = " UNION ALL ".join(
            self._sqlite_sample_arm(table, i, width) for i, (_, table) in enumerate(batch)
        )
        try:
            raw = engine.execute(sql, max_rows=self.sample_rows * len(batch), timeout_s=self.timeout_s)
        except QueryFailed as exc:
            log.info("batched sampling failed (%s); sampling table by table", exc.error)
            for item in batch:
                self._sample_batch(engine, entry, [item], len(item[1].columns), generator)
            return
        by_tag: dict[int, list[Sequence[Any]]] = {}
        for row in raw.rows:
            by_tag.setdefault(row[0], []).append(row)
        for i, (key, table) in enumerate(batch):
            entry.complete[key] = self._with_examples(table, by_tag.get(i, []), 1)

    def _with_examples(self, table: TableSchema, rows: Sequence[Sequence[Any]], offset: int) -> TableSchema:
        columns = [
            col.model_copy(
                update={"examples": _distinct_values(rows, i + offset, self.examples, self.max_value_chars)}
            )
            for i, col in enumerate(table.columns)
        ]
        return table.model_copy(update={"columns": columns})


_BINARY = (bytes, bytearray, memoryview)


@functools.lru_cache(maxsize=65536)
def _quoted_sqlite(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect="sqlite")


def _distinct_values(
    rows: Sequence[Sequence[Any]], index: int, limit: int, max_chars: int
) -> list[JSONValue]:
    """First ``limit`` distinct values of column ``index``, skipping NULL, '' and binary data (as OmniSQL)."""
    seen: list[Any] = []
    for row in rows:
        value = row[index]
        if value is None or value == "" or isinstance(value, _BINARY):
            continue
        if value in seen:
            continue
        seen.append(value)
        if len(seen) >= limit:
            break
    out: list[JSONValue] = []
    for value in seen:
        safe = json_safe(value)
        out.append(safe[:max_chars] if isinstance(safe, str) else safe)
    return out


def _table_schema(
    table: CatalogTable, notes: TableNotes | None, catalog: dict[str, CatalogTable]
) -> TableSchema:
    pk = list(table.primary_key) or [c.name for c in table.columns if c.primary_key]
    pk_set = set(pk)
    columns: list[ColumnSchema] = []
    comments = ddl_column_comments(table.ddl) if table.ddl else {}
    for c in table.columns:
        note = notes.column(c.name) if notes else None
        description = details = value_description = None
        if note is not None:
            description = note.name or note.description
            details = note.description if note.description != description else None
            value_description = note.value_description
        # The description files first; the CREATE statement's own comment fills in
        description = description or comments.get(c.name.casefold())
        columns.append(
            ColumnSchema(
                name=c.name,
                type=c.type or "",
                nullable=c.nullable,
                primary_key=c.primary_key or c.name in pk_set,
                description=description,
                details=details,
                value_description=value_description,
                examples=[],
            )
        )
    position = {c.name: i for i, c in enumerate(table.columns)}
    fks: list[ForeignKey] = []
    for fk in table.foreign_keys:
        ref_columns = list(fk.ref_columns)
        if not any(ref_columns):  # "REFERENCES t" alone means t's primary key
            ref = catalog.get(fk.ref_table.casefold())
            ref_columns = list(ref.primary_key) if ref else []
        fks.append(ForeignKey(columns=list(fk.columns), ref_table=fk.ref_table, ref_columns=ref_columns))
    # OmniSQL lists keys in column order (SQLite's pragma lists the last declared first).
    fks.sort(key=lambda f: tuple(position.get(c, len(position)) for c in f.columns))
    return TableSchema(
        name=table.name,
        schema_name=table.schema,
        description=notes.name if notes else None,
        columns=columns,
        primary_key=pk,
        foreign_keys=fks,
    )
