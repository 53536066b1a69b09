"""The YAML spec file: one validated, immutable description of a tuning study.

A spec file names the search space, the objective and the constraints, how to evaluate a
configuration, and the budget. :func:`load_spec` reads it and validates *everything* up front:
the space, the constraints, the sampler and its options (by building the sampler once), the
evaluator (by importing the Python target or finding the command's executable, and checking
the command's ``{placeholders}`` against the space). A mistake raises :class:`SpecError`,
whose message names the field (``evaluator.command.argv[2]``, ``space.threads.low``,
``constraints[1]``) and says how to fix it; loading never raises anything else.

Example:
    .. code-block:: yaml

        study: resnet-serving
        space:
          backend: {type: categorical, choices: [eager, onnx]}
          batch_size: {type: int, low: 1, high: 64, log: true}
          threads: {type: int, low: 1, high: 8, when: {backend: [eager]}}
        forbidden:
          - {backend: [onnx], batch_size: [64]}
        objective: {maximize: throughput}
        constraints: ["p95_ms <= 20", "memory_mb <= 512"]
        evaluator:
          python: bench.serve:evaluate
          timeout_s: 60
          rules: [{pattern: "CUDA out of memory", kind: oom}]
        budget: 25
        sampler: tba-tpe
        seed: 0

    >>> spec = load_spec("study.yaml")
    >>> evaluator = spec.build_evaluator()
"""

from __future__ import annotations

import copy
import difflib
import importlib
import math
import re
import string
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from deploytune.early_abort import EarlyAbort, parse_early_abort
from deploytune.evaluators.classify import Rule
from deploytune.outcome import Constraint, CrashKind, Objective
from deploytune.space import Space

if TYPE_CHECKING:
    import optuna

    from deploytune.evaluators.base import Evaluator
    from deploytune.evaluators.command import CommandEvaluator
    from deploytune.evaluators.isolated import IsolatedEvaluator

__all__ = [
    "EvaluatorSpec",
    "Spec",
    "SpecError",
    "load_spec",
    "parse_spec",
    "parse_spec_text",
]

STRING_SOURCE = "<string>"
"""The ``source`` of a spec that was not read from a file."""
DEFAULT_STUDY_NAME = "deploytune"
"""The study name (and storage file stem) of a spec not read from a file."""
PRUNERS = ("none", "median", "successive_halving", "hyperband")
"""Accepted values of ``pruner``."""

_TOP_KEYS = ("study", "space", "forbidden", "objective", "constraints", "evaluator",
             "early_abort", "pruner", "budget", "sampler", "seed", "storage")
_REQUIRED = ("space", "objective", "evaluator", "budget")
_EVALUATOR_KEYS = ("python", "command", "isolate", "cwd", "env", "timeout_s", "memory_mb",
                   "retries", "rules")
_COMMAND_KEYS = ("argv", "env", "metrics_file")
_RULE_KEYS = ("pattern", "kind", "ignore_case")
_BUDGET_KEYS = ("trials", "seconds")
_SAMPLER_KEYS = ("name", "options")
_OBJECTIVE_KEYS = ("metric", "direction", "maximize", "minimize")
_EARLY_ABORT_KEYS = ("before_feasible", "after_feasible", "enabled")
_PARAM_KEYS = {
    "categorical": ("type", "choices", "when"),
    "int": ("type", "low", "high", "log", "when"),
    "float": ("type", "low", "high", "log", "when"),
}
_MISPLACED = {
    "": {"python": "evaluator", "command": "evaluator", "isolate": "evaluator",
         "cwd": "evaluator", "env": "evaluator", "timeout_s": "evaluator",
         "memory_mb": "evaluator", "retries": "evaluator", "rules": "evaluator",
         "argv": "evaluator.command", "metrics_file": "evaluator.command",
         "trials": "budget", "seconds": "budget", "metric": "objective",
         "direction": "objective", "maximize": "objective", "minimize": "objective",
         "options": "sampler", "before_feasible": "early_abort",
         "after_feasible": "early_abort"},
    "evaluator": {"argv": "evaluator.command", "metrics_file": "evaluator.command",
                  "pattern": "an entry of evaluator.rules",
                  "kind": "an entry of evaluator.rules",
                  "early_abort": "the top level", "budget": "the top level",
                  "sampler": "the top level", "seed": "the top level"},
}
_MAX_TRIALS = 1_000_000
_MAX_INT_BOUND = 2**62
_MAX_SEED = 2**32 - 1
_MAX_DEPTH = 50
_MAX_STUDY_NAME = 128
_TARGET_RE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")
_SCHEME_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<rest>.*)$", re.DOTALL)
_CONFIG_JSON = "config_json"  # the command evaluator's whole-configuration placeholder
_PYTHON = "python"  # the command evaluator's placeholder for the tuner's interpreter
_PLAIN_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


# ------------------------------------------------------------------------------------ errors
class SpecError(Exception):
    """A mistake in a spec file: which field, what is wrong and how to fix it.

    ``str(error)`` is ``"<source>: <field_path>: <message>"`` (the field part is left out for
    mistakes of the file as a whole, such as malformed YAML).

    Args:
        field_path: Where the mistake is, e.g. ``"evaluator.command.argv[2]"``,
            ``"space.threads.low"`` or ``"constraints[1]"``; empty for the whole file.
        message: What is wrong and how to fix it.
        source: The spec file's path, or ``"<string>"``.

    Attributes:
        field_path: As given.
        message: As given.
        source: As given.
    """

    def __init__(self, field_path: str, message: str, source: str = STRING_SOURCE):
        super().__init__(field_path, message, source)
        self.field_path = field_path
        self.message = message
        self.source = source

    def __str__(self) -> str:
        if self.field_path:
            return f"{self.source}: {self.field_path}: {self.message}"
        return f"{self.source}: {self.message}"


class _Invalid(Exception):
    """Raised inside the parser; turned into a :class:`SpecError` carrying the source."""

    def __init__(self, path: str, message: str):
        super().__init__(path, message)
        self.path = path
        self.message = message


# ------------------------------------------------------------------------------ dataclasses
@dataclass(frozen=True)
class EvaluatorSpec:
    """How a configuration is evaluated (the ``evaluator`` section, validated).

    Attributes:
        kind: ``"python"`` (a function ``module:function``) or ``"command"`` (an argv).
        target: For ``python``: ``"package.module:function"``; ``None`` for commands.
        argv: For ``command``: the argv template; items are strings or tuples of strings.
            Empty for ``python``.
        env: Extra environment variables (values may hold ``{placeholders}`` for commands);
            ``None`` when not given.
        cwd: The absolute working folder of the evaluation (default: the spec's folder). For an
            in-process evaluator it is the spec's folder, put on ``sys.path`` for the import;
            the function runs in the tuner's working folder.
        timeout_s: Wall-clock limit of one evaluation in seconds, or ``None``.
        memory_mb: Memory cap of one evaluation in MiB, or ``None``.
        metrics_file: For ``command``: the JSON file the command writes its metrics to
            (``None``: the last JSON line of its stdout).
        isolate: For ``python``: run the function in a child process (``True``, the default)
            or in the tuner's process (``False``). Always ``True`` for commands.
    """

    kind: str
    target: str | None
    argv: tuple[str | tuple[str, ...], ...]
    env: dict[str, str] | None
    cwd: Path
    timeout_s: float | None
    memory_mb: int | None
    metrics_file: str | None
    isolate: bool

    def to_dict(self) -> dict[str, Any]:
        """The ``evaluator`` section's dict form (without ``retries`` and ``rules``)."""
        out: dict[str, Any] = {}
        if self.kind == "python":
            out["python"] = self.target
            out["isolate"] = self.isolate
            out["env"] = dict(self.env) if self.env is not None else None
        else:
            out["command"] = {
                "argv": [a if isinstance(a, str) else list(a) for a in self.argv],
                "env": dict(self.env) if self.env is not None else None,
                "metrics_file": self.metrics_file,
            }
        out["cwd"] = str(self.cwd) if self.isolate else None  # in-process: the tuner's folder
        out["timeout_s"] = self.timeout_s
        out["memory_mb"] = self.memory_mb
        return out


