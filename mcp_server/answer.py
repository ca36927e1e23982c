"""The SQL-R1 answer contract: parse a completion, and the strict format check the reward uses.

A well-formed completion is ``<think>…</think>`` followed by ``<answer>…</answer>`` where the
answer holds a ```` ```sql ```` block. :func:`parse_answer` extracts the think text, the answer
text and the SQL (the LAST ```` ```sql ```` block inside ``<answer>``, as SQL-R1 does), with
tolerant fallbacks for truncated or untagged output. :func:`format_ok` is the strict check, and
the training reward calls exactly it (see its docstring for the pre-filled ``<think>``).

Tags are only recognised outside code fences, so a completion that quotes a database value
such as ``'</answer>'`` inside its SQL block does not break the structure. SQL is never parsed
with regexes: fences are found with plain string search and bare statements with sqlglot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

__all__ = ["TAGS", "ParsedAnswer", "SqlSource", "format_ok", "parse_answer"]

THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = "<think>", "</think>", "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
FENCE = "```"

SqlSource = Literal["answer", "fence", "statement"]


@dataclass(frozen=True)
class ParsedAnswer:
    """What a completion contains.

    ``sql_source`` says where the SQL came from: ``"answer"`` (a ```` ```sql ```` block inside
    ``<answer>``), ``"fence"`` (a code block elsewhere, e.g. a truncated or untagged answer),
    ``"statement"`` (a bare SELECT/WITH statement found with sqlglot) or ``None`` (no SQL).
    """

    think: str | None
    answer: str | None
    sql: str | None
    sql_source: SqlSource | None
    format_ok: bool


@dataclass(frozen=True)
class _Fence:
    start: int  # index of the opening ```
    body_start: int  # first character of the body (after the info line)
    body_end: int  # index of the closing ``` (len(text) when unterminated)
    end: int  # first character after the closing ``` (len(text) when unterminated)
    lang: str
    closed: bool


def _fences(text: str) -> list[_Fence]:
    out: list[_Fence] = []
    pos = 0
    while True:
        start = text.find(FENCE, pos)
        if start < 0:
            return out
        line_end = text.find("\n", start + 3)
        info_end = len(text) if line_end < 0 else line_end
        info = text[start + 3 : info_end]
        # An info string never contains a fence; ```SELECT 1``` on one line is an inline block.
        inline_close = info.find(FENCE)
        if inline_close >= 0:
            body_start, body_end = start + 3, start + 3 + inline_close
            out.append(_Fence(start, body_start, body_end, body_end + 3, "", True))
            pos = body_end + 3
            continue
        lang = info.strip().lower()
        if " " in lang or not lang.isidentifier():
            # ```SELECT x\nFROM t``` : no info string, the body starts right after the fence.
            lang, body_start = "", start + 3
        else:
            body_start = min(info_end + 1, len(text))
        close = text.find(FENCE, body_start)
        if close < 0:
            out.append(_Fence(start, body_start, len(text), len(text), lang, False))
            return out
        out.append(_Fence(start, body_start, close, close + 3, lang, True))
        pos = close + 3


def _tag_positions(text: str, fences: list[_Fence]) -> dict[str, list[int]]:
    # Only closed fences mask tags: an unterminated block must not swallow the closing tags.
    def outside(i: int) -> bool:
        return not any(f.closed and f.start <= i < f.end for f in fences)

    found: dict[str, list[int]] = {}
    for tag in TAGS:
        hits, pos = [], 0
        while (i := text.find(tag, pos)) >= 0:
            if outside(i):
                hits.append(i)
            pos = i + len(tag)
        found[tag] = hits
    return found


def _with_prefill(text: str, prefilled_think: bool) -> str:
    return THINK_OPEN + text if prefilled_think else text


def format_ok(text: str, *, prefilled_think: bool = False) -> bool:
    """The strict format check, identical to the reward's format component.

    True iff the text contains exactly one each of ``<think>``, ``</think>``, ``<answer>``,
    ``</answer>`` (outside code fences), in that order, and the answer contains a closed
    ```` ```sql ```` block. ``text`` is the completion only; when the prompt pre-filled the
    assistant turn with ``<think>`` (the training prompt), pass ``prefilled_think=True`` and the
    check runs on ``"<think>" + text``: the reward calls
    ``format_ok(completion, prefilled_think=True)``.
    """
    full = _with_prefill(text, prefilled_think)
    fences = _fences(full)
    pos = _tag_positions(full, fences)
    if any(len(pos[t]) != 1 for t in TAGS):
        return False
    t_open, t_close, a_open, a_close = (pos[t][0] for t in TAGS)
    if not t_open < t_close < a_open < a_close:
        return False
    body_start = a_open + len(ANSWER_OPEN)
    return any(f.closed and f.lang == "sql" and f.start >= body_start and f.end <= a_close for f in fences)


def _last_sql_fence(fences: list[_Fence], lo: int, hi: int) -> _Fence | None:
    inside = [f for f in fences if f.start >= lo and f.start < hi and f.lang == "sql"]
    closed = [f for f in inside if f.closed and f.end <= hi]
    if closed:
        return closed[-1]
    return inside[-1] if inside else None


def _fence_sql(text: str, fence: _Fence, hi: int) -> str:
    body = text[fence.body_start : min(fence.body_end, hi)]
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


def parse_answer(text: str, *, prefilled_think: bool = False) -> ParsedAnswer:
    """Split a completion into think text, answer text and SQL (never raises).

    SQL, in order of preference: the last ```` ```sql ```` block inside the last ``<answer>``;
    the last ```` ```sql ```` block anywhere (then any code block), including one cut off by a
    length limit; the last bare SELECT/WITH statement that sqlglot parses (answer text first).
    ``prefilled_think`` as in :func:`format_ok`.
    """
    full = _with_prefill(text, prefilled_think)
    fences = _fences(full)
    pos = _tag_positions(full, fences)
    n = len(full)

    think: str | None = None
    if pos[THINK_OPEN]:
        t_start = pos[THINK_OPEN][0] + len(THINK_OPEN)
        t_end = next((i for i in pos[THINK_CLOSE] if i >= t_start), None)
        if t_end is None:  # truncated or untagged end: think runs to the answer or the end
            t_end = next((i for i in pos[ANSWER_OPEN] if i >= t_start), n)
        think = full[t_start:t_end].strip()

    answer: str | None = None
    a_lo, a_hi = 0, 0
    if pos[ANSWER_OPEN]:
        a_lo = pos[ANSWER_OPEN][-1] + len(ANSWER_OPEN)
        a_hi = next((i for i in pos[ANSWER_CLOSE] if i >= a_lo), n)
        answer = full[a_lo:a_hi].strip()

    sql: str | None = None
    source: SqlSource | None = None
    if answer is not None and (f := _last_sql_fence(fences, a_lo, a_hi)) is not None:
        sql, source = _fence_sql(full, f, a_hi), "answer"
    if not sql:
        f = _last_sql_fence(fences, 0, n)
        if f is None:  # an untyped code block counts only when it holds a query
            typed = [g for g in fences if g.lang in ("", "sqlite", "postgresql", "mysql")]
            f = next((g for g in reversed(typed) if _parses_as_query(_fence_sql(full, g, n))), None)
        if f is not None and (body := _fence_sql(full, f, n)):
            sql, source = body, "fence"
    if not sql:
        stmt = (_last_statement(full[a_lo:a_hi]) if answer else None) or _last_statement(full)
        if stmt:
            sql, source = stmt, "statement"
    return ParsedAnswer(
        think=think,
        answer=answer,
        sql=sql or None,
        sql_source=source if sql else None,
        format_ok=format_ok(text, prefilled_think=prefilled_think),
    )
