"""``smac3``: the real SMAC3 package as a peer sampler, run the way SMAC3's users run it.

``smac`` (:mod:`deploytune.samplers.smac_rf`) is our own re-implementation of SMAC's ideas.
This module runs the package itself (``smac==2.3.1`` with ConfigSpace and pyrfr, its C++
random forest; ``pip install 'deploytune[peers]'``), so a comparison with SMAC3 is a
comparison with the code its users run, not with our reading of it.

1. **Configuration space.** The :class:`~deploytune.space.Space` becomes a ConfigSpace
   ``ConfigurationSpace`` (:mod:`deploytune.samplers._configspace`): categoricals ->
   ``Categorical``; categoricals whose choices are all numbers (batch sizes, tensor-parallel
   degrees) -> ``Ordinal`` over the sorted choices, so the forest sees their order, as
   deploytune's own samplers do; ints and floats -> ``Integer`` / ``Float`` with their ``log``
   flag; ints and floats with a ``step`` -> ``Ordinal`` over the grid (ConfigSpace 1.x has no
   quantisation). A ``when`` becomes an ``EqualsCondition`` / ``InCondition`` (an
   ``AndConjunction`` for several parents); a forbidden combination a
   ``ForbiddenAndConjunction`` of ``ForbiddenInClause``s. With forbidden combinations the
   defaults are taken from a fixed valid configuration, because ConfigSpace refuses a space
   whose default configuration is forbidden.
2. **The facade as users build it.** ``HyperparameterOptimizationFacade`` with every component
   at its default (Sobol initial design of 10 configurations per parameter but at most a
   quarter of the trials; pyrfr random forest on log-scaled costs; log EI; local and sorted
   random search; random interleaving with probability 0.2; the intensifier; a configuration
   selector that retrains the forest after every 8 proposals), on a ``Scenario`` with
   ``deterministic=True``, ``n_trials`` = the run's budget (50 when none is given), ``seed`` =
   the run's seed and ``overwrite=True``. The output directory is made inside a temporary
   folder that is removed as soon as the facade is built (``tell(..., save=False)`` writes
   nothing afterwards). SMAC's logging is not set up (``logging_level=False``: SMAC would
   otherwise reconfigure the root logger of the tuner's process) and its ``smac`` logger is
   held at ``ERROR`` while it runs.
3. **One ask-and-tell loop per run.** The facade is driven exactly as a SMAC3 user's loop
   drives it: for each earlier trial in number order, ``smac.ask()``, then ``smac.tell(info,
   value, save=False)`` with that trial's result; the last ``ask()`` is the proposal. A trial
   still running consumes its ask and is not told yet; a transient crash consumes its ask
   and is never told (it says nothing about the configuration); a trial whose configuration
   is not the one SMAC asked for (a study continued from another sampler,
   ``PartialFixedSampler``, a trial added by hand) is told as a user-provided trial
   (``TrialInfo`` of its own configuration, SMAC's warm-start route) and the ask it consumed
   stays unanswered. The loop is kept between asks of one sampler object and rebuilt from
   the study (replayed from the first trial) whenever the study is not the one it has seen
   plus new trials: after a resume, in another process, after unpickling or
   ``reseed_rng``. Because the replay performs the same calls in the same order, SMAC seeded
   once by the run's seed proposes the same configuration either way: the proposal depends
   only on the seed and the history, which is what seeding by (seed, trial number) gives
   deploytune's other samplers. (Rebuilding a facade per ask instead, told the whole history,
   would retrain the forest and redraw the random interleaving on every ask, i.e. not the
   SMAC its users run.)
4. **What is told.** SMAC minimises a cost: ``cost = -value`` when maximising, ``value`` when
   minimising.

   * *feasible*: ``StatusType.SUCCESS`` with its cost;
   * *crashed* (any kind but transient; a feasible run without a finite value too):
     ``StatusType.CRASHED`` with the **crash cost**: the largest cost among the trials told
     as ``SUCCESS`` so far (0 while there is none), or the ``crash_cost`` option when given.
     SMAC's runner would store ``Scenario.crash_cost``, which defaults to infinity, and SMAC
     2.3.1's log-scaled run-history encoder then turns every cost into NaN or -inf (measured:
     one crash among twelve trials gives the forest NaN for the crashes and -inf for every
     other trial), so the forest learns nothing. SMAC3 fixed this upstream
     (automl/SMAC3#1312) by replacing non-finite costs with the largest observed cost; that
     is the value told here. When the largest cost changes, the crashes told before are told
     again with the new value (``tell`` overwrites a trial's entry), as that fix re-imputes
     them on every fit;
   * *infeasible* (ran, missed a constraint) and *aborted* (stopped early by the tuner):
     SMAC3 has no constraints. By default (``infeasible="crash"``) they are told exactly like
     crashes: ``StatusType.CRASHED`` with the crash cost. This is what a SMAC3 user's target
     function does with a missed service-level objective when it raises or returns its failure
     cost, and what SMAC's runner records for a target function that raises; it needs no
     penalty weight, which the user could not know in advance. ``infeasible="penalty"`` tells
     them instead as ``SUCCESS`` with the static penalty of a user who adds one: the measured
     cost plus ``span * v``, where ``v`` is the total normalised violation (at least 1e-3 for
     aborted trials) and ``span`` the range of the costs of the feasible trials (1 while
     fewer than two; the magnitude of the one cost when larger); a trial without a measured
     value is then told as a crash.
5. **Back to a configuration.** SMAC's configuration is converted back (choices to the
   declared values, grid points snapped, bounds clipped) and checked against the space.

**Failures.** If SMAC stops (its intensifier finds no new configuration, e.g. on an exhausted
small space), raises, or returns a configuration the space rejects, the trial gets a random
configuration not evaluated yet (seeded by seed and trial number) and a warning is logged: the
tuner never sees an error from SMAC. Once SMAC has stopped, every later trial of the loop falls
back this way. :attr:`Smac3Sampler.fallbacks` counts these asks per sampler object.

**Cost.** A proposal costs what one step of the user's loop costs: a few milliseconds, and a
forest fit plus an acquisition search (0.2 s to 0.6 s on 2 cores) on every 8th proposal after
the initial design; importing SMAC takes about 1 s once. A replay costs the whole loop so far.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.study import StudyDirection
from optuna.trial import TrialState

from deploytune.history import TrialRecord
from deploytune.moves import draw_unseen
from deploytune.outcome import Status
from deploytune.samplers._base import SpaceSampler, planned_budget, trial_rng
from deploytune.samplers._configspace import ConfigSpaceEncoding
from deploytune.samplers._options import check_settings, settings_from
from deploytune.space import Config, Space

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial

__all__ = ["SMAC_VERSION", "ConfigSpaceEncoding", "Smac3Sampler", "Smac3Settings", "make_smac3",
           "register_all", "require_smac", "told_values"]

SMAC_VERSION = "2.3.1"
"""The SMAC3 release the ``peers`` extra pins."""

TOLD_SEED = 0
"""The seed of a user-provided trial told before SMAC's first ask (afterwards such trials carry
the seed SMAC's asks carry; the target function of a deterministic scenario ignores it)."""