@dataclass(frozen=True)
class Spec:
    """A validated study description; build it with :func:`load_spec` or :func:`parse_spec`.

    Attributes:
        source: The spec file's path as given, or ``"<string>"``.
        base_dir: The absolute folder relative paths are resolved against (the file's folder).
        study_name: The Optuna study name (default: the spec file's stem).
        space: The search space, forbidden combinations included.
        objective: The metric to optimise and its direction.
        constraints: The hard constraints.
        evaluator: How to evaluate a configuration.
        retries: How many times a ``transient`` crash is retried within its trial.
        rules: Crash classification rules, applied in order.
        early_abort: The early-abort rule.
        pruner: ``None``, ``"median"``, ``"successive_halving"`` or ``"hyperband"``.
        budget_trials: The maximum number of trials, or ``None``.
        budget_seconds: The maximum wall-clock seconds, or ``None`` (at least one is set).
        sampler: The sampler's registered name (see ``deploytune.samplers.available()``).
        sampler_options: Keyword options of the sampler.
        seed: The sampler's seed, or ``None`` for a random one.
        storage: The Optuna storage URL (sqlite paths are absolute).
    """

    source: str
    base_dir: Path
    study_name: str
    space: Space
    objective: Objective
    constraints: tuple[Constraint, ...]
    evaluator: EvaluatorSpec
    retries: int = 2
    rules: tuple[Rule, ...] = ()
    early_abort: EarlyAbort = field(default_factory=EarlyAbort)
    pruner: str | None = None
    budget_trials: int | None = None
    budget_seconds: float | None = None
    sampler: str = "default"
    sampler_options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    storage: str = ""

    def build_evaluator(self) -> Evaluator:
        """A fresh evaluator as described by :attr:`evaluator`; the caller closes it.

        ``python`` with ``isolate: true`` gives an
        :class:`~deploytune.evaluators.isolated.IsolatedEvaluator` (the spec's folder on the
        child's ``sys.path``), ``isolate: false`` a
        :class:`~deploytune.evaluators.base.FunctionEvaluator` over the imported function (the
        spec's folder is put on this process's ``sys.path``), ``command`` a
        :class:`~deploytune.evaluators.command.CommandEvaluator`.

        Raises:
            SpecError: if the target cannot be imported any more (the files changed since the
                spec was loaded).
        """
        try:
            return _build_evaluator(self.evaluator, self.base_dir)
        except _Invalid as exc:
            raise SpecError(exc.path, exc.message, self.source) from None

    def build_pruner(self) -> optuna.pruners.BasePruner | None:
        """The Optuna pruner named by :attr:`pruner`, or ``None``."""
        import optuna

        if self.pruner == "median":
            return optuna.pruners.MedianPruner()
        if self.pruner == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner()
        if self.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner()
        return None

    @property
    def report_dir(self) -> Path:
        """Where reports go: ``<study>-report`` next to the sqlite file, else the spec's folder."""
        db = _sqlite_file(self.storage)
        folder = db.parent if db is not None else self.base_dir
        return folder / f"{self.study_name}-report"

    def to_dict(self) -> dict[str, Any]:
        """The spec in its YAML form, every default filled in; JSON-serialisable.

        ``parse_spec(spec.to_dict(), base_dir=spec.base_dir, source=spec.source)`` gives an
        equal spec. Sqlite storage and ``evaluator.cwd`` appear as absolute paths.
        """
        evaluator = self.evaluator.to_dict()
        evaluator["retries"] = self.retries
        evaluator["rules"] = [{"pattern": r.pattern, "kind": r.kind.value,
                               "ignore_case": r.ignore_case} for r in self.rules]
        early: dict[str, Any] | bool = False
        if self.early_abort.enabled:
            early = {"before_feasible": self.early_abort.before_feasible,
                     "after_feasible": self.early_abort.after_feasible}
        return {
            "study": self.study_name,
            "space": self.space.to_dict(),
            "forbidden": [{k: list(v) for k, v in rule.items()}
                          for rule in self.space.forbidden],
            "objective": {"metric": self.objective.metric,
                          "direction": self.objective.direction},
            "constraints": [f"{c.metric} {c.op} {_number_text(c.limit)}"
                            for c in self.constraints],
            "evaluator": evaluator,
            "early_abort": early,
            "pruner": self.pruner or "none",
            "budget": {"trials": self.budget_trials, "seconds": self.budget_seconds},
            "sampler": {"name": self.sampler, "options": copy.deepcopy(self.sampler_options)},
            "seed": self.seed,
            "storage": self.storage,
        }


# ---------------------------------------------------------------------------------- loading
def load_spec(path: str | Path, *, check_evaluator: bool = True) -> Spec:
    """Read and validate the spec file at ``path``.

    Relative paths inside the spec (``evaluator.cwd``, sqlite storage) are resolved against the
    file's folder; the study name and the storage file default to the file's stem.

    Args:
        path: The spec file.
        check_evaluator: Import the Python target / look up the command's executable. Turn it
            off to read a spec only for its study (``deploytune show``): nothing is imported
            or run then, and every other check still applies.

    Raises:
        SpecError: for anything wrong, the file's absence included; never anything else.
    """
    source = str(path)
    try:
        file = Path(path).expanduser()
        data = file.read_bytes()
        base_dir = file.resolve().parent
    except FileNotFoundError:
        raise SpecError("", "file not found; check the path (relative paths start from "
                        f"{_cwd_text()})", source) from None
    except IsADirectoryError:
        raise SpecError("", "is a folder, not a file; give the path of the .yaml spec file",
                        source) from None
    except PermissionError:
        raise SpecError("", "permission denied; make the file readable", source) from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise SpecError("", f"cannot read the file ({exc}); check the path", source) from None
    return parse_spec_text(data, base_dir=base_dir, source=source,
                           check_evaluator=check_evaluator)


def parse_spec_text(text: str | bytes, *, base_dir: str | Path, source: str = STRING_SOURCE,
                    check_evaluator: bool = True) -> Spec:
    """Parse YAML ``text`` (a spec file's content) and validate it.

    Args:
        text: The YAML document (``bytes`` are decoded as UTF-8 / UTF-16 with a BOM).
        base_dir: The folder relative paths are resolved against.
        source: Shown in error messages; a file path also gives the default study name.
        check_evaluator: As for :func:`load_spec`.

    Raises:
        SpecError: naming the line and column of a YAML syntax error, or the field at fault.
    """
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise SpecError("", _yaml_message(exc), source) from None
    except yaml.YAMLError as exc:
        raise SpecError("", f"invalid YAML: {_one_line(str(exc))}; fix the file's syntax",
                        source) from None
    except RecursionError:
        raise SpecError("", "invalid YAML: nested too deeply; flatten the document",
                        source) from None
    except Exception as exc:  # e.g. a date such as 2024-13-45, an integer with 5000 digits
        raise SpecError("", f"invalid YAML: a value cannot be read ({_one_line(str(exc))}); "
                        f"quote it to make it a string", source) from None
    return parse_spec(data, base_dir=base_dir, source=source, check_evaluator=check_evaluator)


