"""The TBA annealing rules (tba_spec.md sections 2 and 11), driven through real studies."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import deploytune
from deploytune.history import TrialRecord
from deploytune.outcome import CrashKind, Status
from deploytune.samplers.annealing import (
    FEASIBILITY,
    OPTIMISATION,
    Annealer,
    AnnealingSettings,
    TBASampler,
)

SPACE = deploytune.Space.from_dict({
    "model": {"type": "categorical", "choices": ["a", "b", "c", "d"]},
    "batch": {"type": "int", "low": 1, "high": 64, "log": True},
    "x": {"type": "float", "low": 0.0, "high": 1.0},
})


def obs(n: int, status: Status, value: float | None = None, v: float = 0.0,
        model: str = "a", batch: int = 4, kind: CrashKind | None = None) -> TrialRecord:
    violations = {"lat_max": v} if status is not Status.CRASHED else {}
    return TrialRecord(n, {"model": model, "batch": batch, "x": 0.5}, status, kind, value,
                       violations)


def annealer(**kw: Any) -> Annealer:
    return Annealer(SPACE, AnnealingSettings(**kw), seed=0, budget=25)


def test_p_structural_schedule_decays_linearly_over_the_budget() -> None:
    s = AnnealingSettings()
    assert s.p_structural(0, 25) == pytest.approx(0.5)
    assert s.p_structural(5, 25) == pytest.approx(0.5)
    assert s.p_structural(15, 25) == pytest.approx(0.5 - 0.35 / 2)
    assert s.p_structural(25, 25) == pytest.approx(0.15)
    assert AnnealingSettings(adaptive_structural=False).p_structural(20, 25) == 0.3


def test_initialisation_picks_least_violation_when_nothing_feasible() -> None:
    a = annealer()
    hist = [obs(0, Status.INFEASIBLE, 0.5, v=0.9, model="a"),
            obs(1, Status.INFEASIBLE, 0.5, v=0.2, model="b"),
            obs(2, Status.CRASHED, kind=CrashKind.OOM, model="c"),
            obs(3, Status.INFEASIBLE, 0.5, v=0.4, model="d"),
            obs(4, Status.CRASHED, kind=CrashKind.OOM)]
    state = a.replay(hist, 1.0)
    a.pre_ask(state, 5)
    assert state.phase == FEASIBILITY
    assert state.current is not None and state.current["model"] == "b"
    assert state.current_v == pytest.approx(0.2)


def test_first_feasible_enters_optimisation_at_07_t_init() -> None:
    a = annealer()
    hist = [obs(i, Status.INFEASIBLE, 0.5, v=0.5 + i) for i in range(5)]
    hist.append(obs(5, Status.FEASIBLE, 0.8, v=-0.1, model="c"))
    state = a.replay(hist, 1.0)
    assert state.phase == OPTIMISATION
    assert state.current is not None and state.current["model"] == "c"
    assert state.temperature == pytest.approx(0.7)


def test_reheat_after_patience_non_improving_steps() -> None:
    a = annealer(elite_restart=False, snap_back=False)
    hist = [obs(0, Status.FEASIBLE, 0.9, v=-0.1)] + \
        [obs(i, Status.INFEASIBLE, 0.5, v=0.3) for i in range(1, 5)]
    state = a.replay(hist, 1.0)
    a.pre_ask(state, 5)
    assert state.phase == OPTIMISATION and state.temperature == pytest.approx(0.7)
    for i in range(5, 9):  # four crashes = four non-improvements -> reheat, capped at 0.8
        a.tell(state, obs(i, Status.CRASHED, kind=CrashKind.OOM), 1.0)
    assert state.temperature == pytest.approx(min(2.5 * 0.7, 0.8))
    assert state.no_improve == 0


def test_cooling_on_improvement_in_optimisation_phase() -> None:
    a = annealer(elite_restart=False, snap_back=False)
    hist = [obs(0, Status.FEASIBLE, 0.5, v=-0.1)] + \
        [obs(i, Status.CRASHED, kind=CrashKind.OOM) for i in range(1, 5)]
    state = a.replay(hist, 1.0)
    a.pre_ask(state, 5)
    a.tell(state, obs(5, Status.FEASIBLE, 0.9, v=-0.1, model="d"), 1.0)
    assert state.temperature == pytest.approx(0.7 * 0.92)
    assert state.current is not None and state.current["model"] == "d"


def test_crash_never_becomes_current() -> None:
    a = annealer()
    hist = [obs(i, Status.INFEASIBLE, 0.5, v=1.0) for i in range(5)]
    state = a.replay(hist, 1.0)
    a.pre_ask(state, 5)
    before = dict(state.current or {})
    a.tell(state, obs(5, Status.CRASHED, kind=CrashKind.OOM, model="d", batch=64), 1.0)
    assert state.current == before


def test_minimisation_uses_the_sign() -> None:
    a = annealer()
    hist = [obs(0, Status.FEASIBLE, 10.0, v=-0.1, model="a"),
            obs(1, Status.FEASIBLE, 2.0, v=-0.1, model="b")] + \
        [obs(i, Status.CRASHED, kind=CrashKind.OOM) for i in range(2, 5)]
    state = a.replay(hist, -1.0)
    a.pre_ask(state, 5)
    assert state.current is not None and state.current["model"] == "b"


def test_elite_restart_does_not_reevaluate_a_measured_configuration() -> None:
    """Defect fix (tba_spec 11.1 #8): the restart moves to the elite and proposes a neighbour."""
    a = annealer(restart_interval=6)
    rng = np.random.default_rng(0)
    hist = []
    for i in range(6):
        c = SPACE.sample(rng)
        hist.append(TrialRecord(i, c, Status.FEASIBLE, None, float(i), {"lat_max": -0.1}))
    state = a.replay(hist, 1.0)
    a.pre_ask(state, 6)
    assert state.steps_since_restart == 0
    assert state.current in [c for c, _ in state.feasible]
    proposal = a.propose(state, 6)
    assert SPACE.key(proposal) not in {SPACE.key(o.config) for o in hist}


def test_log_int_moves_are_multiplicative() -> None:
    rng = np.random.default_rng(1)
    p = SPACE["batch"]
    ratios = []
    for _ in range(400):
        c = {"model": "a", "batch": 32, "x": 0.5}
        n = SPACE.neighbor(c, rng, temperature=0.3, p_structural=0.0)
        if n["batch"] != 32:
            ratios.append(math.log2(n["batch"] / 32))
    assert ratios and p.contains(32)
    # in log space the steps are symmetric: as many halvings as doublings, roughly
    down, up = sum(r < 0 for r in ratios), sum(r > 0 for r in ratios)
    assert 0.3 < down / (down + up) < 0.8


def test_dedup_avoids_evaluated_configurations_on_a_tiny_space() -> None:
    space = deploytune.Space.from_dict({
        "a": {"type": "categorical", "choices": [0, 1, 2]},
        "b": {"type": "categorical", "choices": ["x", "y", "z"]},
    })
    result = deploytune.optimize(lambda c: {"f": float(c["a"]) + (c["b"] == "z")}, space,
                                 objective="f", budget=9, sampler="tba", seed=0)
    keys = [space.key(t.config) for t in result.trials]
    assert len(set(keys)) == 9  # all 9 cells, none twice
    paper = deploytune.optimize(lambda c: {"f": float(c["a"])}, space, objective="f",
                                budget=9, sampler="tba", seed=0, **{})
    assert len(paper.trials) == 9


def test_ablation_switches_change_behaviour() -> None:
    from tests.toy import CONSTRAINTS, toy_evaluate

    space = deploytune.Space.from_dict({
        "model": {"type": "categorical", "choices": ["small", "medium", "large"]},
        "backend": {"type": "categorical", "choices": ["eager", "compile", "onnxruntime"]},
        "batch_size": {"type": "int", "low": 1, "high": 64, "log": True},
        "mem_frac": {"type": "float", "low": 0.7, "high": 0.98},
    })

    def hostile(config: dict[str, Any]) -> dict[str, float]:
        if config["model"] != "medium" and config["batch_size"] > 2:
            raise MemoryError("hostile")
        return toy_evaluate(config)

    def cfgs(seed: int, **kw: Any) -> list[dict[str, Any]]:
        sampler = TBASampler(space, seed=seed, budget=30, **kw)
        r = deploytune.optimize(hostile, space, objective="accuracy",
                                constraints=CONSTRAINTS, budget=30, sampler=sampler)
        return [t.config for t in r.trials]

    base = [cfgs(seed) for seed in range(4)]
    for switch in ("elite_restart", "snap_back", "value_blacklist", "adaptive_temperature",
                   "adaptive_structural", "dedup"):
        assert any(cfgs(seed, **{switch: False}) != base[seed] for seed in range(4)), switch
