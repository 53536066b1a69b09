"""Opening storages by URL: journal files, a missing database driver named with its fix."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from deploytune.parallel.storage import StorageDriverMissing, open_storage


def test_journal_url_opens_a_journal_file(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path / 'j.log'}"
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    again = optuna.load_study(study_name="s", storage=open_storage(url))
    assert len(again.trials) == 2


@pytest.mark.parametrize("url, fix", [
    ("postgresql+pg8000://u@localhost/db", "pg8000"),
    ("mysql://u@localhost/db", "MySQLdb"),
])
def test_a_missing_driver_is_named(url: str, fix: str) -> None:
    with pytest.raises(StorageDriverMissing, match=f"^storage: .*no module '{fix}'"):
        open_storage(url)


def test_postgresql_url_works_out_of_the_box(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    study = optuna.create_study(storage=open_storage(plain), study_name="plain")
    assert study.study_name == "plain"
