"""The validated spec: :class:`Spec` and its :class:`EvaluatorSpec`, and their dict forms."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploytune.early_abort import EarlyAbort
from deploytune.evaluators.classify import Rule
from deploytune.feasibility import DEFAULT_CONFIDENCE
from deploytune.outcome import Constraint, Objective
from deploytune.parallel.leases import Resources
from deploytune.space import Space
from deploytune.spec.errors import Invalid, SpecError
from deploytune.spec.evaluator import build_evaluator
from deploytune.spec.schema import SCHEME_RE
from deploytune.validation import Validation

if TYPE_CHECKING:
    import optuna

    from deploytune.evaluators.base import Evaluator


@dataclass(frozen=True)
class EvaluatorSpec:
    """How a configuration is evaluated (the ``evaluator`` section, validated).

    Attributes:
        kind: ``"python"`` (a function ``module:function``), ``"command"`` (an argv) or
            ``"server"`` (an LLM server started per trial and load-tested).
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
        server: For ``server``: the validated ``evaluator.server`` mapping (the keywords of
            :class:`~deploytune.evaluators.server.ServerSettings`).
        load: For ``server``: the validated ``evaluator.load`` mapping (the fields of
            :class:`~deploytune.loadgen.LoadSpec`).
        estimate: A cheap estimator ``"package.module:function"`` (config -> metrics) called
            before each evaluation, in the tuner's process: the fidelity rung ``estimate``
            (:class:`~deploytune.evaluators.estimated.EstimatedEvaluator`); ``None``: none.
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
    server: dict[str, Any] | None = None
    load: dict[str, Any] | None = None
    estimate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``evaluator`` section's dict form (without ``retries`` and ``rules``)."""
        out: dict[str, Any] = {} if self.estimate is None else {"estimate": self.estimate}
        if self.kind == "python":
            out["python"] = self.target
            out["isolate"] = self.isolate
            out["env"] = dict(self.env) if self.env is not None else None
        elif self.kind == "server":
            server = dict(self.server or {})
            server["argv"] = [a if isinstance(a, str) else list(a) for a in self.argv]
            if server.get("release_check") is not None:
                server["release_check"] = list(server["release_check"])
            out["server"] = server
            out["load"] = dict(self.load or {})
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
        confidence: The chance constraint: P(a fresh run meets every constraint) needed for a
            configuration to count as reliably feasible.
        validation: Re-runs of uncertain incumbents and of the finalists.
        resources: This machine's devices and how many a trial leases, or ``None``.
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
    confidence: float = DEFAULT_CONFIDENCE
    validation: Validation = field(default_factory=Validation)
    resources: Resources | None = None

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
            return build_evaluator(self.evaluator, self.base_dir)
        except Invalid as exc:
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
        return report_dir_for(self.storage, self.study_name, self.base_dir)

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
            early = {f.name: getattr(self.early_abort, f.name)
                     for f in dataclasses.fields(self.early_abort) if f.name != "enabled"}
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
            "confidence": self.confidence,
            "validation": {"finalists": self.validation.finalists,
                           "repeats": self.validation.repeats,
                           "during_search": self.validation.during_search},
            "resources": None if self.resources is None else {
                "kind": self.resources.kind,
                "devices": [int(d) if d.isdigit() else d for d in self.resources.devices],
                "per_trial": self.resources.per_trial},
        }


def _number_text(x: float) -> str:
    """A constraint's limit as written in YAML: ``20`` rather than ``20.0``."""
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def report_dir_for(storage: str, study_name: str, fallback: Path) -> Path:
    """``<study>-report`` next to the SQLite file of ``storage``, else in ``fallback``."""
    db = _sqlite_file(storage)
    return (db.parent if db is not None else fallback) / f"{study_name}-report"


def _sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL; ``None`` for other URLs and in-memory ones."""
    m = SCHEME_RE.match(url)
    if m is None or m["scheme"].lower() != "sqlite" or not m["rest"].startswith("/"):
        return None
    db = m["rest"][1:].partition("?")[0]
    if not db or db == ":memory:":
        return None
    return Path(db)
