"""generate_sql wall time over stdio, default model and default budget, bundled Chinook, 3 questions.

nice -n 10 .venv/bin/python benchmarks/mcp_budget_bench.py REPO CHINOOK.sqlite STDERR.txt [NUM_CANDIDATES]
"""

import json
import os
import sys
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO = Path(sys.argv[1])
DB = sys.argv[2]
ERR = sys.argv[3]
QUESTIONS = [
    "How many artists are there?",
    "List the names of all media types.",
    "Which customer has the most invoices?",
]


async def main() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sqlr1.mcp_server.cli.main", "--db", f"chinook={DB}", "serve"],
        cwd=str(REPO),
        env=env,
    )
    with open(ERR, "w") as err:
        t0 = time.monotonic()
        async with Client(stdio_client(params, errlog=err), mode="legacy") as client:
            print(f"connected in {time.monotonic() - t0:.1f} s", flush=True)
            for q in QUESTIONS:
                t = time.monotonic()
                args: dict[str, object] = {"question": q}
                if len(sys.argv) > 4:
                    args["num_candidates"] = int(sys.argv[4])
                r = await client.call_tool("generate_sql", args)
                wall = time.monotonic() - t
                s = r.structured_content or {}
                print(
                    json.dumps(
                        {
                            "question": q,
                            "wall_s": round(wall, 1),
                            "status": s.get("status"),
                            "sql": s.get("sql"),
                            "budget_exhausted": s.get("budget_exhausted"),
                            "done": s.get("candidates_done"),
                            "requested": s.get("candidates_requested"),
                            "time_budget_s": s.get("time_budget_s"),
                            "model": s.get("model"),
                            "total_ms": (s.get("timings") or {}).get("total_ms"),
                            "error": None if not r.is_error else r.content[0].text,
                        }
                    ),
                    flush=True,
                )


anyio.run(main)
