"""The database registry: named databases from config entries and ``--db`` targets, and their engines.

A target is one of
  * a SQLite file (name: the file stem) or a DuckDB file (``.duckdb`` / ``.ddb``); a file in the
    Spider/BIRD layout (``<db_id>/<db_id>.sqlite``) gets the description files a folder target gives it;
  * a Spider/BIRD folder: ``<db_id>/<db_id>.sqlite`` children (each db_id becomes a database), a
    folder holding ``database/`` or ``dev_databases/``, a single ``<db_id>/`` folder, or else a
    folder of ``.sqlite`` / ``.db`` / ``.duckdb`` files (each file stem a database). BIRD
    ``<db_id>/database_description/`` is attached as ``description_dir`` and a ``tables.json`` /
    ``dev_tables.json`` / ``train_tables.json`` in or next to the folder as ``tables_json``;
  * a SQLAlchemy URL: ``postgresql[+psycopg]://``, ``mysql[+pymysql]://``, ``mariadb[+pymysql]://``,
    ``duckdb:///path``, ``sqlite:///path``.
A target may be written ``name=PATH_OR_URL`` (:func:`split_named_target`). Unknown URL options, unsupported schemes,
missing files and duplicate names are errors (``QueryFailed`` kind ``config`` / ``not_found``).

Allowed URL query options (everything else is refused, never ignored):
  * PostgreSQL: ``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``, ``connect_timeout``,
    ``application_name``, ``options`` (``-c name=value`` settings, e.g. ``-csearch_path=myschema``; not
    the settings ``mcp_server.db.engines.pinning`` pins);
  * MariaDB/MySQL: ``charset`` (UTF-8 only), ``connect_timeout``, ``ssl_ca``, ``ssl_cert``, ``ssl_key``;
  * SQLite, DuckDB: none.

Engines are created lazily, once per database, and shared by every thread. A registry pickles
as its specs (engines are rebuilt in the receiving process).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from sqlr1.mcp_server.core.config import (
    DEFAULT_MAX_SQLITE_HEAP_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    DatabaseConfig,
)
from sqlr1.mcp_server.core.errors import QueryFailed, quoted
from sqlr1.mcp_server.db.engines.base import DatabaseSpec, Engine, EngineKind
from sqlr1.mcp_server.db.engines.pinning import check_url_options

if TYPE_CHECKING:
    from sqlr1.mcp_server.core.config import AppConfig

__all__ = ["URL_OPTIONS", "Registry", "specs_from_target", "split_named_target"]

URL_OPTIONS: dict[EngineKind, frozenset[str]] = {
    "postgresql": frozenset(
        {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options"}
    ),
    "mysql": frozenset({"charset", "connect_timeout", "ssl_ca", "ssl_cert", "ssl_key"}),
    "sqlite": frozenset(),
    "duckdb": frozenset(),
}

_SCHEMES: dict[str, EngineKind] = {
    "postgresql": "postgresql",
    "postgresql+psycopg": "postgresql",
    "mysql": "mysql",
    "mysql+pymysql": "mysql",
    "mariadb": "mysql",
    "mariadb+pymysql": "mysql",
    "duckdb": "duckdb",
    "sqlite": "sqlite",
}
_SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
_DUCKDB_SUFFIXES = (".duckdb", ".ddb")
_TABLES_JSON = ("tables.json", "dev_tables.json", "train_tables.json")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_NOT_IN_NAMES = ("/", "\\", ":", "?")  # characters of a path or URL, never of a database name


def _config_error(message: str) -> QueryFailed:
    return QueryFailed.of("config", message)


def split_named_target(value: str) -> tuple[str | None, str]:
    """``NAME=PATH_OR_URL`` -> ``(NAME, PATH_OR_URL)``; a plain ``PATH_OR_URL`` -> ``(None, PATH_OR_URL)``.

    The one reading of a named target (``--db`` and :meth:`Registry.from_targets` both use it): the text
    before the first ``=`` is a name unless it is empty or holds a character that only a path or a URL
    has (``/``, ``\\``, ``:``, ``?``), so a URL's own ``?key=value`` and a path such as ``/data/a=b.db``
    are never split. ``"my db=/x.sqlite"`` is the database ``my db`` at ``/x.sqlite``. The target is
    returned as written (an empty one is the caller's error to report).
    """
    name, sep, target = value.partition("=")
    if sep and name and not any(c in name for c in _NOT_IN_NAMES):
        return name, target
    return None, value


def _file_kind(path: Path) -> EngineKind:
    if path.suffix.lower() in _DUCKDB_SUFFIXES:
        return "duckdb"
    with path.open("rb") as fh:
        head = fh.read(16)
    if head == _SQLITE_MAGIC or not head:
        return "sqlite"
    raise _config_error(f"{path} is not a SQLite database (no SQLite header); give a .duckdb file or a URL")


def _file_spec(
    name: str | None, path: Path, *, description_dir: Path | None = None, tables_json: Path | None = None
) -> DatabaseSpec:
    path = path.resolve()
    kind = _file_kind(path)
    return DatabaseSpec(
        name=name or path.stem,
        kind=kind,
        url=f"{kind}:///{path}",
        path=path,
        description_dir=description_dir,
        tables_json=tables_json,
    )


def _find_tables_json(folder: Path) -> Path | None:
    for place in (folder, folder.parent):
        for candidate in _TABLES_JSON:
            if (place / candidate).is_file():
                return (place / candidate).resolve()
    return None


def _layout_file_spec(name: str | None, path: Path) -> DatabaseSpec:
    """A file target; in the Spider/BIRD layout (``<db_id>/<db_id>.sqlite``) with the description files a
    folder target would attach, so one database shows one schema text however it is named (serving a
    folder, training on a file)."""
    folder = path.parent
    if path.stem != folder.name:
        return _file_spec(name, path)
    desc = folder / "database_description"
    return _file_spec(
        name,
        path,
        description_dir=desc.resolve() if desc.is_dir() else None,
        tables_json=_find_tables_json(folder.parent),
    )


def _db_file(folder: Path) -> Path | None:
    for suffix in _SQLITE_SUFFIXES:
        candidate = folder / f"{folder.name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _folder_specs(folder: Path) -> list[DatabaseSpec]:
    for child in ("database", "dev_databases", "train_databases"):
        if (folder / child).is_dir():
            return _folder_specs(folder / child)
    tables_json = _find_tables_json(folder)
    single = _db_file(folder)
    db_dirs = [single.parent] if single is not None else sorted(p for p in folder.iterdir() if p.is_dir())
    specs = []
    for db_dir in db_dirs:
        db = _db_file(db_dir)
        if db is None:
            continue
        desc = db_dir / "database_description"
        specs.append(
            _file_spec(
                db_dir.name,
                db,
                description_dir=desc.resolve() if desc.is_dir() else None,
                tables_json=tables_json if single is None else _find_tables_json(folder.parent),
            )
        )
    if not specs:  # a plain folder of database files
        loose = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in _SQLITE_SUFFIXES + _DUCKDB_SUFFIXES
        )
        specs = [_file_spec(None, p, tables_json=tables_json) for p in loose]
    if not specs:
        raise QueryFailed.of(
            "not_found",
            f"no databases in folder {folder}: expected <db_id>/<db_id>.sqlite children "
            "(Spider/BIRD layout) or a database/ or dev_databases/ folder",
        )
    return specs


def _url_spec(name: str | None, url: str) -> DatabaseSpec:
    try:
        u = make_url(url)
    except ArgumentError as exc:
        raise _config_error(f"cannot parse database URL {url!r}: {exc}") from exc
    kind = _SCHEMES.get(u.drivername)
    if kind is None:
        raise _config_error(
            f"unsupported database URL scheme {u.drivername!r} in {u.render_as_string(hide_password=True)}; "
            f"use one of {', '.join(sorted(_SCHEMES))}"
        )
    unknown = sorted(set(u.query) - URL_OPTIONS[kind])
    if unknown:
        allowed = ", ".join(sorted(URL_OPTIONS[kind])) or "none"
        raise _config_error(
            f"unknown URL option(s) {', '.join(unknown)} in {u.render_as_string(hide_password=True)}; "
            f"allowed for {kind}: {allowed}"
        )
    check_url_options(kind, u.query)
    if kind in ("sqlite", "duckdb"):
        if not u.database or u.database == ":memory:":
            raise _config_error(f"{url!r}: give a database file path ({kind}:///path/to/file)")
        path = Path(u.database).expanduser()
        if not path.is_file():
            raise QueryFailed.of("not_found", f"database file not found: {path} (from {url!r})")
        spec = _file_spec(name, path)
        if spec.kind != kind:
            raise _config_error(f"{path} is a {spec.kind} file but the URL says {kind}")
        return spec
    if not u.database:
        raise _config_error(f"{u.render_as_string(hide_password=True)}: the URL names no database")
    return DatabaseSpec(name=name or u.database, kind=kind, url=u.render_as_string(hide_password=False))


def specs_from_target(target: str | DatabaseConfig) -> list[DatabaseSpec]:
    """The database(s) one target stands for (see the module docstring)."""
    if isinstance(target, DatabaseConfig):
        name, raw, description_dir = target.name, target.target, target.description_dir
    else:
        (name, raw), description_dir = split_named_target(target), None
    raw = raw.strip()
    if not raw:
        raise _config_error(f"empty database target after '{name}='" if name else "empty database target")
    if "://" in raw:
        specs = [_url_spec(name, raw)]
    else:
        path = Path(raw).expanduser()
        if path.is_dir():
            specs = _folder_specs(path)
            if name is not None and len(specs) > 1:
                raise _config_error(
                    f"name {name!r} given for folder {path}, which holds {len(specs)} databases; "
                    "drop the name (each db_id becomes a database) or point at one database"
                )
            if name is not None:
                specs = [_replace(specs[0], name=name)]
        elif path.is_file():
            specs = [_layout_file_spec(name, path)]
        else:
            raise QueryFailed.of("not_found", f"database file or folder not found: {path}")
    if description_dir is not None:
        if len(specs) != 1:
            raise _config_error(f"description_dir applies to one database; {raw} holds {len(specs)}")
        desc = Path(description_dir).expanduser()
        if not desc.is_dir():
            raise QueryFailed.of("not_found", f"description_dir not found: {desc}")
        specs = [_replace(specs[0], description_dir=desc.resolve())]
    return specs


def _replace(spec: DatabaseSpec, **changes: Any) -> DatabaseSpec:
    from dataclasses import replace

    return replace(spec, **changes)


_EXTRAS = {"postgresql": "postgres", "mysql": "mysql", "duckdb": "duckdb"}


def _create_engine(
    spec: DatabaseSpec, extra_functions: Sequence[str], max_value_bytes: int, sqlite_heap_bytes: int
) -> Engine:
    # Imported lazily so a server-only install needs only the drivers it uses.
    try:
        if spec.kind == "sqlite":
            from sqlr1.mcp_server.db.engines.sqlite import SqliteEngine

            return SqliteEngine(
                spec,
                extra_functions=extra_functions,
                max_value_bytes=max_value_bytes,
                max_heap_bytes=sqlite_heap_bytes,
            )
        if spec.kind == "postgresql":
            from sqlr1.mcp_server.db.engines.postgres import PostgresEngine

            return PostgresEngine(spec, max_value_bytes=max_value_bytes, extra_functions=extra_functions)
        if spec.kind == "mysql":
            from sqlr1.mcp_server.db.engines.mysql import MysqlEngine

            return MysqlEngine(spec, max_value_bytes=max_value_bytes, extra_functions=extra_functions)
        from sqlr1.mcp_server.db.engines.duckdb import DuckdbEngine

        return DuckdbEngine(spec, extra_functions=extra_functions)
    except ImportError as exc:
        extra = _EXTRAS.get(spec.kind, spec.kind)
        raise _config_error(
            f"database {spec.name!r} needs the {extra} driver ({exc.name or exc}): pip install 'sqlr1[{extra}]'"
        ) from exc


class Registry:
    """Named databases and their (lazily created, cached) engines. Thread-safe."""

    def __init__(self, specs: Iterable[DatabaseSpec], *, extra_functions: Sequence[str] = ()) -> None:
        self._specs: dict[str, DatabaseSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                other = self._specs[spec.name]
                raise _config_error(
                    f"duplicate database name {spec.name!r} ({other.display_url} and {spec.display_url}); "
                    "give one of them a name (name=PATH_OR_URL or name = ... in the config)"
                )
            self._specs[spec.name] = spec
        self._extra_functions: list[str] = list(extra_functions)
        self._max_value_bytes = DEFAULT_MAX_VALUE_BYTES
        self._sqlite_heap_bytes = DEFAULT_MAX_SQLITE_HEAP_BYTES
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_targets(
        cls, targets: Sequence[str | DatabaseConfig], *, extra_functions: Sequence[str] = ()
    ) -> Registry:
        specs = [spec for target in targets for spec in specs_from_target(target)]
        return cls(specs, extra_functions=extra_functions)

    @classmethod
    def from_config(cls, config: AppConfig, extra_targets: Sequence[str] = ()) -> Registry:
        """The config's ``[[databases]]`` plus CLI ``--db`` targets, with the guard's extra functions."""
        return cls.from_targets(
            [*config.databases, *extra_targets], extra_functions=config.guard.extra_functions
        )

    def __reduce__(self) -> tuple[Any, ...]:
        state = {
            "extra_functions": self._extra_functions,
            "max_value_bytes": self._max_value_bytes,
            "sqlite_heap_bytes": self._sqlite_heap_bytes,
        }
        return (Registry, (list(self._specs.values()),), state)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._extra_functions = list(state["extra_functions"])
        self._max_value_bytes = state.get("max_value_bytes", DEFAULT_MAX_VALUE_BYTES)
        self._sqlite_heap_bytes = state.get("sqlite_heap_bytes", DEFAULT_MAX_SQLITE_HEAP_BYTES)

    def names(self) -> list[str]:
        return list(self._specs)

    def specs(self) -> list[DatabaseSpec]:
        return list(self._specs.values())

    def get(self, name: str) -> DatabaseSpec:
        spec = self._specs.get(name)
        if spec is None:
            known = ", ".join(self._specs) or "none configured"
            raise QueryFailed.of("not_found", f"unknown database {quoted(name)}; available: {known}")
        return spec

    def allow_functions(self, names: Sequence[str]) -> None:
        """Allow extra functions in the engines' own allowlists (the guard setting ``extra_functions``)."""
        with self._lock:
            new = [n for n in names if n not in self._extra_functions]
            self._extra_functions.extend(new)
        self._tell_engines("allow_functions", new)

    def limit_values(self, max_bytes: int) -> None:
        """The longest text/blob value (row, where a driver receives rows whole) the engines return
        (the guard setting ``max_value_bytes``)."""
        with self._lock:
            self._max_value_bytes = max_bytes
        self._tell_engines("limit_values", max_bytes)

    def limit_sqlite_heap(self, max_bytes: int) -> None:
        """The most memory SQLite may allocate in this process (the guard setting ``max_sqlite_heap_bytes``):
        SQLite engines ask for it when they next open or use a connection. Process-wide, and SQLite can
        only lower it, so the lowest value asked for applies."""
        with self._lock:
            self._sqlite_heap_bytes = max_bytes
        self._tell_engines("limit_heap", max_bytes)

    def _tell_engines(self, method: str, value: object) -> None:
        """Pass a setting to the engines already open that have ``method`` (new ones get it at creation)."""
        with self._lock:
            engines = list(self._engines.values())
        for engine in engines:
            apply = getattr(engine, method, None)
            if apply is not None:
                apply(value)

    def engine(self, name: str) -> Engine:
        engine = self._engines.get(name)  # the common case, without the lock (a dict read is atomic)
        if engine is not None:
            return engine
        spec = self.get(name)
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = self._engines[name] = _create_engine(
                    spec, self._extra_functions, self._max_value_bytes, self._sqlite_heap_bytes
                )
            return engine

    def privilege_warnings(self) -> dict[str, list[str]]:
        """Least-privilege findings per server database (PostgreSQL, MariaDB/MySQL): what each connection's
        role may do beyond reading. Connects to each once; one that cannot be reached says so instead."""
        out: dict[str, list[str]] = {}
        for name, spec in self._specs.items():
            if spec.kind not in ("postgresql", "mysql"):
                continue
            try:
                found = self.engine(name).privilege_warnings()
            except QueryFailed as exc:
                found = [f"not checked: {exc.error.message}"]
            if found:
                out[name] = found
        return out

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()
