"""Multi-turn rollouts with execution feedback (``training.multiturn``).

The control-flow tests script the model's attempts (a stand-in for the trainer's generation) and use
everything else for real: the SmolLM2 tokenizer and chat template, a Spider database, the guarded
executor in a worker pool, the agent's review. They pin that the prompt of a later attempt is the one
serving renders for the agent's retry, character for character. The slow test runs real TRL GRPO
steps with multi-turn rollouts on the bundled model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sqlr1.mcp_server.catalog.schema import SchemaInspector
from sqlr1.mcp_server.core.config import GenerationConfig
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.executor import Executor
from sqlr1.mcp_server.db.registry import Registry
from sqlr1.mcp_server.inference.generation import Generator
from sqlr1.mcp_server.method.feedback import review, shape_review
from sqlr1.mcp_server.method.prompt import TRAIN_PROMPT_VERSION, PreviousTurn, render_text
from sqlr1.training.config import MultiTurnSection
from sqlr1.training.data import Example, SchemaDDL, grpo_records
from sqlr1.training.multiturn import FeedbackRollout, turns_reward_for
from sqlr1.training.pool import ExecutionPool

FIXTURES = Path(__file__).parent / "data" / "spider"
DB = "concert_singer"


def _answer(sql: str) -> str:
    return f"\nI look at the singer table.\n</think>\n<answer>\n```sql\n{sql}\n```\n</answer>"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from sqlr1.mcp_server.backends.bundled import ensure_bundled_model

    return AutoTokenizer.from_pretrained(str(ensure_bundled_model()))


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("db") / DB / f"{DB}.sqlite"
    dst.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURES / DB / f"{DB}.sqlite", dst)
    return dst


@pytest.fixture(scope="module")
def pool():
    with ExecutionPool(workers=1, timeout_s=5.0, margin_s=5.0) as p:
        yield p


class ScriptedTrainer:
    """The part of a GRPOTrainer a rollout uses, with a script for the model: the n-th time a
    question is generated for, it answers ``script[question][n]``."""

    def __init__(self, tokenizer: Any, script: dict[str, list[str]]) -> None:
        self.processing_class = tokenizer
        self.script = script
        self.calls: dict[str, int] = {}
        self.prompts: list[str] = []  # every prompt text generated for, in order

    def _generate_single_turn(self, prompt_ids, images, fields, num_generations):
        assert num_generations == 1 and images is None
        out = []
        for ids in prompt_ids:
            text = self.processing_class.decode(ids)
            self.prompts.append(text)
            question = next(q for q in self.script if q in text)
            k = self.calls.get(question, 0)
            self.calls[question] = k + 1
            reply = self.script[question][min(k, len(self.script[question]) - 1)]
            out.append(self.processing_class(reply, add_special_tokens=False)["input_ids"])
        return out, None


def _records(tokenizer: Any, db_path: Path, questions: list[str]) -> list[dict[str, Any]]:
    examples = [
        Example("spider", DB, str(db_path), q, "SELECT count(*) FROM singer", index=i)
        for i, q in enumerate(questions)
    ]
    return grpo_records(examples, tokenizer, SchemaDDL(2), prompt="training")


def _serving_prompt(tokenizer: Any, db_path: Path, question: str, turns: list[PreviousTurn]) -> str:
    """What the agent's retry renders when served: Generator.build_prompt with the checkpoint's
    (training) prompt variant and the previous turns, through the tokenizer's chat template."""
    registry = Registry.from_targets([str(db_path)])
    gen = Generator(
        registry,
        Executor(registry),
        SchemaInspector(registry),
        backend=None,  # type: ignore[arg-type]
        config=GenerationConfig(value_retrieval=False),
        prompt_version=TRAIN_PROMPT_VERSION,
    )
    return render_text(gen.build_prompt(registry.names()[0], question, previous_turns=turns), tokenizer)


