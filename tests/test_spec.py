"""Tests of the YAML spec file (deploytune.spec): a valid spec, every kind of mistake, fuzzing."""

from __future__ import annotations

import copy
import datetime
import json
import math
import pickle
import sys
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploytune import Constraint, CrashKind, EarlyAbort, Objective, Rule, Space
from deploytune.evaluators.base import FunctionEvaluator, Monitor
from deploytune.spec import EvaluatorSpec, Spec, SpecError, load_spec, parse_spec, parse_spec_text
from deploytune.validation import Validation

ROOT = Path(__file__).resolve().parents[1]

FULL_SPEC = """\
study: toy-study
space:
  model: {type: categorical, choices: [small, medium, large]}
  backend: {type: categorical, choices: [eager, compile, onnxruntime]}
  batch_size: {type: int, low: 1, high: 64, log: true, memory: increasing}
  mem_frac: {type: float, low: 0.7, high: 0.98}
  threads: {type: int, low: 1, high: 8, when: {backend: [eager, onnxruntime]}}
forbidden:
  - {backend: [compile], model: [large]}
objective: {minimize: latency_ms}
constraints: ["memory_mb <= 900", "accuracy >= 0.6"]
evaluator:
  python: tests.toy:toy_evaluate
  isolate: false
  retries: 1
  rules:
    - {pattern: "CUDA out of memory", kind: oom}
    - {pattern: "address already in use", kind: transient, ignore_case: true}
early_abort: {before_feasible: 4, after_feasible: 2}
pruner: median
budget: {trials: 30, seconds: 600}
sampler: {name: tba-tpe, options: {min_phase1: 6, tpe_options: {n_ei_candidates: 12}}}
seed: 7
storage: sqlite:///runs/toy.db
"""

MINIMAL_SPEC = """\
space:
  x: {type: float, low: 0, high: 1}
objective: accuracy
evaluator: {python: "tests.toy:toy_evaluate", isolate: false}
budget: 10
"""


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process evaluators put the spec's folder on ``sys.path``; undo it after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))


def write(folder: Path, text: str, name: str = "study.yaml") -> Path:
    """Write ``text`` to ``folder/name`` and return the path."""
    path = folder / name
    path.write_text(text)
    return path


def base_dict() -> dict[str, Any]:
    """A small valid spec (in-process evaluator, random sampler): cheap to validate."""
    return {
        "study": "fuzz",
        "space": {
            "backend": {"type": "categorical", "choices": ["eager", "onnx"]},
            "batch_size": {"type": "int", "low": 1, "high": 64, "log": True},
            "lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True},
            "threads": {"type": "int", "low": 1, "high": 8, "when": {"backend": ["eager"]}},
        },
        "forbidden": [{"backend": ["onnx"], "batch_size": [64]}],
        "objective": {"metric": "accuracy", "direction": "maximize"},
        "constraints": ["p95_ms <= 20", "memory_mb <= 512"],
        "evaluator": {
            "python": "tests.toy:toy_evaluate",
            "isolate": False,
            "retries": 2,
            "rules": [{"pattern": "CUDA out of memory", "kind": "oom"}],
        },
        "early_abort": {"before_feasible": 5, "after_feasible": 3},
        "pruner": "none",
        "budget": {"trials": 25, "seconds": 3600},
        "sampler": {"name": "random"},
        "seed": 0,
        "storage": "sqlite:///fuzz.db",
        "confidence": 0.9,
        "validation": {"finalists": 3, "repeats": 2, "during_search": True},
    }


def command_dict() -> dict[str, Any]:
    """A small valid spec with a command evaluator (its check only looks up the program)."""
    d = base_dict()
    d["evaluator"] = {
        "command": {"argv": [sys.executable, "-c", "print(1)", "--batch", "{batch_size}",
                             ["--threads", "{threads}"]],
                     "env": {"OMP_NUM_THREADS": "{threads}", "SEED": 3},
                     "metrics_file": "metrics.json"},
        "cwd": ".",
        "timeout_s": 30,
        "memory_mb": 1024,
        "retries": 0,
    }
    return d


def parse(data: Any, base_dir: Path = ROOT) -> Spec:
    """``parse_spec`` with the repository root as the spec's folder."""
    return parse_spec(data, base_dir=base_dir, source="spec.yaml")


def error_of(data: Any, base_dir: Path = ROOT) -> SpecError:
    """The SpecError ``data`` raises (fails if it parses)."""
    with pytest.raises(SpecError) as info:
        parse(data, base_dir)
    return info.value


