"""The paired sign test behind the stage comparisons."""

from __future__ import annotations

import pytest

from sqlr1.agent.evaluation.significance import sign_test


def test_counts_only_the_disagreements_and_gives_the_exact_tail() -> None:
    first = [True, True, False, False, False, False, True]
    second = [True, False, True, True, True, False, True]
    t = sign_test(first, second)
    assert (t.questions, t.gained, t.lost) == (7, 3, 1)
    assert t.p == pytest.approx(5 / 16)  # P(X >= 3), X ~ Bin(4, 1/2)
    assert t.delta_points == pytest.approx(100 * 2 / 7)


def test_last_sessions_grpo_gain_is_not_significant_and_a_clear_one_is() -> None:
    # 9 gained, 4 lost of 200 (RESULTS.md: p = 0.13); 15 gained, 3 lost: p < 0.01
    assert sign_test([False] * 9 + [True] * 4, [True] * 9 + [False] * 4).p == pytest.approx(0.1334, abs=1e-4)
    clear = sign_test([False] * 15 + [True] * 3, [True] * 15 + [False] * 3)
    assert clear.p < 0.01 and clear.significant()


def test_no_disagreement_is_no_evidence_and_lengths_must_match() -> None:
    assert sign_test([True, False], [True, False]).p == 1.0
    assert sign_test([], []).delta_points == 0.0
    with pytest.raises(ValueError, match="same length"):
        sign_test([True], [True, False])