def parse_spec(data: Any, *, base_dir: str | Path, source: str = STRING_SOURCE,
               check_evaluator: bool = True) -> Spec:
    """Validate the already-parsed YAML ``data`` of a spec and build the :class:`Spec`.

    Everything is checked: types, ranges, the space, constraints, the sampler and its options
    (the sampler is built once), the pruner, the storage URL and the evaluator (the Python
    target is imported, in a child process when isolated; the command's executable is looked
    up and its placeholders are checked against the space). With ``isolate: false`` the target
    is imported into this process, with ``base_dir`` put first on ``sys.path``.

    Args:
        data: The spec as a mapping (what ``yaml.safe_load`` returns for a spec file).
        base_dir: The folder relative paths are resolved against.
        source: Shown in error messages. Unless it is ``"<...>"``, its stem is the default
            study name and storage file name.
        check_evaluator: As for :func:`load_spec`.

    Raises:
        SpecError: the first mistake found; never anything else.
    """
    try:
        return _Parser(Path(base_dir), source, check_evaluator).parse(data)
    except _Invalid as exc:
        raise SpecError(exc.path, exc.message, source) from None
    except RecursionError:
        raise SpecError("", "the spec is nested too deeply (or refers to itself through a "
                        "YAML alias); simplify it", source) from None
    except Exception as exc:  # a safety net: every known mistake has its own message
        raise SpecError("", f"internal error while validating the spec "
                        f"({type(exc).__name__}: {_one_line(str(exc))}); please report it",
                        source) from None


# ------------------------------------------------------------------------------------- yaml
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


class _Loader(_SafeLoader):
    """A safe YAML loader that rejects a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # unhashable: the base class reports it
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found the key {_show(key)} twice; keep only one of them",
                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = exc.problem or exc.context or "syntax error"
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    return (f"invalid YAML{where}: {_one_line(problem)}{_one_line(context)}; fix the syntax "
            f"there (check indentation, colons and quotes)")


# ------------------------------------------------------------------------------- formatting
def _show(value: Any, limit: int = 60) -> str:
    """A short, safe ``repr`` for messages."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _kind_of(value: Any) -> str:
    """How a value reads in messages: 'a string', 'a list', 'true', ..."""
    if value is None:
        return "null (nothing)"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    names = {int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", bytes: "binary data", set: "a set"}
    for cls, name in names.items():
        if isinstance(value, cls):
            return f"{name} ({_show(value, 40)})" if cls in (int, float, str) else name
    return f"a {type(value).__name__}"


def _join(path: str, key: Any) -> str:
    """``path.key``, or ``path[<repr>]`` for keys that do not read as plain names."""
    if isinstance(key, str) and _PLAIN_KEY_RE.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{_show(key, 40)}]"


def _number_text(x: float) -> str:
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def _sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL; ``None`` for other URLs and in-memory ones."""
    m = _SCHEME_RE.match(url)
    if m is None or m["scheme"].lower() != "sqlite" or not m["rest"].startswith("/"):
        return None
    db = m["rest"][1:].partition("?")[0]
    if not db or db == ":memory:":
        return None
    return Path(db)


def _cwd_text() -> str:
    try:
        return str(Path.cwd())
    except OSError:
        return "the current folder"


def _suggest(word: Any, choices: Sequence[str]) -> str:
    """`` did you mean 'x'?`` or nothing."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    low = word.lower().strip()
    if not close:
        close = [c for c in choices if c.lower() == low]
    if not close and len(low) >= 2:
        close = [c for c in choices if c.lower().startswith(low)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


# ------------------------------------------------------------------------ value validators
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_keys(raw: Mapping[Any, Any], path: str, allowed: Sequence[str]) -> None:
    """Reject unknown keys, suggesting the closest valid one."""
    for key in raw:
        if isinstance(key, str) and key in allowed:
            continue
        where = _MISPLACED.get(path, {}).get(key) if isinstance(key, str) else None
        at = _join(path, key)
        if where is not None:
            raise _Invalid(at, f"{key!r} does not belong here; move it under {where}")
        if not isinstance(key, str):
            raise _Invalid(at, f"keys must be strings, got {_kind_of(key)}; valid keys here "
                           f"are {', '.join(allowed)}")
        raise _Invalid(at, f"unknown key {key!r}{_suggest(key, allowed)}; valid keys here are "
                       f"{', '.join(allowed)}")


def _mapping(raw: Any, path: str, example: str) -> Mapping[Any, Any]:
    if not isinstance(raw, Mapping):
        raise _Invalid(path, f"expected a mapping, got {_kind_of(raw)}; write e.g. {example}")
    return raw


def _string(raw: Any, path: str, what: str, example: str) -> str:
    if not isinstance(raw, str):
        raise _Invalid(path, f"expected {what}, got {_kind_of(raw)}; write e.g. {example}")
    text = raw.strip()
    if not text:
        raise _Invalid(path, f"is empty; give {what}, e.g. {example}")
    if "\x00" in text:
        raise _Invalid(path, "contains a NUL character; remove it")
    return text


def _positive_number(raw: Any, path: str, unit: str) -> float:
    if not _is_number(raw):
        raise _Invalid(path, f"expected a number of {unit}, got {_kind_of(raw)}; write e.g. "
                       f"{path.rsplit('.', 1)[-1]}: 60")
    try:
        value = float(raw)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value) or value <= 0:
        raise _Invalid(path, f"must be a finite number of {unit} > 0 (got {_show(raw)}); "
                       f"give a positive value or remove the key")
    return value


def _int_at_least(raw: Any, path: str, low: int, high: int, example: int) -> int:
    key = path.rsplit(".", 1)[-1]
    if isinstance(raw, bool) or not isinstance(raw, int):
        hint = ""
        if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
            hint = f" without a decimal point ({int(raw)})"
        raise _Invalid(path, f"expected a whole number, got {_kind_of(raw)}; write e.g. "
                       f"{key}: {example}{hint}")
    if not low <= raw <= high:
        raise _Invalid(path, f"must be between {low} and {high} (got {_show(raw)}); "
                       f"e.g. {key}: {example}")
    return int(raw)


