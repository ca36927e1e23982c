"""Differential testing of the guard against each engine's own reading of a statement.

Statements come from a small grammar that mixes what parsers disagree on: function calls in every notation
an engine accepts (plain, quoted, qualified, spaced, PostgreSQL's ``(x).f``, DuckDB's ``x.f()``), string
literals built from quotes, backslashes, comment markers and call text (``'a\\' , f('x') --'``), casts,
identifiers, comments (nested ones where the engine nests them) and subqueries. Each statement is read by
the guard (``guard.read_calls``) and by the engine itself (``Engine.read_calls``: PostgreSQL's plan,
MariaDB's rewritten query, DuckDB's parse tree, SQLite's authorizer), and the two sets of called functions
from the grammar's vocabulary are compared: any statement both can read where they differ is a
disagreement. A statement only one of them can read is counted, not compared: the guard refuses what it
cannot read, and an engine never runs what it cannot parse.

Used by ``test_differential.py`` (a fast sample) and ``benchmarks/guard_differential.py`` (100,000+ per
engine).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.sql import guard

__all__ = ["VOCABULARY", "DiffResult", "compare", "generate"]

# Per engine: function name -> argument list that type-checks on the engine. Names read the same way by
# sqlglot and by the engine (MariaDB renders upper as ucase and sqlglot version() as CURRENT_VERSION, so
# neither is here); the forbidden ones are the calls an attacker hides. ``TEXT`` in an argument is replaced
# by a (possibly tricky) string literal or a nested text call.
TEXT = "\x00TEXT\x00"
VOCABULARY: dict[str, dict[str, str]] = {
    # PostgreSQL folds an immutable call with constant arguments into its value while planning, so the
    # allowed ones take a column: upper(v || 'x') stays a call in the plan.
    "postgres": {
        "upper": f"v || {TEXT}",
        "lower": f"v || {TEXT}",
        "md5": f"v || {TEXT}",
        "initcap": f"v || {TEXT}",
        "abs": "id",
        "pg_read_file": "'/etc/hostname'",
        "pg_ls_dir": "'.'",
        "current_setting": "'work_mem'",
        "pg_sleep": "0",
        "setseed": "0.5",
        "pg_advisory_lock": "1",
        "pg_backend_pid": "",
        "txid_current": "",
    },
    "mysql": {
        "md5": TEXT,
        "hex": TEXT,
        "crc32": TEXT,
        "soundex": TEXT,
        "abs": "-1",
        "load_file": "'/etc/hostname'",
        "sleep": "0",
        "get_lock": "'x', 0",
        "is_free_lock": "'x'",
        "connection_id": "",
        "benchmark": "1, 1",
    },
    # sqlglot reads upper(hex(x)) as one hex() node, so hex is left out next to upper and lower.
    "sqlite": {
        "upper": TEXT,
        "lower": TEXT,
        "length": TEXT,
        "unicode": TEXT,
        "abs": "-1",
        "load_extension": "'/tmp/x.so'",
        "randomblob": "8",
        "zeroblob": "8",
        "sqlite_source_id": "",
        "changes": "",
    },
    "duckdb": {
        "upper": TEXT,
        "lower": TEXT,
        "md5": TEXT,
        "reverse": TEXT,
        "abs": "-1",
        "getenv": "'HOME'",
        "current_setting": "'threads'",
        "setseed": "0.5",
        "txid_current": "",
    },
}
_QUOTE = {"postgres": '"', "mysql": "`", "sqlite": '"', "duckdb": '"'}

# Arguments without quotes, for calls placed between literals whose quotes the readers may pair differently.
QUOTELESS: dict[str, dict[str, str]] = {
    "postgres": {"pg_read_file": "chr(47)", "pg_ls_dir": "chr(46)", "current_setting": "chr(120)"},
    "mysql": {"load_file": "0x2f6574632f686f73746e616d65", "get_lock": "1, 0", "is_free_lock": "1"},
    "sqlite": {"load_extension": "char(120)"},
    "duckdb": {"getenv": "chr(72)", "current_setting": "chr(116)"},
}


@dataclass
class _Gen:
    dialect: str
    rng: random.Random

    def pick(self, *options: str) -> str:
        return self.rng.choice(options)

    def gap(self) -> str:
        """Whitespace or a comment between tokens."""
        options = [" ", " ", " ", "\n", "\t", " /* c */ ", " /**/", " -- c\n", " /* ' */ ", " /* -- */ "]
        if self.dialect == "postgres":
            options += [" /* /* nested */ */ ", " /* /* */ "]
        if self.dialect == "mysql":
            options += [" # c\n", " --c\n", " /* c */"]
        return self.rng.choice(options)

    def tricky_text(self) -> str:
        """Text for inside a string literal: quotes, backslashes, comment markers and call text."""
        pieces = ["a", " ", "\\", "'", "''", "\\'", "--", "/*", "*/", "#", ",", ")", "(", '"', "$$", "\\\\"]
        names = list(VOCABULARY[self.dialect])
        out = []
        for _ in range(self.rng.randint(0, 6)):
            if self.rng.random() < 0.25:
                name = self.rng.choice(names)
                out.append(f"{name}({self._plain_args(name)})")
            else:
                out.append(self.rng.choice(pieces))
        return "".join(out)

    def string(self) -> str:
        """A string literal in one of the dialect's forms (some deliberately ill-formed)."""
        body = self.tricky_text()
        forms = [f"'{body}'", "'x'", "'it''s'"]
        if self.dialect in ("postgres", "duckdb"):
            forms += [f"E'{body}'", "E'a\\'b'"]
        if self.dialect == "postgres":
            forms += [f"$${body}$$", f"$q${body}$q$", "U&'d\\0061t'"]
        if self.dialect == "mysql":
            forms += [f'"{body}"', "'a\\'b'", "_utf8mb4'x'", "X'41'"]
        literal = self.rng.choice(forms)
        if self.dialect in ("postgres", "duckdb") and self.rng.random() < 0.3:
            literal += "::text"
        return literal

    def _plain_args(self, name: str) -> str:
        template = VOCABULARY[self.dialect][name]
        return template.replace(TEXT, "'x'")

    def args(self, name: str, depth: int) -> str:
        template = VOCABULARY[self.dialect][name]
        if TEXT not in template:
            return template
        inner = self.string() if depth > 1 or self.rng.random() < 0.6 else self.text_expr(depth + 1)
        return template.replace(TEXT, inner)

    def text_expr(self, depth: int) -> str:
        """An expression of text type."""
        if depth > 2 or self.rng.random() < 0.4:
            return self.string()
        text_calls = [n for n, a in VOCABULARY[self.dialect].items() if TEXT in a]
        return self.call(self.rng.choice(text_calls), depth + 1)

    def call(self, name: str, depth: int) -> str:
        args = self.args(name, depth)
        q = _QUOTE[self.dialect]
        notations = [f"{name}({args})", f"{name}({args})", f"{q}{name}{q}({args})", f"{name.upper()}({args})"]
        if self.dialect != "mysql":  # MariaDB needs no space before a built-in's "(" (IGNORE_SPACE off)
            notations.append(f"{name} ({args})")
        if self.dialect == "postgres":
            notations.append(f"pg_catalog.{name}({args})")
            if args and "," not in args:
                notations += [f"({args}).{name}", f"({args}).{q}{name}{q}"]
        if self.dialect == "duckdb" and args and "," not in args:
            notations.append(f"({args}).{name}()")
        return self.rng.choice(notations)

    def expr(self, depth: int = 0) -> str:
        names = list(VOCABULARY[self.dialect])
        roll = self.rng.random()
        if depth > 2 or roll < 0.25:
            return self.rng.choice([self.string(), "1", "id", "v", "NULL"])
        if roll < 0.6:
            return self.call(self.rng.choice(names), depth + 1)
        if roll < 0.7:
            return f"({self.expr(depth + 1)})"
        if roll < 0.8:
            return f"CASE WHEN id > 1 THEN {self.expr(depth + 1)} ELSE {self.expr(depth + 1)} END"
        if roll < 0.9:
            return f"(SELECT {self.expr(depth + 1)})"
        cast = "CHAR" if self.dialect == "mysql" else "TEXT"
        return f"CAST({self.expr(depth + 1)} AS {cast})"

    def quoteless_call(self) -> str:
        name = self.rng.choice(list(VOCABULARY[self.dialect]))
        args = QUOTELESS[self.dialect].get(name) or VOCABULARY[self.dialect][name].replace(TEXT, "1")
        if "'" in args:
            args = "1"
        return f"{name}({args})"

    def sandwich(self) -> str:
        """A call between two literals whose ends the readers may place differently: one may see two
        strings where the other sees a string, the call, and a string (``'a\\' , ' , f(x) , ' --'``)."""
        opens = ["'a", "E'a", "'", '"a', "$$a", "U&'a", "N'a", "X'", "_utf8mb4'a"]
        escapes = ["\\'", "\\\\'", "''", "'", '\\"', '""', '"', "$$", "\\\\"]
        joins = [" , ", " || ", " ", ","]
        reopen = ["'", '"', "E'", "$$", ""]
        closes = [" , ' --'", " , '", "'", " --'", " , '' AS s", " # '", " , '/*'", " -- '\n", '"', ' , "--"']
        return (
            "SELECT "
            + self.rng.choice(opens)
            + self.rng.choice(escapes)
            + self.rng.choice(joins)
            + self.rng.choice(reopen)
            + " , "
            + self.quoteless_call()
            + " , "
            + self.rng.choice(closes)
        )

    def lexical(self) -> str:
        """A run of the atoms readers split differently (quotes, escapes, comment markers) around calls:
        ``'a\\' , f(x) , ''``. Most runs are unreadable to someone; the ones both can read are the test."""
        atoms = ["'", "\\'", "''", "a", " ", "--", "\n", "/*", "*/", ",", "\\", "\\\\"]
        atoms += {
            "postgres": ["E'", "$$", "$q$", '"', "U&'"],
            "mysql": ['"', '\\"', '""', "#", "`", "-- "],
            "sqlite": ['"', "[", "]", "`"],
            "duckdb": ["E'", '"', "$$"],
        }[self.dialect]
        names = list(VOCABULARY[self.dialect])
        out = []
        for _ in range(self.rng.randint(2, 9)):
            if self.rng.random() < 0.3:
                name = self.rng.choice(names)
                out.append(f" , {name}({self._plain_args(name)}) , ")
            else:
                out.append(self.rng.choice(atoms))
        tail = self.rng.choice([" AS s", "", " AS s FROM canary", " FROM canary WHERE v = 'x'"])
        return "SELECT " + "".join(out) + tail

    def statement(self) -> str:
        roll = self.rng.random()
        if roll < 0.25:
            return self.sandwich()
        if roll < 0.5:
            return self.lexical()
        items = [self.expr() for _ in range(self.rng.randint(1, 3))]
        sql = "SELECT" + self.gap() + ("," + self.gap()).join(items)
        if self.rng.random() < 0.7:
            sql += self.gap() + "FROM" + self.gap() + "canary" + self.pick("", " AS c")
            if self.rng.random() < 0.4:
                sql += self.gap() + "WHERE" + self.gap() + f"v = {self.string()}"
        if self.rng.random() < 0.3:
            sql += self.gap()
        return sql


