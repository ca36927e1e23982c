"""One evaluation run: select questions, predict (or read predictions), score, report.

Predictions and verdicts are appended to ``predictions.jsonl`` in the run folder as
they come, so an interrupted run continues where it stopped. Scoring goes through
:class:`~agent.evaluation.scoring.Scorer` (worker processes, engine timeouts, gold cache).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sqlr1.agent.evaluation.datasets import Benchmark, EvalItem, database_files, load_items, read_predictions
from sqlr1.agent.evaluation.report import EvalReport, QuestionResult, accuracy_by_difficulty
from sqlr1.agent.evaluation.scoring import PairResult, Scorer, ScoreTask
from sqlr1.mcp_server.db.result_cache import default_cache_path

__all__ = ["Prediction", "Predictor", "RunConfig", "run_evaluation", "select_items"]


class RunConfig(BaseModel):
    benchmark: Benchmark
    data: Path
    db_root: Path
    out: Path
    mode: Literal["direct", "agent", "score"] = "direct"
    model: str | None = None
    n: int = 1
    max_turns: int = 3
    max_new_tokens: int | None = None
    limit: int | None = None
    ids: list[str] = Field(default_factory=list)
    predictions: Path | None = None
    timeout_s: float = 30.0
    workers: int | None = None
    keep_distinct: bool = False
    ves_iterations: int = 0
    cache: Path | None = None
    prompt: str | None = Field(
        default=None, description="Prompt variant (default: the model manifest's, else inference)."
    )
    grammar: bool = True  # the SQL block under the catalog's grammar (llama.cpp backend)
    schema_linking: bool | None = (
        None  # large schemas: only the tables a question needs (None: the prompt's default)
    )
    reasoning: bool | None = None  # instruct models: reasoning before the SQL (None: per device)


class Prediction(BaseModel):
    idx: int
    sql: str
    turns: int | None = None
    seconds: float | None = None
    trace: dict[str, Any] | None = None


Predictor = Callable[[EvalItem], Awaitable[Prediction]]


def select_items(items: list[EvalItem], config: RunConfig) -> list[EvalItem]:
    if config.ids:
        wanted = set(config.ids)
        items = [it for it in items if str(it.question_id) in wanted or str(it.idx) in wanted]
    if config.limit is not None:
        items = items[: config.limit]
    return items


def _metric(config: RunConfig, items: list[EvalItem]) -> str:
    if config.benchmark == "bird":
        return "bird_ex"
    multi = any(len(database_files(config.db_root, db)) > 1 for db in {it.db_id for it in items})
    return "spider_test_suite_ex" if multi else "spider_ex"


def _load_jsonl(path: Path) -> dict[int, dict[str, Any]]:
    done: dict[int, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by an interruption is predicted again
                done[int(row["idx"])] = row
    return done


def _tasks(items: list[EvalItem], preds: dict[int, str], db_root: Path) -> list[ScoreTask]:
    return [
        ScoreTask(
            idx=it.idx,
            db_files=[str(p) for p in database_files(db_root, it.db_id)],
            pred_sql=preds.get(it.idx, ""),
            gold_sql=it.gold_sql,
        )
        for it in items
    ]


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("EX {task.fields[acc]:.1f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


async def run_evaluation(
    config: RunConfig,
    predictor: Predictor | None = None,
    *,
    console: Console | None = None,
    manifest: dict[str, Any] | None = None,
) -> EvalReport:
    """Run (or resume) an evaluation and write its report into ``config.out``."""
    console = console or Console(stderr=True)
    items = select_items(load_items(config.benchmark, config.data), config)
    config.out.mkdir(parents=True, exist_ok=True)
    cache = config.cache or default_cache_path()  # the gold results training's rewards use too
    scorer = Scorer(
        config.benchmark,
        timeout_s=config.timeout_s,
        workers=config.workers,
        cache_path=cache,
        keep_distinct=config.keep_distinct,
        ves_iterations=config.ves_iterations,
    )
    started = time.perf_counter()
    log_path = config.out / "predictions.jsonl"
    done = _load_jsonl(log_path)
    by_idx = {it.idx: it for it in items}
    verdicts: dict[int, PairResult] = {
        i: PairResult.model_validate(r["verdict"]) for i, r in done.items() if "verdict" in r and i in by_idx
    }
    predictions: dict[int, Prediction] = {
        i: Prediction.model_validate(r["prediction"])
        for i, r in done.items()
        if "prediction" in r and i in by_idx
    }
    if done:
        console.print(f"resuming: {len(verdicts)} of {len(items)} questions already scored in {log_path}")

    gen_seconds = 0.0
    if config.mode == "score":
        if config.predictions is None:
            raise ValueError("score mode needs a predictions file")
        preds = read_predictions(config.benchmark, config.predictions, items)
        predictions.update(
            {i: Prediction(idx=i, sql=preds.get(i, "")) for i in by_idx if i not in predictions}
        )
        todo = [it for it in items if it.idx not in verdicts]
        with _progress(console) as progress, log_path.open("a", encoding="utf-8") as log:
            task = progress.add_task("scoring", total=len(items), completed=len(verdicts), acc=_acc(verdicts))

            def on_result(res: PairResult) -> None:
                verdicts[res.idx] = res
                log.write(
                    json.dumps(
                        {
                            "idx": res.idx,
                            "prediction": predictions[res.idx].model_dump(),
                            "verdict": res.model_dump(),
                        }
                    )
                    + "\n"
                )
                log.flush()
                progress.update(task, advance=1, acc=_acc(verdicts))

            scorer.score(_tasks(todo, {i: predictions[i].sql for i in by_idx}, config.db_root), on_result)
    else:
        if predictor is None:
            raise ValueError(f"{config.mode} mode needs a predictor")
        todo = [it for it in items if it.idx not in verdicts]
        with _progress(console) as progress, log_path.open("a", encoding="utf-8") as log:
            task = progress.add_task(
                config.mode, total=len(items), completed=len(verdicts), acc=_acc(verdicts)
            )
            for it in todo:
                t0 = time.perf_counter()
                pred = await predictor(it)
                gen_seconds += time.perf_counter() - t0
                predictions[it.idx] = pred
                # Scored right away (inline; gold from the cache) so the bar shows running accuracy.
                verdict = scorer.score_inline(_tasks([it], {it.idx: pred.sql}, config.db_root))[0]
                verdicts[it.idx] = verdict
                log.write(
                    json.dumps(
                        {"idx": it.idx, "prediction": pred.model_dump(), "verdict": verdict.model_dump()}
                    )
                    + "\n"
                )
                log.flush()
                progress.update(task, advance=1, acc=_acc(verdicts))

    results = [
        QuestionResult(
            idx=it.idx,
            question_id=it.question_id,
            db_id=it.db_id,
            difficulty=it.difficulty,
            question=it.question,
            pred_sql=predictions[it.idx].sql if it.idx in predictions else "",
            gold_sql=it.gold_sql,
            correct=verdicts[it.idx].correct,
            pred_status=verdicts[it.idx].pred_status,
            pred_error=verdicts[it.idx].pred_error,
            gold_error=verdicts[it.idx].gold_error,
            databases=verdicts[it.idx].databases,
            turns=predictions[it.idx].turns if it.idx in predictions else None,
            generation_s=predictions[it.idx].seconds if it.idx in predictions else None,
            ves_reward=verdicts[it.idx].ves_reward,
        )
        for it in items
    ]
    turns = [r.turns for r in results if r.turns is not None]
    r_ves = None
    if config.ves_iterations > 0 and results:
        r_ves = sum(100 * (r.ves_reward or 0.0) ** 0.5 for r in results) / len(results)
    report = EvalReport(
        benchmark=config.benchmark,
        metric=_metric(config, items),
        config=json.loads(config.model_dump_json()),
        manifest=manifest,
        prompt=_prompts_used(predictions.values()),
        scoring=_scoring(config),
        accuracy=accuracy_by_difficulty(results),
        r_ves=r_ves,
        timing={"total": time.perf_counter() - started, "generation": gen_seconds},
        turns={"mean": sum(turns) / len(turns), "max": float(max(turns))} if turns else None,
        results=results,
    )
    report.save(config.out)
    return report


def _prompts_used(predictions: Iterable[Prediction]) -> dict[str, Any] | None:
    """The prompt variants and versions the predictions' traces name, and how many prompts schema
    linking cut to a subset of the tables (None when no trace names a prompt)."""
    seen = [(p.trace or {}).get("prompt") or {} for p in predictions]
    variants = sorted({str(s["variant"]) for s in seen if s.get("variant")})
    versions = sorted({str(s["version"]) for s in seen if s.get("version")})
    linked = sum(1 for s in seen if s.get("tables") is not None)
    return {"variants": variants, "versions": versions, "linked_prompts": linked} if variants else None


def _scoring(config: RunConfig) -> dict[str, Any]:
    if config.benchmark == "bird":
        return {"semantics": "BIRD evaluation.py: set(pred) == set(gold), queries run as written"}
    return {
        "semantics": "Spider test-suite exec_eval.result_eq: bags of rows, column permutations",
        "order_matters": "'order by' anywhere in the rewritten gold (official)",
        "rewrites": "official: 'value'->'1' in predictions, '> =' joined, YEAR(CURDATE())->2020"
        + ("" if config.keep_distinct else ", DISTINCT stripped and first statement only"),
        "keep_distinct": config.keep_distinct,
    }


def _acc(verdicts: dict[int, PairResult]) -> float:
    return 100.0 * sum(v.correct for v in verdicts.values()) / len(verdicts) if verdicts else 0.0
