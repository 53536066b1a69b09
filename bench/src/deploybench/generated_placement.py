"""Placement of a drawn generated instance (:mod:`deploybench.generated`): the device memory, the
crash rules kept, the constraint limits, the reference and the families from a random sample,
then the optimum by local search.
"""

from __future__ import annotations

import math

import numpy as np

from deploybench.generated_model import PLACEMENT_SAMPLES, GeneratedInstance, significant
from deploytune.outcome import CrashKind, crash_kind_of
from deploytune.space import Config

__all__ = ["estimate_optimum", "place"]

_CRASH_CAP = 0.6
_CONSTRAINT_SPECS = [("latency_ms", "<="), ("memory_mb", "<="), ("quality", ">=")]


def place(gen: GeneratedInstance, rng: np.random.Generator, oom_share: float,
          kinds: list[int], weights: list[float], target: float) -> list[Config]:
    """Place the device memory and the constraint limits on a random sample.

    Sets :attr:`~GeneratedInstance.device_memory_mb`, drops crash rules while too much of the
    sample crashes, and sets the crash and feasible shares, the constraints, the reference and
    the families of ``gen``.

    Args:
        gen: The drawn instance (changed in place).
        rng: The generator of the placement sample.
        oom_share: Share of the valid sample above the device memory (0: no OOM).
        kinds: Indices of the constraints (latency, memory, quality) to place.
        weights: Dirichlet weights of the constraints.
        target: Share of the sample that should be feasible.

    Returns:
        The best feasible configurations of the sample (at most 8, best first): the starts of
        :func:`estimate_optimum`.
    """
    configs = [gen.space.sample(rng) for _ in range(PLACEMENT_SAMPLES)]
    metrics = [gen.metrics(c) for c in configs]
    if oom_share > 0:
        _place_device_memory(gen, configs, metrics, oom_share)
    crashes = _drop_rules(gen, configs, metrics)
    ok = [m for m, e in zip(metrics, crashes, strict=True) if e is None]
    share: dict[str, float] = {}
    for e in crashes:
        if e is not None:
            kind = crash_kind_of(e).value
            share[kind] = share.get(kind, 0.0) + 1.0 / len(configs)
    gen.crash_share = dict(sorted(share.items()))
    chosen = [_CONSTRAINT_SPECS[k] for k in kinds]
    lims = _limits(chosen, ok, weights, target * len(configs))
    gen.constraints = [f"{name} {op} {lim:.6g}" for (name, op), lim in
                       zip(chosen, lims, strict=True)]
    feasible = [(c, m) for c, m, e in zip(configs, metrics, crashes, strict=True)
                if e is None and gen.feasible(m)]
    gen.feasible_share = len(feasible) / len(configs)
    values = [m[gen.objective] for _, m in feasible]
    gen.reference = float(np.mean(values)) if values else 0.0
    sign = 1.0 if gen.direction == "maximize" else -1.0
    best = sorted(feasible, key=lambda cm: -sign * cm[1][gen.objective])
    top = [k for k in gen.knobs if k.kind == "unordered" and not k.param.when]
    if top:
        fam = top[0].name
        gen.families = (fam,)
        gen.feasible_families = {fam: tuple(v for v in top[0].speed_by
                                            if any(c.get(fam) == v for c, _ in feasible))}
    return [c for c, _ in best[:8]]


def _place_device_memory(gen: GeneratedInstance, configs: list[Config],
                         metrics: list[dict[str, float]], oom_share: float) -> None:
    """Put the device memory at the ``1 - oom_share`` quantile of the memory of the sample's
    configurations that pass the invalid-config rules."""
    knobs = gen.knobs_by_name

    def invalid(c: Config) -> bool:
        return any(r.kind is CrashKind.INVALID_CONFIG and r.fires(c, knobs) for r in gen.rules)

    valid_mem = [m["memory_mb"] for c, m in zip(configs, metrics, strict=True)
                 if not invalid(c)]
    if valid_mem:
        gen.device_memory_mb = significant(float(np.quantile(valid_mem, 1.0 - oom_share)))


def _drop_rules(gen: GeneratedInstance, configs: list[Config],
                metrics: list[dict[str, float]]) -> list[Exception | None]:
    """Drop crash rules, last first, while too much of the sample crashes; the crash (or
    ``None``) of every configuration under the rules kept."""
    while True:
        crashes = [gen.crash(c, m) for c, m in zip(configs, metrics, strict=True)]
        n_crash = sum(e is not None for e in crashes)
        if n_crash <= _CRASH_CAP * len(configs) or len(gen.rules) <= 1:
            break
        gen.rules = gen.rules[:-1]
    return crashes


def _limits(chosen: list[tuple[str, str]], ok: list[dict[str, float]], weights: list[float],
            want: float) -> list[float]:
    """Constraint limits that leave about ``want`` configurations feasible: the ``t^w``
    quantiles of the non-crashed values, ``t`` bisected."""
    columns = [np.array([m[name] for m in ok]) for name, _ in chosen]

    def limits(t: float) -> list[float]:
        out = []
        for (_, op), col, w in zip(chosen, columns, weights, strict=True):
            level = t ** w
            out.append(significant(float(np.quantile(col, level if op == "<=" else 1.0 - level))))
        return out

    def count(lims: list[float]) -> int:
        mask = np.ones(len(ok), dtype=bool)
        for (_, op), col, lim in zip(chosen, columns, lims, strict=True):
            mask &= (col <= lim) if op == "<=" else (col >= lim)
        return int(mask.sum())

    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if count(limits(mid)) < want:
            lo = mid
        else:
            hi = mid
    lims = limits(hi)
    if abs(count(limits(lo)) - want) < abs(count(lims) - want) and count(limits(lo)) > 0:
        lims = limits(lo)
    return lims


def estimate_optimum(gen: GeneratedInstance, rng: np.random.Generator,
                     starts: list[Config]) -> None:
    """Best feasible noise-free value: the best placement samples, then local search.

    Args:
        gen: The placed instance; its :attr:`~GeneratedInstance.optimum` is set.
        rng: The generator of the local search.
        starts: The best feasible placement samples (from :func:`place`).

    Raises:
        RuntimeError: When no configuration is feasible.
    """
    sign = 1.0 if gen.direction == "maximize" else -1.0
    best_value = -math.inf
    for start in starts:
        current = dict(start)
        value = sign * gen.metrics(current)[gen.objective]
        for step in range(50):
            temperature = 0.5 * (1.0 - step / 50) + 0.02
            cand = gen.space.neighbor(current, rng, temperature, 0.2)
            metrics = gen.metrics(cand)
            if gen.crash(cand, metrics) is not None or not gen.feasible(metrics):
                continue
            v = sign * metrics[gen.objective]
            if v > value:
                current, value = cand, v
        best_value = max(best_value, value)
    if math.isinf(best_value):  # nothing feasible: cannot happen with p >= 1 % of 2000
        raise RuntimeError(f"instance {gen.instance}: no feasible configuration found")
    gen.optimum = float(sign * best_value)
    if not sign * (gen.optimum - gen.reference) > 0:
        gen.optimum = gen.reference + sign * abs(gen.reference) * 1e-6
