"""``benchmarks/RESULTS.md``: a benchmark replaces its own section and leaves the others as they are."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(section: str, text: str, results: Path = RESULTS) -> None:
    """Replace the section headed ``section`` (up to the next ``## ``) with ``text``, or append it."""
    old = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    if section in old:
        head, _, rest = old.partition(section)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
        new = head + text + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    results.write_text(new, encoding="utf-8")
