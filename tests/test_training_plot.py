"""Training curves: which panels a run's log gets, and the derived format rate."""

from __future__ import annotations

from pathlib import Path

from sqlr1.training.plot import FORMAT_RATE, _panels, _values, plot_log_history


def _history() -> list[dict[str, float]]:
    return [
        {
            "step": i,
            "rewards/format_reward/mean": -1.0 + 0.5 * i,
            "rewards/turns_reward/mean": -0.25,
            "reward": float(i),
            "kl": 0.001 * i,
            "completions/mean_length": 100.0 + i,
            "multiturn/retried": 0.5,
            "multiturn/attempts_mean": 1.5,
            "loss": 0.1,
        }
        for i in range(1, 4)
    ]


def test_grpo_panels_cover_rewards_format_rate_kl_length_and_turns(tmp_path: Path) -> None:
    history = _history()
    panels = dict(_panels({k for e in history for k in e}))
    assert panels["reward components (mean)"] == ["rewards/format_reward/mean", "rewards/turns_reward/mean"]
    assert panels["format rate (share of completions in SQL-R1's format)"] == [FORMAT_RATE]
    assert _values(history, FORMAT_RATE)[1] == [0.25, 0.5, 0.75]  # (mean + 1) / 2 of a +-1 reward
    assert panels["response length (tokens)"] == ["completions/mean_length"]
    assert panels["multi-turn rollouts (share)"] == ["multiturn/retried"]
    assert {"KL to the reference", "attempts per rollout", "loss"} <= set(panels)
    assert plot_log_history(history, tmp_path / "c.png", title="GRPO") == tmp_path / "c.png"
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_sft_logs_get_loss_and_accuracy_and_nothing_logged_draws_nothing(tmp_path: Path) -> None:
    panels = dict(_panels({"loss", "mean_token_accuracy", "step"}))
    assert list(panels) == ["token accuracy (SFT)", "loss"]
    assert plot_log_history([{"step": 1, "epoch": 0.1}], tmp_path / "none.png") is None
