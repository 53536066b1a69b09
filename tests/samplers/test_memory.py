"""Memory declarations: dominance after an out-of-memory crash, the low-memory end, and how
``cabo`` uses both."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import deploytune
from deploytune.outcome import Status
from deploytune.samplers.cabo import CaboSampler
from deploytune.samplers.memory import MemoryDominance, declared_memory_params, least_memory
from deploytune.space import Space

SPACE = Space.from_dict({
    "model": {"type": "categorical", "choices": ["small", "large"]},
    "batch": {"type": "int", "low": 1, "high": 64, "log": True, "memory": "increasing"},
    "seqs": {"type": "categorical", "choices": [16, 64, 256], "memory": "increasing"},
    "tp": {"type": "categorical", "choices": [1, 2, 4], "memory": "decreasing"},
    "threads": {"type": "int", "low": 1, "high": 4},
    "cache_mb": {"type": "int", "low": 64, "high": 1024, "memory": "increasing",
                 "when": {"model": ["large"]}},
})

OOM = {"model": "large", "batch": 8, "seqs": 64, "tp": 2, "threads": 2, "cache_mb": 128}


def test_declared_parameters_and_their_low_memory_end() -> None:
    assert [p.name for p in declared_memory_params(SPACE)] == ["batch", "seqs", "tp",
                                                                 "cache_mb"]
    low = least_memory(SPACE, OOM)
    assert low == {"model": "large", "batch": 1, "seqs": 16, "tp": 4, "threads": 2,
                   "cache_mb": 64}
    small = least_memory(SPACE, {"model": "small", "batch": 30, "seqs": 256, "tp": 1,
                                 "threads": 3})
    assert small == {"model": "small", "batch": 1, "seqs": 16, "tp": 4, "threads": 3}


def test_least_memory_keeps_a_configuration_it_would_make_forbidden() -> None:
    space = Space.from_dict(
        {"model": {"type": "categorical", "choices": ["a", "b"]},
         "batch": {"type": "int", "low": 1, "high": 8, "memory": "increasing"}},
        forbidden=[{"model": ["a"], "batch": [1]}])
    assert least_memory(space, {"model": "a", "batch": 4}) == {"model": "a", "batch": 4}
    assert least_memory(space, {"model": "b", "batch": 4}) == {"model": "b", "batch": 1}


@pytest.mark.parametrize("change, ruled_out", [
    ({}, True),                                       # the OOM configuration itself
    ({"batch": 16}, True),                            # more batch
    ({"batch": 16, "seqs": 256, "cache_mb": 1024}, True),
    ({"tp": 1}, True),                                # fewer GPUs: more memory per GPU
    ({"batch": 4}, False),                            # less batch may fit
    ({"batch": 16, "seqs": 16}, False),               # one knob up, another down: unknown
    ({"tp": 4}, False),
    ({"threads": 3}, False),                          # an undeclared parameter differs
    ({"model": "small", "cache_mb": None}, False),    # another model (different structure)
])
def test_one_oom_rules_out_what_needs_at_least_as_much(change: dict[str, Any],
                                                       ruled_out: bool) -> None:
    config = {**OOM, **change}
    config = {k: v for k, v in config.items() if v is not None}
    assert MemoryDominance(SPACE, [OOM]).rules_out(config) is ruled_out


def test_without_declarations_or_ooms_nothing_is_ruled_out() -> None:
    plain = Space.from_dict({"batch": {"type": "int", "low": 1, "high": 64}})
    assert not MemoryDominance(plain, [{"batch": 2}]).rules_out({"batch": 64})
    assert not MemoryDominance(plain, [{"batch": 2}])
    assert not MemoryDominance(SPACE, [])
    many = [{**OOM, "batch": b} for b in (2, 32)]
    kept = MemoryDominance(SPACE, many).keep([{**OOM, "batch": b} for b in (1, 2, 3, 40)])
    assert [c["batch"] for c in kept] == [1]


def test_space_round_trips_and_rejects_bad_declarations() -> None:
    assert Space.from_dict(SPACE.to_dict()) == SPACE
    assert SPACE["batch"].memory == "increasing" and SPACE["threads"].memory is None
    with pytest.raises(ValueError, match=r"'batch', memory: must be increasing.*'more'"):
        Space.from_dict({"batch": {"type": "int", "low": 1, "high": 4, "memory": "more"}})
    with pytest.raises(ValueError, match=r"'backend'.*needs ordered values"):
        Space.from_dict({"backend": {"type": "categorical", "choices": ["a", "b"],
                                     "memory": "increasing"}})
    with pytest.raises(ValueError, match=r"needs ordered values"):
        Space.from_dict({"flag": {"type": "categorical", "choices": [False, True],
                                  "memory": "increasing"}})


def oom_above(c: dict[str, Any]) -> dict[str, float]:
    """Throughput grows with batch and seqs; memory runs out above a product of 2048
    (halved per doubling of tp)."""
    if c["batch"] * c["seqs"] / c["tp"] > 512:
        raise MemoryError("CUDA out of memory")
    return {"throughput": float(c["batch"] * c["seqs"]) / (1 + 0.1 * c["threads"]),
            "latency_ms": 1.0 + 0.01 * c["batch"] * c["seqs"]}


@pytest.mark.slow
def test_cabo_starts_at_the_low_memory_end_and_never_repeats_a_dominated_oom() -> None:
    for seed in range(3):
        result = deploytune.optimize(oom_above, SPACE, objective="throughput",
                                     constraints=["latency_ms <= 200"], budget=20,
                                     sampler="cabo", seed=seed)
        first = result.trials[0].config
        assert (first["batch"], first["seqs"], first["tp"]) == (1, 16, 4)
        ooms: list[dict[str, Any]] = []
        for t in result.trials:
            assert not MemoryDominance(SPACE, ooms).rules_out(t.config), t.config
            if t.status is Status.CRASHED:
                ooms.append(t.config)


@pytest.mark.slow
def test_without_memory_rules_cabo_does_propose_dominated_configurations() -> None:
    """The same runs with ``memory_rules=False`` propose configurations an earlier OOM
    already ruled out (so the test above can fail), and start anywhere."""
    dominated = 0
    starts = set()
    for seed in range(6):
        sampler = CaboSampler(SPACE, seed=seed, budget=30, memory_rules=False)
        result = deploytune.optimize(oom_above, SPACE, objective="throughput",
                                     constraints=["latency_ms <= 200"], budget=30,
                                     sampler=sampler)
        ooms: list[dict[str, Any]] = []
        c0 = result.trials[0].config
        starts.add((c0["batch"], c0["seqs"], c0["tp"]))
        for t in result.trials:
            dominated += MemoryDominance(SPACE, ooms).rules_out(t.config)
            if t.status is Status.CRASHED:
                ooms.append(t.config)
    assert dominated > 0
    assert len(starts) > 1


def oom_unless_four_threads(c: dict[str, Any]) -> dict[str, float]:
    """Every configuration without 4 threads runs out of memory, so the first runs come only
    after several crashes, all of them OOMs."""
    if c["threads"] != 4:
        raise MemoryError("CUDA out of memory")
    return oom_above(c)


def _low_until_first_run(sampler: CaboSampler) -> list[bool]:
    """For each trial before the first run: were the declared parameters at the low end?"""
    result = deploytune.optimize(oom_unless_four_threads, SPACE, objective="throughput",
                                 constraints=["latency_ms <= 200"], budget=12,
                                 sampler=sampler)
    out = []
    for t in result.trials:
        out.append(t.config == least_memory(SPACE, t.config))
        if t.status is not Status.CRASHED:
            break
    return out


@pytest.mark.slow
def test_cabo_holds_the_low_end_until_a_run_even_in_its_local_search() -> None:
    """Until some trial has run, while every crash ran out of memory, every proposal (the
    local search's too) holds the declared parameters at their low-memory end; without the
    memory rules the same runs do not (so the first assertion can fail)."""
    held, free = [], []
    for seed in range(4):  # every crash here is an OOM: hold until a run
        held += _low_until_first_run(CaboSampler(SPACE, seed=seed, budget=12))
        free += _low_until_first_run(CaboSampler(SPACE, seed=seed, budget=12,
                                                 memory_rules=False))
    assert len(held) > 4 and all(held)
    assert not all(free)


def test_dominance_lookup_is_by_undeclared_part() -> None:
    rng = np.random.default_rng(0)
    ooms = [SPACE.sample(rng) for _ in range(200)]
    dom = MemoryDominance(SPACE, ooms)
    for c in [SPACE.sample(rng) for _ in range(300)]:
        brute = any(
            c.keys() == o.keys()
            and all(c[k] == o[k] for k in c if k not in ("batch", "seqs", "tp", "cache_mb"))
            and all(c[k] >= o[k] for k in ("batch", "seqs", "cache_mb") if k in c)
            and c["tp"] <= o["tp"]
            for o in ooms)
        assert dom.rules_out(c) is brute


@pytest.mark.slow
def test_resumed_run_with_memory_rules_proposes_what_one_run_would(tmp_path: Any) -> None:
    """The dominance rule and the low-memory start come from the history alone: a run stopped
    halfway and resumed by a new sampler object proposes the trials of an uninterrupted one
    (the toy's batch size and memory fraction declared, its large batches running out of
    memory)."""
    from tests.toy import CONSTRAINTS, FORBIDDEN, SPACE_DICT, toy_evaluate

    declared = {k: dict(v) for k, v in SPACE_DICT.items()}
    declared["batch_size"]["memory"] = "increasing"
    declared["mem_frac"]["memory"] = "increasing"
    space = Space.from_dict(declared, forbidden=FORBIDDEN)

    def run(storage: Any = None, callbacks: Any = ()) -> deploytune.Result:
        return deploytune.optimize(toy_evaluate, space, objective="accuracy",
                                   constraints=CONSTRAINTS, budget=16, sampler="cabo", seed=4,
                                   storage=storage, callbacks=list(callbacks))

    whole = run()
    assert any(t.status is Status.CRASHED and t.crash_kind == "oom" for t in whole.trials)

    class Stop(Exception):
        pass

    def stop_halfway(record: deploytune.TrialRecord) -> None:
        if record.number + 1 == 8:
            raise Stop

    url = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(Stop):
        run(url, [stop_halfway])
    resumed = run(url)
    assert [t.config for t in resumed.trials] == [t.config for t in whole.trials]


def test_low_memory_start_holds_while_every_crash_is_an_oom() -> None:
    """Candidates start at the low-memory end before the first trial and after OOMs only;
    not after a crash of another kind, not once something has run, never without the
    memory rules."""
    from deploytune.history import TrialRecord
    from deploytune.outcome import CrashKind

    invalid = TrialRecord(0, dict(OOM), Status.CRASHED, CrashKind.INVALID_CONFIG)
    oom = TrialRecord(1, dict(OOM), Status.CRASHED, CrashKind.OOM)
    ran = TrialRecord(2, dict(OOM), Status.INFEASIBLE, None, 1.0)
    histories = {"none": [], "oom": [oom], "invalid": [invalid], "oom+invalid": [oom, invalid],
                 "ran": [oom, ran]}
    expect = {"none": True, "oom": True, "invalid": False, "oom+invalid": False, "ran": False}
    sampler = CaboSampler(SPACE, seed=0)
    for name, low in expect.items():
        assert sampler._start_low(histories[name]) is low, name
    off = CaboSampler(SPACE, seed=0, memory_rules=False)
    assert not any(off._start_low(h) for h in histories.values())


def test_the_ablation_is_registered() -> None:
    from deploytune.samplers import make_sampler

    sampler = make_sampler("cabo-no-memory", space=SPACE, seed=0)
    assert isinstance(sampler, CaboSampler) and sampler.settings.memory_rules is False
    assert make_sampler("cabo", space=SPACE, seed=0).settings.memory_rules is True
