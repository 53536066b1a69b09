"""Tests of recorded tables and the replay problems built on them.

Two tables: one written by hand in this file (no processes; every expected number is worked
out below from its cells), and the toy workload of :mod:`tests.bench.toy_workload` recorded for
real (isolated children, real memory cap and time limit), whose metrics are predictable from
:func:`~tests.bench.toy_workload.nominal_metrics`. The replay problems are built by the
package's own :func:`~deploybench.replay.replay_problem`, with the folder of shipped
tables pointed at a temporary one.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deploytune
from deploybench import recording, replay
from deploybench.problem import Problem
from deploybench.real import RealWorkload, Scenario, split_problem_name
from deploybench.recording import FORMAT
from deploybench.replay import RecordedCost, RecordedTable, landscape, replay_problem
from deploytune.outcome import (
    CrashKind,
    InvalidConfig,
    Objective,
    Status,
    crash_kind_of,
    parse_constraints,
)
from tests.bench.toy_workload import (
    GRID,
    P95_LIMIT_MS,
    nominal_metrics,
    recorded_toy_table,
    toy_workload,
)

# ----------------------------------------------------------------------- the hand-written table
HAND_SPACE: dict[str, Any] = {
    "mode": {"type": "categorical", "choices": ["a", "b", "c"]},
    "batch_size": {"type": "int", "low": 1, "high": 16, "log": True},
    "workers": {"type": "int", "low": 1, "high": 3},  # linear scale
}
RECORDED_AT = "2026-01-02T03:04:05Z"


def _ok(mode: str, batch: int, workers: int, repeats: list[dict[str, float]],
        seconds: float) -> dict[str, Any]:
    return {"config": {"mode": mode, "batch_size": batch, "workers": workers}, "status": "ok",
            "seconds": seconds, "repeats": repeats}


def _crash(mode: str, batch: int, workers: int, kind: str, error: str, seconds: float,
           declared: str | None = None) -> dict[str, Any]:
    cell = {"config": {"mode": mode, "batch_size": batch, "workers": workers},
            "status": "crashed", "crash_kind": kind, "error": error, "seconds": seconds,
            "repeats": []}
    if declared:
        cell["declared"] = declared
    return cell


def hand_table() -> dict[str, Any]:
    """Mode ``a`` always runs (y = 10 batch + workers (+1 on repeat 1), lat = 2 batch (+1));
    ``b`` runs only at batch 1 with 1 worker (oom at 4, declared at 16; a segfault with 3
    workers); ``c`` runs at batch 1 and 4 with 1 worker, times out at 16, and is an invalid
    configuration with 3 workers."""
    cells = [_ok("a", b, w, [{"y": 10.0 * b + w, "lat": 2.0 * b},
                             {"y": 10.0 * b + w + 1, "lat": 2.0 * b + 1}], 0.5 * b + w)
             for b in (1, 4, 16) for w in (1, 3)]
    cells += [
        _ok("b", 1, 1, [{"y": 5.0, "lat": 1.0}, {"y": 7.0, "lat": 3.0}], 1.0),
        _crash("b", 4, 1, "oom", "MemoryError: needs 4 GB", 2.0),
        _crash("b", 16, 1, "oom", "MemoryError: needs 4 GB", 2.0,
               declared="oom at batch_size=4; larger values are declared, not measured"),
        *(_crash("b", b, 3, "runtime_error", "killed by signal SIGSEGV (segmentation fault)",
                 0.5) for b in (1, 4, 16)),
        _ok("c", 1, 1, [{"y": 1.0, "lat": 1.0}, {"y": 2.0, "lat": 1.0}], 1.0),
        _ok("c", 4, 1, [{"y": 3.0, "lat": 4.0}, {"y": 4.0, "lat": 4.0}], 2.0),
        _crash("c", 16, 1, "timeout", "the evaluation took 40.0 s, over the 30 s limit", 30.0),
        *(_crash("c", b, 3, "invalid_config", "InvalidConfig: mode c needs one worker", 0.1)
          for b in (1, 4, 16)),
    ]
    return {"format": FORMAT, "workload": "hand", "command": "deploytune bench record hand",
            "recorded_at": RECORDED_AT, "timeout_s": 30.0, "memory_mb": 1000.0, "windows": 2,
            "space": HAND_SPACE, "grid": {"batch_size": [1, 4, 16], "workers": [1, 3]},
            "monotone": ["batch_size"], "cells": cells, "finished_at": RECORDED_AT}


HAND_WORKLOAD = RealWorkload(
    name="hand", target="tests.bench.toy_workload:evaluate_windows",
    record_target="tests.bench.toy_workload:evaluate_windows", space=HAND_SPACE,
    grid={"batch_size": (1, 4, 16), "workers": (1, 3)}, timeout_s=30.0, memory_mb=1000.0,
    families=("mode",), scenarios=(Scenario("max", "y", "maximize", ("lat <= 20",), "hand"),))

# The optimum of the hand table, by hand: mode a with 3 workers (y grows with both), at the
# largest batch whose interpolated mean latency 8.5 + 24 t stays <= 20, t = ln(b/4)/ln(4):
# batch 7 (t = 0.404, lat 18.2; batch 8 gives t = 0.5, lat 20.5); y = 43.5 + 120 t there.
HAND_BEST = {"mode": "a", "batch_size": 7, "workers": 3}
HAND_OPTIMUM = 43.5 + 120.0 * math.log(7 / 4) / math.log(4)


@pytest.fixture
def hand() -> RecordedTable:
    return RecordedTable(hand_table(), source="hand.json")


def a(batch: int, workers: int = 1) -> dict[str, Any]:
    return {"mode": "a", "batch_size": batch, "workers": workers}


# -------------------------------------------------------------------------- the recorded toy
@pytest.fixture(scope="module")
def toy_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy recorded once (shared with test_recording when both run in one process)."""
    return recorded_toy_table(tmp_path_factory.mktemp("recorded"))


