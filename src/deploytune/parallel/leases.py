"""Device leases: the devices of this machine, how many a trial needs, who holds which.

A spec's ``resources`` section names this machine's devices and what a trial needs::

    resources:
      kind: gpu                               # gpu (CUDA_VISIBLE_DEVICES) or cpu (core affinity)
      devices: [0, 1, 2, 3]                   # or a count: 4 (devices 0..3)
      per_trial: "{tensor_parallel_size}"     # a number, or a template; "{tp}*{pp}" multiplies

Before a trial is evaluated its worker leases that many devices, all or none: each device is
an exclusive ``flock`` on a file of its own in a folder shared by this machine's workers of the
study, which the kernel releases when the worker dies, so a killed worker never keeps a
device. While the trial runs, its processes see only the leased devices: ``gpu`` sets
``CUDA_VISIBLE_DEVICES``; ``cpu`` pins the evaluating thread, and so every process it starts,
to the leased cores (``sched_setaffinity``). A trial that needs more devices than the machine
has is never started (:class:`LeaseImpossible`). Every lease and release is appended to
``leases.log`` in the folder, in the order they happened.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["KINDS", "LOG_NAME", "Lease", "LeaseImpossible", "Leases", "Resources", "max_in_use"]

KINDS = ("gpu", "cpu")
"""What a device is: a GPU (by ``CUDA_VISIBLE_DEVICES`` index or UUID) or a CPU core."""

_DEVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_POLL_S = 0.2
LOG_NAME = "leases.log"
"""The file in the lease folder that lists every lease and release."""


class LeaseImpossible(ValueError):
    """A trial needs more devices than this machine has, or a count that is not a positive
    integer."""


@dataclass(frozen=True)
class Resources:
    """This machine's devices and what one trial needs.

    Attributes:
        kind: ``"gpu"`` or ``"cpu"``.
        devices: The device ids (GPU indices or UUIDs, CPU core numbers).
        per_trial: Devices per trial: a number, or a template of parameters
            (``"{tensor_parallel_size}"``; ``"{tp}*{pp}"`` for a product).
    """

    kind: str
    devices: tuple[str, ...]
    per_trial: int | str = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: must be one of {', '.join(KINDS)} (got {self.kind!r})")
        if not self.devices:
            raise ValueError("devices: name at least one device, or a count such as 4")
        for d in self.devices:
            if not _DEVICE_RE.match(d):
                raise ValueError(f"devices: {d!r} is not a device id (a GPU index or UUID, "
                                 f"a CPU core number)")
        if len(set(self.devices)) != len(self.devices):
            raise ValueError("devices: a device is named twice")
        if self.kind == "cpu" and not all(d.isdigit() for d in self.devices):
            raise ValueError("devices: CPU cores are numbers, e.g. [0, 1]")
        if isinstance(self.per_trial, bool) or (
                isinstance(self.per_trial, int) and self.per_trial < 1):
            raise ValueError(f"per_trial: a positive number of devices or a template such as "
                             f"'{{tensor_parallel_size}}' (got {self.per_trial!r})")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resources:
        """Build from the spec's ``resources`` mapping (``devices`` may be a count)."""
        unknown = sorted(set(data) - {"kind", "devices", "per_trial"})
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown key; use kind, devices and per_trial")
        devices = data.get("devices")
        if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0:
            ids = tuple(str(i) for i in range(devices))
        elif isinstance(devices, (list, tuple)):
            ids = tuple(str(d) for d in devices)
        else:
            raise ValueError(f"devices: a list of device ids or a positive count "
                             f"(got {devices!r})")
        return cls(str(data.get("kind", "gpu")), ids, data.get("per_trial", 1))

    def needed(self, config: Mapping[str, Any]) -> int:
        """How many devices a trial of ``config`` needs.

        Raises:
            LeaseImpossible: The count is not a positive integer, or exceeds the devices.
        """
        if isinstance(self.per_trial, int):
            n = self.per_trial
        else:
            from deploytune.evaluators.templates import Template

            text = Template(self.per_trial, "resources.per_trial").render(
                dict(config), lambda: "{}")
            if text is None:
                raise LeaseImpossible(f"resources.per_trial: {self.per_trial!r} names a "
                                      f"parameter that this configuration does not use")
            try:
                n = 1
                for part in text.split("*"):
                    n *= int(part.strip())
            except ValueError:
                raise LeaseImpossible(f"resources.per_trial: {self.per_trial!r} gives "
                                      f"{text!r} for this configuration, not a number of "
                                      f"devices") from None
        if n < 1 or n > len(self.devices):
            raise LeaseImpossible(f"this trial needs {n} {self.kind} devices and this machine "
                                  f"has {len(self.devices)} (resources.devices)")
        return n


@dataclass
class Lease:
    """Devices held by one trial, until :meth:`Leases.release`."""

    devices: tuple[str, ...]
    kind: str
    _fds: list[int]

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """While the ``with`` block runs, this thread and the processes it starts see only the
        leased devices."""
        if self.kind == "gpu":
            old = os.environ.get("CUDA_VISIBLE_DEVICES")
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(self.devices)
            try:
                yield
            finally:
                if old is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = old
        else:
            before = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {int(d) for d in self.devices})
            try:
                yield
            finally:
                os.sched_setaffinity(0, before)


class Leases:
    """The devices of ``resources`` on this machine, leased through lock files in ``folder``.

    Args:
        resources: The devices and the need per trial.
        folder: A folder on this machine shared by the study's workers here (created).
    """

    def __init__(self, resources: Resources, folder: Path) -> None:
        self.resources = resources
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _log(self, event: str, devices: Sequence[str]) -> None:
        line = f"{time.time():.6f} {os.getpid()} {event} {','.join(devices)}\n"
        fd = os.open(self.folder / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def _try(self, n: int) -> Lease | None:
        held: list[tuple[str, int]] = []
        for device in self.resources.devices:
            fd = os.open(self.folder / f"device-{device}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            held.append((device, fd))
            if len(held) == n:
                lease = Lease(tuple(d for d, _ in held), self.resources.kind,
                              [f for _, f in held])
                self._log("lease", lease.devices)
                return lease
        for _, fd in held:
            os.close(fd)
        return None

    def acquire(self, n: int, *, timeout_s: float | None = None) -> Lease:
        """Lease ``n`` devices, waiting until that many are free.

        Raises:
            LeaseImpossible: ``n`` exceeds this machine's devices.
            TimeoutError: Not free within ``timeout_s`` seconds.
        """
        if n > len(self.resources.devices):
            raise LeaseImpossible(f"this trial needs {n} devices and this machine has "
                                  f"{len(self.resources.devices)}")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            lease = self._try(n)
            if lease is not None:
                return lease
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{n} devices were not free within {timeout_s:g} s")
            time.sleep(_POLL_S)

    def release(self, lease: Lease) -> None:
        """Give the devices of ``lease`` back."""
        self._log("release", lease.devices)
        for fd in lease._fds:
            os.close(fd)
        lease._fds.clear()


def max_in_use(log: Path) -> int:
    """The most devices leased at once according to ``log`` (a ``leases.log``)."""
    in_use = peak = 0
    for line in log.read_text().splitlines():
        _, _, event, devices = line.split(" ", 3)
        n = len(devices.split(","))
        in_use += n if event == "lease" else -n
        peak = max(peak, in_use)
    return peak