_ABORTED_VIOLATION = 1e-3
_logger = logging.getLogger(__name__)


def require_smac() -> None:
    """Raise a one-line ``ImportError`` naming the extra when SMAC3 is not installed."""
    if importlib.util.find_spec("smac") is None or importlib.util.find_spec("ConfigSpace") is None:
        raise ImportError(
            "sampler 'smac3' needs the SMAC3 package, which is not installed; install the "
            f"extra with pip install 'deploytune[peers]' (it pins smac=={SMAC_VERSION})")


@dataclass(frozen=True)
class Smac3Settings:
    """Options of ``smac3`` (``smac3[infeasible=penalty]``); see the module docstring."""

    infeasible: str = "crash"
    """How a run that missed a constraint (or was aborted) is told: ``crash`` (CRASHED with
    the crash cost) or ``penalty`` (SUCCESS with its cost plus a static penalty)."""
    crash_cost: float | None = None
    """The cost told for crashes; ``None``: the largest cost told as SUCCESS (SMAC3's fix)."""

    def __post_init__(self) -> None:
        check_settings(self, owner="smac3", choices={"infeasible": ("crash", "penalty")})


# ----------------------------------------------------------------------------- told values
def told_values(history: Sequence[TrialRecord], sign: float, settings: Smac3Settings
                ) -> dict[int, tuple[float, bool]]:
    """Trial number -> ``(cost, crashed)`` for every trial of ``history`` to tell SMAC.

    ``crashed`` means "tell as ``StatusType.CRASHED``"; see the module docstring for the
    costs. Transient crashes are left out.

    Args:
        history: Finished trials in trial-number order (those that fit the space).
        sign: +1 when the objective is maximised, -1 when it is minimised.
        settings: The sampler's options.
    """
    def measured(o: TrialRecord) -> float | None:
        if o.value is None or not math.isfinite(o.value):
            return None
        return -sign * float(o.value)

    used = [o for o in history if not o.transient]
    feasible = [c for o in used if o.feasible and (c := measured(o)) is not None]
    span = (max(feasible) - min(feasible)) if len(feasible) >= 2 else 0.0
    if not span > 1e-12:
        span = max(1.0, abs(feasible[0])) if feasible else 1.0
    costs: list[float | None] = []
    for o in used:
        c = measured(o)
        if o.crashed or c is None:
            costs.append(None)
        elif o.feasible:
            costs.append(c)
        elif settings.infeasible == "penalty":
            v = o.total_violation
            if o.status is Status.ABORTED:
                v = max(v, _ABORTED_VIOLATION)
            costs.append(c + span * v)
        else:
            costs.append(None)
    if settings.crash_cost is not None:
        crash_cost = float(settings.crash_cost)
    else:
        ran = [c for c in costs if c is not None]
        crash_cost = max(ran) if ran else 0.0
    return {o.number: (crash_cost if c is None else c, c is None)
            for o, c in zip(used, costs, strict=True)}