@pytest.fixture(scope="module")
def toy(toy_path: Path) -> RecordedTable:
    return RecordedTable.load(toy_path)


@pytest.fixture
def tables_dir(tmp_path: Path, toy_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The shipped-tables folder pointed at ``tmp_path``, holding hand.json and toy.json."""
    (tmp_path / "hand.json").write_text(json.dumps(hand_table()))
    shutil.copy(toy_path, tmp_path / "toy.json")
    monkeypatch.setattr(recording, "_DATA", tmp_path)
    replay._load_table.cache_clear()
    yield tmp_path
    replay._load_table.cache_clear()


@pytest.fixture
def hand_problem(tables_dir: Path) -> Problem:
    return replay_problem(HAND_WORKLOAD, HAND_WORKLOAD.scenarios[0])


@pytest.fixture
def toy_problem(tables_dir: Path) -> Problem:
    workload = toy_workload()
    return replay_problem(workload, workload.scenarios[0])


def toy_expected(config: Mapping[str, Any]) -> dict[str, float] | None:
    """The noise-free (mean of the three windows) metrics replay should give for a toy
    configuration, worked out from :func:`nominal_metrics` and the crashes the recording
    measured (fat and slow run at batch 1 and 2 only, bad never); ``None`` for a crash."""

    def grid_mean(batch: int) -> dict[str, float] | None:
        if config["kind"] == "bad" or (config["kind"] in ("fat", "slow") and batch > 2):
            return None
        windows = [nominal_metrics({**config, "batch_size": batch}, w) for w in range(3)]
        return {k: float(np.mean([m[k] for m in windows])) for k in windows[0]}

    batch = int(config["batch_size"])
    grid = GRID["batch_size"]
    if batch in grid:
        return grid_mean(batch)
    lo = max(g for g in grid if g < batch)
    hi = min(g for g in grid if g > batch)
    w = math.log(batch / lo) / math.log(hi / lo)
    low, high = grid_mean(lo), grid_mean(hi)
    if low is None or high is None:
        return low if w < 0.5 else high
    return {k: (1 - w) * low[k] + w * high[k] for k in low}


def toy_configs() -> Iterator[dict[str, Any]]:
    for kind, batch in itertools.product(("fast", "slow", "fat", "bad"), range(1, 17)):
        if kind == "fast":
            yield from ({"kind": kind, "batch_size": batch, "threads": t} for t in (1, 2))
        else:
            yield {"kind": kind, "batch_size": batch}


# ------------------------------------------------------------------------------ exact cells
def test_an_exact_cell_returns_its_recorded_repeats(hand: RecordedTable) -> None:
    first, second = {"y": 41.0, "lat": 8.0}, {"y": 42.0, "lat": 9.0}
    for repeat, expected in ((0, first), (1, second), (2, first), (7, second)):
        result = hand.lookup(a(4), repeat)
        assert result.status == "ok" and result.measured
        assert dict(result.metrics) == expected and result.seconds == 3.0
    assert dict(hand.lookup(a(4)).metrics) == {"y": 41.5, "lat": 8.5}  # the mean


def test_recorded_toy_cells_return_their_windows(toy: RecordedTable) -> None:
    for config in ({"kind": "fast", "batch_size": 8, "threads": 2},
                   {"kind": "slow", "batch_size": 2}, {"kind": "fat", "batch_size": 1}):
        for repeat in range(6):
            result = toy.lookup(config, repeat)
            assert result.status == "ok" and result.measured
            assert dict(result.metrics) == pytest.approx(nominal_metrics(config, repeat % 3))
        assert dict(toy.lookup(config).metrics) == pytest.approx(toy_expected(config))


def test_recorded_crashes_replay_as_recorded(hand: RecordedTable, toy: RecordedTable) -> None:
    oom = hand.lookup({"mode": "b", "batch_size": 4, "workers": 1}, 0)
    assert (oom.status, oom.crash_kind, oom.error, oom.seconds, oom.measured) == (
        "crashed", "oom", "MemoryError: needs 4 GB", 2.0, True)
    declared = hand.lookup({"mode": "b", "batch_size": 16, "workers": 1})
    assert declared.crash_kind == "oom" and not declared.measured
    fat = toy.lookup({"kind": "fat", "batch_size": 4})
    assert fat.crash_kind == "oom" and fat.measured and "MemoryError" in fat.error
    for batch in (8, 16):
        assert toy.lookup({"kind": "fat", "batch_size": batch}).crash_kind == "oom"
        slow = toy.lookup({"kind": "slow", "batch_size": batch})
        assert slow.crash_kind == "timeout" and not slow.measured
    assert toy.lookup({"kind": "bad", "batch_size": 2}).crash_kind == "invalid_config"


# ---------------------------------------------------------------------------- interpolation
def test_off_grid_batch_blends_on_the_log_scale(hand: RecordedTable) -> None:
    w = math.log(3) / math.log(4)  # batch 3 between 1 and 4
    for repeat in (0, 1):
        result = hand.lookup(a(3), repeat)
        assert result.status == "ok" and not result.measured
        y1, y4 = 11.0 + repeat, 41.0 + repeat
        assert result.metrics["y"] == pytest.approx((1 - w) * y1 + w * y4)
        assert result.metrics["lat"] == pytest.approx((1 - w) * (2.0 + repeat)
                                                      + w * (8.0 + repeat))
        assert result.seconds == pytest.approx((1 - w) * 1.5 + w * 3.0)
    mean = hand.lookup(a(3))
    assert mean.metrics["y"] == pytest.approx((1 - w) * 11.5 + w * 41.5)


def test_off_grid_linear_parameter_and_two_at_once(hand: RecordedTable) -> None:
    # workers 2 is half way between 1 and 3 on a linear scale
    assert hand.lookup(a(4, 2), 0).metrics["y"] == pytest.approx(42.0)
    # batch 2 (t = 0.5 on the log scale between 1 and 4) and workers 2: bilinear
    y = {(b, w): 10.0 * b + w for b in (1, 4) for w in (1, 3)}
    expected = 0.25 * (y[1, 1] + y[1, 3] + y[4, 1] + y[4, 3])
    assert hand.lookup(a(2, 2), 0).metrics["y"] == pytest.approx(expected)


def test_recorded_toy_interpolates_between_measured_batches(toy: RecordedTable) -> None:
    w = math.log(3 / 2) / math.log(2)
    config = {"kind": "fast", "batch_size": 3, "threads": 1}
    two = {"kind": "fast", "batch_size": 2, "threads": 1}
    four = {"kind": "fast", "batch_size": 4, "threads": 1}
    cells = {json.dumps(c["config"], sort_keys=True): c for c in toy.cells}
    seconds = [cells[json.dumps(c, sort_keys=True)]["seconds"] for c in (two, four)]
    for repeat in range(3):
        result = toy.lookup(config, repeat)
        low, high = nominal_metrics(two, repeat), nominal_metrics(four, repeat)
        assert dict(result.metrics) == pytest.approx(
            {k: (1 - w) * low[k] + w * high[k] for k in low})
        assert result.seconds == pytest.approx((1 - w) * seconds[0] + w * seconds[1])
        assert not result.measured


def test_next_to_a_crash_the_nearer_neighbour_decides(hand: RecordedTable,
                                                      toy: RecordedTable) -> None:
    c = {"mode": "c", "workers": 1}
    near_ok = hand.lookup({**c, "batch_size": 5}, 1)  # t = 0.16 between 4 (ok) and 16
    assert near_ok.status == "ok" and dict(near_ok.metrics) == {"y": 4.0, "lat": 4.0}
    assert not near_ok.measured
    result = hand.lookup({**c, "batch_size": 12})  # t = 0.79: nearer the timeout at 16
    assert (result.status, result.crash_kind, result.seconds) == ("crashed", "timeout", 30.0)
    assert "over the 30 s limit" in result.error and not result.measured
    # ties go to the larger value: batch 2 is the geometric middle of 1 (ok) and 4 (oom) ...
    tie = hand.lookup({"mode": "b", "batch_size": 2, "workers": 1})
    assert (tie.crash_kind, tie.error) == ("oom", "MemoryError: needs 4 GB")
    # ... and workers 2 the middle of 1 (ok) and 3 (segfault) at batch 1 of mode b
    tie = hand.lookup({"mode": "b", "batch_size": 1, "workers": 2})
    assert tie.crash_kind == "runtime_error"
    # the recorded toy: fat batch 3 lies nearer 4 (oom) than 2 (ok) on the log scale
    fat = toy.lookup({"kind": "fat", "batch_size": 3})
    assert fat.crash_kind == "oom" and "MemoryError" in fat.error
    assert toy.lookup({"kind": "slow", "batch_size": 6}).crash_kind == "timeout"


def test_a_log_scale_tie_away_from_1_goes_to_the_larger_value(hand: RecordedTable) -> None:
    # batch 8 is the geometric middle of 4 (ok) and 16 (timeout): the effnet / minilm grid
    # (1, 4, 16, 64) has exactly this case
    result = hand.lookup({"mode": "c", "batch_size": 8, "workers": 1})
    assert result.crash_kind == "timeout"


def test_a_missing_grid_cell_raises_naming_it(hand: RecordedTable) -> None:
    data = hand_table()
    data["cells"] = [c for c in data["cells"] if c["config"] != a(4)]
    table = RecordedTable(data, source="partial.json")
    for config in (a(4), a(2)):  # the cell itself, and a batch interpolated from it
        with pytest.raises(KeyError) as info:
            table.lookup(config)
        message = info.value.args[0]
        assert "partial.json" in message and "'batch_size': 4" in message
        assert "deploytune bench record hand" in message
    assert table.lookup(a(1), 0).metrics["y"] == 11.0


@pytest.mark.parametrize("fmt", [None, "deploytune-recorded-table/0", "something else"])
def test_a_table_of_another_format_is_refused(fmt: str | None) -> None:
    data = hand_table()
    if fmt is None:
        del data["format"]
    else:
        data["format"] = fmt
    with pytest.raises(ValueError, match="bench record WORKLOAD") as info:
        RecordedTable(data, source="old.json")
    assert "old.json" in str(info.value) and FORMAT in str(info.value)


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps(hand_table()))
    table = RecordedTable.load(path)
    assert table.source == str(path) and table.windows == 2 and len(table.cells) == 18
    assert table.header["recorded_at"] == RECORDED_AT and "cells" not in table.header


# -------------------------------------------------------------------------------- landscape
def test_hand_landscape_matches_the_optimum_worked_out_by_hand(hand: RecordedTable) -> None:
    land = landscape(hand, Objective("y", "maximize"), parse_constraints(["lat <= 20"]))
    assert land.optimum == pytest.approx(HAND_OPTIMUM)
    assert dict(land.best_config) == HAND_BEST
    assert land.reference < land.optimum
    assert land.crashed + land.infeasible + land.feasible == pytest.approx(1.0)
    assert land.crashed > 0 and land.infeasible > 0 and land.feasible > 0


def test_toy_landscape_matches_a_brute_force_enumeration(toy: RecordedTable) -> None:
    best: tuple[float, dict[str, Any]] | None = None
    n_crashed = 0
    for config in toy_configs():
        metrics = toy_expected(config)
        if metrics is None:
            n_crashed += 1
        elif metrics["p95_ms"] <= P95_LIMIT_MS and (best is None
                                                     or metrics["items_per_s"] > best[0]):
            best = (metrics["items_per_s"], config)
    assert best is not None and n_crashed > 0
    land = landscape(toy, Objective("items_per_s", "maximize"),
                     parse_constraints([f"p95_ms <= {P95_LIMIT_MS}"]))
    assert land.optimum == pytest.approx(best[0])
    assert dict(land.best_config) == best[1]
    assert best[1] == {"kind": "fast", "batch_size": 15, "threads": 2}  # interpolated
    assert land.reference < land.optimum
    assert land.crashed + land.infeasible + land.feasible == pytest.approx(1.0)
    assert min(land.crashed, land.infeasible, land.feasible) > 0


# --------------------------------------------------------------------------- replay problems
def test_replay_problem_is_built_from_the_table(hand_problem: Problem,
                                                toy_problem: Problem) -> None:
    assert hand_problem.name == "hand-max-replay"
    assert hand_problem.optimum == pytest.approx(HAND_OPTIMUM)
    assert hand_problem.objective.better(hand_problem.optimum, hand_problem.reference)
    assert f"replays the table recorded {RECORDED_AT}" in hand_problem.description
    assert "time limit 30 s, memory cap 1000 MB" in hand_problem.description
    assert hand_problem.families == ("mode",) and hand_problem.live is None
    assert [str(c) for c in hand_problem.constraints] == ["lat <= 20"]
    assert toy_problem.name == "toy-max-replay"
    assert "time limit 3 s, memory cap 500 MB" in toy_problem.description
    assert "'batch_size': 15" in toy_problem.description


@pytest.mark.parametrize(("config", "exc", "kind", "message"), [
    ({"mode": "b", "batch_size": 4, "workers": 1}, MemoryError, CrashKind.OOM, "needs 4 GB"),
    ({"mode": "b", "batch_size": 16, "workers": 1}, MemoryError, CrashKind.OOM, "needs 4 GB"),
    ({"mode": "c", "batch_size": 16, "workers": 1}, TimeoutError, CrashKind.TIMEOUT,
     "over the 30 s limit"),
    ({"mode": "c", "batch_size": 2, "workers": 3}, InvalidConfig, CrashKind.INVALID_CONFIG,
     "mode c needs one worker"),
    ({"mode": "b", "batch_size": 4, "workers": 3}, RuntimeError, CrashKind.RUNTIME_ERROR,
     "SIGSEGV"),
])
@pytest.mark.slow
def test_replay_raises_the_recorded_crash(hand_problem: Problem, config: dict[str, Any],
                                          exc: type[Exception], kind: CrashKind,
                                          message: str) -> None:
    evaluate = hand_problem.evaluator(0)
    for _ in range(3):
        with pytest.raises(exc, match=message) as info:
            evaluate(config)
        assert type(info.value) is exc and crash_kind_of(info.value) is kind


def test_recorded_toy_crashes_replay_with_their_kinds(toy_problem: Problem) -> None:
    evaluate = toy_problem.evaluator(3)
    for config, exc, kind in (
            ({"kind": "fat", "batch_size": 4}, MemoryError, CrashKind.OOM),
            ({"kind": "fat", "batch_size": 16}, MemoryError, CrashKind.OOM),
            ({"kind": "fat", "batch_size": 3}, MemoryError, CrashKind.OOM),
            ({"kind": "slow", "batch_size": 4}, TimeoutError, CrashKind.TIMEOUT),
            ({"kind": "bad", "batch_size": 1}, InvalidConfig, CrashKind.INVALID_CONFIG)):
        with pytest.raises(exc) as info:
            evaluate(config)
        assert crash_kind_of(info.value) is kind


def test_replay_noise_is_seeded_and_samples_the_repeats(hand_problem: Problem) -> None:
    def sequence(seed: int) -> list[float]:
        evaluate = hand_problem.evaluator(seed)
        return [evaluate(a(4))["y"] for _ in range(10)]

    first = sequence(0)
    assert sequence(0) == first  # the same seed replays the same repeats
    assert set(first) == {41.0, 42.0}  # both recorded repeats are drawn
    assert any(sequence(seed) != first for seed in range(1, 6))


def test_recorded_toy_repeats_are_sampled(toy_problem: Problem) -> None:
    config = {"kind": "fast", "batch_size": 4, "threads": 1}
    evaluate = toy_problem.evaluator(0)
    seen = {round(evaluate(config)["p50_ms"], 9) for _ in range(20)}
    assert seen == {round(nominal_metrics(config, w)["p50_ms"], 9) for w in range(3)}


def test_recorded_cost_is_the_recorded_seconds(hand_problem: Problem, hand: RecordedTable,
                                               toy_problem: Problem,
                                               toy: RecordedTable) -> None:
    cost = hand_problem.cost
    assert isinstance(cost, RecordedCost)
    assert cost.seconds(a(4), Status.FEASIBLE, None) == 3.0
    assert cost.seconds(a(16, 3), Status.INFEASIBLE, None) == 11.0
    oom = {"mode": "b", "batch_size": 4, "workers": 1}
    assert cost.seconds(oom, Status.CRASHED, CrashKind.OOM) == 2.0
    assert cost.seconds(a(2), Status.FEASIBLE, None) == pytest.approx(0.5 * 1.5 + 0.5 * 3.0)
    for c in toy.cells:
        assert toy_problem.cost.seconds(dict(c["config"]), Status.FEASIBLE, None) == \
            c["seconds"]
    assert RecordedCost().seconds(a(4), Status.FEASIBLE, None) == 60.0  # no table: defaults


def test_a_missing_table_names_the_record_command(tables_dir: Path) -> None:
    (tables_dir / "toy.json").unlink()
    workload = toy_workload()
    with pytest.raises(ValueError, match="deploytune bench record toy"):
        replay_problem(workload, workload.scenarios[0])


@pytest.mark.slow
def test_tuning_on_the_recorded_toy_replay(toy_problem: Problem, toy: RecordedTable) -> None:
    result = deploytune.optimize(
        toy_problem.evaluator(0), toy_problem.space,
        objective=toy_problem.objective.metric, direction=toy_problem.objective.direction,
        constraints=[str(c) for c in toy_problem.constraints], budget=15, sampler="default",
        seed=0)
    assert len(result.trials) == 15
    crashed = [t for t in result.trials if t.status is Status.CRASHED]
    assert crashed
    for t in result.trials:
        recorded = toy.lookup(t.config)
        if t.status is Status.CRASHED:
            assert t.crash_kind is not None and t.crash_kind.value == recorded.crash_kind
        else:
            assert recorded.status == "ok"
    if result.best_value is not None:
        assert 0.0 <= toy_problem.regret(result.best_value) <= 1.0


# -------------------------------------------------------------------------------- problem names
def test_split_problem_name() -> None:
    parsed = split_problem_name("effnet-edge-replay")
    assert parsed is not None
    workload, scenario, is_replay = parsed
    assert (workload.name, scenario.name, is_replay) == ("effnet", "edge", True)
    live = split_problem_name("whisper-server")
    assert live is not None and live[1].objective == "audio_s_per_s" and not live[2]
    for name in ("effnet-nope", "effnet-edge-live", "deploy-sim-edge", "effnet"):
        assert split_problem_name(name) is None

