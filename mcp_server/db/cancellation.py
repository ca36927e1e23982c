"""Request-wide cancellation: one flag that also stops every query the request has running.

Owns :class:`Cancellation`, what a multi-step request (``generate_sql``: value retrieval, sampling,
one query per candidate; a value-index build) checks between its steps and hands to each query it
starts. ``cancel()`` may be called from any thread: it sets the flag and cancels the
:class:`~mcp_server.db.engines.base.CancelHandle` of every query in flight, so the engine stops it
(the same handles ``Executor.run_async`` uses). It never runs SQL itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import anyio
import anyio.to_thread

from sqlr1.mcp_server.db.engines.base import CancelHandle, cancelled_error

__all__ = ["STOP_WAIT_S", "Cancellation", "run_in_thread"]

T = TypeVar("T")

STOP_WAIT_S = 5.0
"""How long a cancelled caller waits for its worker thread to stop (engine interrupt, model step)."""


async def run_in_thread(
    work: Callable[[], T],
    on_cancel: Callable[[], None] | None,
    *,
    limiter: anyio.CapacityLimiter | None = None,
) -> T:
    """Run ``work()`` in a worker thread without blocking the event loop.

    Cancelling the awaiting task calls ``on_cancel`` (a :class:`Cancellation`'s or a query's
    :class:`CancelHandle`'s ``cancel``, which stops the running query in the engine), then waits,
    shielded and at most ``STOP_WAIT_S``, until the worker has returned, and re-raises. Without
    ``on_cancel`` the worker is abandoned at once.
    """
    done = threading.Event()

    def run() -> T:
        try:
            return work()
        finally:
            done.set()

    try:
        return await anyio.to_thread.run_sync(run, limiter=limiter, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        if on_cancel is not None:
            on_cancel()
            with anyio.CancelScope(shield=True), anyio.move_on_after(STOP_WAIT_S):
                await anyio.to_thread.run_sync(done.wait, STOP_WAIT_S)
        raise


class Cancellation:
    """A cancel flag for one request plus the cancel handles of its running queries. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._handles: set[CancelHandle] = set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def is_cancelled(self) -> bool:
        """``cancelled`` as a callable (a backend's ``should_stop``)."""
        return self._event.is_set()

    def cancel(self) -> None:
        """Set the flag and stop every query started through :meth:`handle` that is still running."""
        with self._lock:
            self._event.set()
            handles = list(self._handles)
        for handle in handles:
            handle.cancel()

    def raise_if_cancelled(self) -> None:
        """Raise the engines' ``cancelled`` error (``QueryFailed``, kind ``execution``) once cancelled."""
        if self._event.is_set():
            raise cancelled_error()

    @contextmanager
    def handle(self) -> Iterator[CancelHandle]:
        """A fresh handle for one query (pass it as ``cancel=``); already cancelled if the request is."""
        handle = CancelHandle()
        with self._lock:
            self._handles.add(handle)
            cancelled = self._event.is_set()
        if cancelled:
            handle.cancel()
        try:
            yield handle
        finally:
            with self._lock:
                self._handles.discard(handle)
