"""From parsed YAML data to a :class:`Spec`: the top level, each section in its own module."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploytune.spec.checks import check_expanded_size, check_keys
from deploytune.spec.errors import STRING_SOURCE, Invalid, SpecError
from deploytune.spec.evaluator_section import parse_evaluator
from deploytune.spec.messages import kind_of, one_line
from deploytune.spec.model import Spec
from deploytune.spec.objective_section import parse_constraints, parse_objective
from deploytune.spec.resources_section import parse_resources
from deploytune.spec.run_section import (
    parse_budget,
    parse_confidence,
    parse_early_abort,
    parse_pruner,
    parse_sampler,
    parse_seed,
    parse_validation_section,
)
from deploytune.spec.schema import DEFAULT_STUDY_NAME, REQUIRED, REQUIRED_EXAMPLES, TOP_KEYS
from deploytune.spec.space_section import parse_space
from deploytune.spec.study_section import parse_storage, parse_study


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
        check_expanded_size(data)
        return Parser(Path(base_dir), source, check_evaluator).parse(data)
    except Invalid as exc:
        raise SpecError(exc.path, exc.message, source) from None
    except RecursionError:
        raise SpecError("", "the spec is nested too deeply (or refers to itself through a "
                        "YAML alias); simplify it", source) from None
    except Exception as exc:  # a safety net: every known mistake has its own message
        raise SpecError("", f"internal error while validating the spec "
                        f"({type(exc).__name__}: {one_line(str(exc))}); please report it",
                        source) from None


class Parser:
    """Validates one spec's top level, each section by its own module; raises :class:`Invalid`."""

    def __init__(self, base_dir: Path, source: str, check_evaluator: bool = True):
        self.source = source
        self.check_evaluator = check_evaluator
        try:
            self.base_dir = base_dir.expanduser().resolve()
        except (OSError, RuntimeError, ValueError) as exc:
            raise Invalid("", f"cannot resolve the spec's folder {str(base_dir)!r} ({exc})") \
                from None
        stem = Path(source).stem if not (source.startswith("<") and source.endswith(">")) \
            else ""
        self.stem = stem or DEFAULT_STUDY_NAME

    def parse(self, data: Any) -> Spec:
        """The :class:`Spec` of ``data``, checking every section."""
        if data is None:
            raise Invalid("", "the spec is empty; it needs at least space, objective, "
                          "evaluator and budget")
        if not isinstance(data, Mapping):
            raise Invalid("", f"the spec must be a mapping of keys (space, objective, "
                          f"evaluator, budget, ...), got {kind_of(data)}; write "
                          f"'key: value' lines at the top level")
        check_keys(data, "", TOP_KEYS)
        for key in REQUIRED:
            if data.get(key) is None:
                raise Invalid(key, f"missing; add the required key {key!r} ("
                              f"{REQUIRED_EXAMPLES[key]})")
        study = parse_study(data.get("study"), self.stem)
        space = parse_space(data["space"], data.get("forbidden"))
        objective = parse_objective(data["objective"])
        constraints = parse_constraints(data.get("constraints"))
        trials, seconds = parse_budget(data["budget"])
        seed = parse_seed(data.get("seed"))
        sampler, options = parse_sampler(data.get("sampler"), space, seed, trials)
        pruner = parse_pruner(data.get("pruner"))
        early = parse_early_abort(data.get("early_abort"))
        confidence = parse_confidence(data.get("confidence"))
        validation = parse_validation_section(data.get("validation"))
        storage = parse_storage(data.get("storage"), self.base_dir, self.stem)
        resources = parse_resources(data.get("resources"), space)
        evaluator, retries, rules = parse_evaluator(data["evaluator"], space, self.base_dir,
                                                    self.check_evaluator)
        return Spec(source=self.source, base_dir=self.base_dir, study_name=study, space=space,
                    objective=objective, constraints=constraints, evaluator=evaluator,
                    retries=retries, rules=rules, early_abort=early, pruner=pruner,
                    budget_trials=trials, budget_seconds=seconds, sampler=sampler,
                    sampler_options=options, seed=seed, storage=storage,
                    confidence=confidence, validation=validation, resources=resources)
