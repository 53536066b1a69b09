"""The chance incumbent of the default sampler, and the per-region noise behind it."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from deploytune.history import ATTR_CONFIDENCE, TrialRecord
from deploytune.outcome import Status
from deploytune.samplers._chance import ConstraintNoise, chance_incumbent
from deploytune.samplers._encoding import ConfigEncoder
from deploytune.samplers.cabo import CaboSampler, CaboSettings, Models, _confidence
from deploytune.space import Space

SPACE = Space.from_dict({
    "precision": {"type": "categorical", "choices": ["int8", "fp32"]},
    "batch": {"type": "int", "low": 1, "high": 64},
})


def _obs(i: int, precision: str, batch: int, violation: float, value: float) -> TrialRecord:
    status = Status.FEASIBLE if violation <= 0 else Status.INFEASIBLE
    return TrialRecord(i, {"precision": precision, "batch": batch}, status, None, value,
                       {"p95_ms_max": violation})


def _noise(history: list[TrialRecord],
           prior: float = 0.02) -> tuple[ConfigEncoder, ConstraintNoise]:
    enc = ConfigEncoder(SPACE, ordinal=True)
    x = enc.encode([o.config for o in history])
    y = np.array([o.violations["p95_ms_max"] for o in history])
    return enc, ConstraintNoise(x, y, enc.nominal_columns, prior)


def _repeated_history() -> list[TrialRecord]:
    """int8 batch 8 run three times, spread about 0.1; fp32 batch 8 three times, 0.005; int8
    is worth 5 more."""
    rows = [("int8", 8, v) for v in (-0.15, -0.02, 0.12)]
    rows += [("fp32", 8, v) for v in (-0.10, -0.105, -0.095)]
    rows += [("int8", 32, 0.3), ("fp32", 32, 0.2)]
    return [_obs(i, p, b, v, 10.0 * b + (5.0 if p == "int8" else 0.0))
            for i, (p, b, v) in enumerate(rows)]


def test_repeats_set_each_regions_spread() -> None:
    """Two configurations 5 % inside the limit, one run each: the int8 one (its region re-run
    with a spread of about 0.1) is less likely to meet it again than the fp32 one (its region's
    runs within 0.005); without any repeat both get the prior spread and the same P."""
    extra = [_obs(8, "int8", 16, -0.05, 165.0), _obs(9, "fp32", 16, -0.05, 160.0)]
    enc, noise = _noise([*_repeated_history(), *extra])
    int8, fp32 = (noise.p_met(enc.encode([o.config])[0].tobytes(), 1.0) for o in extra)
    assert int8 < fp32 - 0.05
    enc, quiet = _noise(extra)
    same = [quiet.p_met(enc.encode([o.config])[0].tobytes(), 1.0) for o in extra]
    assert same[0] == pytest.approx(same[1])


def test_the_incumbent_is_the_reliable_configuration_not_the_lucky_run() -> None:
    """int8 batch 8 was feasible in 2 of 3 runs and has the best value; fp32 batch 8 met the
    limit by 10 % in all three with a tiny spread. The chance incumbent is fp32's mean; at a
    confidence the int8 configuration meets, it is int8's."""
    history = _repeated_history()
    enc, noise = _noise(history)
    x = enc.encode([o.config for o in history])
    values = {i: float(o.value or 0.0) for i, o in enumerate(history)}
    assert chance_incumbent(history, x, {"p95_ms_max": noise}, values, 0.9) == \
        pytest.approx(80.0)
    assert chance_incumbent(history, x, {"p95_ms_max": noise}, values, 0.3) == \
        pytest.approx(85.0)


def test_without_a_reliable_configuration_the_likeliest_sets_the_bar() -> None:
    history = [_obs(0, "int8", 8, -0.01, 100.0), _obs(1, "int8", 16, -0.05, 50.0),
               _obs(2, "fp32", 8, 0.4, 10.0)]
    enc, noise = _noise(history, prior=0.2)
    x = enc.encode([o.config for o in history])
    values = {i: float(o.value or 0.0) for i, o in enumerate(history)}
    assert chance_incumbent(history, x, {"p95_ms_max": noise}, values, 0.9) == 50.0
    assert chance_incumbent(history[2:], x[2:], {"p95_ms_max": noise}, values, 0.9) is None


def test_a_count_like_constraint_met_at_zero_is_a_rate() -> None:
    """``error_rate <= 0`` met in every run sits exactly at 0: a rate, not P = 0.5."""
    history = [TrialRecord(i, {"precision": "fp32", "batch": 8}, Status.FEASIBLE, None, 1.0,
                           {"error_rate_max": 0.0}) for i in range(3)]
    history.append(TrialRecord(3, {"precision": "int8", "batch": 8}, Status.INFEASIBLE, None,
                               2.0, {"error_rate_max": 0.5}))
    enc = ConfigEncoder(SPACE, ordinal=True)
    x = enc.encode([o.config for o in history])
    noise = ConstraintNoise(x, np.array([0.0, 0.0, 0.0, 0.5]), [0, 1], 0.02)
    assert noise.is_rate
    assert noise.p_met(x[0].tobytes(), noise.met_share()) == pytest.approx(1.0)
    assert chance_incumbent(history, x, {"error_rate_max": noise},
                            {i: 1.0 for i in range(4)}, 0.9) == 1.0


def test_models_use_the_chance_incumbent() -> None:
    history = _repeated_history()
    enc = ConfigEncoder(SPACE, ordinal=True)
    on = Models(SPACE, history, 1.0, CaboSettings(), 0, enc, confidence=0.9)
    off = Models(SPACE, history, 1.0, CaboSettings(chance_incumbent=False), 0, enc)
    assert on.incumbent is not None and off.incumbent is not None
    assert on.incumbent < off.incumbent  # the lucky int8 run is not the bar


def test_the_sampler_reads_the_studys_confidence() -> None:
    study = optuna.create_study(sampler=CaboSampler(SPACE, seed=0, budget=5))
    assert _confidence(study) == 0.9
    study.set_user_attr(ATTR_CONFIDENCE, 0.99)
    assert _confidence(study) == 0.99
    study.set_user_attr(ATTR_CONFIDENCE, "nonsense")
    assert _confidence(study) == 0.9


def test_without_a_repeat_the_incumbent_is_the_best_feasible_run() -> None:
    """No configuration ran twice: no evidence of noise, and the incumbent stays the best
    feasible run's value (what it was before the chance incumbent; noise-free problems keep
    their behaviour)."""
    history = [_obs(0, "int8", 8, -0.01, 85.0), _obs(1, "fp32", 8, -0.10, 80.0),
               _obs(2, "int8", 32, 0.3, 325.0), _obs(3, "fp32", 32, 0.2, 320.0)]
    enc = ConfigEncoder(SPACE, ordinal=True)
    on = Models(SPACE, history, 1.0, CaboSettings(), 0, enc, confidence=0.9)
    off = Models(SPACE, history, 1.0, CaboSettings(chance_incumbent=False), 0, enc)
    assert on.incumbent == off.incumbent
    # the marginal int8 run re-run once (feasible again, just): now the bar is fp32's mean
    rerun = [*history, _obs(4, "int8", 8, -0.005, 84.0)]
    again = Models(SPACE, rerun, 1.0, CaboSettings(), 0, enc, confidence=0.9)
    again_off = Models(SPACE, rerun, 1.0, CaboSettings(chance_incumbent=False), 0, enc)
    assert again.incumbent is not None and again_off.incumbent is not None
    assert again.incumbent < again_off.incumbent
