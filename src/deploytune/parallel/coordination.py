"""What one worker does to share a study with others: the lock, recovery, heartbeat, leases.

:class:`Coordination` is built once per :func:`deploytune.optimize` call. The tuner's loop
holds :meth:`Coordination.held` while it reads the study, decides and asks for a trial, and
runs each evaluation inside :meth:`Coordination.running`, which beats on the trial and leases
its devices. Between trials, :meth:`Coordination.recover` records the trials of dead workers
as interrupted and queues their configurations again: on this host at once (their process is
gone), on any host once their beat stopped for the grace period.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from deploytune.history import ATTR_LEASE, ATTR_WORKER
from deploytune.parallel.heartbeat import DEFAULT_INTERVAL_S, GRACE_BEATS, Heartbeat, StaleWatch
from deploytune.parallel.leases import Lease, Leases, Resources
from deploytune.parallel.lock import StudyLock, file_of
from deploytune.recovery import host_name, interrupt_trial, recover_stale_trials

if TYPE_CHECKING:
    from deploytune.space import Space

__all__ = ["WAIT_S", "Coordination", "lease_folder_for"]

WAIT_S = 0.2
"""Seconds a worker waits before looking again when the budget is taken by running trials."""


def lease_folder_for(storage: str | Any | None, study_name: str) -> Path:
    """The folder where this machine's workers of the study lease devices: beside an SQLite or
    journal file, else in the system's temporary folder (keyed by storage and study)."""
    url = storage if isinstance(storage, str) else None
    path = file_of(url) if url else None
    if path is not None:  # the host's name made one plain folder name ($DEPLOYTUNE_HOST)
        host = re.sub(r"[^A-Za-z0-9_.-]", "_", host_name()).lstrip(".") or "host"
        return path.with_name(f"{path.name}.leases") / host
    key = zlib.crc32(f"{url or id(storage)}::{study_name}".encode())
    return Path(tempfile.gettempdir()) / f"deploytune-leases-{key:08x}"


def _as_resources(resources: Resources | Mapping[str, Any] | None) -> Resources | None:
    """``resources`` as :class:`Resources` (its dict form parsed, errors named
    ``resources.<field>``)."""
    if resources is None or isinstance(resources, Resources):
        return resources
    try:
        return Resources.from_dict(resources)
    except ValueError as exc:
        raise ValueError(f"resources.{exc}") from None


class Coordination:
    """One worker's share of the coordination of a study.

    Args:
        storage: The storage URL or object (``None``: in memory).
        study_name: The study's name (``None``: an in-memory study of its own).
        resources: This machine's devices and the need per trial (or their dict form);
            ``None``: no leases.
        heartbeat_s: Seconds between heartbeats; a trial is stale after
            :data:`~deploytune.parallel.heartbeat.GRACE_BEATS` of them without one.
        lease_folder: Where leases are held (default: :func:`lease_folder_for`).
    """

    def __init__(self, storage: str | Any | None, study_name: str | None, *,
                 resources: Resources | Mapping[str, Any] | None = None,
                 heartbeat_s: float = DEFAULT_INTERVAL_S,
                 lease_folder: Path | None = None) -> None:
        if isinstance(heartbeat_s, bool) or not isinstance(heartbeat_s, (int, float)) \
                or not heartbeat_s > 0:
            raise ValueError(f"heartbeat_s: must be a positive number of seconds "
                             f"(got {heartbeat_s!r})")
        self.study_name = study_name
        self.lock = StudyLock(storage, study_name or "")
        self.heartbeat_s = float(heartbeat_s)
        self.watch = StaleWatch(GRACE_BEATS * self.heartbeat_s)
        self.resources = _as_resources(resources)
        self.leases = None if self.resources is None else Leases(
            self.resources, lease_folder or lease_folder_for(storage, study_name or ""))

    def held(self) -> contextlib.AbstractContextManager[None]:
        """The study lock (see :mod:`deploytune.parallel.lock`)."""
        return self.lock.held()

    def recover(self, study: optuna.Study, space: Space) -> None:
        """Record the trials of dead workers as interrupted and queue them again (under the
        lock)."""
        running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        gone = set(recover_stale_trials(study, space, running))
        for t in self.watch.stale([t for t in running if t.number not in gone]):
            host = (t.user_attrs.get(ATTR_WORKER) or {}).get("host", "?")
            interrupt_trial(study, t, f"its worker (host {host}) stopped beating for "
                            f"{self.watch.grace_s:g} s", space)

    @staticmethod
    def wait() -> None:
        """Pause before looking at the study again."""
        time.sleep(WAIT_S)

    def devices_needed(self, config: Mapping[str, Any]) -> int:
        """How many devices a trial of ``config`` needs (0 without resources).

        Raises:
            LeaseImpossible: More than this machine has, or not a number.
        """
        return 0 if self.resources is None else self.resources.needed(config)

    @contextlib.contextmanager
    def running(self, study: optuna.Study, trial: optuna.Trial, devices: int
                ) -> Iterator[Lease | None]:
        """While the trial is evaluated: beat on it (when other processes can share the study),
        and hold and apply a lease of ``devices`` devices (recorded on the trial as
        ``dt.lease``)."""
        beating = (Heartbeat(study._storage, trial._trial_id, self.heartbeat_s)
                   if self.lock.across_processes else contextlib.nullcontext())
        with beating:
            if self.leases is None or devices == 0:
                yield None
                return
            lease = self.leases.acquire(devices)
            try:
                trial.set_user_attr(ATTR_LEASE, {"host": host_name(), "kind": lease.kind,
                                                 "devices": list(lease.devices)})
                with lease.applied():
                    yield lease
            finally:
                self.leases.release(lease)

    def close(self) -> None:
        """Release the lock's database connection."""
        self.lock.close()
