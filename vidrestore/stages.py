"""Plumbing between the pipeline's threads: busy-time clock, stop flag with the first error, bounded
queue hand-offs that notice a failed run, and worker threads that record their exception.

Knows nothing of the stages themselves (their order lives in :mod:`vidrestore.pipeline`). The rules:

* every stage passes items with :func:`put` / :func:`get`, which wait in 0.1 s steps and, once any
  stage failed, raise that stage's error (or :class:`Cancelled` when the run was stopped without
  one) instead of blocking forever on a queue nobody drains or fills any more;
* a stage thread started with :func:`start_worker` records what it raised in :class:`RunControl`;
  the first error wins, a later :class:`Cancelled` never hides it;
* :data:`END` ends a queue's stream.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from typing import Any, Callable

END = object()   # the last item a stage puts into its output queue


class StageClock:
    """Busy seconds per stage; each stage is timed only while it works, not while it waits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds

    def timed(self, stage: str) -> _Timed:
        """Context manager adding the time spent inside it to ``stage``."""
        return _Timed(self, stage)


class _Timed:
    def __init__(self, clock: StageClock, stage: str) -> None:
        self._clock, self._stage = clock, stage

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._clock.add(self._stage, time.perf_counter() - self._t0)


class Cancelled(Exception):
    """Raised in a stage when another stage stopped the run without an error of its own."""


class RunControl:
    """Shared stop flag and the first error of any stage."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def fail(self, exc: BaseException) -> None:
        """Stop the run; ``exc`` becomes its error unless one was recorded first (or it is a
        :class:`Cancelled`, which only stops)."""
        with self._lock:
            if self.error is None and not isinstance(exc, Cancelled):
                self.error = exc
        self.stop.set()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error
        if self.stop.is_set():
            raise Cancelled()


POLL_S = 0.1   # how often a waiting put/get looks at the stop flag


def put(q: queue.Queue, item: Any, ctl: RunControl) -> None:
    """``q.put(item)``, waiting while the queue is full; raises once the run has stopped."""
    while True:
        if ctl.stop.is_set():
            ctl.raise_if_failed()
        try:
            q.put(item, timeout=POLL_S)
            return
        except queue.Full:
            continue


def get(q: queue.Queue, ctl: RunControl, *, block: bool = True) -> Any:
    """Next item; None when not blocking and nothing is ready; raises once the run has stopped
    and the queue is empty (items already queued are still handed out)."""
    while True:
        try:
            return q.get(timeout=POLL_S) if block else q.get_nowait()
        except queue.Empty:
            if ctl.stop.is_set():
                ctl.raise_if_failed()
            if not block:
                return None


def start_worker(fn: Callable[[], None], ctl: RunControl) -> threading.Thread:
    """Run ``fn`` in a daemon thread named after it; what it raises goes to ``ctl.fail``."""
    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - recorded; the consumer re-raises it
            ctl.fail(exc)
    t = threading.Thread(target=run, daemon=True, name=getattr(fn, "__name__", "stage"))
    t.start()
    return t