# ------------------------------------------------------------------------------ the loop
class _Loop:
    """One SMAC3 run driven through a study's trials as a user's ask-and-tell loop.

    ``steps`` records, per trial consumed, ``(number, kind, configuration key)`` with kind
    ``told`` (finished, its result told or it was transient), or ``running``; a later study
    whose steps start with these continues the loop, any other is replayed from scratch.
    """

    def __init__(self, space: Space, seed: int, budget: int, sign: float) -> None:
        from smac import HyperparameterOptimizationFacade as Facade
        from smac import Scenario

        self.space, self.sign = space, sign
        self.encoding = ConfigSpaceEncoding(space, seed)
        with tempfile.TemporaryDirectory(prefix="deploytune-smac3-") as tmp:
            scenario = Scenario(self.encoding.cs, deterministic=True, n_trials=budget,
                                seed=seed, output_directory=Path(tmp) / "smac3")
            self.smac = Facade(scenario, _not_called, overwrite=True, logging_level=False)
        self.steps: list[tuple[int, str, Any]] = []
        self.infos: dict[int, Any] = {}  # trial number -> the TrialInfo it was told with
        self.told: dict[int, tuple[float, bool]] = {}  # trial number -> (cost, crashed) told
        self.pending: Any = None  # the last ask, not consumed by a trial yet
        self.stopped = ""  # why SMAC gives no more configurations ("" while it does)
        self.trial_seed: int | None = None

    def continues(self, steps: Sequence[tuple[int, str, Any]], sign: float) -> bool:
        """Whether ``steps`` are this loop's steps plus new ones."""
        return sign == self.sign and list(steps[: len(self.steps)]) == self.steps

    def _ask(self) -> Any:
        if self.pending is not None:
            info, self.pending = self.pending, None
            return info
        if self.stopped:
            return None
        try:
            info = self.smac.ask()
        except Exception as exc:  # StopIteration: SMAC found nothing new; anything else
            self.stopped = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return None
        if self.trial_seed is None:
            self.trial_seed = info.seed
        return info

    def advance(self, steps: Sequence[tuple[int, str, Any]], history: Sequence[TrialRecord],
                settings: Smac3Settings) -> None:
        """Consume the new ``steps``: an ask each, then tell the finished ones."""
        from smac.runhistory import TrialInfo

        by_number = {o.number: o for o in history}
        for step in steps[len(self.steps):]:
            number, kind, _ = step
            info = self._ask()
            self.steps.append(step)
            o = by_number.get(number)
            if kind != "told" or o is None or o.transient:
                continue
            try:
                configuration = self.encoding.configuration(o.config)
            except (ValueError, StopIteration):
                continue  # e.g. a forbidden combination added by hand: ConfigSpace refuses it
            if info is None or info.config != configuration:  # a user-provided trial
                seed = TOLD_SEED if self.trial_seed is None else self.trial_seed
                info = TrialInfo(config=configuration, seed=seed)
            self.infos[number] = info
            self._tell([by_number[n] for n in self.infos], settings)

    def _tell(self, history: Sequence[TrialRecord], settings: Smac3Settings) -> None:
        """Tell every trial whose (cost, status) is new or changed (the crash cost moves)."""
        from smac.runhistory import StatusType, TrialValue

        for number, value in told_values(history, self.sign, settings).items():
            if self.told.get(number) != value:
                cost, crashed = value
                self.smac.tell(self.infos[number], TrialValue(
                    cost=cost, status=StatusType.CRASHED if crashed else StatusType.SUCCESS),
                    save=False)
                self.told[number] = value

    def propose(self) -> Config | None:
        """SMAC's next configuration (kept as the pending ask), or ``None`` if it has none."""
        info = self._ask()
        if info is None:
            return None
        self.pending = info
        return self.encoding.config(info.config)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """SMAC's ``smac`` logger at ERROR and its Python warnings hidden."""
    smac_logger = logging.getLogger("smac")
    level = smac_logger.level
    smac_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        smac_logger.setLevel(level)


