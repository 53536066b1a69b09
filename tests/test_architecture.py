"""The package's shape: the library never imports the benchmark, and the benchmark uses the
library's public API only (read from the source files' imports, as an import linter would)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "src" / "deploytune"
BENCH = ROOT / "bench" / "src" / "deploybench"


def _imports(package: Path) -> Iterator[tuple[str, str, list[str]]]:
    """(file, imported module, imported names) for every import in ``package``'s files."""
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            rel = str(path.relative_to(ROOT))
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield rel, node.module, [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    yield rel, alias.name, []


@pytest.mark.slow
def test_the_core_never_imports_the_benchmark() -> None:
    offenders = [(f, m) for f, m, _ in _imports(CORE) if m.split(".")[0] == "deploybench"]
    assert not offenders, f"deploytune imports deploybench: {offenders}"
    assert not (CORE / "bench").exists()


def test_the_benchmark_uses_deploytunes_public_api_only() -> None:
    private = [(f, m, names) for f, m, names in _imports(BENCH)
               if m.split(".")[0] == "deploytune"
               and (any(p.startswith("_") for p in m.split("."))
                    or any(n.startswith("_") for n in names))]
    assert not private, f"deploybench uses deploytune's private names: {private}"


@pytest.mark.slow
def test_the_checker_sees_imports() -> None:
    """The walk finds both kinds of import statement (else the two tests above prove nothing)."""
    found = {m for _, m, _ in _imports(BENCH)}
    assert "deploytune.space" in found
    assert any(m.startswith("deploybench") for m in found)
    assert "typer" in {m for _, m, _ in _imports(CORE)}


def test_the_bench_command_comes_from_the_entry_point(monkeypatch: Any,
                                                      capsys: Any) -> None:
    """``deploytune bench`` exists because deploybench registered it; a plug-in that fails to
    load (a module that does not exist, really imported) is named on stderr and the other
    commands still load."""
    import importlib.metadata

    import typer
    from typer.testing import CliRunner

    from deploytune.cli import COMMANDS_GROUP, app, load_commands

    names = {c.name or getattr(c.callback, "__name__", "") for c in app.registered_commands}
    names |= {g.name or "" for g in app.registered_groups}
    assert {"bench", "problems", "tune"} <= names

    fresh = typer.Typer()

    @fresh.command()
    def hello() -> None:
        """A core command."""
        typer.echo("hi")

    real = list(importlib.metadata.entry_points(group=COMMANDS_GROUP))
    broken = importlib.metadata.EntryPoint(name="broken", value="no_such_plugin_xyz:register",
                                           group=COMMANDS_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group: [broken, *real] if group == COMMANDS_GROUP else [])
    assert load_commands(fresh) == ["bench"]
    assert "no_such_plugin_xyz:register" in capsys.readouterr().err
    result = CliRunner().invoke(fresh, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    assert "hi" in CliRunner().invoke(fresh, ["hello"]).output


def test_history_owns_every_storage_key() -> None:
    """Every ``dt.*`` attribute name is a constant of :mod:`deploytune.history`; other modules
    import it instead of spelling the key (a typo there would read nothing, silently)."""
    import re

    spelled = []
    for path in sorted([*CORE.rglob("*.py"), *BENCH.rglob("*.py")]):
        if path == CORE / "history.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"dt\.[a-z_]+", node.value):
                spelled.append((str(path.relative_to(ROOT)), node.value))
    assert not spelled, f"use deploytune.history's ATTR_* constants: {spelled}"
    from deploytune import history

    keys = [v for k, v in vars(history).items() if k.startswith("ATTR_")]
    assert len(keys) == len(set(keys)) >= 15


def test_the_bench_commands_load_whichever_package_is_imported_first() -> None:
    """Importing the benchmark's commands before deploytune's app (a test, a script) still
    leaves ``bench`` on the app: the plug-in does not import the core at its top."""
    import subprocess
    import sys

    code = ("import deploybench.cli\nfrom deploytune.cli import app\n"
            "print(sorted(g.name for g in app.registered_groups))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['bench']", done.stdout + done.stderr
    assert "not loaded" not in done.stderr
