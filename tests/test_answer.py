"""The SQL-R1 answer parser and strict format check on well-formed, malformed and truncated answers."""

from __future__ import annotations

import pytest

from mcp_server.answer import format_ok, parse_answer

GOOD = "<think>\nCount rows.\n</think>\n<answer>\n```sql\nSELECT count(*) FROM singer\n```\n</answer>"

# (id, completion, prefilled_think, expected sql, expected source, expected format_ok)
CASES: list[tuple[str, str, bool, str | None, str | None, bool]] = [
    ("good", GOOD, False, "SELECT count(*) FROM singer", "answer", True),
    ("good_prefilled", GOOD.removeprefix("<think>"), True, "SELECT count(*) FROM singer", "answer", True),
    # The pre-fill is counted: a completion that repeats <think> has two of them.
    ("prefilled_but_repeated", GOOD, True, "SELECT count(*) FROM singer", "answer", False),
    (
        "two_sql_blocks_last_wins",
        "<think>a</think><answer>```sql\nSELECT 1\n```\nbetter:\n```sql\nSELECT name FROM singer\n```</answer>",
        False,
        "SELECT name FROM singer",
        "answer",
        True,
    ),
    (
        "two_answers",
        "<think>a</think><answer>```sql\nSELECT 1\n```</answer><answer>```sql\nSELECT 2\n```</answer>",
        False,
        "SELECT 2",
        "answer",
        False,
    ),
    (
        "wrong_order",
        "<answer>```sql\nSELECT 1\n```</answer><think>a</think>",
        False,
        "SELECT 1",
        "answer",
        False,
    ),
    ("missing_think", "<answer>\n```sql\nSELECT 1\n```\n</answer>", False, "SELECT 1", "answer", False),
    (
        "no_sql_block",
        "<think>a</think><answer>SELECT name FROM singer WHERE age < 30</answer>",
        False,
        "SELECT name FROM singer WHERE age < 30",
        "statement",
        False,
    ),
    (
        "truncated_in_sql_block",
        "<think>plan</think>\n<answer>\n```sql\nSELECT name, age FROM singer ORDER BY",
        False,
        "SELECT name, age FROM singer ORDER BY",
        "answer",
        False,
    ),
    (
        "truncated_in_think",
        "<think>First ```sql\nSELECT name FROM singer\n``` then I should",
        False,
        "SELECT name FROM singer",
        "fence",
        False,
    ),
    ("untagged_fence", "Here you go:\n```sql\nSELECT 3\n```\nDone.", False, "SELECT 3", "fence", False),
    (
        "untyped_fence_with_query",
        "Answer:\n```\nSELECT id FROM stadium\n```",
        False,
        "SELECT id FROM stadium",
        "fence",
        False,
    ),
    (
        "bare_statement_in_prose",
        "The query is SELECT name FROM singer WHERE country = 'France'. That's it.",
        False,
        "SELECT name FROM singer WHERE country = 'France'",
        "statement",
        False,
    ),
    (
        "bare_cte_multiline",
        "Sure.\nWITH t AS (SELECT 1 AS x)\nSELECT x FROM t;\nHope it helps.",
        False,
        "WITH t AS (SELECT 1 AS x)\nSELECT x FROM t",
        "statement",
        False,
    ),
    (
        "fake_tag_in_value",
        "<think>match the value</think>\n<answer>\n```sql\nSELECT * FROM t WHERE a = '</answer><think>'\n```\n</answer>",
        False,
        "SELECT * FROM t WHERE a = '</answer><think>'",
        "answer",
        True,
    ),
    ("no_sql_at_all", "<think>I don't know</think><answer>no idea</answer>", False, None, None, False),
    ("empty", "", False, None, None, False),
    (
        "answer_unclosed_block",
        "<think>x</think><answer>```sql\nSELECT 1\n</answer>",
        False,
        "SELECT 1",
        "answer",
        False,
    ),
    (
        "prose_select_not_sql",
        "<think>We select the best columns</think><answer>nothing</answer>",
        False,
        None,
        None,
        False,
    ),
    (
        "uppercase_tags_are_not_tags",
        "<THINK>a</THINK><ANSWER>```sql\nSELECT 1\n```</ANSWER>",
        False,
        "SELECT 1",
        "fence",
        False,
    ),
]


@pytest.mark.parametrize(
    ("text", "prefilled", "sql", "source", "ok"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_parse_table(text: str, prefilled: bool, sql: str | None, source: str | None, ok: bool) -> None:
    parsed = parse_answer(text, prefilled_think=prefilled)
    assert parsed.sql == sql
    assert parsed.sql_source == source
    assert parsed.format_ok is ok
    assert format_ok(text, prefilled_think=prefilled) is ok


def test_think_and_answer_text() -> None:
    parsed = parse_answer(GOOD)
    assert parsed.think == "Count rows."
    assert parsed.answer == "```sql\nSELECT count(*) FROM singer\n```"


def test_truncated_think_runs_to_end() -> None:
    parsed = parse_answer("I need the singer table", prefilled_think=True)
    assert parsed.think == "I need the singer table"
    assert parsed.answer is None
    assert parsed.sql is None


def test_sql_block_outside_answer_does_not_satisfy_format() -> None:
    text = "<think>```sql\nSELECT 1\n```</think><answer>see above</answer>"
    assert not format_ok(text)
    assert parse_answer(text).sql == "SELECT 1"
