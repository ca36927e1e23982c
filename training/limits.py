"""Stopping a run on a wall-clock budget (a lent GPU, a CI slot): :class:`TimeLimitCallback`.

The trainer finishes the step in progress, saves, and returns normally, so ``final/``, the run
record and the curves are written as for a run that reached ``max_steps``; the record says how many
steps were done and that the time limit ended the run.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from transformers import TrainerCallback

__all__ = ["TimeLimitCallback"]

log = logging.getLogger(__name__)


class TimeLimitCallback(TrainerCallback):  # type: ignore[misc]
    """Ask the trainer to stop once ``minutes`` have passed since training began."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60.0
        self.started: float | None = None
        self.stopped_at_step: int | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.started = time.monotonic()
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.started is not None and time.monotonic() - self.started >= self.seconds:
            if self.stopped_at_step is None:
                log.warning(
                    "time limit of %.1f min reached after step %d; stopping",
                    self.seconds / 60,
                    state.global_step,
                )
            self.stopped_at_step = int(state.global_step)
            control.should_training_stop = True
            control.should_save = True
        return control
