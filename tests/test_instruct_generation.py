"""Generation for instruct models not trained on SQL-R1's format (the named Qwen models): the
instruct prompt, the SQL block with its catalog grammar and closer, the prose as reasoning, schema
linking of a large schema, and the defaults per device. Control flow with a scripted model (fast);
the real models run in test_llamacpp_backend.py and test_default_model.py."""

from __future__ import annotations

from pathlib import Path

from scripted_backend import ScriptedBackend

from sqlr1.mcp_server.backends.base import CodeBlock, SamplingParams, block_end, stop_index
from sqlr1.mcp_server.catalog.schema import SchemaInspector
from sqlr1.mcp_server.core.config import GenerationConfig, GuardSettings
from sqlr1.mcp_server.db.executor import Executor
from sqlr1.mcp_server.db.registry import Registry
from sqlr1.mcp_server.inference.generation import (
    CPU_DEFAULTS,
    CPU_REASONING_DEFAULTS,
    GPU_DEFAULTS,
    RUNAWAY_FACTOR,
    Generator,
)
from sqlr1.mcp_server.method.prompt import (
    INSTRUCT_PROMPT_VERSION,
    PreviousTurn,
    build_prompt,
    variant_for_version,
)

PROSE = (
    "The Album table holds one row per album, so count its rows.\n\n```sql\nSELECT COUNT(*) FROM Album\n```"
)
DIRECT = "SELECT COUNT(*) FROM Album\n```"  # after the pre-filled opener


class DeviceBackend(ScriptedBackend):
    def __init__(self, texts: list[str], device: str) -> None:
        super().__init__(texts, prompt_version=INSTRUCT_PROMPT_VERSION)
        self.device = device


def _generator(db: Path, backend, **cfg) -> tuple[Generator, str]:
    registry = Registry.from_targets([str(db)])
    executor = Executor(registry, GuardSettings())
    gen = Generator(registry, executor, SchemaInspector(registry), backend, GenerationConfig(**cfg))
    return gen, registry.names()[0]


def test_instruct_prompt_caches_the_schema_and_shows_earlier_sql_as_blocks_and_retries_as_notes() -> None:
    ddl = "CREATE TABLE Album (AlbumId INTEGER, Title TEXT);"
    a = build_prompt(ddl, "How many albums?", variant="instruct")
    b = build_prompt(ddl, "Longest title?", variant="instruct", evidence="longest = max(length(Title))")
    assert variant_for_version(INSTRUCT_PROMPT_VERSION) == "instruct"
    assert [m.role for m in a.messages] == ["system", "user"] and a.assistant_prefill == ""
    assert (
        a.cache_prefix_text == b.cache_prefix_text == a.messages[0].content and ddl in a.messages[0].content
    )
    assert "How many albums?" in a.messages[1].content and "```sql" in a.messages[1].content
    assert "longest = max(length(Title))\nLongest title?" in b.messages[1].content
    turns = [
        PreviousTurn("How many albums?", "SELECT count(*) FROM Albums", "this failed with: no such table")
    ]
    # a retry of the same question: the feedback becomes a note under the question, the failed SQL unseen
    retry = build_prompt(ddl, "How many albums?", variant="instruct", previous_turns=turns)
    assert [m.role for m in retry.messages] == ["system", "user"]
    assert retry.messages[1].content == (
        f"{a.messages[1].content}\n\n"
        'A previous query for this question was wrong. The database said: "this failed with: no such table"'
    )
    assert "FROM Albums" not in retry.messages[1].content
    # a follow-up keeps the earlier exchange as turns (its SQL as a block); its own retries are notes
    follow = build_prompt(
        ddl,
        "And their titles?",
        variant="instruct",
        previous_turns=[
            PreviousTurn("How many albums?", "SELECT count(*) FROM Album", "it returned 1 row"),
            PreviousTurn("And their titles?", "SELECT Titel FROM Album", "no such column: Titel"),
            PreviousTurn("And their titles?", "SELECT Name FROM Album", "no such column: Name"),
        ],
    )
    assert [m.role for m in follow.messages] == ["system", "user", "assistant", "user"]
    assert follow.messages[2].content == "```sql\nSELECT count(*) FROM Album\n```"
    last = follow.messages[3].content
    assert "And their titles?" in last and "SELECT Titel" not in last and "SELECT Name" not in last
    assert last.endswith(
        'The database said: "no such column: Titel"\n'
        'A previous query for this question was wrong. The database said: "no such column: Name"'
    )