def _check_jsonable(value: Any, path: str, depth: int = 0) -> None:
    """Options must be plain YAML data (they are stored in reports as JSON)."""
    if depth > _MAX_DEPTH:
        raise _Invalid(path, "is nested too deeply (or refers to itself through a YAML alias); "
                       "simplify it")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid(path, f"must be a finite number (got {_show(value)})")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_jsonable(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Invalid(_join(path, k), f"keys must be strings, got {_kind_of(k)}; "
                               f"quote the key")
            _check_jsonable(v, _join(path, k), depth + 1)
        return
    raise _Invalid(path, f"expected plain data (a string, number, boolean, null, list or "
                   f"mapping), got {_kind_of(value)}; quote it to make it a string")


# ----------------------------------------------------------------------------------- parser
class _Parser:
    """Validates one spec; every method raises :class:`_Invalid` on a mistake."""

    def __init__(self, base_dir: Path, source: str, check_evaluator: bool = True):
        self.source = source
        self.check_evaluator = check_evaluator
        try:
            self.base_dir = base_dir.expanduser().resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            raise _Invalid("", f"cannot resolve the spec's folder {str(base_dir)!r} ({exc})") \
                from None
        stem = Path(source).stem if not (source.startswith("<") and source.endswith(">")) \
            else ""
        self.stem = stem or DEFAULT_STUDY_NAME

    def parse(self, data: Any) -> Spec:
        if data is None:
            raise _Invalid("", "the spec is empty; it needs at least space, objective, "
                           "evaluator and budget")
        if not isinstance(data, Mapping):
            raise _Invalid("", f"the spec must be a mapping of keys (space, objective, "
                           f"evaluator, budget, ...), got {_kind_of(data)}; write "
                           f"'key: value' lines at the top level")
        _check_keys(data, "", _TOP_KEYS)
        for key in _REQUIRED:
            if data.get(key) is None:
                raise _Invalid(key, f"missing; add the required key {key!r} ("
                               f"{_REQUIRED_EXAMPLES[key]})")
        study = self.study(data.get("study"))
        space = self.space(data["space"], data.get("forbidden"))
        objective = self.objective(data["objective"])
        constraints = self.constraints(data.get("constraints"))
        trials, seconds = self.budget(data["budget"])
        seed = self.seed(data.get("seed"))
        sampler, options = self.sampler(data.get("sampler"), space, seed, trials)
        pruner = self.pruner(data.get("pruner"))
        early = self.early_abort(data.get("early_abort"))
        storage = self.storage(data.get("storage"))
        evaluator, retries, rules = self.evaluator(data["evaluator"], space)
        return Spec(source=self.source, base_dir=self.base_dir, study_name=study, space=space,
                    objective=objective, constraints=constraints, evaluator=evaluator,
                    retries=retries, rules=rules, early_abort=early, pruner=pruner,
                    budget_trials=trials, budget_seconds=seconds, sampler=sampler,
                    sampler_options=options, seed=seed, storage=storage)

    # ------------------------------------------------------------------------------ study
    def study(self, raw: Any) -> str:
        if raw is None:
            return self.stem
        name = _string(raw, "study", "a study name", "study: resnet-serving")
        if len(name) > _MAX_STUDY_NAME:
            raise _Invalid("study", f"is {len(name)} characters long; keep it to "
                           f"{_MAX_STUDY_NAME} (it names the report folder)")
        if any(c in name for c in "/\\") or name in (".", ".."):
            raise _Invalid("study", f"{name!r} cannot be used in a file name; use letters, "
                           f"digits, '-' and '_' (no slashes)")
        return name

    # ------------------------------------------------------------------------------ space
    def space(self, raw: Any, forbidden: Any) -> Space:
        example = "space: {batch_size: {type: int, low: 1, high: 64}}"
        params = _mapping(raw, "space", example)
        if not params:
            raise _Invalid("space", f"has no parameters; declare at least one, e.g. {example}")
        declared: list[str] = []
        for name, definition in params.items():
            self.param(name, definition, declared, list(params))
            declared.append(name)
        if forbidden is not None:
            self.forbidden(forbidden, params)
        try:
            return Space.from_dict(params, forbidden)
        except ValueError as exc:
            raise _Invalid(*_space_error_path(str(exc), declared)) from None

    def param(self, name: Any, d: Any, declared: list[str], all_names: list[Any]) -> None:
        if not isinstance(name, str) or not name.strip():
            raise _Invalid(_join("space", name), f"parameter names must be non-empty strings, "
                           f"got {_kind_of(name)}; quote the name")
        path = _join("space", name)
        d = _mapping(d, path, f"{name}: {{type: int, low: 1, high: 8}}")
        kind = d.get("type")
        if kind is None:
            raise _Invalid(f"{path}.type", "missing; add type: categorical, int or float")
        if not isinstance(kind, str) or kind not in _PARAM_KEYS:
            raise _Invalid(f"{path}.type", f"must be categorical, int or float, got "
                           f"{_kind_of(kind)}{_suggest(kind, list(_PARAM_KEYS))}")
        _check_keys(d, path, _PARAM_KEYS[kind])
        if kind == "categorical":
            choices = d.get("choices")
            if not isinstance(choices, list) or not choices:
                raise _Invalid(f"{path}.choices", f"expected a non-empty list of values, got "
                               f"{_kind_of(choices)}; write e.g. choices: [eager, onnx]")
            _check_choices(choices, f"{path}.choices")
        else:
            self.bounds(path, kind, d)
        when = d.get("when")
        if when is None:
            if "when" in d:
                raise _Invalid(f"{path}.when", "is empty; remove it or write e.g. "
                               "when: {backend: [eager]}")
            return
        when = _mapping(when, f"{path}.when", "when: {backend: [eager]}")
        for parent, allowed in when.items():
            at = _join(f"{path}.when", parent)
            if parent == name:
                raise _Invalid(at, "a parameter cannot depend on itself; remove this entry")
            if not isinstance(parent, str) or parent not in declared:
                if parent in all_names:
                    raise _Invalid(at, f"the parent {parent!r} is declared after {name!r}; "
                                   f"move {parent!r} above {name!r} in space")
                raise _Invalid(at, f"unknown parent {_show(parent)}"
                               f"{_suggest(parent, declared)}; 'when' must name a parameter "
                               f"declared above {name!r}")
            if allowed is None or (isinstance(allowed, list) and not allowed):
                raise _Invalid(at, f"gives no allowed values; write e.g. {parent}: [value]")

    def bounds(self, path: str, kind: str, d: Mapping[Any, Any]) -> None:
        values: dict[str, float] = {}
        for key in ("low", "high"):
            at = f"{path}.{key}"
            if key not in d or d[key] is None:
                raise _Invalid(at, f"missing; an {kind} parameter needs low and high, e.g. "
                               f"{{type: {kind}, low: 1, high: 8}}")
            v = d[key]
            if kind == "int":
                if isinstance(v, bool) or not isinstance(v, int):
                    raise _Invalid(at, f"expected a whole number, got {_kind_of(v)}; write e.g. "
                                   f"{key}: 8 (use type: float for fractional bounds)")
                if abs(v) > _MAX_INT_BOUND:
                    raise _Invalid(at, f"is too large (|{key}| must be at most 2**62); "
                                   f"use a smaller bound")
                values[key] = float(v)
            else:
                if not _is_number(v):
                    raise _Invalid(at, f"expected a number, got {_kind_of(v)}; write e.g. "
                                   f"{key}: 0.5")
                try:
                    f = float(v)
                except OverflowError:
                    f = math.inf
                if not abs(f) < 1e300:
                    raise _Invalid(at, f"must be a finite number below 1e300 (got {_show(v)})")
                values[key] = f
        if values["low"] > values["high"]:
            raise _Invalid(f"{path}.low", f"low ({_show(d['low'])}) is greater than high "
                           f"({_show(d['high'])}); swap them")
        log = d.get("log", False)
        if not isinstance(log, bool):
            raise _Invalid(f"{path}.log", f"expected true or false, got {_kind_of(log)}")
        if log and values["low"] <= 0:
            raise _Invalid(f"{path}.low", f"a log-scale parameter needs low > 0 (got "
                           f"{_show(d['low'])}); raise low or remove log: true")

    def forbidden(self, raw: Any, params: Mapping[Any, Any]) -> None:
        if not isinstance(raw, list):
            raise _Invalid("forbidden", f"expected a list of combinations, got "
                           f"{_kind_of(raw)}; write e.g. forbidden: [{{backend: [onnx], "
                           f"threads: [8]}}]")
        names = [n for n in params if isinstance(n, str)]
        for i, rule in enumerate(raw):
            at = f"forbidden[{i}]"
            if not isinstance(rule, Mapping) or not rule:
                raise _Invalid(at, f"expected a non-empty mapping parameter -> [values], got "
                               f"{_kind_of(rule)}; write e.g. {{backend: [onnx], threads: [8]}}")
            for name, values in rule.items():
                if not isinstance(name, str) or name not in params:
                    raise _Invalid(_join(at, name), f"unknown parameter {_show(name)}"
                                   f"{_suggest(name, names)}; name a parameter of space")
                if values is None or (isinstance(values, list) and not values):
                    raise _Invalid(_join(at, name), f"gives no values; write e.g. "
                                   f"{name}: [value]")

    # -------------------------------------------------------------------------- objective
    def objective(self, raw: Any) -> Objective:
        example = "objective: {metric: accuracy, direction: maximize}"
        if isinstance(raw, str):
            metric = _string(raw, "objective", "a metric name", example)
            return Objective(metric, "maximize")
        d = _mapping(raw, "objective", f"{example}, objective: {{minimize: p95_ms}} or "
                     f"objective: accuracy")
        _check_keys(d, "objective", _OBJECTIVE_KEYS)
        short = [k for k in ("maximize", "minimize") if k in d]
        if short:
            others = [k for k in d if k != short[0]]
            if others:
                raise _Invalid(f"objective.{others[0]}",
                               f"cannot be combined with {short[0]!r}; write either "
                               f"{{{short[0]}: <metric>}} or {{metric: <metric>, direction: "
                               f"{short[0]}}}")
            metric = _string(d[short[0]], f"objective.{short[0]}", "a metric name",
                             f"objective: {{{short[0]}: accuracy}}")
            return Objective(metric, short[0])
        if d.get("metric") is None:
            raise _Invalid("objective.metric", f"missing; name the metric to optimise, e.g. "
                           f"{example}")
        metric = _string(d["metric"], "objective.metric", "a metric name", example)
        direction = d.get("direction")
        if direction is None:
            direction = "maximize"
        if direction not in ("maximize", "minimize"):
            raise _Invalid("objective.direction", f"must be maximize or minimize, got "
                           f"{_kind_of(direction)}{_suggest(direction, ['maximize', 'minimize'])}")
        return Objective(metric, str(direction))

    def constraints(self, raw: Any) -> tuple[Constraint, ...]:
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list):
            raise _Invalid("constraints", f"expected a list of strings, got {_kind_of(raw)}; "
                           f"write e.g. constraints: [\"p95_ms <= 20\", \"memory_mb <= 512\"]")
        out: list[Constraint] = []
        for i, text in enumerate(raw):
            at = f"constraints[{i}]"
            if not isinstance(text, str):
                raise _Invalid(at, f"expected a string such as \"p95_ms <= 20\", got "
                               f"{_kind_of(text)}; quote the whole constraint")
            try:
                c = Constraint.parse(text)
            except ValueError as exc:
                raise _Invalid(at, _strip_prefix(str(exc), "constraint ")) from None
            for j, other in enumerate(out):
                if (other.metric, other.op) == (c.metric, c.op):
                    raise _Invalid(at, f"{c.metric!r} already has a '{c.op}' constraint "
                                   f"(constraints[{j}]); keep only the tighter one")
            out.append(c)
        return tuple(out)

    # ------------------------------------------------------------------------------ budget
    def budget(self, raw: Any) -> tuple[int | None, float | None]:
        example = "budget: 25 or budget: {trials: 25, seconds: 3600}"
        if isinstance(raw, Mapping):
            _check_keys(raw, "budget", _BUDGET_KEYS)
            trials = raw.get("trials")
            seconds = raw.get("seconds")
            if trials is None and seconds is None:
                raise _Invalid("budget", f"give trials, seconds or both; write e.g. {example}")
            t = None if trials is None else _int_at_least(trials, "budget.trials", 1,
                                                          _MAX_TRIALS, 25)
            s = None if seconds is None else _positive_number(seconds, "budget.seconds",
                                                              "seconds")
            return t, s
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _Invalid("budget", f"expected a number of trials or a mapping, got "
                           f"{_kind_of(raw)}; write e.g. {example}")
        return _int_at_least(raw, "budget", 1, _MAX_TRIALS, 25), None

    def seed(self, raw: Any) -> int | None:
        if raw is None:
            return None
        return _int_at_least(raw, "seed", 0, _MAX_SEED, 0)

    # ----------------------------------------------------------------------------- sampler
    def sampler(self, raw: Any, space: Space, seed: int | None,
                trials: int | None) -> tuple[str, dict[str, Any]]:
        from deploytune.samplers import available

        known = available()
        example = "sampler: tba-tpe or sampler: {name: tba-tpe, options: {min_phase1: 8}}"
        options: dict[str, Any] = {}
        name_path = "sampler"
        if raw is None:
            name = "default"
        elif isinstance(raw, Mapping):
            _check_keys(raw, "sampler", _SAMPLER_KEYS)
            name_path = "sampler.name"
            if raw.get("name") is None:
                raise _Invalid(name_path, f"missing; choose one of {', '.join(known)}")
            name = _string(raw["name"], name_path, "a sampler name", example)
            opts = raw.get("options")
            if opts is not None:
                opts = _mapping(opts, "sampler.options", "options: {min_phase1: 8}")
                _check_jsonable(dict(opts), "sampler.options")
                options = dict(opts)
        else:
            name = _string(raw, "sampler", "a sampler name", example)
        if name not in known:
            raise _Invalid(name_path, f"unknown sampler {name!r}{_suggest(name, known)}; "
                           f"choose one of {', '.join(known)}")
        reserved = [k for k in ("space", "seed", "budget") if k in options]
        if reserved:
            raise _Invalid(f"sampler.options.{reserved[0]}", f"is set by the spec itself; "
                           f"remove it here (use the top-level {reserved[0]!r} key"
                           f"{'' if reserved[0] != 'space' else ' for the search space'})")
        if name == "random" and options:
            raise _Invalid("sampler.options", "the random sampler takes no options; remove "
                           "them")
        _check_sampler(name, options, space, seed, trials)
        return name, options

    def pruner(self, raw: Any) -> str | None:
        if raw is None:
            return None
        if not isinstance(raw, str) or raw not in PRUNERS:
            raise _Invalid("pruner", f"must be one of {', '.join(PRUNERS)}, got "
                           f"{_kind_of(raw)}{_suggest(raw, PRUNERS)}")
        return None if raw == "none" else raw

    def early_abort(self, raw: Any) -> EarlyAbort:
        example = "early_abort: {before_feasible: 5, after_feasible: 3} (or true / false)"
        if raw is None or isinstance(raw, bool):
            return parse_early_abort(raw)
        d = _mapping(raw, "early_abort", example)
        _check_keys(d, "early_abort", _EARLY_ABORT_KEYS)
        settings: dict[str, Any] = {}
        for key, v in d.items():
            at = f"early_abort.{key}"
            if v is None:
                continue
            if key == "enabled":
                if not isinstance(v, bool):
                    raise _Invalid(at, f"expected true or false, got {_kind_of(v)}")
            elif not _is_number(v) or not math.isfinite(_safe_float(v)) or v < 1:
                raise _Invalid(at, f"must be a number >= 1 (a multiple of the constraint's "
                               f"limit), got {_kind_of(v)}; e.g. {key}: 3")
            settings[key] = v
        try:
            return parse_early_abort(settings)
        except (TypeError, ValueError) as exc:
            raise _Invalid("early_abort", _one_line(str(exc))) from None

    # ----------------------------------------------------------------------------- storage
    def storage(self, raw: Any) -> str:
        if raw is None:
            return f"sqlite:///{self.base_dir / (self.stem + '.db')}"
        example = "storage: sqlite:///study.db or storage: postgresql://user@host/db"
        url = _string(raw, "storage", "a storage URL", example)
        m = _SCHEME_RE.match(url)
        if m is None:
            db = re.sub(r"^sqlite:/*", "", url)
            hint = f"sqlite:///{db}" if db.endswith((".db", ".sqlite", ".sqlite3")) else None
            raise _Invalid("storage", f"{url!r} is not a storage URL; "
                           + (f"write {hint}" if hint else f"write e.g. {example}"))
        if m["scheme"].lower() != "sqlite":
            return url
        rest = m["rest"]
        if not rest:
            return url  # sqlite:// is an in-memory database
        if not rest.startswith("/"):
            raise _Invalid("storage", f"a sqlite URL has three slashes before a relative path "
                           f"(sqlite:///study.db) and four before an absolute one; got {url!r}")
        db, sep, query = rest[1:].partition("?")
        if not db or db == ":memory:":
            return url
        try:
            file = (self.base_dir / Path(db).expanduser()).resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            raise _Invalid("storage", f"cannot resolve the sqlite path {db!r} ({exc})") \
                from None
        if _is_dir(file):
            raise _Invalid("storage", f"{str(file)!r} is a folder; name a database file inside "
                           f"it, e.g. sqlite:///{db.rstrip('/')}/study.db")
        if not _is_dir(file.parent):
            raise _Invalid("storage", f"the folder {str(file.parent)!r} does not exist; create "
                           f"it or fix the path (relative paths start from the spec's folder)")
        return f"sqlite:///{file}{sep}{query}"

    # --------------------------------------------------------------------------- evaluator
    def evaluator(self, raw: Any, space: Space) -> tuple[EvaluatorSpec, int, tuple[Rule, ...]]:
        d = _mapping(raw, "evaluator", "evaluator: {python: my_package.bench:evaluate}")
        _check_keys(d, "evaluator", _EVALUATOR_KEYS)
        has_python = d.get("python") is not None
        has_command = d.get("command") is not None
        if has_python and has_command:
            raise _Invalid("evaluator", "gives both python and command; keep exactly one")
        if not has_python and not has_command:
            raise _Invalid("evaluator", "needs python or command; add e.g. python: "
                           "my_package.bench:evaluate or command: {argv: [python, bench.py, "
                           "--batch, \"{batch_size}\"]}")
        cwd = self.cwd(d.get("cwd"))
        env = _env(d.get("env"), "evaluator.env")
        timeout_s = None if d.get("timeout_s") is None else _positive_number(
            d["timeout_s"], "evaluator.timeout_s", "seconds")
        memory_mb = None if d.get("memory_mb") is None else _int_at_least(
            d["memory_mb"], "evaluator.memory_mb", 1, 2**40, 2048)
        retries = 2 if d.get("retries") is None else _int_at_least(
            d["retries"], "evaluator.retries", 0, 1000, 2)
        rules = _rules(d.get("rules"))
        if has_python:
            isolate = d.get("isolate")
            if isolate is None:
                isolate = True
            if not isinstance(isolate, bool):
                raise _Invalid("evaluator.isolate", f"expected true or false, got "
                               f"{_kind_of(isolate)}")
            target = _string(d["python"], "evaluator.python", "'module:function'",
                             "python: my_package.bench:evaluate")
            if not _TARGET_RE.match(target):
                raise _Invalid("evaluator.python", f"{target!r} is not of the form "
                               f"package.module:function; write e.g. python: "
                               f"my_package.bench:evaluate (a dotted module path relative to "
                               f"the spec's folder, not a file path)")
            if not isolate:
                for key in ("timeout_s", "memory_mb", "env", "cwd"):
                    if d.get(key) is not None:
                        raise _Invalid(f"evaluator.{key}", "an in-process evaluator (isolate: "
                                       "false) cannot apply it; remove it or set isolate: true")
            spec = EvaluatorSpec("python", target, (), env, cwd, timeout_s, memory_mb, None,
                                 isolate)
        else:
            if d.get("isolate") is not None:
                raise _Invalid("evaluator.isolate", "applies to python evaluators only (a "
                               "command always runs in its own process); remove it")
            argv, cmd_env, metrics_file = _command(d["command"])
            if cmd_env is not None and env is not None:
                raise _Invalid("evaluator.command.env", "env is given twice (also as "
                               "evaluator.env); keep one of them")
            spec = EvaluatorSpec("command", None, argv, cmd_env if cmd_env is not None else env,
                                 cwd, timeout_s, memory_mb, metrics_file, True)
        if spec.kind == "command":
            _check_placeholders(spec, space)
        if self.check_evaluator:
            _check_evaluator(spec, self.base_dir, space)
        return spec, retries, rules

    def cwd(self, raw: Any) -> Path:
        if raw is None:
            folder = self.base_dir
        else:
            text = _string(raw, "evaluator.cwd", "a folder", "cwd: .")
            try:
                folder = (self.base_dir / Path(text).expanduser()).resolve()
            except (OSError, RuntimeError, ValueError) as exc:
                raise _Invalid("evaluator.cwd", f"cannot resolve {text!r} ({exc})") from None
        if not _is_dir(folder):
            raise _Invalid("evaluator.cwd", f"the folder {str(folder)!r} does not exist; "
                           f"create it or fix the path (relative to the spec's folder)")
        return folder


