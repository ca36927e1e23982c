"""A GBNF grammar of one read-only SELECT over a given catalog, for grammar-constrained decoding.

Owns :func:`sql_grammar`: from a :class:`~mcp_server.catalog.schema.DatabaseSchema` (the tables the prompt
shows) and its dialect it writes a llama.cpp GBNF grammar whose root is one fenced SQL block
(```` ```sql ```` … ```` ``` ````; rule ``body``: what follows the opener) holding a single SELECT (joins, subqueries, compound queries,
CASE, CAST, aggregates and the dialect's allowlisted functions, GROUP BY/HAVING/ORDER BY/LIMIT).
Every table must be one of the catalog's; a column qualified by a table name must be that table's;
an unqualified or alias-qualified column must be some catalog column. Aliases are short: a capital
and digits (``T1``) or up to three lower-case letters and a digit (``a``, ``il``, ``od2``), so they
cannot pass for a table or a function (``YEAR.InvoiceDate``), and never a keyword (``FROM Products by``,
the start of a view's name, is no alias: ``by`` is reserved); ORDER BY may also name a select alias. Keywords are accepted in upper or lower case, names as spelled in the catalog, bare
when they are plain identifiers, else (and always) quoted the dialect's way.

A CFG cannot know which table an alias stands for (it is declared after the SELECT list that uses it),
so a first draft may write ``T1.SupportRepId`` where T1 is Employee. Given the draft's
:class:`~mcp_server.sql.alias_scope.AliasScope` (``aliases=``), the grammar binds each alias to its
tables: ``T1.`` is then followed only by a column of Employee, and only the draft's aliases and the
tables it names unaliased may qualify a column (the generator decodes the query again under it).

It is a generation aid, not the guard: the guard (``guard.py``) still checks every statement. Not
covered (the model must do without): WITH, window functions, quoted aliases, ``table.*`` of an
alias. It never parses SQL and never touches a database.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

from sqlr1.mcp_server.catalog.schema import DatabaseSchema
from sqlr1.mcp_server.sql.alias_scope import AliasScope
from sqlr1.mcp_server.sql.dialects import ALLOWED_FUNCTIONS

__all__ = ["sql_grammar"]


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYWORDS = _word_set(
    """select from where group by having order limit offset join inner left right outer cross on using
    and or not in is null like between exists case when then else end cast as distinct union all
    intersect except asc desc glob true false collate escape"""
)
# Functions models reach for that the allowlists name differently (sqlglot canonical names).
_COMMON_FUNCTIONS = _word_set(
    "COUNT SUM AVG MIN MAX TOTAL ROUND ABS LENGTH LOWER UPPER SUBSTR SUBSTRING TRIM LTRIM RTRIM REPLACE "
    "COALESCE IFNULL NULLIF IIF INSTR STRFTIME DATE DATETIME TIME JULIANDAY GROUP_CONCAT"
)
# What SQLite itself has (core, date, math, aggregate): its allowlist holds sqlglot's canonical names,
# some of which SQLite lacks (YEAR, TS_OR_DS_TO_DATE); a model must not be let write them.
_SQLITE_FUNCTIONS = _word_set(
    """ABS CHAR COALESCE CONCAT CONCAT_WS FORMAT GLOB HEX IFNULL IIF INSTR LENGTH LIKE LOWER LTRIM MAX MIN
    NULLIF OCTET_LENGTH PRINTF QUOTE RANDOM REPLACE ROUND RTRIM SIGN SUBSTR SUBSTRING TRIM TYPEOF UNICODE
    UPPER DATE TIME DATETIME JULIANDAY UNIXEPOCH STRFTIME TIMEDIFF AVG COUNT GROUP_CONCAT STRING_AGG SUM
    TOTAL ACOS ASIN ATAN ATAN2 CEIL CEILING COS DEGREES EXP FLOOR LN LOG LOG10 LOG2 MOD PI POW POWER
    RADIANS SIN SQRT TAN TRUNC"""
)
# Reserved words of up to three letters in SQLite, PostgreSQL or MySQL: never an alias.
_SHORT_RESERVED = _word_set(
    "add all and any as asc at by div do end for if in is key mod not of on or row set to top use xor"
)
_QUOTES = {"sqlite": ('"', '"', "[", "]", "`", "`"), "mysql": ("`", "`", '"', '"'), "duckdb": ('"', '"')}

_BODY = r"""
root ::= "```sql\n" body
body ::= osp query (osp ";")? [ \t]* "\n```"
query ::= select (sp compound sp select)* (sp order)? (sp limit)?
compound ::= UNION (sp ALL)? | INTERSECT | EXCEPT
select ::= SELECT (sp DISTINCT)? sp results (sp FROM sp source)? (sp WHERE sp expr)? (sp GROUP sp BY sp exprs (sp HAVING sp expr)?)?
results ::= result (osp "," osp result)*
result ::= "*" | star | expr (sp (AS sp)? newname)?
source ::= tableref (join)*
tableref ::= table (sp (AS sp)? alias)? | "(" osp query osp ")" (sp (AS sp)? alias)?
join ::= osp "," osp tableref | sp joinkw sp tableref (sp ON sp expr | sp USING osp "(" osp anycol (osp "," osp anycol)* osp ")")?
joinkw ::= ((LEFT | RIGHT) (sp OUTER)? sp | INNER sp | CROSS sp)? JOIN
order ::= ORDER sp BY sp orderitem (osp "," osp orderitem)*
orderitem ::= (expr | newname) (sp (ASC | DESC))?
limit ::= LIMIT sp int (sp OFFSET sp int | osp "," osp int)?
exprs ::= expr (osp "," osp expr)*
expr ::= conj (sp OR sp conj)*
conj ::= neg (sp AND sp neg)*
neg ::= (NOT sp)? pred
pred ::= sum (osp cmpop osp sum | sp IS (sp NOT)? sp sum | (sp NOT)? sp IN osp "(" osp (query | exprs) osp ")" | (sp NOT)? sp (LIKE | GLOB) sp sum | (sp NOT)? sp BETWEEN sp sum sp AND sp sum)?
cmpop ::= "=" | "==" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
sum ::= term (osp ("+" | "-" | "||") osp term)*
term ::= unary (osp ("*" | "/" | "%") osp unary)*
unary ::= ("-" osp)? atom
atom ::= literal | colref | call | castexpr | caseexpr | EXISTS osp "(" osp query osp ")" | "(" osp (query | exprs) osp ")"
call ::= func osp "(" osp ("*" | (DISTINCT sp)? exprs)? osp ")"
castexpr ::= CAST osp "(" osp expr sp AS sp typename osp ")"
typename ::= [A-Za-z]+ (osp "(" osp int (osp "," osp int)? osp ")")?
caseexpr ::= CASE (sp expr)? (sp WHEN sp expr sp THEN sp expr)+ (sp ELSE sp expr)? sp END
literal ::= number | string | NULL | TRUE | FALSE
number ::= [0-9]+ ("." [0-9]+)? | "." [0-9]+
int ::= [0-9]+
string ::= "'" ([^'\\\n] | "''")* "'"
colref ::= qualified | anycol
star ::= (table | alias) ".*"
alias ::= [A-Z] [0-9]? [0-9]? | shortname [0-9]?
newname ::= [A-Za-z_] [A-Za-z0-9_]*
sp ::= [ \t\n]+
osp ::= [ \t\n]*
"""


def _literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _keyword(word: str) -> str:
    return f"{word.upper()} ::= {_literal(word.upper())} | {_literal(word.lower())}"


def _any_case(name: str) -> str:
    """``name`` in any letter case (an unquoted identifier is case-insensitive in SQL)."""
    return " ".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else _literal(c) for c in name)


def _name(name: str, dialect: str) -> str:
    """Alternatives spelling ``name``: bare in any case when it is a plain non-keyword identifier,
    and quoted as spelled."""
    quotes = _QUOTES.get(dialect, ('"', '"'))
    forms = [_literal(f"{quotes[i]}{name}{quotes[i + 1]}") for i in range(0, len(quotes), 2)]
    if _PLAIN.match(name) and name.lower() not in _KEYWORDS:
        forms.insert(0, f"({_any_case(name)})")
    return "(" + " | ".join(dict.fromkeys(forms)) + ")"


def _lower_words(length: int, excluded: Iterable[str]) -> str:
    """A GBNF expression of the lower-case words of ``length`` letters but the ``excluded`` ones."""
    excluded = {w for w in excluded if len(w) == length}
    if not excluded:
        return " ".join(["[a-z]"] * length)
    if length == 1:
        return "[" + "".join(c for c in string.ascii_lowercase if c not in excluded) + "]"
    firsts = sorted({w[0] for w in excluded})
    free = "".join(c for c in string.ascii_lowercase if c not in firsts)
    alternatives = [" ".join([f"[{free}]", *["[a-z]"] * (length - 1)])]
    for first in firsts:
        rest = _lower_words(length - 1, [w[1:] for w in excluded if w[0] == first])
        alternatives.append(f'"{first}" ({rest})')
    return "(" + " | ".join(alternatives) + ")"


_SHORTNAME = "shortname ::= " + " | ".join(f"({_lower_words(n, _SHORT_RESERVED)})" for n in (1, 2, 3))


def _alternatives(items: Iterable[str]) -> str:
    return " | ".join(items) or '"\\u0000"'  # an impossible literal keeps an empty rule well-formed


def sql_grammar(
    schema: DatabaseSchema, dialect: str | None = None, *, aliases: AliasScope | None = None
) -> str:
    """The GBNF grammar of one SELECT over ``schema``'s tables; with ``aliases`` (a draft's), a qualified
    column must be one of its qualifier's tables (see the module docstring)."""
    dialect = dialect or schema.dialect
    lines = [_BODY.strip(), _SHORTNAME]
    keywords = sorted(set(re.findall(r"\b([A-Z]{2,})\b", _BODY)) - {"GBNF"})
    lines += [_keyword(k) for k in keywords]
    if dialect == "sqlite":
        functions = sorted(_SQLITE_FUNCTIONS)
    else:
        allowed = ALLOWED_FUNCTIONS.get(dialect, frozenset())
        functions = sorted({f for f in allowed if _PLAIN.match(f)} | set(_COMMON_FUNCTIONS))
    lines.append("func ::= " + _alternatives(f"({_literal(f)} | {_literal(f.lower())})" for f in functions))
    tables: list[str] = []
    qualified: list[str] = []
    columns: dict[str, str] = {}
    rules: dict[str, str] = {}  # catalog table (lower case) -> its column rule
    named = {t.lower() for t in aliases.tables} if aliases is not None else None
    for i, table in enumerate(schema.tables):
        rule = rules[table.name.lower()] = f"cols{i}"
        names = [_name(c.name, dialect) for c in table.columns]
        lines.append(f"{rule} ::= " + _alternatives(names))
        spelled = _name(table.name, dialect)
        tables.append(spelled)
        if named is None or table.name.lower() in named:
            qualified.append(f'{spelled} "." {rule}')
        for c in table.columns:
            columns.setdefault(c.name, _name(c.name, dialect))
    lines.append("table ::= " + _alternatives(tables))
    lines.append("anycol ::= " + _alternatives(columns.values()))
    if aliases is None:
        qualified.append('alias "." anycol')
    else:
        for alias, owners in aliases.bindings.items():
            known = [rules[t.lower()] for t in owners or () if t.lower() in rules]
            after = "newname" if owners is None else "(" + _alternatives(known) + ")"
            qualified.append(f'{_literal(alias)} "." {after}')
    lines.append("qualified ::= " + _alternatives(qualified))
    return "\n".join(lines) + "\n"
