"""Load over streamable HTTP on loopback: many concurrent clients, mixed calls, a few of them slow.

Starts ``sqlr1 serve --http --port 0`` on a copy of examples/chinook.sqlite (guard timeout 2 s), then runs
``--clients`` MCP clients at once, each making ``--calls`` calls drawn from describe_schema / execute_sql /
validate_sql / list_tables. ``--slow`` of the clients also send a runaway query every tenth call (stopped by
the engine at the timeout: an expected error). Reports failed calls (anything else that errors or raises),
p50/p99 latency and throughput of the normal calls, the normal calls' p99 while runaway queries were in
flight, and the server's RSS before, during and after. Bounded: every call has a deadline and the whole run
stops after ``--deadline`` seconds.

Usage: ``.venv/bin/python benchmarks/http_load.py [--clients 50 --calls 100 --slow 5] [--write-results]``
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import write_section  # benchmarks/ is not a package: import from beside this file

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "RESULTS.md"
SECTION = "## MCP load over streamable HTTP (benchmarks/http_load.py)"
TIMEOUT_S = 2.0
SERVE_ARGS = [sys.executable, "-m", "sqlr1.mcp_server.cli.main"]
RUNAWAY = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
MIX: list[tuple[str, dict[str, Any]]] = [
    ("execute_sql", {"database": "chinook", "sql": "SELECT Name FROM Track WHERE TrackId = 42"}),
    (
        "execute_sql",
        {
            "database": "chinook",
            "sql": "SELECT ar.Name, count(*) FROM Track t JOIN Album a ON a.AlbumId = t.AlbumId "
            "JOIN Artist ar ON ar.ArtistId = a.ArtistId GROUP BY ar.Name ORDER BY 2 DESC LIMIT 10",
        },
    ),
    ("describe_schema", {"database": "chinook", "tables": ["Track", "Album"]}),
    ("validate_sql", {"database": "chinook", "sql": "SELECT * FROM Invoice WHERE Total > 10"}),
    ("list_tables", {"database": "chinook"}),
]


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    during_slow: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    slow_done: int = 0
    slow_in_flight: int = 0
    rss_kb: list[tuple[str, int]] = field(default_factory=list)
    server_cpu_s: float = 0.0


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(db: Path, config: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [*SERVE_ARGS, "--db", f"chinook={db}", "--config", str(config), "serve", "--http", "--port", "0"],
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if m := re.search(r"(http://127\.0\.0\.1:\d+/mcp)", line):
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # never block on a full pipe
            return proc, m.group(1)
    proc.wait(timeout=10)
    raise RuntimeError("the HTTP server did not start")


async def client_run(url: str, idx: int, calls: int, slow: bool, stats: Stats, seed: int) -> None:
    rng = random.Random(seed * 1000 + idx)
    try:
        async with Client(url) as client:
            for i in range(calls):
                if slow and i % 10 == 5:
                    stats.slow_in_flight += 1
                    try:
                        with anyio.fail_after(TIMEOUT_S + 10):
                            res = await client.call_tool(
                                "execute_sql", {"database": "chinook", "sql": RUNAWAY}
                            )
                    finally:
                        stats.slow_in_flight -= 1
                    if not (res.is_error and "timeout" in res.content[0].text):
                        stats.failures.append(f"client {idx}: runaway not stopped as a timeout")
                    stats.slow_done += 1
                    continue
                name, args = rng.choice(MIX)
                t0 = time.perf_counter()
                with anyio.fail_after(30):
                    res = await client.call_tool(name, args)
                dt = time.perf_counter() - t0
                if res.is_error:
                    stats.failures.append(f"client {idx}: {name}: {res.content[0].text[:120]}")
                stats.latencies.append(dt)
                if stats.slow_in_flight:
                    stats.during_slow.append(dt)
    except Exception as exc:  # a failed call is a result of this run, counted and reported
        stats.failures.append(f"client {idx}: {type(exc).__name__}: {exc}")


async def run_load(
    clients: int, calls: int, slow: int, deadline_s: float, seed: int = 0
) -> tuple[Stats, float]:
    """Run the load against a fresh server; returns the stats and the wall time of the client phase."""
    stats = Stats()
    with tempfile.TemporaryDirectory(prefix="sqlr1-load-") as tmp:
        db = Path(tmp) / "chinook.sqlite"
        shutil.copyfile(REPO / "examples" / "chinook.sqlite", db)
        config = Path(tmp) / "load.toml"
        config.write_text(f"[guard]\ntimeout_s = {TIMEOUT_S}\n", encoding="utf-8")
        proc, url = start_server(db, config)
        try:
            stats.rss_kb.append(("idle", rss_kb(proc.pid)))
            cpu0 = cpu_s(proc.pid)

            async def sample_rss() -> None:
                while True:
                    await anyio.sleep(1.0)
                    stats.rss_kb.append(("during", rss_kb(proc.pid)))

            t0 = time.perf_counter()
            with anyio.move_on_after(deadline_s) as scope:
                async with anyio.create_task_group() as tg:
                    sampler = anyio.CancelScope()

                    async def sampler_task() -> None:
                        with sampler:
                            await sample_rss()

                    tg.start_soon(sampler_task)
                    async with anyio.create_task_group() as workers:
                        for i in range(clients):
                            workers.start_soon(client_run, url, i, calls, i < slow, stats, seed)
                    sampler.cancel()
            wall = time.perf_counter() - t0
            if scope.cancelled_caught:
                stats.failures.append(f"run stopped at the {deadline_s:.0f} s deadline")
            stats.rss_kb.append(("after", rss_kb(proc.pid)))
            stats.server_cpu_s = cpu_s(proc.pid) - cpu0
            if proc.poll() is not None:
                stats.failures.append(f"server exited with {proc.returncode}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return stats, wall


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def render(stats: Stats, wall: float, args: argparse.Namespace) -> str:
    during = [kb for label, kb in stats.rss_kb if label == "during"]
    idle = next(kb for label, kb in stats.rss_kb if label == "idle")
    after = next(kb for label, kb in stats.rss_kb if label == "after")
    quarter = max(1, len(during) // 4)
    early = max(during[:quarter], default=idle)
    late = max(during[-quarter:], default=after)
    lines = [
        SECTION,
        "",
        f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.clients} concurrent MCP clients x "
        f"{args.calls} calls (execute_sql lookup / 3-table aggregate join, describe_schema, validate_sql, "
        f"list_tables), {args.slow} of them also sending a runaway recursive CTE every tenth call "
        f"(guard timeout {TIMEOUT_S:g} s); `sqlr1 serve --http` on loopback, copy of Chinook.",
        "",
        "| metric | value |",
        "|---|---|",
        f"| failed calls (goal 0) | {len(stats.failures)} |",
        f"| normal calls | {len(stats.latencies)} in {wall:.1f} s = {len(stats.latencies) / wall:.0f} calls/s |",
        f"| latency p50 / p99 | {pct(stats.latencies, 0.5) * 1000:.1f} / {pct(stats.latencies, 0.99) * 1000:.1f} ms |",
        f"| server CPU (client and server share this machine's cores) | {stats.server_cpu_s:.1f} s = "
        f"{1000 * stats.server_cpu_s / max(1, len(stats.latencies) + stats.slow_done):.1f} ms per call, "
        f"runaway queries included; load average at the end {os.getloadavg()[0]:.1f} |",
        f"| runaway queries stopped by the engine | {stats.slow_done} |",
        f"| normal calls while runaways ran: p50 / p99 | {pct(stats.during_slow, 0.5) * 1000:.1f} / "
        f"{pct(stats.during_slow, 0.99) * 1000:.1f} ms ({len(stats.during_slow)} calls) |",
        f"| server RSS idle / early peak / late peak / after | {idle / 1024:.0f} / {early / 1024:.0f} / "
        f"{late / 1024:.0f} / {after / 1024:.0f} MiB |",
    ]
    lines += [f"| failure | {f.replace('|', '/')} |" for f in stats.failures[:5]]
    lines += [
        "",
        f"The server process used {100 * stats.server_cpu_s / wall:.0f}% of one core over the run: latency here is "
        "queueing in the one client process that drives all clients and on the shared 2-core machine, not server work.",
        "Reproduce: `.venv/bin/python benchmarks/http_load.py --write-results`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--slow", type=int, default=5, help="clients that also send runaway queries")
    parser.add_argument(
        "--deadline", type=float, default=540.0, help="stop the whole run after this many seconds"
    )
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    stats, wall = anyio.run(run_load, args.clients, args.calls, args.slow, args.deadline)
    text = render(stats, wall, args)
    print(text)
    if args.write_results:
        write_section(SECTION, text, RESULTS)
    sys.exit(1 if stats.failures else 0)


if __name__ == "__main__":
    main()
