"""Value retrieval: which columns hold the literals a question mentions (beyond SQL-R1).

Owns the per-database index of distinct text values (built lazily with bounded, guarded
queries, cached on disk under the user cache dir keyed by the engine fingerprint, rebuilt
when the database changes) and the fuzzy matching of question phrases against it.
It never interpolates identifiers into SQL by hand: queries are built with sqlglot.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from rapidfuzz import fuzz, process
from sqlglot import exp

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.core.locations import cache_root
from sqlr1.mcp_server.db.cancellation import Cancellation

if TYPE_CHECKING:
    from sqlr1.mcp_server.db.executor import Executor
    from sqlr1.mcp_server.db.registry import Registry

__all__ = ["INDEX_VERSION", "ValueHit", "ValueIndex"]

log = logging.getLogger(__name__)

INDEX_VERSION = 1  # bump when the on-disk layout or the value filter changes

_TEXT_TYPES = ("CHAR", "TEXT", "CLOB", "STRING", "VARCHAR", "NAME", "ENUM", "CITEXT")
_STOPWORD_TEXT = """a an the of in on at to for from by with and or not no is are was were be been being do does did
    what which who whom whose when where why how all any each every some many much more most less least
    show list give find return tell me us our their its his her it this that these those there here
    than then as into per about over under between number count total average sum max min name names
    have has had with without only also both either same other such very can could would should will
    id ids value values"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN = re.compile(r"[^\s,;:!?()\[\]{}\"“”‘’`]+")


class ValueHit(BaseModel):
    """A stored value that matches a phrase of the question."""

    table: str
    column: str
    value: str
    score: float = Field(
        description="0-100 similarity of the question phrase and the value (100: exact, case-insensitive)."
    )
    phrase: str = Field(description="The question phrase the value matched.")


@dataclass
class _DbValues:
    fingerprint: str
    # normalized value -> [(table, column, original value)]
    entries: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        return list(self.entries)


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    return re.sub(r"\s+", " ", text)


def _is_text_type(type_name: str) -> bool:
    t = type_name.upper()
    return any(k in t for k in _TEXT_TYPES)


def _phrases(question: str, max_words: int = 4) -> list[str]:
    """Candidate phrases: quoted strings, and word n-grams (1..max_words) not made of stopwords only."""
    out: dict[str, None] = {}
    for m in re.finditer(r"[\"“‘'`]([^\"”’'`]{2,80})[\"”’'`]", question):
        out[_normalize(m.group(1))] = None
    words = [w.strip(".'") for w in _TOKEN.findall(question)]
    words = [w for w in words if w]
    for n in range(max_words, 0, -1):
        for i in range(len(words) - n + 1):
            gram = words[i : i + n]
            if all(_normalize(w) in _STOPWORDS for w in gram):
                continue
            if _normalize(gram[0]) in _STOPWORDS or _normalize(gram[-1]) in _STOPWORDS:
                continue  # "of AC/DC" adds nothing over "AC/DC"
            phrase = _normalize(" ".join(gram))
            if len(phrase) >= 2:
                out[phrase] = None
    return list(out)