_REQUIRED_EXAMPLES = {
    "space": "e.g. space: {batch_size: {type: int, low: 1, high: 64}}",
    "objective": "e.g. objective: {metric: accuracy, direction: maximize}",
    "evaluator": "e.g. evaluator: {python: my_package.bench:evaluate}",
    "budget": "e.g. budget: 25 (trials) or budget: {trials: 25, seconds: 3600}",
}


def _check_choices(choices: list[Any], path: str) -> None:
    """Choices are scalars (str, int, finite float, bool, null), each listed once."""
    seen: set[tuple[bool, Any]] = set()
    for i, c in enumerate(choices):
        if not (c is None or isinstance(c, (str, int, float))) or (
                isinstance(c, float) and not math.isfinite(c)):
            raise _Invalid(f"{path}[{i}]", f"choices must be str, int, finite float, bool or "
                           f"None, got {_kind_of(c)}; quote it to make it a string")
        key = (isinstance(c, bool), c)  # true and 1 are different choices, 1 and 1.0 are not
        if key in seen:
            raise _Invalid(f"{path}[{i}]", f"choice {_show(c)} is listed twice; remove the "
                           f"duplicate")
        seen.add(key)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long, a NUL byte, ...
        return False


def _safe_float(v: Any) -> float:
    try:
        return float(v)
    except (OverflowError, TypeError, ValueError):
        return math.inf


