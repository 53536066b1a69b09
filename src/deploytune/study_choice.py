"""Which study a spec uses, and the errors that say it cannot.

A spec tunes its ``study`` name, unless ``deploytune tune --fresh`` started a new study next to
it. ``--fresh`` never deletes or renames anything: it creates ``<name>-2`` (then ``-3``, ...)
in the same storage and marks it with the study attribute ``dt.fresh_of``; from then on the
spec resumes the newest study of that family whose problem (objective, direction, constraints,
space) matches the spec.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import optuna
from rich.console import Console
from rich.text import Text

from deploytune.history import ATTR_FRESH_OF, ATTR_SETUP
from deploytune.parallel.storage import open_storage
from deploytune.problem import claimable, difference, setup_of
from deploytune.storage_faults import storage_text

if TYPE_CHECKING:
    from optuna.study._frozen import FrozenStudy

    from deploytune.spec import Spec

__all__ = [
    "StudyMismatch",
    "StudyNotFound",
    "resume_hint",
    "select_study",
    "spec_study_name",
    "validated_study",
]


class StudyNotFound(Exception):
    """The study named on the command line does not exist (the message says what does)."""


class StudyMismatch(ValueError):
    """The storage holds the spec's study with a different problem definition.

    The message names the study, the storage and what differs, and offers ``--fresh``.
    """


def resume_hint(spec: Spec) -> str:
    """The command that resumes the spec's study."""
    return f"deploytune tune {spec.source}"


def _family(studies: Sequence[FrozenStudy], name: str) -> list[FrozenStudy]:
    """The study ``name`` and those ``--fresh`` started next to it, oldest first."""
    return sorted((s for s in studies if s.study_name == name
                   or s.user_attrs.get(ATTR_FRESH_OF) == name), key=lambda s: s._study_id)


def _choose(family: Sequence[FrozenStudy], setup: dict[str, Any]) -> FrozenStudy | None:
    """The newest study of ``family`` whose problem matches ``setup`` (or is not recorded)."""
    return next((s for s in reversed(family)
                 if difference(s.user_attrs.get(ATTR_SETUP), setup) is None), None)


def spec_study_name(studies: Sequence[FrozenStudy], spec: Spec) -> str:
    """The study a spec reads: the newest of its family whose problem matches the spec, else
    the newest of its family, else the spec's own name."""
    family = _family(studies, spec.study_name)
    chosen = _choose(family, setup_of(spec.objective, spec.constraints, spec.space)) or (
        family[-1] if family else None)
    return chosen.study_name if chosen is not None else spec.study_name


def _fresh_name(names: Sequence[str], name: str) -> str:
    taken = set(names)
    k = 2
    while f"{name}-{k}" in taken:
        k += 1
    return f"{name}-{k}"


def validated_study(spec: Spec, study_name: str | None) -> str:
    """The study ``deploytune validate`` re-runs the finalists of: ``study_name``, else the
    spec's (the newest of its family whose problem matches the spec).

    A study written by plain Optuna code (no ``dt.setup``) is accepted when its direction is
    the spec's objective's and the parameters of its finished trials are configurations of the
    spec's space: its trials rank the finalists (their constraint values say which were
    feasible), and the re-runs, which the spec's evaluator measures, give the metrics.

    Raises:
        StudyNotFound: No such study, or it holds no finished trial.
        StudyMismatch: It holds another problem (one line saying which part differs).
    """
    storage = open_storage(spec.storage)
    studies = {s.study_name: s for s in storage.get_all_studies()}
    where = storage_text(spec.storage)
    if study_name is None:
        study_name = spec_study_name(list(studies.values()), spec)
    frozen = studies.get(study_name)
    if frozen is None:
        raise StudyNotFound(f"{where}: no study named {study_name!r} to validate (it holds: "
                            f"{', '.join(studies) or 'none'}); run `{resume_hint(spec)}` first "
                            f"or name one with --study")
    trials = [t for t in storage.get_all_trials(frozen._study_id, deepcopy=False)
              if t.state.is_finished()]
    if not trials:
        raise StudyNotFound(f"study {study_name!r} in {where} has no finished trial: there is "
                            f"nothing to validate; run `{resume_hint(spec)}` first")
    recorded = frozen.user_attrs.get(ATTR_SETUP)
    setup = setup_of(spec.objective, spec.constraints, spec.space)
    if recorded is not None:
        key = difference(recorded, setup)
        if key is not None:
            raise StudyMismatch(
                f"study {study_name!r} in {where} holds a different {key} "
                f"({_short(recorded.get(key))} vs {_short(setup.get(key))} in the spec); "
                f"validate it with the spec it was "
                f"tuned with; nothing was changed")
        return study_name
    direction = frozen.directions[0].name.lower() if len(frozen.directions) == 1 else "multi"
    if direction != spec.objective.direction:
        raise StudyMismatch(
            f"study {study_name!r} in {where} was created by plain Optuna code to {direction} "
            f"and the spec's objective is to {spec.objective.direction} "
            f"{spec.objective.metric}; give a spec with the study's direction; nothing was "
            f"changed")
    for t in trials:
        if t.params and not spec.space.is_valid(dict(t.params)):
            raise StudyMismatch(
                f"study {study_name!r} in {where}: trial {t.number}'s parameters "
                f"{_short(dict(t.params))} are not a configuration of the spec's space "
                f"({', '.join(p.name for p in spec.space)}); validate needs the space the "
                f"study was tuned in; nothing was changed")
    return study_name


def select_study(spec: Spec, fresh: bool, console: Console) -> str:
    """The name of the study this run tunes, creating a ``--fresh`` one when asked."""
    storage = open_storage(spec.storage)
    studies = storage.get_all_studies()
    family = _family(studies, spec.study_name)
    setup = setup_of(spec.objective, spec.constraints, spec.space)
    where = storage_text(spec.storage)
    if not family:
        return spec.study_name
    if fresh:
        new = _fresh_name([s.study_name for s in studies], spec.study_name)
        study = optuna.create_study(study_name=new, storage=storage,
                                    direction=spec.objective.direction)  # type: ignore[arg-type]
        study.set_user_attr(ATTR_FRESH_OF, spec.study_name)
        kept = ", ".join(s.study_name for s in family)
        console.print(Text(f"starting the fresh study {new} in {where}; kept as they were: "
                           f"{kept} (`{resume_hint(spec)}` resumes {new} from now on)"),
                      soft_wrap=True)
        return new
    chosen = _choose(family, setup)
    if chosen is not None:
        return chosen.study_name
    newest = family[-1]
    recorded = newest.user_attrs.get(ATTR_SETUP)
    if claimable(recorded, setup, storage.get_all_trials(newest._study_id, deepcopy=False)):
        return newest.study_name  # the tuner lets a corrected objective claim it
    key = difference(recorded, setup) or "problem"
    existing = (recorded or {}).get(key)
    raise StudyMismatch(
        f"study {newest.study_name!r} in {where} already holds trials of a different {key} "
        f"({_short(existing)} vs {_short(setup.get(key))} in the spec); run "
        f"`{resume_hint(spec)} --fresh` to start a new study next to it (the old one is "
        f"kept), or change `study` or `storage` in the spec; nothing was changed")


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
