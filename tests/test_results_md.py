"""benchmarks/results_md.py: a benchmark rewrites its own RESULTS.md section and no other."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location("results_md", REPO / "benchmarks" / "results_md.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replaces_only_its_section_and_appends_a_new_one(tmp_path: Path) -> None:
    write_section = _module().write_section
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## A\n\nold a\n\n## B\n\nkeep b\n", encoding="utf-8")
    write_section("## A", "## A\n\nnew a\n", results)
    assert results.read_text(encoding="utf-8") == "# Benchmark results\n\n## A\n\nnew a\n\n## B\n\nkeep b\n"
    write_section("## C", "## C\n\nc\n", results)
    assert results.read_text(encoding="utf-8").endswith("## B\n\nkeep b\n\n## C\n\nc\n")
    write_section("## B", "## B\n\nnew b\n", results)  # a middle section: what follows it is kept
    text = results.read_text(encoding="utf-8")
    assert "keep b" not in text and "## B\n\nnew b\n" in text and text.endswith("## C\n\nc\n")


def test_benchmarks_share_it() -> None:
    for name in ("http_load", "load_test", "stdio_roundtrip"):
        source = (REPO / "benchmarks" / f"{name}.py").read_text(encoding="utf-8")
        assert "from results_md import write_section" in source and "def write_section" not in source
