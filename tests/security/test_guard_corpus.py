"""Every statement of the attack corpus is rejected by the guard in each engine's dialect.

Run with ``-s`` to see the counts per category x engine and per rule.
"""

from __future__ import annotations

from collections import Counter

import pytest

from security.corpus import CATEGORIES, CORPUS, ENGINES, HARMLESS_READS, for_engine
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.sql import guard

CANARY_PATH = "/tmp/sqlr1-canary/secret.txt"


def test_corpus_shape() -> None:
    assert len(CORPUS) >= 300
    assert len({(a.sql, a.category) for a in CORPUS}) == len(CORPUS), "duplicate corpus entries"
    for attack in CORPUS:
        assert attack.engines and set(attack.engines) <= set(ENGINES), attack
    table = Counter((a.category, e) for a in CORPUS for e in a.engines)
    width = max(len(c) for c in CATEGORIES)
    print(f"\nattack corpus: {len(CORPUS)} statements, {sum(table.values())} (statement, engine) checks")
    print(" " * width + "".join(f"{e:>10}" for e in ENGINES))
    for category in CATEGORIES:
        print(f"{category:<{width}}" + "".join(f"{table[(category, e)]:>10}" for e in ENGINES))
    print(f"{'total':<{width}}" + "".join(f"{len(for_engine(e)):>10}" for e in ENGINES))
    for engine in ENGINES:
        assert {a.category for a in for_engine(engine)} == set(CATEGORIES), engine


@pytest.mark.parametrize("engine", ENGINES)
def test_guard_rejects_every_attack(engine: str) -> None:
    passed: list[str] = []
    rules: Counter[str] = Counter()
    per_category: Counter[str] = Counter()
    for attack in for_engine(engine):
        if attack.expect != "refused":
            continue  # only a string with sqlr1's pinned settings, or a call only the engine can see
        try:
            guard.check(attack.render(CANARY_PATH), engine)
        except QueryFailed as exc:
            assert exc.error.kind in ("blocked", "syntax"), exc.error
            assert exc.error.message
            rules[exc.error.rule or exc.error.kind] += 1
            per_category[attack.category] += 1
        else:
            passed.append(f"[{attack.category}] {attack.sql[:120]!r}")
    print(f"\n{engine}: {sum(per_category.values())} rejected, {len(passed)} let through")
    print("  by category: " + ", ".join(f"{c}={per_category[c]}" for c in CATEGORIES))
    print("  by rule: " + ", ".join(f"{r}={n}" for r, n in rules.most_common()))
    assert not passed, f"{len(passed)} attacks passed the {engine} guard:\n" + "\n".join(passed)


@pytest.mark.parametrize("engine", ENGINES)
def test_guard_accepts_the_harmless_ones(engine: str) -> None:
    """Harmless reads, strings that hide a call only under settings sqlr1 pins off, and alias.f (a column to
    the guard; the engine's own reading refuses it when PostgreSQL would call a function): all accepted."""
    accepted = [
        a for a in [*for_engine(engine), *HARMLESS_READS] if a.expect != "refused" and engine in a.engines
    ]
    assert accepted
    for attack in accepted:
        guard.check(attack.render(CANARY_PATH), engine)