def _strip_prefix(text: str, prefix: str) -> str:
    return text[len(prefix):] if text.startswith(prefix) else text


def _space_error_path(message: str, names: Sequence[str]) -> tuple[str, str]:
    """Map a ``ValueError`` of :class:`Space` to ``(field path, message)``."""
    m = re.match(r"forbidden combination #(\d+): (.*)", message, re.DOTALL)
    if m:
        return f"forbidden[{m[1]}]", m[2]
    for name in sorted(names, key=len, reverse=True):
        prefix = f"parameter {name!r}: "
        if message.startswith(prefix):
            rest = message[len(prefix):]
            path = _join("space", name)
            for key in ("choices", "low", "high", "log", "when", "type"):
                if rest.startswith((f"'{key}'", f"{key} ")):
                    return f"{path}.{key}", rest
            return path, rest
    if message.startswith("forbidden: "):
        return "forbidden", message[len("forbidden: "):]
    return "space", message


def _env(raw: Any, path: str) -> dict[str, str] | None:
    if raw is None:
        return None
    d = _mapping(raw, path, "env: {OMP_NUM_THREADS: \"{threads}\", CUDA_VISIBLE_DEVICES: \"0\"}")
    out: dict[str, str] = {}
    for key, value in d.items():
        at = _join(path, key)
        if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
            raise _Invalid(at, f"environment variable names must be non-empty strings without "
                           f"'=', got {_kind_of(key)}")
        if isinstance(value, str):
            text = value
        elif _is_number(value) and math.isfinite(_safe_float(value)):
            text = str(value)
        else:
            raise _Invalid(at, f"expected a string value, got {_kind_of(value)}; quote it, "
                           f"e.g. {key}: \"1\"")
        if "\x00" in text:
            raise _Invalid(at, "contains a NUL character; remove it")
        out[key] = text
    return out


