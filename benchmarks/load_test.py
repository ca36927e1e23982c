"""Do slow queries stall the others? The HTTP load run twice, side by side: without and with slow clients.

Uses ``benchmarks/http_load.py`` (the one load driver: ``sqlr1 serve --http`` on loopback, N MCP
clients x M mixed calls of execute_sql / describe_schema / validate_sql / list_tables, bounded and
self-stopping) twice in one process on the same machine: once with no slow clients, once with
``--slow`` clients that also send a 2 s query (a runaway the engine stops at the 2 s timeout) every
tenth call. Reports failed calls, throughput, p50/p99 of the normal calls in both runs, the normal
calls' p99 while slow queries were in flight, and the server's RSS across each run.

Usage: ``.venv/bin/python benchmarks/load_test.py [--clients 50 --calls 100 --slow 5] [--write-results]``
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_md import write_section  # benchmarks/ is not a package: import from beside this file

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "RESULTS.md"
SECTION = "## Load: slow queries vs none, side by side (benchmarks/load_test.py)"


def http_load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("http_load", REPO / "benchmarks" / "http_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["http_load"] = module
    spec.loader.exec_module(module)
    return module


def compare(clients: int, calls: int, slow: int, deadline_s: float) -> tuple[dict[str, object], list[str]]:
    """Run without, then with slow clients; returns the figures and every failure seen."""
    load = http_load()
    out: dict[str, object] = {"timeout_s": load.TIMEOUT_S}
    failures: list[str] = []
    for label, n_slow in (("none", 0), ("slow", slow)):
        stats, wall = anyio.run(load.run_load, clients, calls, n_slow, deadline_s)
        failures += [f"{label}: {f}" for f in stats.failures]
        during = [kb for name, kb in stats.rss_kb if name == "during"]
        idle = next(kb for name, kb in stats.rss_kb if name == "idle")
        after = next(kb for name, kb in stats.rss_kb if name == "after")
        quarter = max(1, len(during) // 4)
        out[label] = {
            "calls": len(stats.latencies),
            "wall_s": wall,
            "throughput": len(stats.latencies) / wall if wall else 0.0,
            "p50_ms": load.pct(stats.latencies, 0.5) * 1000,
            "p99_ms": load.pct(stats.latencies, 0.99) * 1000,
            "during_p50_ms": load.pct(stats.during_slow, 0.5) * 1000,
            "during_p99_ms": load.pct(stats.during_slow, 0.99) * 1000,
            "during_n": len(stats.during_slow),
            "slow_done": stats.slow_done,
            "failures": len(stats.failures),
            "rss_mib": (
                idle / 1024,
                max(during[:quarter], default=idle) / 1024,
                max(during[-quarter:], default=after) / 1024,
                after / 1024,
            ),
        }
    return out, failures


def render(fig: dict[str, object], args: argparse.Namespace) -> str:
    none, slow = fig["none"], fig["slow"]
    assert isinstance(none, dict) and isinstance(slow, dict)

    def row(label: str, d: dict[str, object], during: bool) -> str:
        rss = d["rss_mib"]
        assert isinstance(rss, tuple)
        extra = (
            f"{d['during_p50_ms']:.1f} / {d['during_p99_ms']:.1f} ms ({d['during_n']} calls)"
            if during
            else "-"
        )
        return (
            f"| {label} | {d['failures']} | {d['calls']} in {d['wall_s']:.1f} s = {d['throughput']:.0f}/s | "
            f"{d['p50_ms']:.1f} / {d['p99_ms']:.1f} ms | {extra} | {d['slow_done']} | "
            f"{rss[0]:.0f} / {rss[1]:.0f} / {rss[2]:.0f} / {rss[3]:.0f} |"
        )

    ratio = slow["p99_ms"] / none["p99_ms"] if none["p99_ms"] else float("nan")  # type: ignore[operator]
    return (
        "\n".join(
            [
                SECTION,
                "",
                f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on this shared 2-core machine (load average "
                f"{os.getloadavg()[0]:.1f} at the end; client and server share the cores). {args.clients} concurrent MCP "
                f"clients x {args.calls} mixed calls over streamable HTTP on loopback, Chinook copy; in the second run "
                f"{args.slow} of the clients also send a slow query every tenth call (stopped by the engine at the "
                f"{fig['timeout_s']:g} s timeout, counted apart).",
                "",
                "| run | failed calls | normal calls, throughput | p50 / p99 | p50 / p99 while slow queries ran | "
                "slow queries stopped | server RSS idle / early / late / after MiB |",
                "|---|---:|---|---|---|---:|---|",
                row("no slow clients", none, during=False),
                row(f"{args.slow} slow clients", slow, during=True),
                "",
                f"Normal calls' p99 with slow clients / without: {ratio:.2f}x. Slow queries run in worker threads and "
                "are stopped by the engine, so they hold a thread, not the event loop.",
                "",
                "Reproduce: `.venv/bin/python benchmarks/load_test.py --write-results`.",
            ]
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument(
        "--slow", type=int, default=5, help="clients that also send slow queries (second run)"
    )
    parser.add_argument("--deadline", type=float, default=540.0, help="stop each run after this many seconds")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    fig, failures = compare(args.clients, args.calls, args.slow, args.deadline)
    text = render(fig, args)
    print(text)
    for f in failures[:10]:
        print("failure:", f)
    if args.write_results:
        write_section(SECTION, text, RESULTS)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