def generate(dialect: str, count: int, seed: int = 0) -> list[str]:
    """``count`` statements for ``dialect`` ("postgres", "mysql", "sqlite", "duckdb"), reproducible by seed."""
    gen = _Gen(dialect, random.Random(f"{dialect}:{seed}"))
    return [gen.statement() for _ in range(count)]


@dataclass
class DiffResult:
    """The outcome of comparing guard and engine on a batch of statements."""

    statements: int = 0
    compared: int = 0  # read by both
    guard_refused: int = 0  # refused by the guard for a reason other than a call: never reaches an engine
    engine_unreadable: int = 0  # the guard reads it, the engine cannot parse or bind it (never runs there)
    disagreements: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    calls_seen: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (
            f"{self.statements} statements: {self.compared} read by both and compared, {self.guard_refused} "
            f"refused by the guard before any engine (syntax, other rules), {self.engine_unreadable} the engine "
            f"cannot read; {len(self.disagreements)} disagreements"
        )


def compare(dialect: str, statements: list[str], engine_calls: Callable[[str], list[str]]) -> DiffResult:
    """Read each statement with the guard and with ``engine_calls``; record where the vocabulary calls differ.

    Compared: every statement the guard accepts or refuses only for a call (what reaches an engine, or
    would if the guard missed a call). A statement the guard refuses for anything else never reaches one.
    """
    vocab = set(VOCABULARY[dialect])
    result = DiffResult()
    for sql in statements:
        result.statements += 1
        try:
            guard.check(sql, dialect)
        except QueryFailed as exc:
            if exc.error.rule != "function_not_allowed":
                result.guard_refused += 1
                continue
        ours = sorted({n for n in guard.read_calls(sql, dialect) if n in vocab})
        try:
            theirs = sorted(
                {n.rsplit(".", 1)[-1] for n in engine_calls(sql) if n.rsplit(".", 1)[-1] in vocab}
            )
        except QueryFailed:
            result.engine_unreadable += 1
            continue
        result.compared += 1
        result.calls_seen.update(theirs)
        if ours != theirs:
            result.disagreements.append((sql, ours, theirs))
    return result