def _rules(raw: Any) -> tuple[Rule, ...]:
    if raw is None:
        return ()
    example = "rules: [{pattern: \"CUDA out of memory\", kind: oom}]"
    if not isinstance(raw, list):
        raise _Invalid("evaluator.rules", f"expected a list of rules, got {_kind_of(raw)}; "
                       f"write e.g. {example}")
    kinds = [k.value for k in CrashKind]
    out: list[Rule] = []
    for i, r in enumerate(raw):
        at = f"evaluator.rules[{i}]"
        d = _mapping(r, at, "{pattern: \"CUDA out of memory\", kind: oom}")
        _check_keys(d, at, _RULE_KEYS)
        for key in ("pattern", "kind"):
            if d.get(key) is None:
                raise _Invalid(f"{at}.{key}", "missing; a rule needs pattern and kind, e.g. "
                               "{pattern: \"CUDA out of memory\", kind: oom}")
        pattern = d["pattern"]
        if not isinstance(pattern, str) or not pattern:
            raise _Invalid(f"{at}.pattern", f"expected a non-empty regular expression string, "
                           f"got {_kind_of(pattern)}; quote it")
        kind = d["kind"]
        if not isinstance(kind, str) or kind not in kinds:
            raise _Invalid(f"{at}.kind", f"unknown crash kind {_show(kind)}"
                           f"{_suggest(kind, kinds)}; use one of {', '.join(kinds)}")
        ignore_case = d.get("ignore_case")
        if ignore_case is None:
            ignore_case = False
        if not isinstance(ignore_case, bool):
            raise _Invalid(f"{at}.ignore_case", f"expected true or false, got "
                           f"{_kind_of(ignore_case)}")
        try:
            out.append(Rule(pattern, CrashKind(kind), ignore_case))
        except Exception as exc:  # re.error, OverflowError for huge repeats, ...
            raise _Invalid(f"{at}.pattern", f"{pattern!r} is not a valid regular expression "
                           f"({_one_line(str(exc))}); escape special characters such as "
                           f"( [ . * + ? with a backslash") from None
    return tuple(out)


def _command(raw: Any) -> tuple[tuple[str | tuple[str, ...], ...], dict[str, str] | None,
                                str | None]:
    """``evaluator.command``: an argv list, or a mapping {argv, env, metrics_file}."""
    path = "evaluator.command"
    example = "command: {argv: [python, bench.py, --batch, \"{batch_size}\"]}"
    if isinstance(raw, list):
        d: Mapping[Any, Any] = {"argv": raw}
        argv_path = path
    else:
        d = _mapping(raw, path, example)
        _check_keys(d, path, _COMMAND_KEYS)
        argv_path = f"{path}.argv"
        if d.get("argv") is None:
            raise _Invalid(argv_path, f"missing; write e.g. {example}")
    argv_raw = d["argv"]
    if isinstance(argv_raw, str):
        raise _Invalid(argv_path, f"expected a list of arguments (never a shell line), got "
                       f"{_kind_of(argv_raw)}; write e.g. argv: {argv_raw.split()!r}")
    if not isinstance(argv_raw, list) or not argv_raw:
        raise _Invalid(argv_path, f"expected a non-empty list of arguments, got "
                       f"{_kind_of(argv_raw)}; write e.g. {example}")
    argv: list[str | tuple[str, ...]] = []
    for i, item in enumerate(argv_raw):
        at = f"{argv_path}[{i}]"
        if i == 0 and not isinstance(item, str):
            raise _Invalid(at, f"the program to run must be a non-empty string, got "
                           f"{_kind_of(item)}; write e.g. python or ./bench.sh")
        if isinstance(item, list):
            if not item:
                raise _Invalid(at, "is an empty group; remove it or list its arguments, e.g. "
                               "[\"--threads\", \"{threads}\"]")
            group = tuple(_argument(x, f"{at}[{j}]") for j, x in enumerate(item))
            argv.append(group)
        else:
            argv.append(_argument(item, at))
    if not isinstance(argv[0], str) or not argv[0]:
        raise _Invalid(f"{argv_path}[0]", "the program to run must be a non-empty string, "
                       "e.g. python or ./bench.sh")
    env = _env(d.get("env"), f"{path}.env")
    metrics_file = None
    if d.get("metrics_file") is not None:
        metrics_file = _string(d["metrics_file"], f"{path}.metrics_file", "a file name",
                               "metrics_file: metrics.json")
    return tuple(argv), env, metrics_file


def _argument(item: Any, path: str) -> str:
    if isinstance(item, str):
        if "\x00" in item:
            raise _Invalid(path, "contains a NUL character; remove it")
        return item
    if _is_number(item) and math.isfinite(_safe_float(item)):
        return str(item)
    raise _Invalid(path, f"expected a string, got {_kind_of(item)}; quote the argument, "
                   f"e.g. \"--batch\" or \"{{batch_size}}\"")


