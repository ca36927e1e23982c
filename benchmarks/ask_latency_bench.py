"""Latency of the default model as a user meets it (issue 15, item 5): ``sqlr1 ask`` on 20 simple
Chinook questions (``benchmarks/latency_questions.json``), default model and default settings.

Two figures per question:

* **time to the answer**: the wall time of a whole ``sqlr1 ask "…"`` process, from start to exit
  (interpreter, model load, schema prefix restored from the prefix store on disk, generation,
  execution, the agent's review and retries), as a user at a shell sees it; goal p50 ≤ 10 s;
* **first streamed token**: in one process whose schema prefix is computed (as the chat and server
  do in the background at start), the time from asking (``Agent.ask``) to the first model text the
  user sees; goal ≤ 2 s.

Each answer is also checked against the question's gold query (Spider test-suite comparison).
A first ``sqlr1 ask`` (not counted) computes the schema prefix if the store does not have it yet.

    PYTHONPATH=. python benchmarks/ask_latency_bench.py [--model NAME] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECTION = "## Latency of the default model: sqlr1 ask on 20 simple questions (issue 15)"


def questions() -> list[dict]:
    return json.loads((HERE / "latency_questions.json").read_text(encoding="utf-8"))


def ask_process(question: str, model: str | None, n: int | None = None) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "sqlr1.mcp_server.cli.main"]
    if model:
        cmd += ["--model", model]
    cmd += ["ask", question, "--json"]
    if n is not None:
        cmd += ["--n", str(n)]
    env = {k: v for k, v in os.environ.items() if k != "SQLR1_DEFAULT_MODEL"}
    env["PYTHONPATH"] = str(REPO)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    seconds = time.perf_counter() - t0
    try:
        answer = json.loads(proc.stdout)
    except ValueError:
        answer = {"status": "error", "error": proc.stderr[-500:]}
    return seconds, answer


def correct(answer: dict, gold_sql: str) -> bool:
    from sqlr1.mcp_server.core.config import GuardSettings
    from sqlr1.mcp_server.db.executor import Executor
    from sqlr1.mcp_server.db.registry import Registry
    from sqlr1.mcp_server.method.compare import spider_equal

    if not answer.get("sql") or answer.get("status") != "ok":
        return False
    registry = Registry.from_targets([str(REPO / "examples" / "chinook.sqlite")])
    executor = Executor(registry, GuardSettings())
    name = registry.names()[0]
    gold_rows = executor.run_raw(name, gold_sql).rows
    pred_rows = executor.run_raw(name, answer["sql"]).rows
    return spider_equal(pred_rows, gold_rows, order_matters="order by" in gold_sql.lower())


async def first_tokens(model: str | None, n: int | None = None) -> list[float]:
    """Seconds from ``Agent.ask`` to the first streamed model text, the prefix computed first."""
    from sqlr1.agent import Agent, AgentSettings
    from sqlr1.agent.events import AgentEvent, GenerationProgress
    from sqlr1.agent.targets import embedded_server
    from sqlr1.mcp_server.cli.main import default_model
    from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig

    config = AppConfig(
        databases=[DatabaseConfig(name="chinook", target=str(REPO / "examples" / "chinook.sqlite"))]
    )
    config.model.model = model or default_model()
    server = embedded_server(config)
    out: list[float] = []
    async with Agent.connect(server, settings=AgentSettings(max_turns=1, num_candidates=n)) as agent:
        await agent.ask("How many artists are there?")  # loads the model, computes or restores the prefix
        for item in questions():
            first: list[float] = []

            def on_event(event: AgentEvent, first: list[float] = first) -> None:
                if not first and isinstance(event, GenerationProgress) and event.text:
                    first.append(time.perf_counter())

            agent.conversation.clear()
            t0 = time.perf_counter()
            await agent.ask(item["question"], on_event=on_event)
            out.append(first[0] - t0 if first else float("nan"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="a registry name (default: the default model)")
    parser.add_argument("--n", type=int, default=None, help="candidates per question (default: the device's)")
    parser.add_argument("--write", action="store_true", help="record the table in benchmarks/RESULTS.md")
    args = parser.parse_args()
    from sqlr1.mcp_server.backends.factory import choose_runtime
    from sqlr1.mcp_server.cli.main import default_model
    from sqlr1.mcp_server.core.config import ModelConfig

    model = args.model or os.environ.get("SQLR1_DEFAULT_MODEL") or default_model()
    runtime = choose_runtime(ModelConfig(model=model))
    load_start = os.getloadavg()[0]
    ask_process(questions()[0]["question"], model, args.n)  # warm: the prefix into the store
    rows = []
    for item in questions():
        seconds, answer = ask_process(item["question"], model, args.n)
        ok = correct(answer, item["query"])
        rows.append((item["question"], seconds, answer.get("status"), ok, len(answer.get("attempts") or [])))
        print(f"{seconds:6.1f} s  {'ok ' if ok else 'BAD'} {item['question']}", flush=True)
    firsts = anyio.run(first_tokens, model, args.n)
    load_end = os.getloadavg()[0]
    times = [r[1] for r in rows]
    p50 = statistics.median(times)
    first_p50 = statistics.median(firsts)
    lines = [
        SECTION,
        "",
        f"`PYTHONPATH=. python benchmarks/ask_latency_bench.py --write`: model {model} on {runtime} (default "
        "settings of a CPU: 8 sampled candidates of the SQL only, the catalog grammar, the agent with up to 3 attempts). "
        f"This 2-core machine, load average {load_start:.1f} at the start and {load_end:.1f} at the end "
        "(shared with other engineers).",
        "",
        f"- time to the answer (whole `sqlr1 ask` process): **p50 {p50:.1f} s** (goal ≤ 10 s), "
        f"p90 {sorted(times)[int(0.9 * len(times)) - 1]:.1f} s, max {max(times):.1f} s; "
        f"{sum(r[3] for r in rows)}/{len(rows)} answers match the gold result",
        f"- first streamed token after asking, schema prefix computed: **p50 {first_p50:.2f} s** (goal ≤ 2 s), "
        f"max {max(firsts):.2f} s",
        "",
        "| question | s to answer | status | attempts | matches gold |",
        "|---|---|---|---|---|",
    ]
    for question, seconds, status, ok, turns in rows:
        lines.append(f"| {question} | {seconds:.1f} | {status} | {turns} | {'yes' if ok else 'no'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        sys.path.insert(0, str(HERE))
        from results_md import write_section

        write_section(SECTION, text)


if __name__ == "__main__":
    main()
