"""Paired significance between two systems answering the same questions.

Owns :func:`sign_test`: the exact one-sided sign test on the questions where the two disagree (the
exact McNemar test): did the second system gain more questions than it lost, beyond what chance gives?
Used by ``benchmarks/stage_report.py`` (base → SFT → GRPO stages, single shot vs agent loop). Pure
arithmetic: it never reads files or runs anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import comb

__all__ = ["SignTest", "sign_test"]


@dataclass(frozen=True)
class SignTest:
    """``gained``: right only with the second system; ``lost``: right only with the first; ``p``: the
    one-sided probability of gaining at least that many of the ``gained + lost`` disagreements if
    either system were as likely to win each (1.0 when they never disagree)."""

    questions: int
    gained: int
    lost: int
    p: float

    @property
    def delta_points(self) -> float:
        """The second system's EX minus the first's, in percentage points."""
        return 100.0 * (self.gained - self.lost) / self.questions if self.questions else 0.0

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p < alpha


def sign_test(first: Sequence[bool], second: Sequence[bool]) -> SignTest:
    """Exact one-sided sign test that ``second`` answers more questions correctly than ``first``
    (paired by position). Raises ``ValueError`` when the two lists differ in length."""
    if len(first) != len(second):
        raise ValueError(f"paired results must have the same length: {len(first)} vs {len(second)}")
    gained = sum(1 for a, b in zip(first, second, strict=True) if b and not a)
    lost = sum(1 for a, b in zip(first, second, strict=True) if a and not b)
    n = gained + lost
    p = sum(comb(n, k) for k in range(gained, n + 1)) / 2**n if n else 1.0
    return SignTest(questions=len(first), gained=gained, lost=lost, p=p)
