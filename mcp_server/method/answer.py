"""The SQL-R1 answer contract: the strict format check the reward uses, and a tolerant parser.

A well-formed completion is ``<think>…</think>`` followed by ``<answer>…</answer>`` where the
answer holds a ```` ```sql ```` block. Two readings of a completion live here, and nowhere else:

* :func:`strict_answer` / :func:`format_ok`: SQL-R1's own rules (``verl/utils/reward_score/synsql.py``
  of IDEA-FinAI/SQL-R1, ``extract_solution``, ``validate_response_structure``,
  ``parse_sql_from_answer``), reproduced exactly: each of the four tags appears exactly once in the
  raw text (a tag inside a code block or a SQL string literal counts, as there), in order, and the
  answer's last ```` ```sql ```` … ```` ``` ```` block (``sql`` lower-case, right after the
  backticks; a one-line block counts) is not empty. The training reward calls exactly this.
* :func:`parse_answer`: whatever the model wrote, find the SQL: the last SQL block inside the
  ``<answer>`` block, else the last SQL code block after the reasoning (```` ```sql ````,
  ```` ```SQL ````, ```` ``` sql ````, an untyped ```` ``` ```` block holding a query, one-line blocks),
  else the last bare SELECT/WITH statement that sqlglot parses. Untrained instruct models that answer
  in prose with a fenced block are served by this path; it never changes what :func:`format_ok` says.

SQL is never parsed with regexes: tags and fences are found with plain string search (which is what
SQL-R1's non-greedy regexes match) and bare statements with sqlglot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

__all__ = [
    "TAGS",
    "ParsedAnswer",
    "SqlSource",
    "StrictAnswer",
    "format_ok",
    "parse_answer",
    "parse_completion",
    "strict_answer",
]

THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = "<think>", "</think>", "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
FENCE = "```"
SQL_FENCE = "```sql"  # SQL-R1's opening: case-sensitive, no space
# Info strings of a code block that hold SQL (lower-cased): the tolerant parser's "SQL block".
SQL_LANGS = frozenset(
    {"sql", "sqlite", "sqlite3", "postgresql", "postgres", "psql", "mysql", "mariadb", "duckdb"}
)

SqlSource = Literal["answer", "fence", "statement"]


@dataclass(frozen=True)
class StrictAnswer:
    """A completion read by SQL-R1's rules (``synsql.py``).

    ``think`` and ``answer`` are the last ``<think>(.*?)</think>`` / ``<answer>(.*?)</answer>`` match,
    stripped (None when there is none); ``sql`` is the last ```` ```sql(.*?)``` ```` match in the
    answer, stripped, and is set only when ``ok``; ``ok`` is the format check.
    """

    ok: bool
    think: str | None
    answer: str | None
    sql: str | None


@dataclass(frozen=True)
class ParsedAnswer:
    """What a completion contains.

    ``sql_source`` says where the SQL came from: ``"answer"`` (a SQL block inside ``<answer>``),
    ``"fence"`` (a code block elsewhere: prose with a fenced block, a truncated or untagged answer),
    ``"statement"`` (a bare SELECT/WITH statement found with sqlglot) or ``None`` (no SQL).
    ``format_ok`` is :func:`format_ok` of the same text.
    """

    think: str | None
    answer: str | None
    sql: str | None
    sql_source: SqlSource | None
    format_ok: bool


def _with_prefill(text: str, prefilled_think: bool) -> str:
    return THINK_OPEN + text if prefilled_think else text


def _last_between(text: str, open_: str, close: str) -> str | None:
    """The group of the last match of the non-greedy ``open_(.*?)close`` (DOTALL), as ``re.finditer``
    finds matches: left to right, each from an opening to the first closing after it."""
    found: str | None = None
    pos = 0
    while (start := text.find(open_, pos)) >= 0:
        end = text.find(close, start + len(open_))
        if end < 0:
            break  # no closing after this opening, hence none after a later one either
        found = text[start + len(open_) : end]
        pos = end + len(close)
    return found


def strict_answer(text: str, *, prefilled_think: bool = False) -> StrictAnswer:
    """Read ``text`` exactly as SQL-R1's reward does (see the module docstring).

    ``text`` is the completion only; when the prompt pre-filled the assistant turn with ``<think>``
    (the training prompts), pass ``prefilled_think=True`` and the check runs on ``"<think>" + text``,
    as SQL-R1's runs on the decoded sequence after the assistant header, pre-fill included.
    """
    full = _with_prefill(text, prefilled_think)
    think = _last_between(full, THINK_OPEN, THINK_CLOSE)
    answer = _last_between(full, ANSWER_OPEN, ANSWER_CLOSE)
    think = think.strip() if think is not None else None
    answer = answer.strip() if answer is not None else None
    ok = all(full.count(tag) == 1 for tag in TAGS)
    if ok:
        t_open, t_close, a_open, a_close = (full.find(tag) for tag in TAGS)
        ok = t_open < t_close < a_open < a_close
    sql: str | None = None
    if ok and answer is not None:
        block = _last_between(answer, SQL_FENCE, FENCE)
        sql = block.strip() if block is not None else None
        ok = bool(sql)
    return StrictAnswer(ok=ok, think=think, answer=answer, sql=sql if ok else None)


def format_ok(text: str, *, prefilled_think: bool = False) -> bool:
    """SQL-R1's format check, identical to the reward's format component.

    True iff the text holds exactly one each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>``
    (counted in the raw text), in that order, and the answer's last ```` ```sql ```` block is not
    empty. ``prefilled_think`` as in :func:`strict_answer`; the reward calls
    ``format_ok(completion, prefilled_think=True)``.
    """
    return strict_answer(text, prefilled_think=prefilled_think).ok


# -------------------------------------------------------------------------------- tolerant parser


@dataclass(frozen=True)
class _Fence:
    start: int  # index of the opening ```
    body_start: int  # first character of the body
    body_end: int  # index of the closing ``` (end of the region when unterminated)
    end: int  # first character after the closing ``` (end of the region when unterminated)
    lang: str  # "sql" for any SQL info string, else the info string's first word, lower-cased
    closed: bool


def _info(line: str) -> tuple[str, int | None]:
    """(language, offset of SQL on the fence line or None) for the text after an opening fence.

    ```` ```sql ````, ```` ``` SQL ````, ```` ```sqlite ```` are SQL blocks; ```` ```sql SELECT … ````
    starts its SQL on the fence line; ```` ```SELECT … ```` has no info string at all.
    """
    stripped = line.lstrip()
    if not stripped:
        return "", None
    word = stripped.split(None, 1)[0]
    lead = len(line) - len(stripped)
    if word.lower() in SQL_LANGS:
        rest = stripped[len(word) :]
        return "sql", (lead + len(word) + len(rest) - len(rest.lstrip()) if rest.strip() else None)
    if word.upper() in ("SELECT", "WITH") or not word.isidentifier() or len(stripped.split()) > 1:
        return "", 0  # not an info string: the body starts right after the fence
    return word.lower(), None


def _fences(text: str, lo: int, hi: int) -> list[_Fence]:
    out: list[_Fence] = []
    pos = lo
    while (start := text.find(FENCE, pos, hi)) >= 0:
        line_end = text.find("\n", start + 3, hi)
        info_end = hi if line_end < 0 else line_end
        inline_close = text.find(FENCE, start + 3, info_end)
        line = text[start + 3 : inline_close if inline_close >= 0 else info_end]
        lang, offset = _info(line)
        body_start = start + 3 + offset if offset is not None else min(info_end + 1, hi)
        if inline_close >= 0:  # ```sql SELECT 1``` or ```SELECT 1``` on one line
            out.append(
                _Fence(start, min(body_start, inline_close), inline_close, inline_close + 3, lang, True)
            )
            pos = inline_close + 3
            continue
        close = text.find(FENCE, body_start, hi)
        if close < 0:
            out.append(_Fence(start, body_start, hi, hi, lang, False))
            return out
        out.append(_Fence(start, body_start, close, close + 3, lang, True))
        pos = close + 3
    return out


def _fence_sql(text: str, fence: _Fence) -> str:
    body = text[fence.body_start : fence.body_end]
    if not fence.closed:  # a cut-off block ends at the next tag, if any
        cuts = [i for i in (body.find(t) for t in TAGS) if i >= 0]
        body = body[: min(cuts)] if cuts else body
    return body.strip()


def _parses_as_query(sql: str) -> bool:
    try:
        statements = [s for s in sqlglot.parse(sql) if s is not None]
    except (SqlglotError, RecursionError):  # deeply nested model output must not crash the parser
        return False
    return len(statements) == 1 and isinstance(statements[0], exp.Query)


def _fenced_sql(text: str, lo: int, hi: int) -> str | None:
    """The SQL of the region's last SQL block (a closed one before a cut-off one), else of its last
    untyped block that holds a query."""
    fences = _fences(text, lo, hi)
    typed = [f for f in fences if f.lang == "sql"]
    for f in [*(g for g in reversed(typed) if g.closed), *(g for g in reversed(typed) if not g.closed)]:
        if sql := _fence_sql(text, f):
            return sql
    for f in reversed(fences):
        if f.lang == "" and _parses_as_query(sql := _fence_sql(text, f)):
            return sql
    return None


def _statement_candidates(text: str) -> list[int]:
    """Starts of SELECT/WITH keywords: uppercase anywhere, any case at the start of a line."""
    starts: set[int] = set()
    for kw in ("SELECT", "WITH"):
        pos = 0
        while (i := text.find(kw, pos)) >= 0:
            pos = i + 1
            before_ok = i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
            after = text[i + len(kw) : i + len(kw) + 1]
            if before_ok and (after == "" or after.isspace()):
                starts.add(i)
    line_start = 0
    for line in text.split("\n"):
        stripped = line.lstrip()
        word = stripped.split(None, 1)[0].upper() if stripped else ""
        if word in ("SELECT", "WITH"):
            starts.add(line_start + len(line) - len(stripped))
        line_start += len(line) + 1
    return sorted(starts)


def _statement_at(text: str, start: int) -> str | None:
    """The longest prefix (up to a blank line, ';', a tag or a fence) that sqlglot parses as a query."""
    chunk = text[start:]
    for stop in ("\n\n", ";", "</", THINK_OPEN, ANSWER_OPEN, FENCE):
        cut = chunk.find(stop)
        if cut >= 0:
            chunk = chunk[:cut]
    # Candidate ends: line breaks and sentence ends ('. '), longest first.
    ends = {len(chunk)}
    ends.update(i for i, ch in enumerate(chunk) if ch == "\n")
    ends.update(
        i for i, ch in enumerate(chunk) if ch == "." and (i + 1 == len(chunk) or chunk[i + 1].isspace())
    )
    for end in sorted(ends, reverse=True)[:60]:
        candidate = chunk[:end].strip().rstrip(".:,").strip()
        if candidate and _parses_as_query(candidate):
            return candidate
    return None


def _last_statement(text: str) -> str | None:
    found: str | None = None
    covered_until = -1
    for start in _statement_candidates(text):
        if start < covered_until:
            continue  # a WITH/SELECT inside the statement already found
        stmt = _statement_at(text, start)
        if stmt is not None:
            found, covered_until = stmt, start + len(stmt)
    return found


def _tag_positions(text: str, masked: bool) -> dict[str, list[int]]:
    """Every occurrence of each tag; with ``masked``, only those outside closed code blocks (found
    left to right over the whole text), so a SQL literal or a quoted value that spells a tag is not one."""
    blocks = [(f.start, f.end) for f in _fences(text, 0, len(text)) if f.closed] if masked else []
    found: dict[str, list[int]] = {}
    for tag in TAGS:
        hits, pos = [], 0
        while (i := text.find(tag, pos)) >= 0:
            if not any(lo <= i < hi for lo, hi in blocks):
                hits.append(i)
            pos = i + len(tag)
        found[tag] = hits
    return found


def parse_answer(text: str, *, prefilled_think: bool = False) -> ParsedAnswer:
    """Split a completion into think text, answer text and SQL (never raises).

    Tags are first looked for outside closed code blocks, so a database value quoted in the reasoning
    or used as a SQL literal cannot open or close the answer; when that finds no ``<answer>`` (an
    unclosed ```` ``` ```` in the reasoning pairs with the answer's own block and hides it), every
    occurrence counts, as in :func:`strict_answer`. The answer block runs from the last ``<answer>``
    to the last ``</answer>`` after it (or the end). SQL, in order of preference: the last SQL block
    inside the answer block (a cut-off one too); the last SQL code block after the reasoning, then
    anywhere; the last bare SELECT/WITH statement that sqlglot parses (answer block first). Each
    region is scanned for code blocks on its own. ``prefilled_think`` as in :func:`strict_answer`.

    The SQL equals :func:`strict_answer`'s whenever the format holds, except for blocks SQL-R1's
    regex misreads (```` ```sqlite ```` is read there as ```` ```sql ```` + ``"ite…"``): the reward
    runs the strict SQL, serving runs this one.
    """
    full = _with_prefill(text, prefilled_think)
    strict = strict_answer(text, prefilled_think=prefilled_think)
    n = len(full)
    pos = _tag_positions(full, masked=True)
    if not pos[ANSWER_OPEN]:
        pos = _tag_positions(full, masked=False)

    think: str | None = None
    if pos[THINK_OPEN]:
        t_start = pos[THINK_OPEN][0] + len(THINK_OPEN)
        t_end = next((i for i in pos[THINK_CLOSE] if i >= t_start), None)
        if t_end is None:  # truncated or untagged end: think runs to the answer or the end
            t_end = next((i for i in pos[ANSWER_OPEN] if i >= t_start), n)
        think = full[t_start:t_end].strip()

    answer: str | None = None
    a_lo = a_hi = n
    if pos[ANSWER_OPEN]:
        a_lo = pos[ANSWER_OPEN][-1] + len(ANSWER_OPEN)
        a_hi = next((i for i in reversed(pos[ANSWER_CLOSE]) if i >= a_lo), n)
        answer = full[a_lo:a_hi].strip()
    after_think = pos[THINK_CLOSE][-1] + len(THINK_CLOSE) if pos[THINK_CLOSE] else 0

    sql: str | None = None
    source: SqlSource | None = None
    if answer is not None and (sql := _fenced_sql(full, a_lo, a_hi) or strict.sql):
        source = "answer"
    if not sql and (sql := _fenced_sql(full, after_think, n) or _fenced_sql(full, 0, n)):
        source = "fence"
    if not sql:
        stmt = (_last_statement(full[a_lo:a_hi]) if answer else None) or _last_statement(full)
        sql, source = (stmt, "statement") if stmt else (None, None)
    return ParsedAnswer(think=think, answer=answer, sql=sql or None, sql_source=source, format_ok=strict.ok)


def parse_completion(raw: str, prefill: str = "") -> ParsedAnswer:
    """:func:`parse_answer` of what a model generated after a prompt's assistant ``prefill``: serving's
    candidates and multi-turn training's attempts. A ``<think>`` (or no) pre-fill is parsed as SQL-R1
    does; another pre-fill is parsed together with what the model wrote after it."""
    if prefill in ("", THINK_OPEN):
        return parse_answer(raw, prefilled_think=bool(prefill))
    return parse_answer(prefill + raw)
