"""The shipped recorded tables and the replay problems built on them (no model runs: the
tables were measured once with ``deploytune bench record``)."""

from __future__ import annotations

import json

import pytest

import deploytune
from deploybench.real import WORKLOADS, get_workload, split_problem_name
from deploybench.recording import FORMAT, default_table_path, grid_cells
from deploybench.registry import ALIASES, get_problem
from deploybench.replay import RecordedTable, landscape
from deploytune.outcome import Status

REPLAY = list(ALIASES["replay"])


@pytest.mark.parametrize("workload", WORKLOADS)
def test_a_complete_table_ships_for_every_workload(workload: str) -> None:
    path = default_table_path(workload)
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["workload"] == workload
    # recorded with the command's old spelling (--record) before `bench record`
    assert data["command"] in (f"deploytune bench --record {workload}",
                               f"deploytune bench record {workload}")
    assert data["recorded_at"] and data["finished_at"] and data["machine"]["cpu"]
    recorded = {json.dumps(c["config"], sort_keys=True) for c in data["cells"]}
    expected = {json.dumps(c, sort_keys=True) for c in grid_cells(get_workload(workload))}
    assert recorded == expected  # every grid cell, nothing else
    kinds = {c.get("crash_kind") for c in data["cells"] if c["status"] == "crashed"}
    assert kinds  # real crash zones were recorded
    for cell in data["cells"]:
        if cell["status"] == "ok":
            assert len(cell["repeats"]) == data["windows"] >= 2


@pytest.mark.parametrize("name", REPLAY)
@pytest.mark.slow
def test_replay_problem_optimum_is_the_enumerated_best(name: str) -> None:
    problem = get_problem(name)
    parsed = split_problem_name(name)
    assert parsed is not None and parsed[2]
    workload, scenario, _ = parsed
    table = RecordedTable.load(default_table_path(workload.name))
    land = landscape(table, problem.objective, problem.constraints)
    assert problem.optimum == land.optimum
    assert problem.objective.better(problem.optimum, problem.reference)
    # small but not empty: the limits were chosen from the measurements
    assert 0.0 < land.feasible <= 0.35, land
    assert land.crashed > 0.0
    best = table.lookup(land.best_config)
    assert best.status == "ok"
    assert all(c.is_met(best.metrics[c.metric]) for c in problem.constraints)
    assert problem.description.startswith(f"{workload.name} {scenario.name}")
    # discovery counts the family values that have a feasible cell, and the optimum's do
    assert problem.feasible_families is not None
    assert set(problem.feasible_families) == set(problem.families)
    for fam, values in problem.feasible_families.items():
        assert land.best_config[fam] in values
        assert len(values) <= len(getattr(next(p for p in problem.space if p.name == fam),
                                          "choices", ()))


@pytest.mark.slow
def test_a_replay_tuning_run_on_a_shipped_table() -> None:
    problem = get_problem("effnet-server-replay")
    result = deploytune.optimize(
        problem.evaluator(0), problem.space, objective=problem.objective.metric,
        direction=problem.objective.direction,
        constraints=[str(c) for c in problem.constraints], budget=20, sampler="default", seed=0)
    assert len(result.trials) == 20
    assert result.count(Status.CRASHED) >= 1  # the recorded crash zones are hit
    best = result.best_trial
    assert best is not None and best.status is Status.FEASIBLE
