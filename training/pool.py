"""The process pool that runs reward-time SQL (predictions and gold queries), never in the trainer.

It is :mod:`mcp_server.db.exec_pool` (shared with the evaluation scorer): worker processes with one
guarded, read-only executor per database file, engine-level timeouts, and a hard deadline in the
parent, so a hung or crashed worker is killed, replaced and reported as a ``timeout``/error and a
runaway query can never stall a training step. This module only gives it training's names; it never
decides what a result means (that is ``training.rewards`` and ``mcp_server.method.compare``).
"""

from __future__ import annotations

from sqlr1.mcp_server.db.exec_pool import ExecJob, ExecOutcome, ExecutionPool, execute_in_process
from sqlr1.mcp_server.db.exec_pool import SerialPool as InProcessExecutor

__all__ = ["ExecJob", "ExecOutcome", "ExecutionPool", "InProcessExecutor", "execute_in_process"]
