"""The crash model and its gate, and the hybrid's ``crash_gate`` option."""

from __future__ import annotations

import numpy as np
import pytest

import deploytune
from deploytune.history import Observation
from deploytune.outcome import CrashKind, InvalidConfig, Status
from deploytune.samplers import make_sampler
from deploytune.samplers.crash_model import CrashGate, CrashModel
from deploytune.space import Space

SPACE = Space.from_dict({
    "kv_type": {"type": "categorical", "choices": ["f16", "q8_0", "q4_0"]},
    "flash_attn": {"type": "categorical", "choices": [False, True]},
    "n_ctx": {"type": "int", "low": 256, "high": 32768, "log": True},
})


def _crashes(c: dict[str, object]) -> bool:
    """A quantized KV cache without flash attention (an interaction, as in llama.cpp)."""
    return c["kv_type"] != "f16" and not c["flash_attn"]


def _history(n: int, seed: int = 0) -> list[Observation]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        c = SPACE.sample(rng)
        if _crashes(c):
            out.append(Observation(i, c, Status.CRASHED, CrashKind.INVALID_CONFIG))
        else:
            out.append(Observation(i, c, Status.FEASIBLE, None, float(c["n_ctx"])))
    return out


def test_model_learns_an_interaction_crash_zone() -> None:
    model = CrashModel(SPACE, 0, _history(30))
    assert model.ready
    rng = np.random.default_rng(99)
    probe = [SPACE.sample(rng) for _ in range(200)]
    p = model.p_crash(probe)
    truth = np.array([_crashes(c) for c in probe])
    assert p[truth].mean() > 0.7
    assert p[~truth].mean() < 0.3


def test_model_waits_for_both_classes_and_ignores_transient_crashes() -> None:
    ran = [o for o in _history(30) if o.status is Status.FEASIBLE][:5]
    transient = [Observation(100 + i, o.config, Status.CRASHED, CrashKind.TRANSIENT)
                 for i, o in enumerate(ran)]
    model = CrashModel(SPACE, 0, ran + transient)
    assert not model.ready and model.n_crashed == 0
    gate = CrashGate(model, 0.5)
    assert gate(ran[0].config) and gate.rejected == 0
    assert model.p_crash([ran[0].config]).tolist() == [0.0]


def test_gate_refuses_likely_crashes() -> None:
    gate = CrashGate(CrashModel(SPACE, 0, _history(30)), 0.5)
    assert not gate({"kv_type": "q4_0", "flash_attn": False, "n_ctx": 1024})
    assert gate({"kv_type": "f16", "flash_attn": False, "n_ctx": 1024})
    assert gate.rejected == 1


@pytest.mark.slow
def test_gated_hybrid_proposes_fewer_crashes_than_the_ungated_one() -> None:
    def evaluate(c: dict[str, object]) -> dict[str, float]:
        if _crashes(c):
            raise InvalidConfig("Failed to create llama_context")
        return {"score": float(c["n_ctx"])}

    crashed = {}
    for name in ("tba-tpe", "tba-tpe-gate"):
        total = 0
        for seed in range(3):
            result = deploytune.optimize(evaluate, SPACE, objective="score", budget=25,
                                         sampler=name, seed=seed)
            total += sum(t.status is Status.CRASHED for t in result.trials)
        crashed[name] = total
    # a third of the space crashes; the gate learns the zone after a few crashes
    assert crashed["tba-tpe-gate"] < crashed["tba-tpe"], crashed


def test_crash_gate_option_is_checked() -> None:
    with pytest.raises(ValueError, match="crash_gate"):
        make_sampler("tba-tpe", space=SPACE, seed=0, crash_gate=1.5)
