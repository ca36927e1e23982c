"""The question-vs-result shape checks (``mcp_server.method.shape``): each check fires on the mismatch it
names, stays silent on the right answer, and stays rare on the gold answers of the Spider dev subset."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sqlr1.mcp_server.core.results import QueryResult, column
from sqlr1.mcp_server.method.feedback import review, shape_review
from sqlr1.mcp_server.method.shape import check_shape, requested_rows, sql_facts

REPO = Path(__file__).resolve().parent.parent


def result(rows: list[list[object]], names: list[str] | None = None, truncated: bool = False) -> QueryResult:
    width = len(rows[0]) if rows else len(names or ["x"])
    cols = [column(n, None) for n in (names or [f"c{i}" for i in range(width)])]
    return QueryResult(columns=cols, rows=rows, row_count=len(rows), truncated=truncated, elapsed_ms=0.0)  # type: ignore[arg-type]


def codes(question: str, res: QueryResult, sql: str | None = None) -> list[str]:
    return [issue.code for issue in check_shape(question, res, sql, dialect="sqlite")]


def test_each_question_answered_with_one_row() -> None:
    question = "How many tracks does each genre have?"
    assert codes(question, result([[3503]]), "SELECT count(*) FROM Track") == ["one_row_per_group"]
    grouped = result([["Rock", 1297], ["Jazz", 130]])
    assert (
        codes(
            question, grouped, "SELECT g.Name, count(*) FROM Track t JOIN Genre g USING (GenreId) GROUP BY 1"
        )
        == []
    )
    # one group that really is one row: grouped SQL is trusted
    assert codes(question, result([["Rock", 1297]]), "SELECT Name, count(*) FROM Genre GROUP BY Name") == []
    # "per" and "for every" too; "miles per gallon" is not a group
    assert codes("What is the number of albums per artist?", result([[347]]), "SELECT count(*) FROM Album")
    assert not codes(
        "What is the average miles per gallon of cars with 4 cylinders?",
        result([[28.1]]),
        "SELECT avg(mpg) FROM cars_data WHERE cylinders = 4",
    )


def test_top_n_answered_with_more_rows() -> None:
    assert requested_rows("List the top 5 customers by total spent") == 5
    assert requested_rows("Return the names of the 3 most populated countries.") == 3
    assert requested_rows("Which three artists have the most albums?") is None  # no "the"/"top": left alone
    assert requested_rows("What are the first names of students?") is None
    hundred = result([[i] for i in range(100)], truncated=True)
    issues = check_shape("Show the top 5 tracks by length", hundred, "SELECT Name FROM Track")
    assert [i.code for i in issues] == ["too_many_rows"] and "LIMIT 5" in issues[0].feedback
    assert "100+ rows" in issues[0].note
    assert not codes("Show the top 5 tracks by length", result([[i] for i in range(5)]))


def test_how_many_answered_with_rows_or_text() -> None:
    many = result([["Rock", 1], ["Jazz", 2]])
    assert codes("How many genres are there?", many, "SELECT Name, 1 FROM Genre GROUP BY Name") == [
        "count_many_rows"
    ]
    assert codes("How many genres are there?", result([["Rock"]]), "SELECT Name FROM Genre LIMIT 1") == [
        "count_not_number"
    ]
    assert not codes("How many genres are there?", result([[25]]), "SELECT count(*) FROM Genre")


def test_list_question_answered_with_one_aggregate_number() -> None:
    question = "List the names of all artists."
    assert codes(question, result([[275]]), "SELECT count(*) FROM Artist") == ["list_got_number"]
    assert not codes(question, result([["AC/DC"], ["Accept"]]), "SELECT Name FROM Artist")
    # a number that is not an aggregate, and a question that asks for a number, are fine
    assert not codes(
        "Which artist has id 1?", result([[1]]), "SELECT ArtistId FROM Artist WHERE ArtistId = 1"
    )
    assert not codes("Show the total number of artists.", result([[275]]), "SELECT count(*) FROM Artist")


def test_single_null_is_flagged() -> None:
    assert codes(
        "What is the average price of albums by nobody?", result([[None]]), "SELECT avg(x) FROM t"
    ) == ["only_null"]


def test_sql_facts() -> None:
    assert sql_facts("SELECT count(*), max(a) FROM t").aggregate_only
    assert not sql_facts("SELECT a, count(*) FROM t GROUP BY a").aggregate_only
    assert sql_facts("SELECT a, count(*) FROM t GROUP BY a").grouped
    assert not sql_facts("SELECT a FROM t").aggregate_only
    assert sql_facts("not sql at all ((") == sql_facts(None)


def test_review_keeps_its_verdicts_and_shape_review_adds_the_softer_ones() -> None:
    """``review`` (shared with training) still rejects "how many" answered with a list and nothing more;
    ``shape_review`` gives the softer checks as reason ``shape``."""
    listed = result([["a"], ["b"], ["c"]])
    assert (
        review("How many genres are there?", "SELECT Name FROM Genre", listed, None).reason == "implausible"
    )
    one = result([[3503]])
    each = "How many tracks does each genre have?"
    assert review(each, "SELECT count(*) FROM Track", one, None).accepted
    verdict, issues = shape_review(each, "SELECT count(*) FROM Track", one, dialect="sqlite")
    assert not verdict.accepted and verdict.reason == "shape" and verdict.feedback == issues[0].feedback
    assert "GROUP BY" in (verdict.feedback or "")


def _gold_shapes(shared: Path, limit: int) -> tuple[int, dict[str, list[str]]]:
    subset = json.loads((REPO / "benchmarks" / "spider_dev_200.json").read_text(encoding="utf-8"))
    dev = json.loads((shared / "spider" / "dev.json").read_text(encoding="utf-8"))
    flagged: dict[str, list[str]] = {}
    checked = 0
    for i in subset["ids"][:limit]:
        item = dev[i]
        path = shared / "spider" / "database" / item["db_id"] / f"{item['db_id']}.sqlite"
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            cur = con.execute(item["query"])
            rows = [list(r) for r in cur.fetchmany(1001)]
            names = [d[0] for d in cur.description]
        except sqlite3.Error:
            continue
        finally:
            con.close()
        if not rows:
            continue
        res = QueryResult(
            columns=[column(n, None) for n in names],
            rows=rows[:1000],  # type: ignore[arg-type]
            row_count=min(len(rows), 1000),
            truncated=len(rows) > 1000,
            elapsed_ms=0.0,
        )
        checked += 1
        for issue in check_shape(item["question"], res, item["query"], dialect="sqlite"):
            flagged.setdefault(issue.code, []).append(item["question"])
    return checked, flagged


def test_gold_answers_of_the_spider_dev_subset_rarely_look_wrong(shared_data: Path) -> None:
    """The checks' false alarms on right answers: the gold SQL of the 200-question dev subset."""
    checked, flagged = _gold_shapes(shared_data, 200)
    alarms = sum(len(v) for v in flagged.values())
    assert checked >= 180
    assert alarms <= 0.03 * checked, json.dumps(flagged, indent=1)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Show the stadium name and the number of concerts in each stadium.", "one_row_per_group"),
        ("For each stadium, how many concerts play there?", "one_row_per_group"),
    ],
)
def test_spider_style_each_questions(question: str, expected: str) -> None:
    assert codes(question, result([[6]]), "SELECT count(*) FROM concert") == [expected]
