"""Heartbeats on running trials, and the watch that finds the trials whose beat stopped.

While a worker evaluates a trial, a thread of its own adds one to the trial's user attribute
``dt.heartbeat`` every ``interval_s`` seconds. Any worker, on any host, that sees a
``RUNNING`` trial's beat unchanged for ``grace_s`` seconds of *its own* monotonic clock
takes the trial's worker for dead: no clock is compared across hosts. (On the worker's own
host, a dead process is recognised at once by its process id: :mod:`deploytune.recovery`.)

A watch that has just started knows nothing yet: a trial is stale only after this watch has
seen its beat stand still for the grace period.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from deploytune.history import ATTR_HEARTBEAT

__all__ = ["DEFAULT_INTERVAL_S", "GRACE_BEATS", "Heartbeat", "StaleWatch"]

DEFAULT_INTERVAL_S = 10.0
"""Seconds between two beats of a running trial."""

GRACE_BEATS = 6
"""A trial is stale after this many intervals without a beat."""


class Heartbeat:
    """Beat on trial ``trial_id`` of ``storage`` from a thread, while the ``with`` block runs.

    The first beat is written before the block starts. A failed write (the storage briefly
    unreachable) is retried at the next beat.

    Args:
        storage: The Optuna storage holding the trial.
        trial_id: The trial's storage id (``trial._trial_id``).
        interval_s: Seconds between beats.
    """

    def __init__(self, storage: Any, trial_id: int,
                 interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.interval_s = interval_s
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deploytune-heartbeat",
                                        daemon=True)

    def _beat(self) -> None:
        self.beats += 1
        with contextlib.suppress(Exception):  # a missed beat; the next one tries again
            self.storage.set_trial_user_attr(self.trial_id, ATTR_HEARTBEAT, self.beats)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._beat()

    def __enter__(self) -> Heartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()


class StaleWatch:
    """Finds the running trials whose heartbeat stood still for ``grace_s`` seconds.

    Args:
        grace_s: Seconds without a change of ``dt.heartbeat``, as seen by this watch.
        clock: The monotonic clock (replaceable in tests).
    """

    def __init__(self, grace_s: float, clock: Any = time.monotonic) -> None:
        self.grace_s = grace_s
        self._clock = clock
        self._seen: dict[int, tuple[Any, float]] = {}

    def stale(self, trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
        """The trials of ``trials`` that are ``RUNNING`` with a beat unchanged for the grace
        period (trials that never beat are left to :mod:`deploytune.recovery`)."""
        now = self._clock()
        running: dict[int, FrozenTrial] = {}
        found = []
        for t in trials:
            if t.state is not TrialState.RUNNING or ATTR_HEARTBEAT not in t.user_attrs:
                continue
            running[t._trial_id] = t
            beat = t.user_attrs[ATTR_HEARTBEAT]
            last = self._seen.get(t._trial_id)
            if last is None or last[0] != beat:
                self._seen[t._trial_id] = (beat, now)
            elif now - last[1] > self.grace_s:
                found.append(t)
        for trial_id in set(self._seen) - set(running):
            del self._seen[trial_id]
        return found
