"""``cabo``, the default sampler: models, coverage, ordinal moves, cost penalty, determinism."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest

import deploytune
from deploytune.history import Observation
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
    for name in ("cabo", "cabo-no-crash", "cabo-no-cost", "cabo-no-coverage", "cabo-no-random",
                 "cabo-ratio-cost"):
        assert name in names
    space = Space.from_dict(SPACE_DICT)
    assert isinstance(make_sampler("default", space=space, seed=0), CaboSampler)
    assert make_sampler("cabo-no-crash", space=space, seed=0).settings.crash_model is False


def test_unknown_option_is_named() -> None:
    with pytest.raises(ValueError, match=r"cabo: unknown option.*crash_modle.*choose from"):
        CaboSampler(SERVING, seed=0, crash_modle=False)


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


def _serving_history(n: int, seed: int = 0) -> list[Observation]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c = SERVING.sample(rng)
        try:
            m = serving(c)
        except MemoryError:
            out.append(Observation(i, c, Status.CRASHED, CrashKind.OOM, cost_s=120.0))
            continue
        v = {"latency_ms_max": (m["latency_ms"] - 40) / 40}
        status = Status.FEASIBLE if v["latency_ms_max"] <= 0 else Status.INFEASIBLE
        out.append(Observation(i, c, status, None, m["tokens_per_s"], v, cost_s=60.0))
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
            history.append(Observation(i, c, Status.CRASHED, CrashKind.OOM, cost_s=cost))
        else:
            history.append(Observation(i, c, Status.FEASIBLE, None, 1.0, cost_s=60.0))
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


def test_settings_not_kept_still_do_what_they_say() -> None:
    """The measured-but-not-default settings (docs/benchmarks.md) change the models as
    documented: a smaller violation floor trusts confident predictions more, a larger PoF
    exponent and the exploitation phase shrink the scores of uncertain, likely-failing rows."""
    history = _serving_history(60)
    enc = ConfigEncoder(SERVING, ordinal=True)
    rng = np.random.default_rng(3)
    x = enc.encode([SERVING.sample(rng) for _ in range(300)])
    base = Models(SERVING, history, 1.0, CaboSettings(), 0, enc)
    sharp = Models(SERVING, history, 1.0, CaboSettings(violation_sd_floor=0.001), 0, enc)
    p, q = base.p_constraints(x), sharp.p_constraints(x)
    unlikely = p < 0.2
    assert unlikely.any() and np.all(q[unlikely] <= p[unlikely] + 1e-12)
    averse = Models(SERVING, history, 1.0, CaboSettings(pof_exponent=3.0), 0, enc)
    pof = base.pof(x)
    low = (pof > 0) & (pof < 0.3)
    a, b = base.acquisition(x), averse.acquisition(x)
    assert low.any() and np.all(b[low] <= a[low] * pof[low] ** 2 + 1e-12)
    exploit = Models(SERVING, history, 1.0, CaboSettings(), 0, enc)
    exploit.sd_scale = 0.3
    assert exploit.acquisition(x).sum() < a.sum()
    logged = Models(SERVING, history, 1.0, CaboSettings(log_objective=True), 0, enc)
    best = max(float(o.value) for o in history if o.feasible and o.value is not None)
    values = np.log([float(o.value) for o in history if not o.crashed and o.value])
    assert logged.incumbent == pytest.approx((np.log(best) - values.mean()) / values.std())



def test_copula_warp_ranks_the_objective() -> None:
    """``objective_warp=copula``: the model sees normal quantiles of the ranks, so one huge
    value no longer squeezes the others together; the incumbent is the warped best feasible
    value, and the warp keeps the order of the predictions. An unknown warp is named."""
    history = _serving_history(60)
    enc = ConfigEncoder(SERVING, ordinal=True)
    values = np.array([float(o.value) for o in history if not o.crashed and o.value])
    best = max(float(o.value) for o in history if o.feasible and o.value is not None)
    warped = Models(SERVING, history, 1.0, CaboSettings(objective_warp="copula"), 0, enc)
    n = len(values)
    rank = float((values < best).sum() + 0.5 * ((values == best).sum() - 1) + 1)
    from scipy.stats import norm
    assert warped.incumbent == pytest.approx(norm.ppf((rank - 0.5) / n))
    x = enc.encode([o.config for o in history if not o.crashed and o.value])
    m, _ = warped.objective(x)
    assert np.corrcoef(m, values)[0, 1] > 0.6
    with pytest.raises(ValueError, match=r"objective_warp must be 'standard', 'copula' or "):
        CaboSampler(SERVING, seed=0, objective_warp="log")


def test_estimated_noise_floor_is_small_for_a_constraint_that_repeats() -> None:
    """``noise_floor=estimated``: a violation that depends only on a categorical value (such
    as a model's accuracy) repeats exactly between neighbouring runs, so its floor falls to a
    tenth of the cap; a noisy one keeps the cap, as does a constraint with under 5 runs. The
    models then trust a repeated small violation (P(met) near 0 instead of Phi(-1.5))."""
    from deploytune.samplers.cabo import _noise_floor

    rng = np.random.default_rng(0)
    x = rng.random((40, 3))
    x[:, 0] = rng.integers(0, 3, 40)  # the "model"
    repeats = 0.03 * x[:, 0]
    assert _noise_floor(x, repeats, 0.02) == pytest.approx(0.002)
    assert _noise_floor(x, rng.normal(0, 0.5, 40), 0.02) == pytest.approx(0.02)
    assert _noise_floor(x[:4], repeats[:4], 0.02) == pytest.approx(0.02)
    space = Space.from_dict({"model": {"type": "categorical", "choices": ["a", "b"]},
                             "batch": {"type": "int", "low": 1, "high": 64}})
    history = [Observation(i, {"model": m, "batch": b}, Status.INFEASIBLE if m == "b"
                           else Status.FEASIBLE, None, float(b),
                           {"accuracy_min": 0.03 if m == "b" else -0.2})
               for i, (m, b) in enumerate((m, b) for m in "ab" for b in (1, 8, 16, 32, 64))]
    enc = ConfigEncoder(space, ordinal=True)
    probe = enc.encode([{"model": "b", "batch": 40}])
    fixed = Models(space, history, 1.0, CaboSettings(noise_floor="fixed"), 0,
                   enc).p_constraints(probe)
    estimated = Models(space, history, 1.0, CaboSettings(noise_floor="estimated"), 0,
                       enc).p_constraints(probe)
    assert fixed[0] > 0.05 and estimated[0] < 1e-6
    with pytest.raises(ValueError, match=r"noise_floor must be 'fixed' or 'estimated'"):
        CaboSampler(space, seed=0, noise_floor="learned")


def test_coverage_can_leave_out_memory_parameters() -> None:
    """``coverage_memory=False``: parameters declared ``memory`` are not covered (resource
    knobs), the others still are."""
    space = Space.from_dict({
        "backend": {"type": "categorical", "choices": ["a", "b"]},
        "seqs": {"type": "categorical", "choices": [16, 64, 256], "memory": "increasing"},
        "tp": {"type": "categorical", "choices": [1, 2, 4]}})
    names = {p.name for p in CaboSampler(space, seed=0)._cover}
    assert names == {"backend", "seqs", "tp"}
    names = {p.name for p in CaboSampler(space, seed=0, coverage_memory=False)._cover}
    assert names == {"backend", "tp"}


def test_pof_floor_keeps_proposals_near_the_likeliest_feasible() -> None:
    crashed = {}
    for name in ("cabo", "cabo[pof_floor=0.9]"):
        crashed[name] = 0
        for seed in range(3):
            result = deploytune.optimize(zoned, SERVING, objective="tokens_per_s",
                                         constraints=["latency_ms <= 40"], budget=20,
                                         sampler=name, seed=seed)
            crashed[name] += sum(t.status is not Status.FEASIBLE for t in result.trials[10:])
    assert crashed["cabo[pof_floor=0.9]"] <= crashed["cabo"]


def test_calibration_records_pof_and_learns_overconfidence() -> None:
    """With ``calibrate_pof`` every informed proposal stores its predicted PoF on the trial;
    the exponent fitted to (predicted, feasible) pairs is above 1 when confident proposals
    kept failing and below 1 when unlikely ones kept succeeding."""
    result = deploytune.optimize(zoned, SERVING, objective="tokens_per_s",
                                 constraints=["latency_ms <= 40"], budget=16,
                                 sampler="cabo[calibrate_pof=true]", seed=0)
    assert result.study is not None
    recorded = [t.system_attrs["cabo:pof"] for t in result.study.trials
                if "cabo:pof" in t.system_attrs]
    assert len(recorded) >= 10 and all(0.0 <= p <= 1.0 for p in recorded)

    def fitted(pof: float, feasible: bool) -> float:
        study = optuna.create_study()
        history = []
        for _ in range(10):
            trial = study.ask()
            study._storage.set_trial_system_attr(trial._trial_id, "cabo:pof", pof)
            study.tell(trial, 0.0)
            status = Status.FEASIBLE if feasible else Status.INFEASIBLE
            history.append(Observation(trial.number, {}, status, None, 0.0, {}))
        return CaboSampler._calibration(study, history)

    assert fitted(0.8, False) > 1.0
    assert fitted(0.3, True) < 1.0


@pytest.mark.parametrize("warp", ["standard", "copula", "yeo-johnson"])
def test_extreme_finite_objective_values_do_not_break_the_models(warp: str) -> None:
    """Issue 16, item 2: an evaluator reporting ``accuracy: 1e308`` twice overflowed the
    objective model's mean; scikit-learn then refused the NaN targets and every ask failed."""
    import deploytune

    space = {"x": {"type": "float", "low": 0, "high": 1}}

    def evaluate(config: dict[str, Any]) -> dict[str, float]:
        return {"objective": 1e308 if config["x"] > 0.2 else config["x"], "lat": config["x"]}

    result = deploytune.optimize(evaluate, space, constraints=["lat <= 0.9"], budget=12,
                                 sampler=f"cabo[objective_warp={warp}]", seed=0)
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
    corners, spread = _share_at_bounds(0), _share_at_bounds(2)
    assert corners > 0.5
    assert spread < corners / 2


def test_violation_trend_extrapolates_below_every_run() -> None:
    """Every run missed the latency limit, the smallest batch by least. A forest says nothing
    about batches below the smallest tried; the trend says they are likelier to meet it."""
    space = Space.from_dict({"batch": {"type": "int", "low": 1, "high": 256, "log": True},
                             "backend": {"type": "categorical", "choices": ["a", "b"]}})
    history = [Observation(i, {"batch": b, "backend": "ab"[i % 2]}, Status.INFEASIBLE, None,
                           float(b), {"latency": (b - 8) / 8})
               for i, b in enumerate([32, 48, 64, 96, 128, 192, 256])]
    enc = ConfigEncoder(space, ordinal=True)
    probes = enc.encode([{"batch": b, "backend": "a"} for b in (2, 8, 32)])
    flat = Models(space, history, 1.0, CaboSettings(), 0, enc).log_p_constraints(probes)
    trend = Models(space, history, 1.0, CaboSettings(violation_trend=1.0), 0,
                   enc).log_p_constraints(probes)
    assert flat[0] == pytest.approx(flat[2], abs=0.5)  # piecewise constant below the runs
    assert trend[0] > trend[1] > trend[2]
    assert trend[0] > flat[0] + 1.0
