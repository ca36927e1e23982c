"""Training curves over steps, as a PNG: reward components, total reward, format rate, KL, response
length, multi-turn shares (retried, accepted first / after feedback), token accuracy and loss.

:class:`CurvesCallback` writes ``training_curves.png`` into the run folder and into every saved
checkpoint (on the main process only); :func:`plot_log_history` draws from a
``TrainerState.log_history`` list, so a finished run can be re-plotted from ``trainer_state.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

__all__ = ["PLOT_NAME", "CurvesCallback", "plot_log_history", "series"]

log = logging.getLogger(__name__)
PLOT_NAME = "training_curves.png"


def series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for entry in history:
        if key in entry and "step" in entry and isinstance(entry[key], int | float):
            xs.append(float(entry["step"]))
            ys.append(float(entry[key]))
    return xs, ys


FORMAT_KEY = "rewards/format_reward/mean"
FORMAT_RATE = "format rate"  # derived: SQL-R1's format reward is +1 or -1, so (mean + 1) / 2


def _panels(keys: set[str]) -> list[tuple[str, list[str]]]:
    """(title, keys) of the panels to draw, in order, for what was logged."""
    rewards = sorted(k for k in keys if k.startswith("rewards/") and k.endswith("/mean"))
    multiturn = sorted(k for k in keys if k.startswith("multiturn/") and k != "multiturn/attempts_mean")
    wanted: list[tuple[str, list[str]]] = [
        ("reward components (mean)", rewards),
        ("total reward (weighted)", ["reward"]),
        ("format rate (share of completions in SQL-R1's format)", [FORMAT_RATE]),
        ("KL to the reference", ["kl"]),
        ("response length (tokens)", ["completions/mean_length", "completions/mean_terminated_length"]),
        ("multi-turn rollouts (share)", multiturn),
        ("attempts per rollout", ["multiturn/attempts_mean"]),
        ("token accuracy (SFT)", ["mean_token_accuracy"]),
        ("loss", ["loss"]),
    ]
    present = keys | ({FORMAT_RATE} if FORMAT_KEY in keys else set())
    panels = [(name, [k for k in ks if k in present]) for name, ks in wanted]
    return [(name, ks) for name, ks in panels if ks]


def _values(history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    if key == FORMAT_RATE:
        xs, ys = series(history, FORMAT_KEY)
        return xs, [(y + 1) / 2 for y in ys]
    return series(history, key)


def plot_log_history(history: Sequence[dict[str, Any]], path: str | Path, *, title: str = "") -> Path | None:
    """Draw the curves found in ``history`` (reward components, total reward, format rate, KL, response
    length, multi-turn shares, loss); returns the file written, or None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels({k for e in history for k in e})
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * len(panels)), sharex=True, squeeze=False)
    for ax, (name, ks) in zip(axes[:, 0], panels, strict=True):
        for k in ks:
            xs, ys = _values(history, k)
            if xs:
                label = k.removeprefix("rewards/").removeprefix("multiturn/").removeprefix("completions/")
                ax.plot(
                    xs,
                    ys,
                    marker="o",
                    markersize=3,
                    label=label.removesuffix("/mean").removesuffix("_reward"),
                )
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        if len(ks) > 1 or ks[0].startswith(("rewards/", "multiturn/")):
            ax.legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("step")
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.985) if title else None)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


class CurvesCallback(TrainerCallback):
    """Writes the curves next to each checkpoint and into the run folder."""

    def __init__(self, title: str = "") -> None:
        self.title = title

    def _write(self, args: Any, state: Any, folder: Path) -> None:
        if not state.is_world_process_zero:
            return
        try:
            plot_log_history(state.log_history, folder / PLOT_NAME, title=self.title)
        except (OSError, ValueError) as exc:  # a plot must never stop training
            log.warning("could not write the training plot: %s", exc)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self._write(args, state, ckpt if ckpt.is_dir() else Path(args.output_dir))
        self._write(args, state, Path(args.output_dir))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._write(args, state, Path(args.output_dir))


def replot(run_dir: str | Path) -> Path | None:
    """Re-draw a run's curves from its last checkpoint's ``trainer_state.json``."""
    run = Path(run_dir)
    states = sorted(
        run.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[-1])
    )
    if not states:
        return None
    history = json.loads(states[-1].read_text(encoding="utf-8")).get("log_history", [])
    return plot_log_history(history, run / PLOT_NAME)