class ValueIndex:
    """Lazily built, disk-cached index of distinct text values, one per database.

    Thread-safe: concurrent searches on one database build its index once.
    """

    def __init__(
        self,
        registry: Registry,
        executor: Executor,
        *,
        cache_dir: Path | None = None,
        max_values_per_column: int = 2000,
        max_value_chars: int = 120,
        timeout_s: float = 10.0,
    ) -> None:
        self._registry = registry
        self._executor = executor
        self._cache_dir = cache_dir or cache_root() / "values"
        self._max_values = max_values_per_column
        self._max_chars = max_value_chars
        self._timeout_s = timeout_s
        self._mem: dict[str, _DbValues] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- public ---------------------------------------------------------------
    def search(
        self,
        db: str,
        text: str,
        *,
        limit: int = 10,
        min_score: float = 85.0,
        cancel: Cancellation | None = None,
    ) -> list[ValueHit]:
        """Values of ``db`` that match phrases of ``text``, best first.

        Raises ``QueryFailed`` (``not_found``) for an unknown database. ``cancel`` stops a build of
        the index in the engine; a cancelled build raises and is neither kept nor written to disk.
        """
        values = self.values(db, cancel=cancel)
        if not values.entries:
            return []
        keys = values.keys
        best: dict[tuple[str, str, str], ValueHit] = {}
        for phrase in _phrases(text):
            if len(phrase) < 3 and phrase not in values.entries:
                continue
            matches: list[tuple[str, float]] = []
            if phrase in values.entries:
                matches.append((phrase, 100.0))
            if len(phrase) >= 4:
                for key, score, _ in process.extract(
                    phrase, keys, scorer=fuzz.ratio, score_cutoff=min_score, limit=limit
                ):
                    if key != phrase:
                        matches.append((key, float(score)))
            for key, score in matches:
                for table, column, original in values.entries[key]:
                    hit_key = (table, column, original)
                    prev = best.get(hit_key)
                    if prev is None or (score, len(phrase)) > (prev.score, len(prev.phrase)):
                        best[hit_key] = ValueHit(
                            table=table, column=column, value=original, score=round(score, 1), phrase=phrase
                        )
        hits = sorted(best.values(), key=lambda h: (-h.score, -len(h.phrase), h.table, h.column, h.value))
        return hits[:limit]

    def values(self, db: str, *, cancel: Cancellation | None = None) -> _DbValues:
        """The index of ``db``, built or loaded if missing or stale (fingerprint changed)."""
        engine = self._registry.engine(db)
        fingerprint = engine.fingerprint()
        cached = self._mem.get(db)
        if cached is not None and cached.fingerprint == fingerprint:
            return cached
        with self._lock_for(db):
            cached = self._mem.get(db)
            if cached is not None and cached.fingerprint == fingerprint:
                return cached
            loaded = self._load(db, fingerprint)
            if loaded is None:
                loaded = self._build(db, fingerprint, cancel or Cancellation())
                self._save(db, loaded)
            self._mem[db] = loaded
            return loaded

    def cache_path(self, db: str, fingerprint: str) -> Path:
        digest = hashlib.sha256(f"{INDEX_VERSION}:{self._max_values}:{fingerprint}".encode()).hexdigest()[:16]
        return self._cache_dir / f"{_safe_name(db)}-{digest}.json"

    # -- internals ------------------------------------------------------------
    def _lock_for(self, db: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(db, threading.Lock())

    def _build(self, db: str, fingerprint: str, cancel: Cancellation) -> _DbValues:
        engine = self._registry.engine(db)
        dialect = engine.dialect
        out = _DbValues(fingerprint=fingerprint)
        for table in engine.catalog():
            for column in table.columns:
                if not _is_text_type(column.type):
                    continue
                cancel.raise_if_cancelled()
                sql = (
                    exp.select(exp.column(column.name, quoted=True))
                    .distinct()
                    .from_(exp.table_(table.name, db=table.schema, quoted=True))
                    .where(exp.column(column.name, quoted=True).is_(exp.null()).not_())
                    .limit(self._max_values)
                    .sql(dialect=dialect)
                )
                try:
                    with cancel.handle() as handle:
                        result = self._executor.run(
                            db, sql, max_rows=self._max_values, timeout_s=self._timeout_s, cancel=handle
                        )
                except QueryFailed as exc:
                    cancel.raise_if_cancelled()  # a cancelled build stops here, incomplete and unsaved
                    # One unreadable column (odd type, timeout) must not disable retrieval for the rest.
                    log.warning("value index: skipping %s.%s on %s: %s", table.name, column.name, db, exc)
                    continue
                rows = result.raw_rows if result.raw_rows is not None else result.rows
                for row in rows:
                    value = row[0]
                    if not isinstance(value, str):
                        continue
                    value = value.strip()
                    if not value or len(value) > self._max_chars or _looks_numeric(value):
                        continue
                    out.entries.setdefault(_normalize(value), []).append((table.name, column.name, value))
        return out

    def _load(self, db: str, fingerprint: str) -> _DbValues | None:
        path = self.cache_path(db, fingerprint)
        if not path.is_file():
            return None
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("value index cache %s unreadable, rebuilding: %s", path, exc)
            return None
        if data.get("fingerprint") != fingerprint or data.get("version") != INDEX_VERSION:
            return None
        entries = {k: [tuple(x) for x in v] for k, v in data["entries"].items()}
        return _DbValues(fingerprint=fingerprint, entries=entries)

    def _save(self, db: str, values: _DbValues) -> None:
        path = self.cache_path(db, values.fingerprint)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in path.parent.glob(f"{_safe_name(db)}-*.json"):
                stale.unlink(missing_ok=True)  # older fingerprints of the same database
            tmp = path.with_suffix(".tmp")
            payload = {"version": INDEX_VERSION, "fingerprint": values.fingerprint, "entries": values.entries}
            tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            # A read-only cache dir costs a rebuild next time, nothing else.
            log.warning("value index cache %s not written: %s", path, exc)


def _safe_name(db: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", db)[:80]


def _looks_numeric(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