def test_the_sql_block_closer_ends_a_candidate() -> None:
    block = CodeBlock()
    text = "Count them.\n```sql\nSELECT 1\n```\nThat is all."
    assert text[: block_end(text, block)].endswith("SELECT 1\n```")
    assert block_end("```sql\nSELECT 1", block) is None
    assert stop_index(text, SamplingParams(block=block, stop=("That",))) == block_end(text, block)
    assert stop_index("a ``` b", SamplingParams(block=block)) is None  # a closer before the opener


def test_cpu_generation_samples_eight_sql_only_candidates_under_the_catalog_grammar(
    chinook_copy: Path,
) -> None:
    backend = DeviceBackend([DIRECT], device="cpu")
    gen, db = _generator(chinook_copy, backend)
    result = gen.generate_sql(db, "How many albums are there?")
    ((prompt, params),) = backend.calls
    assert CPU_DEFAULTS == (8, 384) and (params.n, params.max_new_tokens) == CPU_DEFAULTS
    assert (params.temperature, params.top_p) == (0.8, 0.95)  # sampled: the vote needs distinct candidates
    assert params.runaway_factor == RUNAWAY_FACTOR  # a rambling sample does not hold the batch
    assert result.vote_counts == [8] and result.confidence is not None and result.confidence.votes == 8
    assert prompt.assistant_prefill == "```sql\n" and "Give only the query" in prompt.messages[1].content
    assert params.block is not None and params.block.opened
    grammar = params.block.grammar or ""
    assert grammar.startswith('root ::= "```sql\\n" body') and "[Aa] [Ll] [Bb] [Uu] [Mm]" in grammar
    assert result.status == "ok" and result.sql == "SELECT COUNT(*) FROM Album" and result.reasoning is None
    assert result.prompt.variant == "instruct" and result.prompt.tables is None  # Chinook is prompted whole


def test_reasoning_when_asked_is_the_prose_before_the_block(chinook_copy: Path) -> None:
    backend = DeviceBackend([PROSE], device="cpu")
    gen, db = _generator(chinook_copy, backend, reasoning=True)
    result = gen.generate_sql(db, "How many albums are there?")
    ((prompt, params),) = backend.calls
    # a CPU cannot afford eight reasoned answers: one, greedy
    assert (params.n, params.max_new_tokens, params.temperature) == (*CPU_REASONING_DEFAULTS, 0.0)
    assert params.runaway_factor is None
    assert prompt.assistant_prefill == "" and params.block is not None and not params.block.opened
    assert result.sql == "SELECT COUNT(*) FROM Album"
    assert result.reasoning == "The Album table holds one row per album, so count its rows."


def test_gpu_defaults_and_no_grammar_when_turned_off(chinook_copy: Path) -> None:
    backend = DeviceBackend([PROSE], device="cuda:0")
    gen, db = _generator(chinook_copy, backend, grammar=False)
    gen.generate_sql(db, "How many albums are there?")
    ((_, params),) = backend.calls
    assert (params.n, params.max_new_tokens) == GPU_DEFAULTS
    assert params.block == CodeBlock()  # reasons first (a GPU), ends at the block, with no grammar


SQLR1_ANSWER = "<think>count the albums</think>\n<answer>\n```sql\nSELECT COUNT(*) FROM Album\n```\n</answer>"


