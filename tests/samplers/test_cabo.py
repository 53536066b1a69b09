"""``cabo``, the default sampler: models, coverage, ordinal moves, cost penalty, determinism."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest

import deploytune
from deploytune.history import TrialRecord
from deploytune.outcome import CrashKind, Status
from deploytune.samplers import DEFAULT_SAMPLER, available, make_sampler
from deploytune.samplers._encoding import ConfigEncoder
from deploytune.samplers.cabo import CaboSampler, CaboSettings, Models
from deploytune.space import Space
from tests.toy import CONSTRAINTS, FORBIDDEN, SPACE_DICT, toy_evaluate

SERVING = Space.from_dict({
    "quantization": {"type": "categorical", "choices": ["none", "fp8", "awq"]},
    "max_num_seqs": {"type": "categorical", "choices": [16, 32, 64, 128, 256, 512]},
    "chunked": {"type": "categorical", "choices": [False, True]},
    "mem_frac": {"type": "float", "low": 0.5, "high": 0.95},
})


def serving(c: dict[str, Any]) -> dict[str, float]:
    """More sequences are faster until memory runs out (seqs * (1 - quantization saving))."""
    need = c["max_num_seqs"] * {"none": 1.0, "fp8": 0.6, "awq": 0.4}[c["quantization"]]
    if need > 150 * c["mem_frac"]:
        raise MemoryError("CUDA out of memory")
    latency = 5 + 0.2 * c["max_num_seqs"] * (0.8 if c["chunked"] else 1.0)
    return {"tokens_per_s": c["max_num_seqs"] * (1.2 if c["quantization"] == "none" else 1.0),
            "latency_ms": latency}


def test_registered_as_the_default_with_ablations() -> None:
    names = available()
    assert DEFAULT_SAMPLER == "cabo"
    for name in ("cabo", "cabo-no-crash", "cabo-no-cost", "cabo-no-coverage", "cabo-no-random"):
        assert name in names
    assert "cabo-ratio-cost" not in names  # removed from the code (docs/benchmarks.md)
    space = Space.from_dict(SPACE_DICT)
    assert isinstance(make_sampler("default", space=space, seed=0), CaboSampler)
    assert make_sampler("cabo-no-crash", space=space, seed=0).settings.crash_model is False


def test_unknown_option_is_named() -> None:
    with pytest.raises(ValueError, match=r"cabo: unknown option.*crash_modle.*choose from"):
        CaboSampler(SERVING, seed=0, crash_modle=False)


@pytest.mark.parametrize("option", [
    "pof_exponent", "pof_floor", "coverage_after_feasible", "exploit_after",
    "exploit_sd_scale", "log_objective", "calibrate_pof", "objective_warp", "coverage_greedy",
    "hold_low_in_search", "coverage_memory", "noise_floor", "memory_dominance", "cost_mode",
    "safe_random", "neighbour_scales", "memory_start"])
def test_settings_measured_and_not_kept_are_gone(option: str) -> None:
    """Removed on 2026-12-07 (their numbers stay in docs/benchmarks.md): naming one is an
    unknown option, and the message lists the valid ones."""
    with pytest.raises(ValueError, match=rf"^cabo: unknown option\(s\) {option}; choose from "
                                         r".*violation_trend"):
        make_sampler(f"cabo[{option}=1]", space=SERVING, seed=0)


def test_numeric_choices_are_encoded_and_moved_by_rank() -> None:
    enc = ConfigEncoder(SERVING, ordinal=True)
    plain = ConfigEncoder(SERVING)
    assert enc.width == plain.width - 5  # six one-hot columns became one rank column
    x = enc.encode([{"quantization": "none", "max_num_seqs": 64, "chunked": True,
                     "mem_frac": 0.5}])
    assert x[0, 3] == pytest.approx(2 / 5)  # rank 2 of 0..5
    sampler = CaboSampler(SERVING, seed=0)
    config = {"quantization": "fp8", "max_num_seqs": 64, "chunked": False, "mem_frac": 0.7}
    moves = sampler.neighbours(config, np.random.default_rng(0))
    seqs = sorted({m["max_num_seqs"] for m in moves if m["max_num_seqs"] != 64})
    assert seqs == [32, 128]  # adjacent values only, never straight to 512
    quants = {m["quantization"] for m in moves if m["quantization"] != "fp8"}
    assert quants == {"none", "awq"}  # a nominal choice moves to any other value


def _serving_history(n: int, seed: int = 0) -> list[TrialRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c = SERVING.sample(rng)
        try:
            m = serving(c)
        except MemoryError:
            out.append(TrialRecord(i, c, Status.CRASHED, CrashKind.OOM, cost_s=120.0))
            continue
        v = {"latency_ms_max": (m["latency_ms"] - 40) / 40}
        status = Status.FEASIBLE if v["latency_ms_max"] <= 0 else Status.INFEASIBLE
        out.append(TrialRecord(i, c, status, None, m["tokens_per_s"], v, cost_s=60.0))
    return out


def test_models_learn_where_configurations_crash_and_violate() -> None:
    history = _serving_history(60)
    enc = ConfigEncoder(SERVING, ordinal=True)
    models = Models(SERVING, history, 1.0, CaboSettings(), 0, enc)
    rng = np.random.default_rng(7)
    probe = [SERVING.sample(rng) for _ in range(300)]
    x = enc.encode(probe)
    p_crash, p_ok = models.p_crash(x), models.p_constraints(x)

    def crashes(c: dict[str, Any]) -> bool:
        try:
            serving(c)
        except MemoryError:
            return True
        return False

    crash = np.array([crashes(c) for c in probe])
    assert p_crash[crash].mean() > p_crash[~crash].mean() + 0.4
    slow = np.array([not crashes(c) and serving(c)["latency_ms"] > 40 for c in probe])
    fast = np.array([not crashes(c) and serving(c)["latency_ms"] <= 40 for c in probe])
    assert p_ok[fast].mean() > p_ok[slow].mean() + 0.3


def test_waste_penalty_prefers_the_cheap_failure() -> None:
    """Half of the configurations crash everywhere; failures at x > 0.5 cost 100x more."""
    space = Space.from_dict({"x": {"type": "float", "low": 0.0, "high": 1.0},
                             "y": {"type": "float", "low": 0.0, "high": 1.0}})
    rng = np.random.default_rng(0)
    history = []
    for i in range(80):
        c = space.sample(rng)
        if i % 2:
            cost = 600.0 if c["x"] > 0.5 else 6.0
            history.append(TrialRecord(i, c, Status.CRASHED, CrashKind.OOM, cost_s=cost))
        else:
            history.append(TrialRecord(i, c, Status.FEASIBLE, None, 1.0, cost_s=60.0))
    enc = ConfigEncoder(space, ordinal=True)
    grid = np.linspace(0.05, 0.45, 9)
    cheap_side = enc.encode([{"x": float(a), "y": float(b)} for a in grid for b in grid * 2])
    dear_side = enc.encode([{"x": float(a) + 0.5, "y": float(b)} for a in grid
                            for b in grid * 2])
    settings = CaboSettings(objective_model=False)
    with_cost = Models(space, history, 1.0, settings, 0, enc)
    without = Models(space, history, 1.0, CaboSettings(objective_model=False,
                                                       cost_exponent=0.0), 0, enc)
    assert with_cost.acquisition(cheap_side).mean() > 1.5 * with_cost.acquisition(
        dear_side).mean()
    ratio = without.acquisition(cheap_side).mean() / without.acquisition(dear_side).mean()
    assert 0.6 < ratio < 1.6  # without the penalty the two sides look alike


@pytest.mark.slow
def test_first_trials_cover_every_categorical_value() -> None:
    space = Space.from_dict(SPACE_DICT, forbidden=FORBIDDEN)
    for seed in range(3):
        result = deploytune.optimize(toy_evaluate, space, objective="accuracy",
                                     constraints=CONSTRAINTS, budget=12, sampler="cabo",
                                     seed=seed)
        first = [t.config for t in result.trials[:6]]
        assert {c["model"] for c in first} == {"small", "medium", "large"}
        assert {c["backend"] for c in first} == {"eager", "compile", "onnxruntime"}


def zoned(c: dict[str, Any]) -> dict[str, float]:
    """``serving`` with a large crash zone away from the optimum: awq without chunking is
    invalid, and so is any memory fraction below 0.65."""
    if (c["quantization"] == "awq" and not c["chunked"]) or c["mem_frac"] < 0.65:
        raise deploytune.InvalidConfig("not supported")
    return serving(c)


@pytest.mark.slow
def test_learns_to_avoid_the_crash_zones() -> None:
    late: dict[str, int] = {"cabo": 0, "random": 0}
    for seed in range(4):
        for name in late:
            result = deploytune.optimize(zoned, SERVING, objective="tokens_per_s",
                                         constraints=["latency_ms <= 40"], budget=25,
                                         sampler=name, seed=seed)
            late[name] += sum(t.status is Status.CRASHED for t in result.trials[12:])
    assert late["cabo"] < late["random"] / 2


def test_same_history_same_proposal_and_no_repeats() -> None:
    def run(seed: int, n: int) -> list[dict[str, Any]]:
        result = deploytune.optimize(serving, SERVING, objective="tokens_per_s",
                                     constraints=["latency_ms <= 40"], budget=n,
                                     sampler=CaboSampler(SERVING, seed=seed, budget=n))
        return [t.config for t in result.trials]

    a, b = run(3, 14), run(3, 14)
    assert a == b
    keys = [SERVING.key(c) for c in a]
    assert len(set(keys)) == len(keys)


def test_simultaneous_asks_spread_out() -> None:
    """Four workers ask before any of them finishes: four different, spread-out proposals."""
    storage = optuna.storages.InMemoryStorage()
    deploytune.optimize(serving, SERVING, objective="tokens_per_s",
                        constraints=["latency_ms <= 40"], budget=12, sampler="cabo", seed=0,
                        storage=storage)
    study = optuna.load_study(study_name="deploytune", storage=storage,
                              sampler=CaboSampler(SERVING, seed=0, budget=30))
    asked = [SERVING.suggest(study.ask()) for _ in range(4)]
    keys = {SERVING.key(c) for c in asked}
    assert len(keys) == 4
    enc = ConfigEncoder(SERVING, ordinal=True)
    x = enc.encode(asked)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2) / enc.width)
    assert d[np.triu_indices(4, 1)].min() > 0.05


def test_smaller_violation_floor_trusts_confident_predictions() -> None:
    """A smaller ``violation_sd_floor`` (the cap of the estimated noise floors) trusts
    confident predictions more: a likely violation becomes no likelier to be met."""
    history = _serving_history(60)
    enc = ConfigEncoder(SERVING, ordinal=True)
    rng = np.random.default_rng(3)
    x = enc.encode([SERVING.sample(rng) for _ in range(300)])
    base = Models(SERVING, history, 1.0, CaboSettings(), 0, enc)
    sharp = Models(SERVING, history, 1.0, CaboSettings(violation_sd_floor=0.001), 0, enc)
    p, q = base.p_constraints(x), sharp.p_constraints(x)
    unlikely = p < 0.2
    assert unlikely.any() and np.all(q[unlikely] <= p[unlikely] + 1e-12)


def test_objective_model_sees_standardised_values_and_incumbent() -> None:
    """The objective model regresses the values at mean 0 and sd 1; the incumbent is the best
    feasible value on the same scale (without the chance incumbent, tests/samplers/
    test_chance.py), and the predictions keep the values' order."""
    history = _serving_history(60)
    enc = ConfigEncoder(SERVING, ordinal=True)
    models = Models(SERVING, history, 1.0, CaboSettings(chance_incumbent=False), 0, enc)
    values = np.array([float(o.value) for o in history if not o.crashed and o.value])
    best = max(float(o.value) for o in history if o.feasible and o.value is not None)
    assert models.incumbent == pytest.approx((best - values.mean()) / values.std())
    x = enc.encode([o.config for o in history if not o.crashed and o.value])
    m, _ = models.objective(x)
    assert np.corrcoef(m, values)[0, 1] > 0.6


