"""Synthetic DeployBench problems: Crashy Branin and Hierarchical Rosenbrock.

Both follow the original research benchmark's definitions (the TBA reference code's
``synthetic_bench``) with the constants its code uses, not those of its docstrings. They are cheap,
noise-free stand-ins for deployment tuning: a structural categorical (``mode``) changes the
landscape, a fidelity-like integer changes cost or noise, and part of the space crashes.

Rates quoted in the docstrings were measured with a throwaway script: 20,000 configurations
``space.sample(np.random.default_rng(i))`` for ``i = 0 .. 19999``, each evaluated once by the
problem's ``simulate`` and judged against its constraints with :func:`deploytune.outcome.judge`.
References are the median objective of the feasible ones among those samples.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from deploybench.problem import CostModel, Problem
from deploytune.outcome import CrashKind, InvalidConfig
from deploytune.space import Categorical, Config, Float, Int, Space

__all__ = [
    "BRANIN_MIN",
    "BRANIN_OPTIMUM",
    "BRANIN_REFERENCE",
    "ROSENBROCK_OPTIMUM",
    "ROSENBROCK_REFERENCE",
    "branin",
    "crashy_branin",
    "hierarchical_rosenbrock",
    "rosenbrock_noise",
    "simulate_branin",
    "simulate_rosenbrock",
]

BRANIN_MIN = 10.0 / (8.0 * math.pi)
"""Global minimum of the Branin function, ``10 / (8 pi) = 0.397887...``."""

BRANIN_OPTIMUM = -(BRANIN_MIN + 0.1)
"""Best feasible Crashy Branin objective, ``-0.497887...`` (resolution 1, any mode)."""

BRANIN_REFERENCE = -19.12
"""Median objective of the feasible configurations among 20,000 random samples (measured)."""

ROSENBROCK_OPTIMUM = 0.0
"""Supremum of the Hierarchical Rosenbrock objective (see :func:`hierarchical_rosenbrock`)."""

ROSENBROCK_REFERENCE = -24880.05
"""Median objective of the feasible configurations among 20,000 random samples (measured)."""

_BRANIN_SHIFT = {"A": 0.0, "B": 2.0, "C": -2.0}
_ROSEN_ACTIVE = {"simple": 2, "extended": 4, "full": 5}


# --------------------------------------------------------------------------------- Crashy Branin
def branin(x1: float, x2: float) -> float:
    """The Branin function.

    ``b(x1, x2) = (x2 - 5.1/(4 pi^2) x1^2 + 5/pi x1 - 6)^2 + 10 (1 - 1/(8 pi)) cos x1 + 10``.

    Args:
        x1: First coordinate.
        x2: Second coordinate.

    Returns:
        The function value; its global minimum is :data:`BRANIN_MIN`.
    """
    a = 5.1 / (4.0 * math.pi**2)
    b = 5.0 / math.pi
    return (x2 - a * x1**2 + b * x1 - 6.0) ** 2 + 10.0 * (1.0 - 1.0 / (8.0 * math.pi)) * math.cos(
        x1) + 10.0


def simulate_branin(config: Mapping[str, Any], rng: np.random.Generator | None = None
                    ) -> dict[str, float]:
    """Evaluate one Crashy Branin configuration (noise-free; ``rng`` is unused).

    Args:
        config: ``mode`` (A/B/C), ``x1``, ``x2`` in [0, 15] and ``resolution`` in 1..10.
        rng: Ignored; present for the :class:`~deploybench.problem.Problem` contract.

    Returns:
        ``objective`` (to maximise), ``g1`` and ``g2`` (feasible when both are ``<= 0``).

    Raises:
        InvalidConfig: In the deterministic crash zones ``mode == C and x1 > 8`` or
            ``resolution > 7 and x2 > 12``.
    """
    mode = config["mode"]
    x1, x2 = float(config["x1"]), float(config["x2"])
    resolution = int(config["resolution"])
    if mode == "C" and x1 > 8.0:
        raise InvalidConfig(f"mode C does not support x1 > 8 (x1 = {x1:.4g})")
    if resolution > 7 and x2 > 12.0:
        raise InvalidConfig(f"resolution {resolution} does not support x2 > 12 (x2 = {x2:.4g})")
    value = -(branin(x1 + _BRANIN_SHIFT[mode], x2) + 0.1 * resolution)
    return {"objective": value, "g1": x1 + x2 - 16.0, "g2": -x1 + 2.0 * x2 - 10.0}


def branin_space() -> Space:
    """The Crashy Branin search space: ``mode``, ``x1``, ``x2``, ``resolution``."""
    return Space([
        Categorical("mode", choices=("A", "B", "C")),
        Float("x1", low=0.0, high=15.0),
        Float("x2", low=0.0, high=15.0),
        Int("resolution", low=1, high=10),
    ])


def crashy_branin() -> Problem:
    """Crashy Branin: a shifted, mode-dependent Branin with crash zones and two constraints.

    Space: ``mode`` in {A, B, C}; ``x1``, ``x2`` uniform in [0, 15]; ``resolution`` integer
    1..10. The objective (maximised) is ``-[b(x1 + shift, x2) + 0.1 * resolution]`` with shift
    A 0, B +2, C -2. Configurations with ``mode == C and x1 > 8`` or ``resolution > 7 and
    x2 > 12`` crash deterministically (:class:`~deploytune.InvalidConfig`). Constraints:
    ``g1 = x1 + x2 - 16 <= 0`` and ``g2 = -x1 + 2 x2 - 10 <= 0`` (the reference code's
    constants; its docstring's 14 and 8 are not what it ran).

    Optimum: ``-0.497887`` (= ``-(10/(8 pi) + 0.1)``), reached with resolution 1 in every
    mode, e.g. A at ``(pi, 2.275)`` or ``(9.42478, 2.475)``, B at ``(7.42478, 2.475)``, C at
    ``(5.14159, 2.275)``. Reference (median feasible random objective): ``-19.12``.

    Measured random-sampling rates (20,000 configurations ``space.sample(default_rng(i))``,
    ``i = 0..19999``): 20.8% crash (all ``invalid_config``), 45.7% infeasible, 33.5%
    feasible. The exact crash rate of uniform sampling is ``7/45 + 3/50 - 7/750 = 20.62%``;
    the spec's 20.7% / 45.1% / 34.2% (200k samples of the original sampler) agree within
    about two standard errors (one standard error here is 0.3 to 0.35 points).

    Cost model: 60 s per run scaled by ``0.4 + 0.1 * resolution`` (30 s to 84 s); a crash
    costs 5 s scaled by the same factor.

    Returns:
        The ``crashy-branin`` problem.
    """
    return Problem.build(
        "crashy-branin", branin_space(), "objective", "maximize", ["g1 <= 0", "g2 <= 0"],
        simulate_branin, BRANIN_OPTIMUM, BRANIN_REFERENCE,
        cost=CostModel(feasible_s=60.0, infeasible_s=60.0, aborted_s=15.0,
                       crash_s={CrashKind.INVALID_CONFIG.value: 5.0,
                                CrashKind.RUNTIME_ERROR.value: 10.0,
                                CrashKind.TRANSIENT.value: 5.0},
                       scale=_branin_cost_scale),
        description=("Shifted Branin with a mode switch, crash zones (mode C, x1 > 8; "
                     "resolution > 7, x2 > 12) and two linear constraints. Random sampling: "
                     "20.8% crash, 45.7% infeasible, 33.5% feasible."),
        families=("mode",),
    )


def _branin_cost_scale(config: Config) -> float:
    return 0.4 + 0.1 * int(config.get("resolution", 1))


# ------------------------------------------------------------------------ Hierarchical Rosenbrock
def rosenbrock_noise(xs: tuple[float, ...]) -> int:
    """A deterministic, process-independent pseudo-random integer in 0..99 of ``xs``.

    The original benchmark used ``hash(xs) % 100`` on the float tuple. (Strictly, Python salts
    only ``str``/``bytes`` hashes; a float tuple's hash is repeatable between processes but
    depends on the interpreter: the tuple-hash algorithm changed in CPython 3.8 and differs on
    32-bit builds.) This uses BLAKE2b of the tuple rounded to 6 decimals instead, so equal
    configurations (up to 1e-6) get the same noise in every process, version and platform.
    The values therefore differ from the original's, with the same distribution.

    Args:
        xs: The active coordinates.

    Returns:
        An integer in ``[0, 99]``.
    """
    parts = []
    for x in xs:
        v = round(float(x), 6)
        parts.append(f"{(v if v != 0.0 else 0.0):.6f}")
    digest = hashlib.blake2b(",".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def _active_xs(config: Mapping[str, Any]) -> tuple[float, ...]:
    n = _ROSEN_ACTIVE[config["mode"]]
    return tuple(float(config[f"x{i}"]) for i in range(1, n + 1))


def simulate_rosenbrock(config: Mapping[str, Any], rng: np.random.Generator | None = None
                        ) -> dict[str, float]:
    """Evaluate one Hierarchical Rosenbrock configuration (deterministic; ``rng`` is unused).

    Args:
        config: ``mode``, the active ``x1..x5`` and ``n_iters``.
        rng: Ignored; present for the :class:`~deploybench.problem.Problem` contract.

    Returns:
        ``objective`` (to maximise) and ``var_sum`` (feasible when ``<= 0``).

    Raises:
        RuntimeError: When ``mode == full and x1 > 3 and x5 > 3`` (a diverging solver).
    """
    xs = _active_xs(config)
    n_iters = int(config["n_iters"])
    if config["mode"] == "full" and xs[0] > 3.0 and xs[4] > 3.0:
        raise RuntimeError(f"solver diverged (x1 = {xs[0]:.4g}, x5 = {xs[4]:.4g} both > 3)")
    rosen = sum(100.0 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1.0 - xs[i]) ** 2
                for i in range(len(xs) - 1))
    value = -(rosen + (1.0 / n_iters) * 0.01 * rosenbrock_noise(xs))
    return {"objective": value, "var_sum": sum(xs) - 5.0}


def rosenbrock_space() -> Space:
    """The Hierarchical Rosenbrock search space (``x3``/``x4`` and ``x5`` are conditional)."""
    ext_full = {"mode": ("extended", "full")}
    return Space([
        Categorical("mode", choices=("simple", "extended", "full")),
        Float("x1", low=-5.0, high=5.0),
        Float("x2", low=-5.0, high=5.0),
        Float("x3", ext_full, low=-5.0, high=5.0),
        Float("x4", ext_full, low=-5.0, high=5.0),
        Float("x5", {"mode": ("full",)}, low=-5.0, high=5.0),
        Int("n_iters", low=1, high=20),
    ])


def hierarchical_rosenbrock() -> Problem:
    """Hierarchical Rosenbrock: a Rosenbrock valley whose dimension depends on ``mode``.

    Space: ``mode`` in {simple, extended, full}; ``x1``, ``x2`` in [-5, 5] always; ``x3``,
    ``x4`` active for extended/full; ``x5`` active for full; ``n_iters`` integer 1..20. With
    ``xs`` the active coordinates, the objective (maximised) is
    ``-[sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 + (1 / n_iters) * 0.01 * noise(xs)]``
    where ``noise`` is a deterministic pseudo-random integer 0..99 of the rounded tuple. The
    original code used Python's ``hash`` of the float tuple; here it is BLAKE2b of the tuple
    rounded to 6 decimals (:func:`rosenbrock_noise`), so it is identical in every process.
    ``mode == full and x1 > 3 and x5 > 3`` crashes (``RuntimeError``, a diverging solver).
    Constraint: ``var_sum = sum(xs) - 5 <= 0``.

    Optimum: ``0.0``. Both terms are ``>= 0``, so the objective is at most 0, and 0 is the
    supremum: the Rosenbrock sum vanishes at all-ones (feasible in every mode, ``var_sum`` =
    -3, -1, 0), and about 1 in 100 tuples on the 1e-6 rounding grid near all-ones have
    ``noise == 0`` while their Rosenbrock sum is ~1e-10. All-ones itself with ``n_iters = 20``
    gives ``-(0.01 / 20) * noise``: -0.037 (simple, noise 74), -0.018 (extended, noise 36),
    -0.005 (full, noise 10). Reference (median feasible random objective): ``-24880.05``.

    Measured random-sampling rates (20,000 configurations ``space.sample(default_rng(i))``,
    ``i = 0..19999``): 1.35% crash (all ``runtime_error``), 17.5% infeasible, 81.1% feasible
    (spec: 1.3% crash, 17.5% infeasible).

    Cost model: a run costs ``10 + 5 * n_iters`` seconds (more iterations, less noise: 15 s to
    110 s); a crash costs 10 s scaled by the same factor (2.5 s to 18 s).

    Returns:
        The ``hierarchical-rosenbrock`` problem.
    """
    return Problem.build(
        "hierarchical-rosenbrock", rosenbrock_space(), "objective", "maximize",
        ["var_sum <= 0"], simulate_rosenbrock, ROSENBROCK_OPTIMUM, ROSENBROCK_REFERENCE,
        cost=CostModel(feasible_s=60.0, infeasible_s=60.0, aborted_s=15.0,
                       crash_s={CrashKind.RUNTIME_ERROR.value: 10.0,
                                CrashKind.INVALID_CONFIG.value: 5.0,
                                CrashKind.TRANSIENT.value: 5.0},
                       scale=_rosen_cost_scale),
        description=("Rosenbrock valley of 2, 4 or 5 active dimensions by mode, with a "
                     "deterministic n_iters-damped noise term, a crash zone (full, x1 > 3, "
                     "x5 > 3) and a sum constraint. Random sampling: 1.35% crash, 17.5% "
                     "infeasible, 81.1% feasible."),
        families=("mode",),
    )


def _rosen_cost_scale(config: Config) -> float:
    return (10.0 + 5.0 * int(config.get("n_iters", 1))) / 60.0
