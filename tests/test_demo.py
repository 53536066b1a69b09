"""``deploytune demo``: a real tuning run of EfficientNet-Lite0 on this CPU (2 trials here)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from deploytune.cli import app
from deploytune.history import ATTR_STATUS, ATTR_VALIDATION

runner = CliRunner()


@pytest.mark.slow
def test_demo_tunes_a_real_model_into_sqlite_and_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--budget", "2", "--plain"])
    assert result.exit_code == 0, result.output
    assert "EfficientNet-Lite0" in result.output and "2 trials" in result.output
    study = optuna.load_study(study_name="efficientnet-demo",
                              storage=f"sqlite:///{out / 'spec.db'}")
    search = [t for t in study.trials if not t.user_attrs.get(ATTR_VALIDATION)]
    assert len(search) == 2  # the finalists' re-runs come on top of the budget
    assert len(study.trials) - 2 <= 6
    assert all(ATTR_STATUS in t.user_attrs for t in study.trials)
    assert (out / "efficientnet-demo-report" / "report.html").is_file()
    again = runner.invoke(app, ["demo", "--out", str(out), "--budget", "2", "--plain"])
    assert again.exit_code == 0 and "resuming study efficientnet-demo" in again.output
    trials = optuna.load_study(study_name="efficientnet-demo",
                               storage=f"sqlite:///{out / 'spec.db'}").trials
    assert sum(not t.user_attrs.get(ATTR_VALIDATION) for t in trials) == 2