def test_a_failed_attempt_is_retried_with_the_prompt_serving_renders(tokenizer, db_path, pool):
    q_fix, q_ok = "How many singers are there?", "What are the names of all singers?"
    bad_sql = "SELECT count(*) FROM singers"
    script = {
        q_fix: [_answer(bad_sql), _answer("SELECT count(*) FROM singer")],
        q_ok: [_answer("SELECT name FROM singer")],
    }
    records = _records(tokenizer, db_path, [q_fix, q_ok])
    rollout = FeedbackRollout(
        records, pool, MultiTurnSection(enabled=True, max_turns=3), ddl=SchemaDDL(2), variant="training"
    )
    trainer = ScriptedTrainer(tokenizer, script)
    out = rollout([r["prompt"] for r in records], trainer)

    assert out["turns"] == [2, 1]
    assert out["logprobs"] is None
    # the fixed question ends on its second answer, under the prompt of the retry
    assert tokenizer.decode(out["completion_ids"][0]) == script[q_fix][1]
    registry = Registry.from_targets([str(db_path)])
    with pytest.raises(QueryFailed) as failed:
        Executor(registry).run(registry.names()[0], bad_sql)
    feedback = review(q_fix, bad_sql, None, failed.value.error, dialect="sqlite").feedback
    assert feedback and "no such table" in feedback and out["feedback"][0] == [feedback]
    expected = _serving_prompt(tokenizer, db_path, q_fix, [PreviousTurn(q_fix, bad_sql, feedback)])
    assert tokenizer.decode(out["prompt_ids"][0]) == expected
    assert trainer.prompts[-1] == expected
    # an accepted first attempt keeps its prompt and answer
    assert tokenizer.decode(out["prompt_ids"][1]) == records[1]["prompt"]
    assert rollout.stats == {"rollouts": 2, "attempts": 3, "accepted_first": 1, "accepted_after_feedback": 1}
    assert turns_reward_for(0.5)([], [], turns=out["turns"]) == [-0.5, -0.0]


def test_feedback_for_no_sql_empty_results_and_the_last_attempt(tokenizer, db_path, pool):
    q_none, q_empty = "How many stadiums are there?", "Which singers come from the Netherlands?"
    script = {
        q_none: ["\nI am not sure.\n</think>\n<answer>\nNo idea.\n</answer>"],
        q_empty: [_answer("SELECT name FROM singer WHERE country = 'netherlands'")],
    }
    records = _records(tokenizer, db_path, [q_none, q_empty])
    rollout = FeedbackRollout(
        records, pool, MultiTurnSection(enabled=True, max_turns=2), ddl=SchemaDDL(2), variant="training"
    )
    out = rollout([r["prompt"] for r in records], ScriptedTrainer(tokenizer, script))
    assert out["turns"] == [2, 2]  # both retried once, and max_turns=2 stops there without a review
    no_sql, empty = out["feedback"][0][0], out["feedback"][1][0]
    assert no_sql.startswith("Your answer did not contain an SQL query")
    assert empty.startswith("Your query returned 0 rows")
    assert empty.endswith(
        "Values in the database that may match: singer.Country = 'Netherlands'."
    )  # as the agent
    prompt = tokenizer.decode(out["prompt_ids"][0])
    assert json.dumps(no_sql) in prompt  # quoted as data in the retry prompt, as serving quotes it


def test_a_result_whose_shape_does_not_fit_is_retried_once_as_the_agent_does(tokenizer, db_path, pool):
    """ "each" answered with one row: the agent's shape feedback (shape_review) and one shape retry,
    then the answer is kept; with shape_retries=0 it is accepted at once."""
    question = "How many singers are there for each country?"
    one_row = _answer("SELECT count(*) FROM singer")
    script = {question: [one_row, one_row, _answer("SELECT country, count(*) FROM singer GROUP BY country")]}
    records = _records(tokenizer, db_path, [question])
    rollout = FeedbackRollout(
        records, pool, MultiTurnSection(enabled=True, max_turns=3), ddl=SchemaDDL(2), variant="training"
    )
    out = rollout([r["prompt"] for r in records], ScriptedTrainer(tokenizer, script))
    assert out["turns"] == [2]  # one shape retry, then the (still one-row) answer is accepted
    ((feedback,),) = out["feedback"]
    registry = Registry.from_targets([str(db_path)])
    result = Executor(registry).run(registry.names()[0], "SELECT count(*) FROM singer")
    shaped, issues = shape_review(question, "SELECT count(*) FROM singer", result, dialect="sqlite")
    assert issues and feedback == shaped.feedback
    none = FeedbackRollout(
        records,
        pool,
        MultiTurnSection(enabled=True, max_turns=3, shape_retries=0),
        ddl=SchemaDDL(2),
        variant="training",
    )
    assert none([r["prompt"] for r in records], ScriptedTrainer(tokenizer, script))["turns"] == [1]


def test_unknown_prompts_are_refused(tokenizer, db_path, pool):
    records = _records(tokenizer, db_path, ["How many singers are there?"])
    rollout = FeedbackRollout(
        records, pool, MultiTurnSection(enabled=True), ddl=SchemaDDL(2), variant="training"
    )
    with pytest.raises(KeyError, match="not among the run's GRPO records"):
        rollout(["some other prompt"], ScriptedTrainer(tokenizer, {}))
