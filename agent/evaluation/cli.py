"""``sqlr1 eval bird|spider|compare``: registered through the ``sqlr1.commands`` entry point."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

__all__ = ["register"]


def _common(p: argparse.ArgumentParser, benchmark: str) -> None:
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help=f"{benchmark} questions file (official layout, e.g. dev.json)",
    )
    p.add_argument(
        "--db-root",
        type=Path,
        required=True,
        help="folder of <db_id>/<db_id>.sqlite (BIRD dev_databases/, Spider database/)",
    )
    p.add_argument("--out", type=Path, default=None, help="run folder (default: runs/<benchmark>-<mode>)")
    p.add_argument("--mode", choices=["direct", "agent"], default="direct")
    p.add_argument("--predictions", type=Path, default=None, help="score an existing predictions file only")
    p.add_argument("--n", type=int, default=1, help="candidates per question (1 = greedy)")
    p.add_argument("--max-turns", type=int, default=3, help="agent mode: turns per question")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--limit", type=int, default=None, help="first K questions")
    p.add_argument("--ids", nargs="*", default=[], help="question ids (or indexes) to run")
    p.add_argument("--timeout", type=float, default=30.0, help="per-query timeout in seconds (BIRD: 30)")
    p.add_argument("--workers", type=int, default=None, help="scoring worker processes (default: CPU count)")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="gold result cache file (default: gold.sqlite in the sqlr1 cache, shared with training)",
    )
    p.add_argument(
        "--server",
        default="inprocess",
        help="'inprocess' (default), 'stdio' (a `sqlr1 serve` subprocess) or an http(s):// URL of `sqlr1 serve --http`",
    )
    p.add_argument("--token", default=None, help="bearer token for an HTTP server (or SQLR1_TOKEN)")
    p.add_argument(
        "--prompt",
        default=None,
        metavar="VARIANT",
        help="prompt variant: sqlr1_inference for SQL-R1's own prompt (paper-faithful), inference, training, "
        "sqlr1_rl, instruct (default: the model manifest's, else inference); recorded in the report",
    )
    p.add_argument(
        "--no-grammar", action="store_true", help="in-process server: SQL decoded without the catalog grammar"
    )
    p.add_argument(
        "--no-schema-linking", action="store_true", help="in-process server: always prompt the whole schema"
    )
    p.add_argument(
        "--reasoning",
        choices=["auto", "on", "off"],
        default="auto",
        help="in-process server, instruct models: reasoning before the SQL (auto: on a GPU only)",
    )


def register(subparsers: Any) -> None:
    ev = subparsers.add_parser("eval", help="evaluate on BIRD or Spider (execution accuracy)")
    sub = ev.add_subparsers(dest="eval_command", required=True)
    bird = sub.add_parser("bird", help="BIRD execution accuracy (official evaluation_ex semantics)")
    _common(bird, "BIRD")
    bird.add_argument(
        "--ves", type=int, default=0, metavar="ITER", help="also compute R-VES with ITER timed runs (noisy)"
    )
    spider = sub.add_parser("spider", help="Spider execution accuracy (test-suite semantics)")
    _common(spider, "Spider")
    spider.add_argument(
        "--keep-distinct", action="store_true", help="do not strip DISTINCT (test-suite default strips it)"
    )
    cmp = sub.add_parser("compare", help="compare finished runs: Markdown table and PNG chart")
    cmp.add_argument("runs", nargs="+", type=Path, help="run folders (or their report.json)")
    cmp.add_argument("--out", type=Path, default=Path("runs/compare"))
    for p in (bird, spider):
        p.set_defaults(handler=_run)
    cmp.set_defaults(handler=_compare)


def _run(args: argparse.Namespace) -> int:
    import anyio

    from sqlr1.agent.evaluation.predictors import predictor_for
    from sqlr1.agent.evaluation.runner import RunConfig, run_evaluation
    from sqlr1.mcp_server.cli.main import default_model

    benchmark = args.eval_command
    mode: Literal["direct", "agent", "score"] = "score" if args.predictions else args.mode
    config = RunConfig(
        benchmark=benchmark,
        data=args.data,
        db_root=args.db_root,
        out=args.out or Path("runs") / f"{benchmark}-{mode}",
        mode=mode,
        model=None if mode == "score" else getattr(args, "model", None) or default_model(),
        n=args.n,
        max_turns=args.max_turns,
        max_new_tokens=args.max_new_tokens,
        limit=args.limit,
        ids=[str(i) for i in args.ids],
        predictions=args.predictions,
        timeout_s=args.timeout,
        workers=args.workers,
        keep_distinct=getattr(args, "keep_distinct", False),
        ves_iterations=getattr(args, "ves", 0),
        cache=args.cache,
        prompt=args.prompt,
        grammar=not args.no_grammar,
        schema_linking=False if args.no_schema_linking else None,
        reasoning={"auto": None, "on": True, "off": False}[args.reasoning],
    )

    async def main() -> int:
        from rich.console import Console

        from sqlr1.agent.evaluation.report import to_markdown

        console = Console(stderr=True)
        if mode == "score":
            report = await run_evaluation(config, console=console)
        else:
            async with predictor_for(config, args) as (predictor, manifest):
                report = await run_evaluation(config, predictor, console=console, manifest=manifest)
        print(to_markdown([report], [config.out.name]))
        console.print(f"report: {config.out / 'report.json'}")
        return 0

    return anyio.run(main)


def _compare(args: argparse.Namespace) -> int:
    from sqlr1.agent.evaluation.report import EvalReport, plot_reports, to_markdown

    reports = [EvalReport.load(p) for p in args.runs]
    names = [p.name if p.is_dir() else p.parent.name for p in args.runs]
    args.out.mkdir(parents=True, exist_ok=True)
    text = to_markdown(reports, names)
    (args.out / "summary.md").write_text(text, encoding="utf-8")
    plot_reports(reports, names, args.out / "chart.png")
    print(text)
    print(f"chart: {args.out / 'chart.png'}")
    return 0