def test_crash_floor_caps_pof() -> None:
    """A lower bound on the crash probability (repeated signature crashes) caps PoF at one
    minus the bound; without it the models' own PoF stands."""
    history = _serving_history(60)
    enc = ConfigEncoder(SERVING, ordinal=True)
    models = Models(SERVING, history, 1.0, CaboSettings(), 0, enc)
    x = enc.encode([{"quantization": "awq", "max_num_seqs": 16, "chunked": True,
                     "mem_frac": 0.9}])
    assert models.pof(x)[0] > 0.25
    assert models.pof(x, np.array([0.75]))[0] <= 0.25 + 1e-12
    assert np.exp(models.log_pof(x, np.array([0.75]))[0]) == pytest.approx(
        models.pof(x, np.array([0.75]))[0])


def test_estimated_noise_floor_is_small_for_a_constraint_that_repeats() -> None:
    """A violation that depends only on a categorical value (such as a model's accuracy)
    repeats exactly between neighbouring runs, so its floor falls to a tenth of the cap
    (``violation_sd_floor``); a noisy one keeps the cap, as does a constraint with under 5
    runs. The models then trust a repeated small violation (P(met) near 0, not Phi(-1.5) as
    with the cap as the floor)."""
    from deploytune.samplers._cabo_models import _noise_floor

    rng = np.random.default_rng(0)
    x = rng.random((40, 3))
    x[:, 0] = rng.integers(0, 3, 40)  # the "model"
    repeats = 0.03 * x[:, 0]
    assert _noise_floor(x, repeats, 0.02) == pytest.approx(0.002)
    assert _noise_floor(x, rng.normal(0, 0.5, 40), 0.02) == pytest.approx(0.02)
    assert _noise_floor(x[:4], repeats[:4], 0.02) == pytest.approx(0.02)
    space = Space.from_dict({"model": {"type": "categorical", "choices": ["a", "b"]},
                             "batch": {"type": "int", "low": 1, "high": 64}})
    history = [TrialRecord(i, {"model": m, "batch": b}, Status.INFEASIBLE if m == "b"
                           else Status.FEASIBLE, None, float(b),
                           {"accuracy_min": 0.03 if m == "b" else -0.2})
               for i, (m, b) in enumerate((m, b) for m in "ab" for b in (1, 8, 16, 32, 64))]
    enc = ConfigEncoder(space, ordinal=True)
    probe = enc.encode([{"model": "b", "batch": 40}])
    estimated = Models(space, history, 1.0, CaboSettings(), 0, enc).p_constraints(probe)
    assert estimated[0] < 1e-6


