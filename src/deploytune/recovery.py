"""Keeping a study consistent across Ctrl-C and SIGKILL.

Each running trial carries the identity of the process evaluating it (user attribute
``dt.worker``: host, pid and the process's start time). When a tuner starts on a study, a trial
still ``RUNNING`` whose process on this host is gone was cut short by a kill: it is recorded as
*interrupted* (``FAIL`` with ``dt.interrupted``) and its configuration is queued again
(``study.enqueue_trial``), so the next trial evaluates it. Interrupted trials are not
evaluations: samplers ignore them and they do not count against the budget. Ctrl-C goes the
same way, at once.

Queueing happens before marking, and a queued copy remembers its origin
(``dt.requeued_from``), so a kill between the two steps neither loses the configuration nor
queues it twice. Only a whole configuration is queued again: the trial's parameters together
with those it was queued with (Optuna's ``fixed_params``), when they make a valid
configuration of the space. A trial cut short while the sampler was still choosing holds a
partial configuration; the sampler proposes afresh instead.

No configuration is ever unowned: :func:`claim_next_trial` stamps the worker's identity on the
queued trial that the next ``study.ask()`` pops before it is popped, so a kill between ``ask``
and the start of the evaluation leaves a ``RUNNING`` trial that recovery recognises. A new
trial (none queued) is stamped right after ``ask``; one left ``RUNNING`` with no owner and no
parameters for :data:`ORPHAN_GRACE_S` is recorded as interrupted too (nothing to queue).

Running trials of processes on other hosts are left alone (their owner may be alive). Before a
stale trial is marked, the processes its dead tuner left behind on this host (found by the mark
in their environment, :func:`deploytune.evaluators.lifetime.kill_leftovers`) are ended: the
per-trial supervisors end a trial's processes when the tuner dies, and this is the fallback for
a supervisor that was killed with it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from deploytune.history import (
    ATTR_ERROR,
    ATTR_INTERRUPTED,
    ATTR_REPEAT_OF,
    ATTR_REQUEUED_FROM,
    ATTR_VALIDATION,
    ATTR_WORKER,
    OPTUNA_FIXED_PARAMS_ATTR,
)

if TYPE_CHECKING:
    from deploytune.space import Space

__all__ = ["HOST_ENV", "claim_next_trial", "host_name", "interrupt_trial", "recover_stale_trials",
           "worker_identity"]

def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or ``None``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


HOST_ENV = "DEPLOYTUNE_HOST"
"""Environment variable naming this machine for the study (default: its host name); set it
where machines share a host name (containers started from one image, for instance)."""


def host_name() -> str:
    """This machine's identity in the study: ``$DEPLOYTUNE_HOST`` or the host name."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


def worker_identity() -> dict[str, Any]:
    """This process's identity: ``{"host", "pid", "start"}``."""
    pid = os.getpid()
    return {"host": host_name(), "pid": pid, "start": _start_time(pid)}


def _is_alive(worker: dict[str, Any]) -> bool:
    pid = worker.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    start = worker.get("start")
    return start is None or _start_time(pid) in (None, start)


ORPHAN_GRACE_S = 60.0
"""A ``RUNNING`` trial with no owner, no parameters and no queued configuration, started this
many seconds ago, was left by a tuner killed between creating it and stamping it (a live
tuner stamps a new trial within milliseconds)."""


def _is_orphan(t: FrozenTrial) -> bool:
    if t.user_attrs.get(ATTR_WORKER) is not None or t.params or t.system_attrs.get(
            OPTUNA_FIXED_PARAMS_ATTR) or t.datetime_start is None:
        return False
    start = t.datetime_start
    now = datetime.now(start.tzinfo) if start.tzinfo else datetime.now()
    return (now - start).total_seconds() > ORPHAN_GRACE_S


def _is_stale(t: FrozenTrial, host: str) -> bool:
    if _is_orphan(t):
        return True
    worker = t.user_attrs.get(ATTR_WORKER)
    if not isinstance(worker, dict) or worker.get("host") != host:
        return False
    return not _is_alive(worker)


