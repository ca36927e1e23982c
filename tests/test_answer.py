"""The SQL-R1 answer parser and strict format check on well-formed, malformed and truncated answers."""

from __future__ import annotations

import pytest

from sqlr1.mcp_server.method.answer import format_ok, parse_answer

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
        False,  # SQL-R1 counts tags in the raw text: two </answer>, two <think>
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
    # -- issue 16, bug 1: each shape decided against SQL-R1's synsql.py --------------------------
    (
        "unclosed_fence_in_reasoning",  # SQL-R1 does not mask tags in code blocks: the format holds
        "<think>I could write ```sql here. Count rows.</think>\n<answer>\n```sql\nSELECT 1\n```\n</answer>",
        False,
        "SELECT 1",
        "answer",
        True,
    ),
    (
        "unclosed_line_fence_in_reasoning",  # the reasoning's block pairs with the answer's: tags still found
        "<think>I start:\n```sql\nSELECT\n</think>\n<answer>\n```sql\nSELECT 1\n```\n</answer>",
        False,
        "SELECT 1",
        "answer",
        True,
    ),
    (
        "one_line_block",
        "<think>a</think><answer>```sql SELECT 1```</answer>",
        False,
        "SELECT 1",
        "answer",
        True,
    ),
    (
        "upper_case_language",
        "<think>a</think><answer>```SQL\nSELECT 1\n```</answer>",
        False,
        "SELECT 1",
        "answer",
        False,
    ),
    (
        "spaced_language",
        "<think>a</think><answer>``` sql\nSELECT 1\n```</answer>",
        False,
        "SELECT 1",
        "answer",
        False,
    ),
    (
        "empty_sql_block",  # SQL-R1: an empty block fails the format (parse_sql_from_answer gives "")
        "<think>a</think><answer>```sql\n\n```</answer>",
        False,
        None,
        None,
        False,
    ),
    (
        "sqlite_language",  # SQL-R1's regex reads ```sqlite as ```sql + "ite…": format ok, the SQL fails
        "<think>a</think><answer>```sqlite\nSELECT 1\n```</answer>",
        False,
        "SELECT 1",
        "answer",
        True,
    ),
    # -- prose answers (untrained instruct models): the SQL is found, the format is not ok -----------
    (
        "prose_with_sql_fence",
        "To find the singers, select their names.\n\n```sql\nSELECT name FROM singer;\n```\n\nThis lists them.",
        False,
        "SELECT name FROM singer;",
        "fence",
        False,
    ),
    (
        "prose_with_untyped_fence",
        "Here is the query:\n```\nSELECT name FROM singer\n```",
        False,
        "SELECT name FROM singer",
        "fence",
        False,
    ),
    ("prose_one_line_fence", "Try ```SELECT 2``` please.", False, "SELECT 2", "fence", False),
    ("prose_one_line_sql_fence", "Try ```sql SELECT 2 ``` please.", False, "SELECT 2", "fence", False),
    (
        "prose_last_sql_block_wins",
        "First:\n```sql\nSELECT 1\n```\nBetter:\n```sql\nSELECT 2\n```\nPython:\n```python\nprint(1)\n```",
        False,
        "SELECT 2",
        "fence",
        False,
    ),
    (
        "prose_after_unclosed_fence_in_think",
        "<think>maybe ```sql\nSELECT 0</think>\nThe answer:\n```sql\nSELECT 3\n```",
        False,
        "SELECT 3",
        "fence",
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


# SQL-R1's own reading (synsql.py: extract_solution, validate_response_structure,
# parse_sql_from_answer), restated line for line with its regexes: the oracle for strict_answer.
def _sqlr1_reading(processed: str) -> tuple[bool, str | None, str | None, str | None]:
    import re

    answers = list(re.finditer(r"<answer>(.*?)</answer>", processed, re.DOTALL))
    thinks = list(re.finditer(r"<think>(.*?)</think>", processed, re.DOTALL))
    think = thinks[-1].group(1).strip() if thinks else None
    answer = answers[-1].group(1).strip() if answers else None
    passed = True
    positions = {}
    for name, tag in (("ts", "<think>"), ("te", "</think>"), ("as", "<answer>"), ("ae", "</answer>")):
        positions[name] = processed.find(tag)
        if processed.count(tag) != 1:
            passed = False
    if (
        positions["ts"] > positions["te"]
        or positions["te"] > positions["as"]
        or positions["as"] > positions["ae"]
    ):
        passed = False
    sql = None
    if passed:
        blocks = list(re.finditer(r"```sql(.*?)```", answer or "", re.DOTALL))
        sql = blocks[-1].group(1).strip() if blocks else None
        passed = bool(sql)
    return passed, think, answer, sql if passed else None


def test_strict_answer_is_sqlr1s_reading_on_random_shapes() -> None:
    import random

    from sqlr1.mcp_server.method.answer import strict_answer

    pieces = ["<think>", "</think>", "<answer>", "</answer>", "```sql", "```", "```SQL", "``` sql",
              " SELECT 1 ", "\n", "x", "'</answer>'", "```sqlite"]  # fmt: skip
    rng = random.Random(16)
    for _ in range(4000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        prefilled = rng.random() < 0.5
        got = strict_answer(text, prefilled_think=prefilled)
        expected = _sqlr1_reading(("<think>" if prefilled else "") + text)
        assert (got.ok, got.think, got.answer, got.sql) == expected, text