def test_coverage_includes_memory_parameters() -> None:
    """Parameters declared ``memory`` are covered like the others; categoricals with more
    than ``coverage_max_choices`` choices are not."""
    space = Space.from_dict({
        "backend": {"type": "categorical", "choices": ["a", "b"]},
        "seqs": {"type": "categorical", "choices": [16, 64, 256], "memory": "increasing"},
        "tp": {"type": "categorical", "choices": [1, 2, 4]}})
    names = {p.name for p in CaboSampler(space, seed=0)._cover}
    assert names == {"backend", "seqs", "tp"}
    names = {p.name for p in CaboSampler(space, seed=0, coverage_max_choices=2)._cover}
    assert names == {"backend"}


def test_extreme_finite_objective_values_do_not_break_the_models() -> None:
    """Issue 16, item 2: an evaluator reporting ``accuracy: 1e308`` twice overflowed the
    objective model's mean; scikit-learn then refused the NaN targets and every ask failed."""
    import deploytune

    space = {"x": {"type": "float", "low": 0, "high": 1}}

    def evaluate(config: dict[str, Any]) -> dict[str, float]:
        return {"objective": 1e308 if config["x"] > 0.2 else config["x"], "lat": config["x"]}

    result = deploytune.optimize(evaluate, space, constraints=["lat <= 0.9"], budget=12,
                                 sampler="cabo", seed=0)
    assert len(result.trials) == 12
    assert result.best_value == 1e308


