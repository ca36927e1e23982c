"""Request-wide cancellation: one flag that also stops every query the request has running.

Owns :class:`Cancellation`, what a multi-step request (``generate_sql``: value retrieval, sampling,
one query per candidate; a value-index build) checks between its steps and hands to each query it
starts. ``cancel()`` may be called from any thread: it sets the flag and cancels the
:class:`~mcp_server.engines.base.CancelHandle` of every query in flight, so the engine stops it
(the same handles ``Executor.run_async`` uses). It never runs SQL itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from mcp_server.engines.base import CancelHandle, cancelled_error

__all__ = ["Cancellation"]


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