# ------------------------------------------------------------------------ checks with effects
def _check_sampler(name: str, options: dict[str, Any], space: Space, seed: int | None,
                   trials: int | None) -> None:
    """Build the sampler once (and any inner Optuna sampler) so bad options fail now."""
    from deploytune.samplers import make_sampler

    at = "sampler.options" if options else "sampler"
    try:
        sampler = make_sampler(name, space=space, seed=seed, budget=trials, **options)
        make_inner = getattr(sampler, "_make_inner", None)
        if callable(make_inner):
            make_inner(0)
        tpe_options = getattr(sampler, "tpe_options", None)
        if isinstance(tpe_options, dict):
            import optuna

            optuna.samplers.TPESampler(seed=0, **tpe_options)
    except ImportError as exc:
        raise _Invalid("sampler", f"{name!r} cannot be used here: {_one_line(str(exc))}") \
            from None
    except (TypeError, ValueError) as exc:
        raise _Invalid(at, f"the sampler {name!r} rejects {'its options' if options else 'the'}"
                       f"{'' if options else ' spec'}: {_one_line(str(exc))}; fix or remove "
                       f"the option named there") from None
    except Exception as exc:
        raise _Invalid(at, f"the sampler {name!r} cannot be built ({type(exc).__name__}: "
                       f"{_one_line(str(exc))}); check its options") from None


def _check_evaluator(spec: EvaluatorSpec, base_dir: Path, space: Space) -> None:
    """Import the Python target / find the command, and check placeholders, by building it."""
    if spec.kind == "python" and not spec.isolate:
        assert spec.target is not None
        _import_target(spec.target, base_dir)
        return
    if spec.kind == "python":
        isolated = _isolated(spec, base_dir)
        try:
            _run_check(isolated.check, "evaluator.python")
        finally:
            isolated.close()
        return
    command = _command_evaluator(spec)
    try:
        at = "evaluator.command.argv[0]" if isinstance(spec.argv[0], str) else "evaluator.command"
        _run_check(command.check, at)
        _run_check(lambda: command.check_space(space), "evaluator.command")
    finally:
        command.close()


def _evaluator_message(exc: BaseException) -> str:
    """The evaluator's message without its own ``evaluator.python:`` style prefix."""
    text = _one_line(str(exc))
    return re.sub(r"^evaluator\.(python|command): ", "", text)


def _run_check(check: Callable[[], object], at: str) -> None:
    try:
        check()
    except ValueError as exc:
        raise _Invalid(at, _evaluator_message(exc)) from None
    except Exception as exc:
        raise _Invalid(at, f"cannot be checked ({type(exc).__name__}: "
                       f"{_one_line(str(exc))})") from None


def _check_placeholders(spec: EvaluatorSpec, space: Space) -> None:
    """Check every template (argv items, env values, metrics_file) and its placeholders.

    The syntax is the command evaluator's: ``{name}`` or ``{name:format}`` naming a parameter
    of the space, ``{config_json}``, and ``{{`` / ``}}`` for literal braces.
    """
    items: list[tuple[str, str]] = []
    prefix = "evaluator.command.argv"
    for i, a in enumerate(spec.argv):
        if isinstance(a, str):
            items.append((f"{prefix}[{i}]", a))
        else:
            items.extend((f"{prefix}[{i}][{j}]", x) for j, x in enumerate(a))
    for key, value in (spec.env or {}).items():
        items.append((_join("evaluator.command.env", key), value))
    if spec.metrics_file is not None:
        items.append(("evaluator.command.metrics_file", spec.metrics_file))
    names = list(space.names)
    for at, text in items:
        for name in _placeholders(text, at):
            if name not in (_CONFIG_JSON, _PYTHON) and name not in space:
                raise _Invalid(at, f"unknown placeholder {{{name}}}"
                               f"{_suggest(name, [*names, _CONFIG_JSON, _PYTHON])}; "
                               f"placeholders must name a parameter of space "
                               f"({', '.join(names)}) or be {{{_CONFIG_JSON}}} or "
                               f"{{{_PYTHON}}} (the tuner's interpreter); write {{{{ and }}}} "
                               f"for literal braces")


def _placeholders(text: str, at: str) -> list[str]:
    """The placeholder names of the template ``text``; raises on a malformed template."""
    braces = "write {{ and }} for literal braces"
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise _Invalid(at, f"{_show(text)}: {exc}; {braces}") from None
    out: list[str] = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name:
            raise _Invalid(at, f"{_show(text)} has an empty placeholder {{}}; put a parameter "
                           f"name inside the braces, or {braces}")
        if conversion:
            raise _Invalid(at, f"{_show(text)}: the conversion !{conversion} is not "
                           f"supported; write {{{name}}}")
        if spec and "{" in spec:
            raise _Invalid(at, f"{_show(text)}: nested placeholders in a format spec are not "
                           f"supported; write {{{name}}} or {{{name}:.3g}}")
        out.append(name)
    return out


def _import_target(target: str, base_dir: Path) -> Callable[..., Any]:
    """Import ``module:function`` in this process, the spec's folder first on ``sys.path``."""
    module_name, _, attr = target.partition(":")
    folder = str(base_dir)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    fix = ("check the module path (relative to the spec's folder) and that the module imports "
           "cleanly")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise _Invalid("evaluator.python", f"cannot import {_show(module_name)} "
                       f"({_one_line(str(exc))}); {fix}") \
            from None
    except (Exception, SystemExit) as exc:
        raise _Invalid("evaluator.python", f"importing {_show(module_name)} failed "
                       f"({type(exc).__name__}: {_one_line(str(exc))}); {fix}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except Exception:
            raise _Invalid("evaluator.python", f"module {_show(module_name)} has no "
                           f"attribute {_show(attr)}; check the function's name") from None
    if not callable(obj):
        raise _Invalid("evaluator.python", f"{_show(target)} is not a function; name a function "
                       f"config -> metrics")
    return obj


def _isolated(spec: EvaluatorSpec, base_dir: Path) -> IsolatedEvaluator:
    from deploytune.evaluators.isolated import IsolatedEvaluator

    assert spec.target is not None
    try:
        return IsolatedEvaluator(spec.target, timeout_s=spec.timeout_s,
                                 memory_mb=spec.memory_mb, env=spec.env, cwd=spec.cwd,
                                 sys_path=(str(base_dir),))
    except (TypeError, ValueError) as exc:
        raise _Invalid("evaluator.python", _evaluator_message(exc)) from None


def _command_evaluator(spec: EvaluatorSpec) -> CommandEvaluator:
    from deploytune.evaluators.command import CommandEvaluator

    argv = [a if isinstance(a, str) else list(a) for a in spec.argv]
    try:
        return CommandEvaluator(argv, env=spec.env, cwd=spec.cwd, timeout_s=spec.timeout_s,
                                memory_mb=spec.memory_mb, metrics_file=spec.metrics_file)
    except (TypeError, ValueError) as exc:
        raise _Invalid("evaluator.command", _evaluator_message(exc)) from None


def _build_evaluator(spec: EvaluatorSpec, base_dir: Path) -> Evaluator:
    if spec.kind == "command":
        return _command_evaluator(spec)
    if spec.isolate:
        return _isolated(spec, base_dir)
    from deploytune.evaluators.base import FunctionEvaluator

    assert spec.target is not None
    return FunctionEvaluator(_import_target(spec.target, base_dir))