def test_sqlr1_prompts_keep_the_whole_schema_unless_linking_is_asked_for(chinook_copy: Path) -> None:
    """SQL-R1's prompts show the whole schema by default (the text SQL-R1 and our training render,
    docs/fidelity.md); linking them is an explicit setting."""
    backend = DeviceBackend([SQLR1_ANSWER], device="cpu")
    gen, db = _generator(chinook_copy, backend, link_above_chars=1000, prompt="sqlr1_inference")
    assert gen.generate_sql(db, "Which tracks are on the Grunge playlist?").prompt.tables is None
    ((prompt, params),) = backend.calls
    assert "CREATE TABLE Customer" in "".join(m.content for m in prompt.messages)
    assert params.n == CPU_REASONING_DEFAULTS[0]  # SQL-R1's format reasons first: one candidate on a CPU
    backend2 = DeviceBackend([SQLR1_ANSWER], device="cpu")
    gen2, _ = _generator(
        chinook_copy, backend2, link_above_chars=1000, prompt="sqlr1_inference", schema_linking=True
    )
    assert gen2.generate_sql(db, "Which tracks are on the Grunge playlist?").prompt.tables is not None


def test_a_large_schema_is_linked_and_the_grammar_covers_the_linked_tables(chinook_copy: Path) -> None:
    backend = DeviceBackend([DIRECT], device="cpu")
    gen, db = _generator(chinook_copy, backend, link_above_chars=1000)
    result = gen.generate_sql(db, "Which tracks are on the Grunge playlist?")
    ((prompt, params),) = backend.calls
    assert result.prompt.tables is not None
    assert {"Track", "Playlist", "PlaylistTrack"} <= set(
        result.prompt.tables
    ) and "Customer" not in result.prompt.tables
    assert "CREATE TABLE Customer" not in prompt.messages[0].content
    assert "CREATE TABLE PlaylistTrack" in prompt.messages[0].content
    grammar = (params.block.grammar if params.block else None) or ""
    assert '"[Customer]"' not in grammar and '"[PlaylistTrack]"' in grammar
    # the same question with linking off prompts everything
    backend2 = DeviceBackend([DIRECT], device="cpu")
    gen2, _ = _generator(chinook_copy, backend2, link_above_chars=1000, schema_linking=False)
    assert gen2.generate_sql(db, "Which tracks are on the Grunge playlist?").prompt.tables is None


MISBOUND = "SELECT COUNT(*) FROM Employee AS T1 JOIN Customer AS T2 ON T1.SupportRepId = T2.CustomerId\n```"
REBOUND = "SELECT COUNT(*) FROM Employee AS T1 JOIN Customer AS T2 ON T1.EmployeeId = T2.SupportRepId\n```"


class GrammarBackend(DeviceBackend):
    """Decodes grammars (like llama.cpp); answers ``per_call[k]`` to its k-th call."""

    supports_grammar = True

    def __init__(self, per_call: list[list[str]]) -> None:
        super().__init__(per_call[0], device="cpu")
        self.per_call = per_call

    def generate(self, prompt, params, **kw):  # type: ignore[no-untyped-def]
        self.texts = self.per_call[min(len(self.calls), len(self.per_call) - 1)]
        return super().generate(prompt, params, **kw)


QUESTION = "How many customers do the employees support?"
RETRY = [PreviousTurn(QUESTION, MISBOUND[:-4], "no such column: T1.SupportRepId (hint: T1 is Employee, …)")]


def test_on_a_retry_a_column_qualified_by_the_wrong_alias_is_decoded_again_with_the_aliases_bound(
    chinook_copy: Path,
) -> None:
    backend = GrammarBackend([[MISBOUND], [REBOUND]])
    gen, db = _generator(chinook_copy, backend)
    first_attempt = gen.generate_sql(db, QUESTION)  # left as written: the hint lets the model fix it
    assert len(backend.calls) == 1 and first_attempt.status == "no_executable_candidate"
    backend.calls.clear()
    result = gen.generate_sql(db, QUESTION, previous_turns=RETRY)
    (_, first), (prompt, again) = backend.calls
    assert prompt.assistant_prefill == "```sql\n"
    assert (again.n, again.temperature) == (1, 0.0) and again.block is not None and again.block.opened
    grammar = again.block.grammar or ""
    employee = [t.name for t in gen.inspector.describe(db).tables].index("Employee")
    assert f'qualified ::= "T1" "." (cols{employee})' in grammar and 'alias "." anycol' not in grammar
    assert 'alias "." anycol' in ((first.block.grammar or "") if first.block else "")
    assert result.status == "ok" and result.sql == REBOUND.removesuffix("\n```")
    assert result.candidates[0].rebound_from == MISBOUND.removesuffix("\n```")
    assert result.preview is not None and result.preview.rows == [[59]]
    assert result.confidence is not None and result.confidence.level == "doubtful"  # the grammar chose