def _not_called(config: Any, seed: int = 0) -> float:  # pragma: no cover - ask/tell only
    """The facade's target function: never run, the tuner evaluates (ask and tell)."""
    raise RuntimeError("smac3: SMAC's target function is never run; deploytune evaluates")


# --------------------------------------------------------------------------------- sampler
class Smac3Sampler(SpaceSampler):
    """SMAC3's ``HyperparameterOptimizationFacade`` behind Optuna's sampler interface.

    See the module docstring for the space conversion, the ask-and-tell loop, what is told,
    and seeding. The loop is kept between asks and rebuilt from the study when needed; it is
    not pickled (a copy replays the study and proposes the same).

    Args:
        space: The search space.
        seed: Seed; ``None`` draws one (the run is then not reproducible).
        budget: The run's budget in trials (SMAC's ``n_trials``, which sizes the initial
            design); ``None`` assumes 50.
        **settings: Fields of :class:`Smac3Settings`.

    Raises:
        ImportError: SMAC3 is not installed (names ``pip install 'deploytune[peers]'``).
        ValueError: an unknown or bad option.

    Example:
        >>> sampler = Smac3Sampler(space, seed=0, budget=25)
        >>> study = optuna.create_study(sampler=sampler, direction="maximize")
    """

    def __init__(self, space: Space, seed: int | None = None, budget: int | None = None,
                 **settings: Any) -> None:
        require_smac()
        super().__init__(space, seed)
        self.settings = settings_from(Smac3Settings, settings, owner="smac3")
        self.budget = planned_budget(budget)
        self.fallbacks = 0
        """Asks answered by a random configuration because SMAC gave none usable."""
        self._loop: _Loop | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_loop"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def reseed_rng(self) -> None:
        """A new seed, and so a new SMAC run."""
        super().reseed_rng()
        self._loop = None

    def loop(self, study: Study, number: int) -> _Loop:
        """The ask-and-tell loop brought up to the trials of ``study`` before trial
        ``number`` (continued, or replayed from scratch)."""
        history = self.history(study)
        running = [t.number for t in study.get_trials(deepcopy=False,
                                                      states=(TrialState.RUNNING,))
                   if t.number < number]
        steps = sorted([(o.number, "told", self.space.key(o.config)) for o in history
                        if o.number < number] + [(n, "running", None) for n in running])
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        if self._loop is None or not self._loop.continues(steps, sign):
            self._loop = _Loop(self.space, self.seed, self.budget, sign)
        self._loop.advance(steps, history, self.settings)
        return self._loop

    def propose(self, study: Study, trial: FrozenTrial) -> Config:
        """SMAC's next configuration given the history; a random unseen one if it has none."""
        config: Config | None = None
        with self._lock, _quiet():
            try:
                loop = self.loop(study, trial.number)
                config = loop.propose()
                reason = loop.stopped
            except Exception as exc:  # never an error for the tuner
                self._loop = None
                reason = f"{type(exc).__name__}: {exc}"
        if config is not None and not self.space.is_valid(config):
            reason, config = f"it proposed an invalid configuration {config}", None
        if config is not None:
            return config
        self.fallbacks += 1
        _logger.warning("smac3: trial %d gets a random configuration; SMAC gave none (%s)",
                        trial.number, reason or "no configuration")
        return self._random_unseen(study, trial.number)

    def _random_unseen(self, study: Study, number: int) -> Config:
        seen = {self.space.key(o.config) for o in self.history(study)}
        return draw_unseen(self.space, seen, trial_rng(self.seed, number, "smac3-fallback"),
                           200)[0]


def make_smac3(space: Space, seed: int | None = None, budget: int | None = None,
               **options: Any) -> Smac3Sampler:
    """``smac3``: :class:`Smac3Sampler` (``options`` are fields of :class:`Smac3Settings`)."""
    return Smac3Sampler(space, seed=seed, budget=budget, **options)


def register_all(register: Callable[..., None]) -> None:
    """Register ``smac3`` (built only when asked for: it needs the ``peers`` extra)."""
    register("smac3", make_smac3, "the real SMAC3 package (HPO facade, as its users run it), as a "
             "peer to compare with; crashes and missed constraints are its CRASHED trials; "
             "needs pip install 'deploytune[peers]'")
