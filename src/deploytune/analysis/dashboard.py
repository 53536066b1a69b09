"""Opening a study in optuna-dashboard with its best trial chosen among feasible trials.

optuna-dashboard (0.21, the newest release on 2026-12-07) shows each trial's constraints (the
list deploytune records, :mod:`deploytune.history`), but takes a single-objective study's "Best
Trial" from ``storage.get_best_trial``, which in Optuna is the best *value* over complete
trials, feasible or not (optuna-dashboard#772). This module is the one place that works around
it: :func:`feasible_best` makes a storage answer ``get_best_trial`` with the best feasible trial,
and :func:`serve` runs the dashboard on it (``deploytune dashboard STUDY``). When no trial is
feasible, the answer is Optuna's (the best value), since the dashboard needs a trial there.
Remove this module once a dashboard release reads constraints there itself.
"""

from __future__ import annotations

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

__all__ = ["FeasibleBestStorage", "feasible_best", "is_feasible", "serve"]

CONSTRAINTS_KEY = "constraints"
"""Where Optuna's ``constraints_func`` (and deploytune) keep a trial's constraint values."""


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether a complete trial meets every constraint (``<= 0``); a trial recorded without
    constraints is feasible, as in Optuna."""
    values = trial.system_attrs.get(CONSTRAINTS_KEY)
    if values is None:
        values = [v for k, v in trial.system_attrs.items()
                  if k.startswith(CONSTRAINTS_KEY + ":")]
    return all(isinstance(v, (int, float)) and v <= 0 for v in values)


class FeasibleBestStorage(optuna.storages.RDBStorage):
    """An :class:`~optuna.storages.RDBStorage` whose best trial is the best feasible one."""

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        """The best complete feasible trial; Optuna's answer when none is feasible."""
        directions = self.get_study_directions(study_id)
        if len(directions) != 1:
            return super().get_best_trial(study_id)
        trials = [t for t in self.get_all_trials(study_id, deepcopy=False,
                                                 states=(TrialState.COMPLETE,))
                  if t.value is not None and is_feasible(t)]
        if not trials:
            return super().get_best_trial(study_id)
        if directions[0] is StudyDirection.MAXIMIZE:  # ties: the earliest trial
            return max(trials, key=lambda t: (t.value, -t.number))
        return min(trials, key=lambda t: (t.value, t.number))


def feasible_best(storage: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """``storage`` itself, answering ``get_best_trial`` with the best feasible trial (an
    :class:`~optuna.storages.RDBStorage`, or the one inside the cache Optuna wraps around it,
    which is then returned bare; other storages are returned as they are)."""
    backend = getattr(storage, "_backend", storage)  # optuna.load_study's cache wrapper
    if type(backend) is optuna.storages.RDBStorage:
        backend.__class__ = FeasibleBestStorage  # adds a method, no state
        return backend
    return storage


def serve(storage: optuna.storages.BaseStorage, host: str, port: int) -> None:
    """Run optuna-dashboard on ``storage`` until interrupted.

    Raises:
        ImportError: optuna-dashboard is not installed (``pip install optuna-dashboard``).
    """
    import optuna_dashboard

    optuna_dashboard.run_server(feasible_best(storage), host=host, port=port)