def _requeued_origins(study: optuna.Study) -> set[int]:
    return {int(t.user_attrs[ATTR_REQUEUED_FROM]) for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get(ATTR_REQUEUED_FROM) is not None}


def _whole_config(study: optuna.Study, trial: FrozenTrial | optuna.Trial,
                  space: Space | None) -> dict[str, Any] | None:
    """The configuration of ``trial`` to queue again, or ``None`` when it is not whole."""
    attrs = (trial.system_attrs if isinstance(trial, FrozenTrial)
             else study._storage.get_trial_system_attrs(trial._trial_id))
    fixed = attrs.get(OPTUNA_FIXED_PARAMS_ATTR)
    config = {**(fixed if isinstance(fixed, Mapping) else {}), **trial.params}
    if not config:
        return None
    if space is not None and not space.is_valid(config):
        return None  # cut short while the sampler was choosing: it will propose again
    return config


def interrupt_trial(study: optuna.Study, trial: FrozenTrial | optuna.Trial,
                    reason: str, space: Space | None = None) -> None:
    """Queue ``trial``'s configuration again, then mark the trial interrupted (``FAIL``).

    Args:
        study: The study holding ``trial``.
        trial: A trial that is ``RUNNING`` (or already finished: then only the marks).
        reason: Why, recorded as the trial's error (``interrupted: <reason>``).
        space: When given, only a whole, valid configuration is queued again (see the
            module docstring); without it, any non-empty one.
    """
    number = trial.number
    config = _whole_config(study, trial, space)
    if config is not None and number not in _requeued_origins(study):
        inherited = {k: trial.user_attrs[k] for k in (ATTR_REPEAT_OF, ATTR_VALIDATION)
                     if k in trial.user_attrs}  # a re-run stays one
        study.enqueue_trial(config, user_attrs={**inherited, ATTR_REQUEUED_FROM: number},
                            skip_if_exists=False)
    # NOTE: Optuna has no public way to set attributes on a trial object of another process;
    # the storage call is the one Trial.set_user_attr makes.
    storage = study._storage
    trial_id = trial._trial_id
    storage.set_trial_user_attr(trial_id, ATTR_INTERRUPTED, True)
    storage.set_trial_user_attr(trial_id, ATTR_ERROR, f"interrupted: {reason}")
    study.tell(number, state=TrialState.FAIL, skip_if_finished=True)


def recover_stale_trials(study: optuna.Study, space: Space | None = None,
                         running: Sequence[FrozenTrial] | None = None) -> list[int]:
    """Mark the trials left running by a killed tuner on this host as interrupted and queue
    their (whole) configurations again; returns their numbers. ``running``: the study's
    ``RUNNING`` trials when the caller has just read them (read here otherwise)."""
    host = host_name()
    if running is None:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    stale = [t for t in running if _is_stale(t, host)]
    from deploytune.evaluators.lifetime import kill_leftovers

    ended: list[Any] = []
    for t in stale:
        worker = t.user_attrs.get(ATTR_WORKER)
        if worker not in ended:  # processes of the dead tuner its supervisors did not end
            kill_leftovers(worker)
            ended.append(worker)
        interrupt_trial(study, t, "the tuner process was killed while this trial was running",
                        space)
    return [t.number for t in stale]


def claim_next_trial(study: optuna.Study, worker: dict[str, Any]) -> FrozenTrial | None:
    """Stamp ``worker`` on the queued trial the next ``study.ask()`` will pop, and return it;
    ``None`` when none waits (``ask`` then creates a trial, stamped right after).

    A queued trial thus carries its owner before it is ``RUNNING``, so a kill at any instant
    after ``ask`` pops it leaves a trial that :func:`recover_stale_trials` recognises and whose
    configuration it queues again. A new trial has no configuration to lose in the instant
    between its creation and its stamp; one left ``RUNNING`` there is an orphan (see
    :func:`recover_stale_trials`). With one tuner per study; a concurrent worker may pop the
    claimed trial instead, and then stamps its own identity after ``ask``.
    """
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if not waiting:
        return None
    first = waiting[0]
    study._storage.set_trial_user_attr(first._trial_id, ATTR_WORKER, worker)
    return first