def test_a_rebound_query_that_is_still_wrong_leaves_the_draft(chinook_copy: Path) -> None:
    backend = GrammarBackend([[MISBOUND], [MISBOUND.replace("T2.CustomerId", "T2.Nothing")]])
    gen, db = _generator(chinook_copy, backend)
    result = gen.generate_sql(db, QUESTION, previous_turns=RETRY)
    assert len(backend.calls) == 2 and result.status == "no_executable_candidate"
    assert result.candidates[0].sql == MISBOUND.removesuffix("\n```")
    assert result.candidates[0].rebound_from is None
    assert "T1 is Employee, which has no column SupportRepId" in str(result.errors[0])


def test_no_second_decoding_when_a_candidate_is_sound_or_the_backend_has_no_grammars(
    chinook_copy: Path,
) -> None:
    sampled = GrammarBackend([[MISBOUND, REBOUND, MISBOUND], [DIRECT]])
    gen, db = _generator(chinook_copy, sampled, num_candidates=3)
    assert gen.generate_sql(db, QUESTION, previous_turns=RETRY).sql == REBOUND[:-4]
    assert len(sampled.calls) == 1  # one sound candidate among three: the vote decides
    plain = DeviceBackend([MISBOUND], device="cpu")  # ends at the block but decodes no grammar
    gen, db = _generator(chinook_copy, plain)
    assert gen.generate_sql(db, QUESTION, previous_turns=RETRY).status != "ok"
    assert len(plain.calls) == 1


FORGOT = "SELECT Name, Title FROM InvoiceLine WHERE InvoiceId = 1\n```"  # Name is Track's, Title Album's
JOINED = (
    "SELECT Track.Name, Album.Title FROM InvoiceLine JOIN Track ON InvoiceLine.TrackId = Track.TrackId "
    "JOIN Album ON Track.AlbumId = Album.AlbumId WHERE InvoiceId = 1"
)


def test_when_asked_the_tables_of_columns_the_query_did_not_join_are_joined(chinook_copy: Path) -> None:
    backend = DeviceBackend([FORGOT], device="cpu")
    gen, db = _generator(chinook_copy, backend, num_candidates=3)
    question = "Which tracks, and of which albums, were sold on invoice 1?"
    first = gen.generate_sql(db, question)  # not asked: the model's query, and a hint that says what to join
    assert first.status == "no_executable_candidate" and first.candidates[0].joined == []
    assert "Name is a column of" in str(first.errors[0]) and "which the query does not join" in str(
        first.errors[0]
    )
    retry = [PreviousTurn(question, FORGOT[:-4], str(first.errors[0]))]
    assert gen.generate_sql(db, question, previous_turns=retry).status == "no_executable_candidate"
    result = gen.generate_sql(db, question, previous_turns=retry, join_missing=True)  # the last attempt
    assert result.status == "ok" and result.sql == JOINED and result.vote_counts == [3]
    for cand in result.candidates:  # one engine error at a time: Name, then Title
        assert cand.joined == ["Track", "Album"] and cand.joined_from == FORGOT[:-4]
    assert result.preview is not None and result.preview.rows == [
        ["Balls to the Wall", "Balls to the Wall"],
        ["Restless and Wild", "Restless and Wild"],
    ]
    assert result.confidence is not None and result.confidence.level == "doubtful"
    assert "did not join Track, Album" in result.confidence.reasons[0]


def test_a_query_that_still_fails_once_joined_is_left_as_the_model_wrote_it(chinook_copy: Path) -> None:
    still = "SELECT Name FROM InvoiceLine WHERE Missing = 1\n```"
    gen, db = _generator(chinook_copy, DeviceBackend([still], device="cpu"), num_candidates=1)
    result = gen.generate_sql(db, "q", join_missing=True)
    assert result.status == "no_executable_candidate" and result.candidates[0].sql == still[:-4]
    assert result.candidates[0].joined == [] and "Name" in str(result.errors[0])