def _all_crash(c: dict[str, Any]) -> dict[str, float]:
    raise deploytune.InvalidConfig("rejected")


def _share_at_bounds(start_candidates: int) -> float:
    """Share of numeric values at their bounds in trials 2.. of runs where everything crashes
    (nothing ever runs, so every proposal after the first is the uninformed phase's)."""
    space = Space.from_dict({f"x{i}": {"type": "int", "low": 1, "high": 64, "log": True}
                             for i in range(4)})
    at, total = 0, 0
    for seed in range(6):
        sampler = CaboSampler(space, seed=seed, budget=10, start_candidates=start_candidates)
        result = deploytune.optimize(_all_crash, space, objective="y", budget=10,
                                     sampler=sampler)
        for t in result.trials[1:]:
            at += sum(v in (1, 64) for v in t.config.values())
            total += len(t.config)
    return at / total


def test_best_candidate_start_stays_off_the_corners() -> None:
    """While nothing has run, the distance to the crashes alone drives the full pool and its
    local search into the corners of the space (issue 17, mechanism 1); a best-candidate
    design among a few random candidates per trial spreads over it instead."""
    corners, spread = _share_at_bounds(0), _share_at_bounds(1)
    assert corners > 0.5
    assert spread < corners / 2


def test_violation_trend_extrapolates_below_every_run() -> None:
    """Every run missed the latency limit, the smallest batch by least. A forest says nothing
    about batches below the smallest tried; the trend says they are likelier to meet it."""
    space = Space.from_dict({"batch": {"type": "int", "low": 1, "high": 256, "log": True},
                             "backend": {"type": "categorical", "choices": ["a", "b"]}})
    history = [TrialRecord(i, {"batch": b, "backend": "ab"[i % 2]}, Status.INFEASIBLE, None,
                           float(b), {"latency": (b - 8) / 8})
               for i, b in enumerate([32, 48, 64, 96, 128, 192, 256])]
    enc = ConfigEncoder(space, ordinal=True)
    probes = enc.encode([{"batch": b, "backend": "a"} for b in (2, 8, 32)])
    flat = Models(space, history, 1.0, CaboSettings(violation_trend=0.0), 0,
                  enc).log_p_constraints(probes)
    trend = Models(space, history, 1.0, CaboSettings(), 0, enc).log_p_constraints(probes)
    assert flat[0] == pytest.approx(flat[2], abs=0.5)  # piecewise constant below the runs
    assert trend[0] > trend[1] > trend[2]
    assert trend[0] > flat[0] + 1.0
    # once something is feasible the forest alone models the constraint
    feasible = [*history, TrialRecord(7, {"batch": 4, "backend": "a"}, Status.FEASIBLE, None,
                                      4.0, {"latency": -0.5})]
    after = Models(space, feasible, 1.0, CaboSettings(), 0, enc)
    assert after._trends and all(t is None for t in after._trends)
