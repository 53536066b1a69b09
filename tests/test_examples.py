"""The shipped examples stay valid, and the README's spec is the digits example's spec."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from deploytune.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SPECS = sorted((ROOT / "examples").glob("*/spec.yaml"))


def test_there_are_examples() -> None:
    names = {p.parent.name for p in EXAMPLE_SPECS}
    assert {"digits", "matmul_command"} <= names


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=lambda p: p.parent.name)
def test_example_spec_is_valid_and_its_evaluator_imports(path: Path) -> None:
    spec = load_spec(path)  # imports the python target / finds the command
    assert spec.budget_trials is not None and spec.constraints


def test_readme_spec_is_the_digits_example() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks, "the README shows a complete spec"
    shown = yaml.safe_load(blocks[0])
    shipped = yaml.safe_load((ROOT / "examples" / "digits" / "spec.yaml").read_text())
    assert shown == shipped
