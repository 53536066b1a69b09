"""``deploytune bench trust``: the truth of a configuration and the recommendation policies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deploybench.generated import build_noisy_instance, generate_noisy
from deploybench.trust import ARMS, POLICIES, TrustTask, run_task, run_trust, trust_markdown


def test_truth_matches_the_noise_free_model_of_a_generated_instance() -> None:
    gen = build_noisy_instance(3)
    problem = gen.problem()
    rng_configs = [problem.space.sample(np.random.default_rng(i))
                   for i in range(40)]
    checked = 0
    for config in rng_configs:
        if gen.crash(config) is not None:
            assert problem.truth(config, draws=50).p_feasible == 0.0
            continue
        truth = problem.truth(config)
        clean = gen.metrics(config)
        assert truth.value == pytest.approx(clean[gen.objective], rel=0.05)
        if all(c.signed_violation(clean[c.metric]) < -0.5 for c in problem.constraints):
            assert truth.p_feasible > 0.95  # far inside every limit
        if any(c.signed_violation(clean[c.metric]) > 0.5 for c in problem.constraints):
            assert truth.p_feasible < 0.05  # far outside one
        checked += 1
    assert checked >= 5


def test_truth_is_the_same_for_every_run_and_its_own_draws() -> None:
    problem = generate_noisy(1)
    config = problem.space.sample(np.random.default_rng(0))
    assert problem.truth(config, draws=64) == problem.truth(config, draws=64)


@pytest.mark.parametrize("arm", list(ARMS))
@pytest.mark.slow
def test_each_arm_scores_its_policies(arm: str) -> None:
    res = run_task(TrustTask("gen-noisy-dev-01", 0, 10, arm))
    assert res["evaluations"] == 10
    if arm == "today":
        assert res["final_runs"] == 0
    assert set(res["policies"]) == {p for p in POLICIES if p.startswith(arm + "/")}
    for policy in res["policies"].values():
        assert 0.0 <= policy["p_feasible"] <= 1.0 and 0.0 <= policy["regret"] <= 1.0
        assert policy["false_feasible"] == (policy["config"] is not None
                                            and policy["p_feasible"] < 0.5)
        if policy["false_feasible"]:
            assert policy["regret"] == 1.0
    assert res["seconds"] > 0


@pytest.mark.slow
def test_run_trust_resumes_and_writes_a_table(tmp_path: Path) -> None:
    runs = run_trust(["gen-noisy-dev-02"], 1, [8], tmp_path, jobs=1)
    assert len(runs) == len(ARMS)
    again = run_trust(["gen-noisy-dev-02"], 1, [8], tmp_path, jobs=1)  # read back, not re-run
    assert sorted(r["arm"] for r in again) == sorted(r["arm"] for r in runs)
    text = trust_markdown(runs, "cmd")
    assert "| full/chance |" in text and "Budget 8" in text


def test_a_run_path_stays_inside_the_output_folder(tmp_path: Path) -> None:
    path = TrustTask("../../up:factory", 0, 5, "today").path(tmp_path)
    assert path.resolve().is_relative_to(tmp_path.resolve())