def mutated(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the base spec with ``value`` at the dotted ``path`` (``...`` deletes it)."""
    d = copy.deepcopy(base if base is not None else base_dict())
    *parents, last = path.split(".")
    node: Any = d
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return d


# --------------------------------------------------------------------------------- valid
def test_full_spec_round_trips(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    spec = load_spec(write(tmp_path, FULL_SPEC))
    assert spec.source == str(tmp_path / "study.yaml")
    assert spec.base_dir == tmp_path.resolve()
    assert spec.study_name == "toy-study"
    assert spec.space == Space.from_dict(
        yaml.safe_load(FULL_SPEC)["space"], forbidden=[{"backend": ["compile"],
                                                        "model": ["large"]}])
    assert spec.space.forbidden == ({"backend": ("compile",), "model": ("large",)},)
    assert spec.space["batch_size"].memory == "increasing"
    assert spec.objective == Objective("latency_ms", "minimize")
    assert spec.constraints == (Constraint("memory_mb", "<=", 900.0),
                                Constraint("accuracy", ">=", 0.6))
    assert spec.evaluator == EvaluatorSpec(
        kind="python", target="tests.toy:toy_evaluate", argv=(), env=None,
        cwd=tmp_path.resolve(), timeout_s=None, memory_mb=None, metrics_file=None,
        isolate=False)
    assert spec.retries == 1
    assert spec.rules == (Rule("CUDA out of memory", CrashKind.OOM),
                          Rule("address already in use", CrashKind.TRANSIENT, True))
    assert spec.early_abort == EarlyAbort(4, 2)
    assert spec.pruner == "median"
    assert isinstance(spec.build_pruner(), optuna.pruners.MedianPruner)
    assert (spec.budget_trials, spec.budget_seconds) == (30, 600.0)
    assert spec.sampler == "tba-tpe"
    assert spec.sampler_options == {"min_phase1": 6, "tpe_options": {"n_ei_candidates": 12}}
    assert spec.seed == 7
    db = tmp_path.resolve() / "runs" / "toy.db"
    assert spec.storage == f"sqlite:///{db}"
    assert spec.report_dir == db.parent / "toy-study-report"
    assert not db.exists()  # validating a spec creates nothing

    data = spec.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    again = parse_spec(data, base_dir=spec.base_dir, source=spec.source)
    assert again == spec
    with pytest.raises(AttributeError):
        spec.seed = 3  # type: ignore[misc]


def test_sampler_options_in_brackets(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL_SPEC.replace(
        "budget:", "sampler: cabo[coverage_until=0.5;coverage=false]\nbudget:"), name="s.yml"))
    assert spec.sampler == "cabo"
    assert spec.sampler_options == {"coverage_until": 0.5, "coverage": False}


def test_minimal_spec_gets_the_defaults(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL_SPEC, name="my-study.yml"))
    assert spec.study_name == "my-study"
    assert spec.objective == Objective("accuracy", "maximize")
    assert spec.constraints == ()
    assert spec.retries == 2
    assert spec.rules == ()
    assert spec.early_abort == EarlyAbort()
    assert spec.pruner is None and spec.build_pruner() is None
    assert (spec.budget_trials, spec.budget_seconds) == (10, None)
    assert spec.sampler == "default" and spec.sampler_options == {}
    assert spec.seed is None
    assert spec.confidence == 0.9 and spec.validation == Validation()
    db = tmp_path.resolve() / "my-study.db"
    assert spec.storage == f"sqlite:///{db}"
    assert spec.report_dir == tmp_path.resolve() / "my-study-report"
    assert spec.evaluator.cwd == tmp_path.resolve()


@pytest.mark.parametrize(("objective", "expected"), [
    ("throughput", Objective("throughput", "maximize")),
    ({"maximize": "throughput"}, Objective("throughput", "maximize")),
    ({"minimize": "p95_ms"}, Objective("p95_ms", "minimize")),
    ({"metric": "p95_ms", "direction": "minimize"}, Objective("p95_ms", "minimize")),
    ({"metric": "acc"}, Objective("acc", "maximize")),
])
def test_objective_forms(objective: Any, expected: Objective) -> None:
    assert parse(mutated("objective", objective)).objective == expected


@pytest.mark.parametrize(("storage", "expected"), [
    ("sqlite:///sub/x.db", "sqlite:///{root}/sub/x.db"),
    ("sqlite:///x.db?timeout=10", "sqlite:///{root}/x.db?timeout=10"),
    ("sqlite:////tmp/abs.db", "sqlite:////tmp/abs.db"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("postgresql://user@host:5432/db", "postgresql://user@host:5432/db"),
    ("postgresql+psycopg2://u:p@h/db", "postgresql+psycopg2://u:p@h/db"),
    ("mysql://user@host/db", "mysql://user@host/db"),
])
def test_storage_urls(tmp_path: Path, storage: str, expected: str) -> None:
    (tmp_path / "sub").mkdir()
    spec = parse(mutated("storage", storage), tmp_path)
    assert spec.storage == expected.format(root=tmp_path.resolve())
    if storage.startswith("postgresql"):
        assert spec.report_dir == tmp_path.resolve() / "fuzz-report"


def test_budget_forms_and_pruners() -> None:
    assert parse(mutated("budget", 7)).budget_trials == 7
    spec = parse(mutated("budget", {"seconds": 90}))
    assert (spec.budget_trials, spec.budget_seconds) == (None, 90.0)
    for name, cls in [("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
                      ("hyperband", optuna.pruners.HyperbandPruner)]:
        assert isinstance(parse(mutated("pruner", name)).build_pruner(), cls)
    assert parse(mutated("early_abort", False)).early_abort.enabled is False
    assert parse(mutated("early_abort", True)).early_abort == EarlyAbort()


def test_confidence_and_validation_forms() -> None:
    spec = parse(base_dict())
    assert spec.confidence == 0.9 and spec.validation == Validation()
    assert parse(mutated("confidence", 0.75)).confidence == 0.75
    assert parse(mutated("validation", False)).validation == Validation(0, 0, False)
    assert parse(mutated("validation", True)).validation == Validation()
    spec = parse(mutated("validation", {"finalists": 1, "during_search": False}))
    assert spec.validation == Validation(1, 2, False)
    assert parse(spec.to_dict()).validation == spec.validation


def test_spec_from_text_and_source_default_names() -> None:
    spec = parse_spec_text(MINIMAL_SPEC, base_dir=ROOT)
    assert spec.source == "<string>" and spec.study_name == "deploytune"
    assert spec.storage == f"sqlite:///{ROOT / 'deploytune.db'}"
    assert parse_spec_text(MINIMAL_SPEC.encode("utf-16"), base_dir=ROOT).space.names == ["x"]


def test_in_process_evaluator_imports_from_the_spec_folder(tmp_path: Path) -> None:
    module = f"spec_eval_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text(
        "def evaluate(config):\n    return {'accuracy': config['x'] * 2}\n")
    spec_file = write(tmp_path, MINIMAL_SPEC.replace("tests.toy:toy_evaluate",
                                                     f"{module}:evaluate"))
    spec = load_spec(spec_file)
    evaluator = spec.build_evaluator()
    assert isinstance(evaluator, FunctionEvaluator)
    assert evaluator.evaluate({"x": 0.25}, Monitor()).metrics == {"accuracy": 0.5}


def test_command_spec_fields() -> None:
    spec = parse(command_dict())
    ev = spec.evaluator
    assert ev.kind == "command" and ev.target is None
    assert ev.argv == (sys.executable, "-c", "print(1)", "--batch", "{batch_size}",
                       ("--threads", "{threads}"))
    assert ev.env == {"OMP_NUM_THREADS": "{threads}", "SEED": "3"}
    assert (ev.cwd, ev.timeout_s, ev.memory_mb, ev.metrics_file) == (ROOT, 30.0, 1024,
                                                                      "metrics.json")
    assert spec.retries == 0
    assert parse(spec.to_dict()) == spec


def test_spec_error_format_and_pickle() -> None:
    err = SpecError("budget.trials", "must be >= 1", "a.yaml")
    assert str(err) == "a.yaml: budget.trials: must be >= 1"
    assert str(SpecError("", "invalid YAML", "a.yaml")) == "a.yaml: invalid YAML"
    back = pickle.loads(pickle.dumps(err))
    assert (back.field_path, back.message, back.source) == ("budget.trials", "must be >= 1",
                                                            "a.yaml")


# ----------------------------------------------------------------------------- mistakes
def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found; check the path") as info:
        load_spec(tmp_path / "nope.yaml")
    assert info.value.source == str(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="is a folder"):
        load_spec(tmp_path)


def test_malformed_yaml_reports_line_and_column(tmp_path: Path) -> None:
    text = MINIMAL_SPEC.replace("budget: 10", "budget: [10\nseed: 0")
    with pytest.raises(SpecError, match=r"invalid YAML at line \d+, column \d+: .*fix the "
                                        r"syntax"):
        load_spec(write(tmp_path, text))
    with pytest.raises(SpecError, match=r"line 6, column 1: found the key 'budget' twice; "
                                        r"keep only one"):
        load_spec(write(tmp_path, MINIMAL_SPEC + "budget: 20\n"))
    with pytest.raises(SpecError, match=r"invalid YAML: a value cannot be read.*quote it"):
        load_spec(write(tmp_path, MINIMAL_SPEC + "study: 2024-13-45\n"))
    with pytest.raises(SpecError, match="invalid YAML"):
        load_spec(write(tmp_path, "a: !!python/object:os.system {}\n"))


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n", "42"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    with pytest.raises(SpecError, match=r"^<string>: the spec (is empty|must be a mapping)"):
        parse_spec_text(text, base_dir=ROOT)


# (mutated path, new value or ... to delete, expected field path, a fix hint in the message)
MISTAKES: list[tuple[str, Any, str, str]] = [
    # unknown keys, with the closest valid key suggested
    ("sampel", "random", "sampel", "did you mean 'sample"),
    ("evaluator.timout_s", 5, "evaluator.timout_s", "did you mean 'timeout_s'?"),
    ("space.threads.hihg", 8, "space.threads.hihg", "did you mean 'high'?"),
    ("budget.trails", 5, "budget.trails", "did you mean 'trials'?"),
    ("retries", 1, "retries", "move it under evaluator"),
    ("evaluator.argv", ["x"], "evaluator.argv", "move it under evaluator.command"),
    # missing required keys
    ("space", ..., "space", "add the required key 'space'"),
    ("objective", ..., "objective", "add the required key 'objective'"),
    ("evaluator", ..., "evaluator", "add the required key 'evaluator'"),
    ("budget", ..., "budget", "add the required key 'budget'"),
    # wrong types (bools are not ints)
    ("budget", True, "budget", "write e.g. budget: 25"),
    ("budget.trials", True, "budget.trials", "write e.g. trials: 25"),
    ("budget.trials", 2.0, "budget.trials", "without a decimal point (2)"),
    ("seed", False, "seed", "write e.g. seed: 0"),
    ("seed", "0", "seed", "expected a whole number"),
    ("evaluator.retries", True, "evaluator.retries", "write e.g. retries: 2"),
    ("evaluator.memory_mb", "2 GB", "evaluator.memory_mb", "write e.g. memory_mb: 2048"),
    ("evaluator.timeout_s", [60], "evaluator.timeout_s", "write e.g. timeout_s: 60"),
    ("space", ["backend"], "space", "write e.g. space: {batch_size"),
    ("constraints", {"p95_ms": 20}, "constraints", "write e.g. constraints: [\"p95_ms <= 20\""),
    ("constraints.1", 512, "constraints[1]", "quote the whole constraint"),
    ("evaluator.isolate", "no", "evaluator.isolate", "expected true or false"),
    ("study", 12, "study", "write e.g. study: resnet-serving"),
    ("study", "a/b", "study", "no slashes"),
    # bad ranges
    ("budget.trials", 0, "budget.trials", "must be between 1 and"),
    ("budget", -3, "budget", "must be between 1 and"),
    ("budget", {}, "budget", "give trials, seconds or both"),
    ("budget.seconds", 0, "budget.seconds", "give a positive value"),
    ("budget.seconds", math.inf, "budget.seconds", "must be a finite number"),
    ("evaluator.timeout_s", 0, "evaluator.timeout_s", "give a positive value"),
    ("evaluator.timeout_s", -1.5, "evaluator.timeout_s", "give a positive value"),
    ("evaluator.memory_mb", 0, "evaluator.memory_mb", "must be between 1 and"),
    ("evaluator.retries", -1, "evaluator.retries", "must be between 0 and"),
    ("seed", -1, "seed", "must be between 0 and"),
    ("seed", 2**40, "seed", "must be between 0 and 4294967295"),
    # space
    ("space.threads.low", 9, "space.threads.low", "swap them"),
    ("space.threads.low", "1", "space.threads.low", "expected a whole number"),
    ("space.threads.high", 8.5, "space.threads.high", "use type: float"),
    ("space.threads.low", 10**30, "space.threads.low", "use a smaller bound"),
    ("space.threads.step", 0, "space.threads.step", "expected a whole number >= 1"),
    ("space.threads.step", 0.5, "space.threads.step", "expected a whole number >= 1"),
    ("space.threads.step", 3, "space.threads.high", "not a multiple of step"),
    ("space.batch_size.step", 2, "space.batch_size.step", "cannot be combined with log"),
    ("space.lr.low", math.nan, "space.lr.low", "must be a finite number"),
    ("space.lr.low", 0, "space.lr.low", "raise low or remove log: true"),
    ("space.lr.log", "yes", "space.lr.log", "expected true or false"),
    ("space.threads.memory", "more", "space.threads.memory", "must be increasing"),
    ("space.backend.memory", "increasing", "space.backend.memory", "every choice must be a "
     "number"),
    ("space.threads.memry", "increasing", "space.threads.memry", "did you mean 'memory'?"),
    ("space.backend.type", "categorial", "space.backend.type", "did you mean 'categorical'?"),
    ("space.backend.type", ..., "space.backend.type", "add type: categorical, int or float"),
    ("space.backend.choices", [], "space.backend.choices", "write e.g. choices: [eager, onnx]"),
    ("space.backend.choices", ["a", "b", "a"], "space.backend.choices[2]",
     "remove the duplicate"),
    ("space.backend.choices", ["a", datetime.date(2024, 1, 1)], "space.backend.choices[1]",
     "quote it to make it a string"),
    ("space.backend.choices", [math.nan], "space.backend.choices[0]", "finite float"),
    ("space.threads", 3, "space.threads", "write e.g. threads: {type: int"),
    ("space.threads.when", {"backnd": ["eager"]}, "space.threads.when.backnd",
     "did you mean 'backend'?"),
    ("space.threads.when", {"threads": [1]}, "space.threads.when.threads",
     "cannot depend on itself"),
    ("space.threads.when", {"backend": ["tpu"]}, "space.threads.when", "outside 'backend'"),
    ("space.threads.when", {"backend": []}, "space.threads.when.backend",
     "write e.g. backend: [value]"),
    ("space", {}, "space", "declare at least one"),
    # forbidden combinations
    ("forbidden", {"backend": ["onnx"]}, "forbidden", "expected a list of combinations"),
    ("forbidden.0", {"backnd": ["onnx"]}, "forbidden[0].backnd", "did you mean 'backend'?"),
    ("forbidden.0", {"backend": ["tpu"]}, "forbidden[0]", "not in the domain of 'backend'"),
    ("forbidden.0", {}, "forbidden[0]", "write e.g. {backend: [onnx]"),
    # objective
    ("objective", {"direction": "maximize"}, "objective.metric", "name the metric"),
    ("objective.direction", "max", "objective.direction", "did you mean 'maximize'?"),
    ("objective", {"maximize": "a", "metric": "b"}, "objective.metric", "write either"),
    ("objective", "", "objective", "give a metric name"),
    ("objective", 3, "objective", "objective: {minimize: p95_ms}"),
    ("objective.metrc", "x", "objective.metrc", "did you mean 'metric'?"),
    # constraints
    ("constraints.0", "p95_ms < 20", "constraints[0]", "use <="),
    ("constraints.0", "p95_ms at most 20", "constraints[0]", "write '<metric> <= <number>'"),
    ("constraints.0", "p95_ms <= 1e999", "constraints[0]", "the limit must be finite"),
    ("constraints.1", "p95_ms <= 30", "constraints[1]", "keep only the tighter one"),
    # evaluator
    ("evaluator.command", ["python"], "evaluator", "keep exactly one"),
    ("evaluator.python", ..., "evaluator", "add e.g. python: my_package.bench:evaluate"),
    ("evaluator.python", "tests/toy.py", "evaluator.python", "not a file path"),
    ("evaluator.python", "tests.toy", "evaluator.python", "package.module:function"),
    ("evaluator.python", "tests.nope_module:f", "evaluator.python",
     "check the module path"),
    ("evaluator.python", "tests.toy:nope", "evaluator.python", "check the function's name"),
    ("evaluator.python", "tests.toy:SPACE_DICT", "evaluator.python", "name a function"),
    ("evaluator.estimate", "tests/toy.py", "evaluator.estimate", "not a file path"),
    ("evaluator.estimate", "tests.toy:nope", "evaluator.estimate",
     "check the function's name"),
    ("evaluator.timeout_s", 5, "evaluator.timeout_s", "set isolate: true"),
    ("evaluator.env", {"A": "1"}, "evaluator.env", "set isolate: true"),
    ("evaluator.cwd", "nowhere-at-all", "evaluator.cwd", "create it or fix the path"),
    ("evaluator.rules", {"pattern": "x"}, "evaluator.rules", "write e.g. rules: ["),
    ("evaluator.rules.0.kind", "out_of_memory", "evaluator.rules[0].kind", "use one of"),
    ("evaluator.rules.0.kind", "Oom", "evaluator.rules[0].kind", "did you mean 'oom'?"),
    ("evaluator.rules.0.pattern", "CUDA (out", "evaluator.rules[0].pattern",
     "escape special characters"),
    ("evaluator.rules.0.pattern", 12, "evaluator.rules[0].pattern", "quote it"),
    ("evaluator.rules.0.kind", ..., "evaluator.rules[0].kind", "a rule needs pattern and kind"),
    ("evaluator.rules.0.ignore_case", "yes", "evaluator.rules[0].ignore_case", "true or false"),
    ("evaluator.rules.0.patern", "x", "evaluator.rules[0].patern", "did you mean 'pattern'?"),
    # sampler
    ("sampler", "tbatpe", "sampler", "did you mean 'tba-tpe'?"),
    ("sampler.name", "nope", "sampler.name", "choose one of"),
    ("sampler", {"name": "tba", "options": {"t_int": 1.0}}, "sampler.options",
     "fix or remove the option"),
    ("sampler", {"name": "tba-tpe", "options": {"tpe_options": {"n_startup": 3}}},
     "sampler.options", "fix or remove the option"),
    ("sampler", {"name": "tpe", "options": {"bogus": 1}}, "sampler.options",
     "fix or remove the option"),
    ("sampler", {"name": "tba", "options": {"seed": 1}}, "sampler.options.seed",
     "use the top-level 'seed' key"),
    ("sampler", {"name": "random", "options": {"x": 1}}, "sampler.options", "remove them"),
    ("sampler", {"name": "tba", "options": {"x": {1, 2}}}, "sampler.options.x",
     "plain data"),
    ("sampler", {"options": {}}, "sampler.name", "choose one of"),
    ("sampler", ["random"], "sampler", "expected a sampler name"),
    ("sampler", "cabo[coverage_until]", "sampler", "key=value"),
    ("sampler", "cabo[no_such_knob=1]", "sampler.options", "no_such_knob"),
    ("sampler", "cabo[pof_floor=0.5]", "sampler.options", "unknown option(s) pof_floor"),
    ("sampler", "cabo[coverage_until=-1]", "sampler.options",
     "coverage_until must be a number between"),
    ("sampler", "cabo[coverage_until=.nan]", "sampler.options",
     "coverage_until must be a finite number"),
    ("sampler", "cabo[n_trees=many]", "sampler.options", "n_trees must be an integer"),
    ("sampler", "tpe[n_startup_trials=-5]", "sampler.options",
     "n_startup_trials must be an integer >= 0"),
    ("sampler", {"name": "tba", "options": {"patience": "x"}}, "sampler.options",
     "patience must be an integer"),
    # pruner, early abort
    ("pruner", "medain", "pruner", "did you mean 'median'?"),
    ("pruner", True, "pruner", "must be one of none, median"),
    ("early_abort", "yes", "early_abort", "(or true / false)"),
    ("early_abort.before_feasible", 0.5, "early_abort.before_feasible", "a number >= 1"),
    ("early_abort.after_feasible", True, "early_abort.after_feasible", "a number >= 1"),
    ("early_abort.promote_below", 1.5, "early_abort.promote_below", "a probability in [0, 1)"),
    ("early_abort.befor_feasible", 5, "early_abort.befor_feasible",
     "did you mean 'before_feasible'?"),
    ("early_abort.enabled", "no", "early_abort.enabled", "expected true or false"),
    # chance constraint and re-runs
    ("confidence", 1.0, "confidence", "strictly between 0 and 1"),
    ("confidence", "high", "confidence", "e.g. confidence: 0.9"),
    ("validation", "yes", "validation", "(or true / false)"),
    ("validation.finalists", -1, "validation.finalists", "between 0 and 100 (got -1); e.g. "
                                                         "finalists: 3"),
    ("validation.repeats", 2.5, "validation.repeats", "expected a whole number"),
    ("validation.during_search", "no", "validation.during_search", "expected true or false"),
    ("validation.finalist", 3, "validation.finalist", "did you mean 'finalists'?"),
    ("finalists", 3, "finalists", "validation"),
    # storage
    ("storage", 5, "storage", "write e.g. storage: sqlite:///study.db"),
    ("storage", "study.db", "storage", "write sqlite:///study.db"),
    ("storage", "sqlite:///missing-folder/x.db", "storage", "create it or fix the path"),
    ("storage", "sqlite:x.db", "storage", "write sqlite:///x.db"),
    ("storage", "nothing-like-a-url", "storage", "write e.g. storage: sqlite:///study.db"),
    ("storage", "sqlite://x.db", "storage", "three slashes"),
]


@pytest.mark.parametrize(("path", "value", "field", "hint"), MISTAKES,
                         ids=[f"{m[0]}={m[1]!r}"[:60] for m in MISTAKES])
def test_mistake_names_the_field_and_the_fix(path: str, value: Any, field: str,
                                             hint: str) -> None:
    err = error_of(mutated(path, value))
    assert err.field_path == field, str(err)
    assert hint in err.message, str(err)
    assert str(err) == f"spec.yaml: {field}: {err.message}"


# (path, value, expected field path, hint) on the command-evaluator spec
COMMAND_MISTAKES: list[tuple[str, Any, str, str]] = [
    ("evaluator.command.argv", "python bench.py", "evaluator.command.argv",
     "never a shell line"),
    ("evaluator.command.argv", [], "evaluator.command.argv", "a non-empty list"),
    ("evaluator.command.argv.2", None, "evaluator.command.argv[2]", "quote the argument"),
    ("evaluator.command.argv.2", True, "evaluator.command.argv[2]", "quote the argument"),
    ("evaluator.command.argv.5", ["--threads", ["x"]], "evaluator.command.argv[5][1]",
     "quote the argument"),
    ("evaluator.command.argv.0", ["python"], "evaluator.command.argv[0]",
     "a non-empty string"),
    ("evaluator.command.argv.4", "{batch}", "evaluator.command.argv[4]",
     "did you mean 'batch_size'?"),
    ("evaluator.command.argv.5", ["--threads", "{thread}"], "evaluator.command.argv[5][1]",
     "unknown placeholder {thread}"),
    ("evaluator.command.env.OMP_NUM_THREADS", "{nthreads}",
     "evaluator.command.env.OMP_NUM_THREADS", "placeholders must name a parameter"),
    ("evaluator.command.env.OMP_NUM_THREADS", [1], "evaluator.command.env.OMP_NUM_THREADS",
     "quote it"),
    ("evaluator.command.env.OMP_NUM_THREADS", False,
     "evaluator.command.env.OMP_NUM_THREADS", "quote it"),
    ("evaluator.command.env", ["A=1"], "evaluator.command.env", "write e.g. env:"),
    ("evaluator.env", {"A": "1"}, "evaluator.command.env", "keep one of them"),
    ("evaluator.command.argv", ..., "evaluator.command.argv", "missing"),
    ("evaluator.command.metrics_file", 3, "evaluator.command.metrics_file",
     "metrics_file: metrics.json"),
    ("evaluator.command.metrics_file", "../../etc/passwd", "evaluator.command.metrics_file",
     "inside the working directory"),
    ("evaluator.command.metrics_file", "/etc/passwd", "evaluator.command.metrics_file",
     "no absolute path"),
    ("evaluator.command.metrics", "m.json", "evaluator.command.metrics",
     "did you mean 'metrics_file'?"),
    ("evaluator.isolate", True, "evaluator.isolate", "python evaluators only"),
    ("evaluator.command", "python bench.py", "evaluator.command", "write e.g. command:"),
]


@pytest.mark.parametrize(("path", "value", "field", "hint"), COMMAND_MISTAKES,
                         ids=[f"{m[0]}={m[1]!r}"[:60] for m in COMMAND_MISTAKES])
def test_command_mistake_names_the_field_and_the_fix(path: str, value: Any, field: str,
                                                     hint: str) -> None:
    err = error_of(mutated(path, value, command_dict()))
    assert err.field_path == field, str(err)
    assert hint in err.message, str(err)


def test_a_yaml_alias_bomb_is_refused_without_expanding_it() -> None:
    """Issue 16, item 10: nine levels of ten aliases (10**10 values) under sampler.options
    hung validation; the document is now measured without expanding it."""
    levels = ["    a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    levels += [f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    text = MINIMAL_SPEC + "sampler:\n  name: tba\n  options:\n" + "\n".join(levels) + "\n"
    with pytest.raises(SpecError, match="expands to more than 1,000,000 values"):
        parse_spec_text(text, base_dir=ROOT)


@pytest.mark.parametrize("name", ["config_json", "python"])
def test_parameters_named_like_a_placeholder_are_refused(name: str) -> None:
    """Issue 16, item 10: a parameter named python or config_json silently took the place
    of the placeholder of the same name (the server's port: tests/test_spec_server.py)."""
    d = command_dict()
    d["space"][name] = {"type": "int", "low": 1, "high": 2}
    err = error_of(d)
    assert err.field_path == f"space.{name}"
    assert f"the name {name!r} is reserved" in err.message and "rename" in err.message


def test_keys_that_are_not_strings_and_weird_yaml_values() -> None:
    d = base_dict()
    d[1] = "x"  # type: ignore[index]
    assert "keys must be strings" in error_of(d).message
    d = base_dict()
    d["space"][3] = {"type": "int", "low": 1, "high": 2}
    assert error_of(d).field_path == "space[3]"
    text = MINIMAL_SPEC.replace("budget: 10", "budget: !!set {10}")
    with pytest.raises(SpecError, match="budget: expected a number of trials"):
        parse_spec_text(text, base_dir=ROOT)
    text = MINIMAL_SPEC + "seed: &a [*a]\n"
    with pytest.raises(SpecError, match="seed: expected a whole number"):
        parse_spec_text(text, base_dir=ROOT)
    text = MINIMAL_SPEC + "sampler: {name: tba, options: {x: &a [*a]}}\n"
    with pytest.raises(SpecError, match="nested too deeply"):
        parse_spec_text(text, base_dir=ROOT)


def test_a_setting_error_of_a_sections_class_is_shown_at_its_field(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: a class given a section's settings names the mistake by its own path; the
    spec puts the section's path in front."""
    from deploytune.setting_error import SettingError
    from deploytune.spec import run_section

    def refuse(settings: Any) -> EarlyAbort:
        raise SettingError(("after_feasible",), "must be at most before_feasible")

    monkeypatch.setattr(run_section, "build_early_abort", refuse)
    err = error_of(base_dict())
    assert (err.field_path, err.message) == ("early_abort.after_feasible",
                                             "must be at most before_feasible")


def test_check_evaluator_false_skips_the_import(tmp_path: Path) -> None:
    text = MINIMAL_SPEC.replace("tests.toy:toy_evaluate", "not_there_at_all:evaluate")
    path = write(tmp_path, text)
    with pytest.raises(SpecError, match=r"evaluator\.python: cannot import 'not_there_at_all'"):
        load_spec(path)
    assert load_spec(path, check_evaluator=False).evaluator.target == "not_there_at_all:evaluate"


# -------------------------------------------------------------------------------- fuzzing
_LEAF = st.one_of(
    st.integers(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.none(),
    st.booleans(), st.dates(), st.binary(max_size=4),
)
_VALUE = st.one_of(
    _LEAF,
    st.lists(_LEAF, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), _LEAF, max_size=3),
    st.frozensets(st.integers(), max_size=3),
)
_YAMLISH = st.text(alphabet=st.sampled_from(list("ab:- \n{}[]'\"#&*!|>%@,.0129\t")),
                   max_size=80)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key / index path of a nested dict-and-list tree."""
    out: list[tuple[Any, ...]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


def _container(tree: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        tree = tree[key]
    return tree


@st.composite
def bad_documents(draw: st.DrawFn) -> tuple[str, Any]:
    """("data", a mutated spec dict) or ("text", YAML text or bytes)."""
    base = draw(st.sampled_from([base_dict, command_dict]))()
    how = draw(st.sampled_from(["delete", "add", "replace", "replace", "replace", "text",
                                "edit", "bytes"]))
    if how == "text":
        return "text", draw(st.one_of(_YAMLISH, st.text(max_size=60)))
    if how == "bytes":
        return "text", draw(st.binary(max_size=60))
    if how == "edit":  # small edits of the valid spec's YAML text
        text = yaml.safe_dump(base)
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, len(text)))
            j = draw(st.integers(i, min(len(text), i + 4)))
            text = text[:i] + draw(_YAMLISH.filter(lambda s: len(s) <= 4)) + text[j:]
        return "text", text
    paths = _paths(base)
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(paths))
        parent = _container(base, path)
        if how == "delete":
            del parent[path[-1]]
        elif how == "add" and isinstance(parent, dict):
            parent[draw(st.one_of(st.text(max_size=10), st.integers()))] = draw(_VALUE)
        else:
            parent[path[-1]] = draw(_VALUE)
        paths = _paths(base)
        if not paths:
            break
    return "data", base


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(doc=bad_documents())
@pytest.mark.slow
def test_fuzz_loading_raises_only_spec_errors(doc: tuple[str, Any]) -> None:
    kind, payload = doc
    try:
        if kind == "text":
            spec = parse_spec_text(payload, base_dir=ROOT, source="fuzz.yaml")
        else:
            spec = parse_spec(payload, base_dir=ROOT, source="fuzz.yaml")
    except SpecError as exc:
        assert "internal error" not in exc.message, str(exc)
        assert str(exc).startswith("fuzz.yaml: ")
        return
    json.dumps(spec.to_dict(), allow_nan=False)


def test_fuzz_random_files(tmp_path: Path) -> None:
    """Random bytes as the spec file: only SpecError."""
    import random

    rng = random.Random(0)
    for i in range(40):
        path = tmp_path / f"f{i}.yaml"
        path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))))
        with pytest.raises(SpecError):
            load_spec(path)


# ------------------------------------------------------------------ evaluators, for real
def test_isolated_python_evaluator_is_checked_and_built(tmp_path: Path) -> None:
    module = f"spec_iso_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text(
        "import os\n"
        "def evaluate(config):\n"
        "    return {'accuracy': config['x'], 'cwd_ok': float(os.getcwd().endswith('work')),\n"
        "            'flag': float(os.environ['SPEC_FLAG'])}\n")
    (tmp_path / "work").mkdir()
    text = MINIMAL_SPEC.replace(
        'evaluator: {python: "tests.toy:toy_evaluate", isolate: false}',
        f"evaluator: {{python: '{module}:evaluate', cwd: work, env: {{SPEC_FLAG: 2}}, "
        f"timeout_s: 60}}")
    spec = load_spec(write(tmp_path, text))
    assert spec.evaluator.isolate and spec.evaluator.env == {"SPEC_FLAG": "2"}
    evaluator = spec.build_evaluator()
    try:
        assert type(evaluator).__name__ == "IsolatedEvaluator"
        result = evaluator.evaluate({"x": 0.5}, Monitor())
        assert result.error is None, result.error
        assert result.metrics == {"accuracy": 0.5, "cwd_ok": 1.0, "flag": 2.0}
    finally:
        evaluator.close()

    missing = text.replace(f"{module}:evaluate", f"{module}:nope")
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, missing))
    assert info.value.field_path == "evaluator.python"
    assert "nope" in info.value.message


def test_command_evaluator_is_checked_and_built(tmp_path: Path) -> None:
    script = tmp_path / "bench.py"
    script.write_text("import json, sys\n"
                      "print(json.dumps({'accuracy': float(sys.argv[1]), 'n': len(sys.argv)}))\n")
    d = command_dict()
    d["evaluator"]["command"] = {"argv": [sys.executable, "bench.py", "{lr}",
                                          ["--threads", "{threads}"], "{config_json}"]}
    spec = parse(d, tmp_path)
    evaluator = spec.build_evaluator()
    try:
        assert type(evaluator).__name__ == "CommandEvaluator"
        config = {"backend": "onnx", "batch_size": 4, "lr": 0.01}
        result = evaluator.evaluate(config, Monitor())
        assert result.error is None, result.error
        assert result.metrics == {"accuracy": 0.01, "n": 3}  # the threads group is dropped
    finally:
        evaluator.close()


@pytest.mark.parametrize(("argv", "field", "hint"), [
    (["surely-not-a-program-xyz", "a"], "evaluator.command.argv[0]",
     "install it or give its full path"),
    (["./missing.sh"], "evaluator.command.argv[0]", "does not exist"),
    (["./bench.py"], "evaluator.command.argv[0]", "chmod +x"),
    ([sys.executable, "--batch={batch"], "evaluator.command.argv[1]", "literal braces"),
    ([sys.executable, "{}"], "evaluator.command.argv[1]", "put a parameter name"),
    ([sys.executable, "{lr!r}"], "evaluator.command.argv[1]", "is not supported"),
    ([sys.executable, []], "evaluator.command.argv[1]", "is an empty group"),
    ([sys.executable, "{config_jsn}"], "evaluator.command.argv[1]",
     "did you mean 'config_json'?"),
])
def test_command_checks(tmp_path: Path, argv: list[Any], field: str, hint: str) -> None:
    (tmp_path / "bench.py").write_text("print('{}')\n")
    d = command_dict()
    d["evaluator"]["command"] = {"argv": argv}
    err = error_of(d, tmp_path)
    assert err.field_path == field, str(err)
    assert hint in err.message, str(err)


_PLACES = ("placeholders must name a parameter of space (backend, batch_size, lr, threads) "
           "or be {config_json} or {python} (the tuner's interpreter); write {{ and }} for "
           "literal braces")


@pytest.mark.parametrize(("path", "value", "field", "message"), [
    ("evaluator.command.argv.4", "{batch}", "evaluator.command.argv[4]",
     f"unknown placeholder {{batch}} (did you mean 'batch_size'?); {_PLACES}"),
    ("evaluator.command.argv.4", "{0}", "evaluator.command.argv[4]",
     f"unknown placeholder {{0}}; {_PLACES}"),
    ("evaluator.command.argv.4", "x{}", "evaluator.command.argv[4]",
     "'x{}' has an empty placeholder {}; put a parameter name inside the braces, or write "
     "{{ and }} for literal braces"),
    ("evaluator.command.argv.4", "{lr!s}", "evaluator.command.argv[4]",
     "'{lr!s}': the conversion !s is not supported; write {lr}"),
    ("evaluator.command.env.OMP_NUM_THREADS", "{lr:{w}}",
     "evaluator.command.env.OMP_NUM_THREADS",
     "'{lr:{w}}': nested placeholders in a format spec are not supported; write {lr} or "
     "{lr:.3g}"),
    ("evaluator.command.metrics_file", "m-{batch_size.json", "evaluator.command.metrics_file",
     "'m-{batch_size.json': expected '}' before end of string; write {{ and }} for literal "
     "braces"),
    ("space.python", {"type": "int", "low": 1, "high": 2}, "space.python",
     "the name 'python' is reserved: {python} in the command evaluator's templates is the "
     "tuner's Python interpreter; rename the parameter (e.g. python_value)"),
])
def test_template_mistakes_word_for_word(path: str, value: Any, field: str,
                                         message: str) -> None:
    """The template engine checks the spec's templates, in the spec's words (issue 19)."""
    err = error_of(mutated(path, value, command_dict()))
    assert (err.field_path, err.message) == (field, message)


WEIRD_YAML = ["2024-01-01", "2024-01-01 10:00:00", "!!set {a, b}", ".nan", "-.inf", "1e999",
              "123456789012345678901234567890", "{1: 2}", "[]", "{}", "~", "!!binary aGk=",
              "&a [*a]", "[[[[[[1]]]]]]", "0x1F", "true", "'{backend}'", "{? [1] : 2}"]


def test_weird_yaml_values_anywhere_give_spec_errors() -> None:
    """Every value of the valid spec, replaced in the YAML text by odd YAML: only SpecError."""
    base = command_dict()
    base["evaluator"]["command"]["argv"][0] = "python"
    seen = 0
    for path in _paths(base):
        tree = copy.deepcopy(base)
        _container(tree, path)[path[-1]] = "@@WEIRD@@"
        text = yaml.safe_dump(tree, default_flow_style=True, width=10**6)
        assert "'@@WEIRD@@'" in text
        for weird in WEIRD_YAML:
            try:
                parse_spec_text(text.replace("'@@WEIRD@@'", weird), base_dir=ROOT)
            except SpecError as exc:
                assert "internal error" not in exc.message, str(exc)
            seen += 1
    assert seen > 500


def test_an_estimator_wraps_the_evaluator_and_round_trips() -> None:
    from deploytune.evaluators.estimated import EstimatedEvaluator

    spec = parse(mutated("evaluator.estimate", "tests.toy:toy_evaluate"))
    assert spec.evaluator.estimate == "tests.toy:toy_evaluate"
    assert parse(spec.to_dict()) == spec
    evaluator = spec.build_evaluator()
    try:
        assert isinstance(evaluator, EstimatedEvaluator)
        assert evaluator.estimate.__name__ == "toy_evaluate"
    finally:
        evaluator.close()
