"""SynSQL-2.5M loading: peak memory and time of the streaming loader vs reading the whole ``data.json``,
side by side in one run, each in its own child process, on a generated file in the official format.

The file has SynSQL-2.5M's record shape (db_id, sql_complexity, question_style, question,
external_knowledge, cot, sql; realistic lengths: a ~2 KB chain of thought, a ~400-character query).
"Whole file" is what the loader did before (``json.load`` of the file, then an Example per record);
"streamed" is ``training.data.load_synsql`` with the 7B preset's selection (Complex rows, a seeded
sample of 2 × 4,000). The real file is 9 GB: whole-file memory grows with it, streamed memory does not.

    python benchmarks/synsql_stream_bench.py [--mb 100 300] [--write]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_LEVELS = ["Simple", "Moderate", "Complex", "Highly Complex"]
_WORDS = [
    "the",
    "of",
    "table",
    "join",
    "select",
    "region",
    "salary",
    "university",
    "average",
    "rank",
    "each",
    "top",
    "filter",
    "count",
    "group",
]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def write_file(path: Path, megabytes: int, seed: int = 0) -> int:
    """A data.json of about ``megabytes`` MB in SynSQL-2.5M's format; returns the record count."""
    rng = random.Random(seed)
    target = megabytes * 1_000_000
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        fh.write("[\n")
        size = 2
        while size < target:
            record = {
                "db_id": f"db_{rng.randrange(16000)}",
                "sql_complexity": rng.choice(_LEVELS),
                "question_style": "Formal",
                "question": _text(rng, 25) + "?",
                "external_knowledge": _text(rng, rng.choice([0, 0, 12])),
                "cot": _text(rng, 330),
                "sql": "SELECT " + _text(rng, 60),
            }
            line = ("" if n == 0 else ",\n") + json.dumps(record, indent=2)
            fh.write(line)
            size += len(line)
            n += 1
        fh.write("\n]\n")
    return n


_CHILD = {
    "whole": (
        "import json, sys; from pathlib import Path; from sqlr1.training.data import _synsql_example\n"
        "root = Path(sys.argv[1]).parent\n"
        "items = json.load(open(sys.argv[1], encoding='utf-8'))\n"
        "kept = [_synsql_example(it, root, i) for i, it in enumerate(items)]\n"
        "print(len(kept))\n"
    ),
    "streamed": (
        "import sys; from pathlib import Path; from sqlr1.training.data import load_synsql\n"
        "kept = load_synsql(Path(sys.argv[1]).parent, complexity=['Complex'], sample=8000, seed=0)\n"
        "print(len(kept))\n"
    ),
}


def measure(mode: str, data: Path) -> tuple[float, float, int]:
    """(peak RSS in MB, seconds, examples kept) of one loader in a fresh child process."""
    code = _CHILD[mode] + "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, str(data)], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[1]) / 1024, time.perf_counter() - started, int(out[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, nargs="+", default=[100, 300], help="sizes of the generated data.json")
    ap.add_argument("--write", action="store_true", help="record the result in benchmarks/RESULTS.md")
    args = ap.parse_args()
    assert resource  # the children read their own peak RSS
    table = ["| file | loader | peak memory | time | examples kept |", "|---|---|---|---|---|"]
    ratios = []
    for mb in args.mb:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data.json"
            records = write_file(data, mb)
            size = f"{data.stat().st_size / 1e6:.0f} MB ({records:,} records)"
            rows = {mode: measure(mode, data) for mode in ("whole", "streamed")}
        (w_mb, w_s, w_n), (s_mb, s_s, s_n) = rows["whole"], rows["streamed"]
        table.append(
            f"| {size} | whole file (`json.load`, as before) | {w_mb:,.0f} MB | {w_s:.1f} s | {w_n:,} |"
        )
        table.append(
            f"| {size} | streamed (`load_synsql`, Complex, sample of 8,000) | {s_mb:,.0f} MB | {s_s:.1f} s | {s_n:,} |"
        )
        ratios.append(f"{s_mb / w_mb:.2f}× at {mb} MB")
    lines = [
        "## SynSQL-2.5M loading: streamed vs whole file (`benchmarks/synsql_stream_bench.py`)",
        "",
        "Generated `data.json` files in SynSQL-2.5M's format and record lengths; each loader in its own child "
        "process (peak RSS from `getrusage`, the interpreter and imports included).",
        "",
        *table,
        "",
        f"Streamed peak memory relative to the whole-file loader: {', '.join(ratios)}. The streamed loader holds "
        "one record, a 1 MB buffer and the sample, so its peak does not grow with the file; the whole-file loader's "
        "grows with it (the real `data.json` is 9 GB).",
        "",
        f"Command: `python benchmarks/synsql_stream_bench.py --mb {' '.join(map(str, args.mb))} --write`.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from results_md import write_section

        write_section(lines[0], text)


if __name__ == "__main__":
    main()
