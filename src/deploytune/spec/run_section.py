"""How the search runs: ``budget``, ``seed``, ``sampler``, ``pruner``, ``early_abort``,
``confidence`` and ``validation``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deploytune.early_abort import EarlyAbort
from deploytune.early_abort import parse_early_abort as build_early_abort
from deploytune.feasibility import DEFAULT_CONFIDENCE, check_confidence
from deploytune.setting_error import SettingError
from deploytune.space import Space
from deploytune.spec.checks import (
    as_mapping,
    as_string,
    check_jsonable,
    check_keys,
    int_at_least,
    positive_number,
)
from deploytune.spec.errors import Invalid, invalid_at
from deploytune.spec.messages import kind_of, one_line, suggest
from deploytune.spec.schema import (
    BUDGET_KEYS,
    EARLY_ABORT_KEYS,
    MAX_SEED,
    MAX_TRIALS,
    PRUNERS,
    SAMPLER_KEYS,
    VALIDATION_KEYS,
)
from deploytune.validation import Validation, parse_validation


def parse_budget(raw: Any) -> tuple[int | None, float | None]:
    """``(trials, seconds)``: a number of trials, or a mapping of either or both."""
    example = "budget: 25 or budget: {trials: 25, seconds: 3600}"
    if isinstance(raw, Mapping):
        check_keys(raw, "budget", BUDGET_KEYS)
        trials = raw.get("trials")
        seconds = raw.get("seconds")
        if trials is None and seconds is None:
            raise Invalid("budget", f"give trials, seconds or both; write e.g. {example}")
        t = None if trials is None else int_at_least(trials, "budget.trials", 1,
                                                     MAX_TRIALS, 25)
        s = None if seconds is None else positive_number(seconds, "budget.seconds",
                                                         "seconds")
        return t, s
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise Invalid("budget", f"expected a number of trials or a mapping, got "
                      f"{kind_of(raw)}; write e.g. {example}")
    return int_at_least(raw, "budget", 1, MAX_TRIALS, 25), None


def parse_seed(raw: Any) -> int | None:
    """The sampler's seed, or ``None`` for a random one."""
    if raw is None:
        return None
    return int_at_least(raw, "seed", 0, MAX_SEED, 0)


def parse_sampler(raw: Any, space: Space, seed: int | None,
                  trials: int | None) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of the sampler, checked by building it once."""
    from deploytune.samplers import available, parse_name

    known = available()
    example = "sampler: tba-tpe or sampler: {name: tba-tpe, options: {min_phase1: 8}}"
    options: dict[str, Any] = {}
    name_path = "sampler"
    if raw is None:
        name = "default"
    elif isinstance(raw, Mapping):
        check_keys(raw, "sampler", SAMPLER_KEYS)
        name_path = "sampler.name"
        if raw.get("name") is None:
            raise Invalid(name_path, f"missing; choose one of {', '.join(known)}")
        name = as_string(raw["name"], name_path, "a sampler name", example)
        opts = raw.get("options")
        if opts is not None:
            opts = as_mapping(opts, "sampler.options", "options: {min_phase1: 8}")
            check_jsonable(dict(opts), "sampler.options")
            options = dict(opts)
    else:
        name = as_string(raw, "sampler", "a sampler name", example)
        try:  # options in brackets: sampler: cabo[coverage_until=0.5]
            name, options = parse_name(name)
        except ValueError as exc:
            raise Invalid("sampler", f"{exc}; or write {example}") from None
    if name not in known:
        raise Invalid(name_path, f"unknown sampler {name!r}{suggest(name, known)}; "
                      f"choose one of {', '.join(known)}")
    reserved = [k for k in ("space", "seed", "budget") if k in options]
    if reserved:
        raise Invalid(f"sampler.options.{reserved[0]}", f"is set by the spec itself; "
                      f"remove it here (use the top-level {reserved[0]!r} key"
                      f"{'' if reserved[0] != 'space' else ' for the search space'})")
    if name == "random" and options:
        raise Invalid("sampler.options", "the random sampler takes no options; remove "
                      "them")
    _check_sampler(name, options, space, seed, trials)
    return name, options


def parse_pruner(raw: Any) -> str | None:
    """The pruner's name, or ``None`` for none."""
    if raw is None:
        return None
    if not isinstance(raw, str) or raw not in PRUNERS:
        raise Invalid("pruner", f"must be one of {', '.join(PRUNERS)}, got "
                      f"{kind_of(raw)}{suggest(raw, PRUNERS)}")
    return None if raw == "none" else raw


def parse_early_abort(raw: Any) -> EarlyAbort:
    """The early-abort rule: true / false, or a mapping of its settings (checked by
    :class:`~deploytune.early_abort.EarlyAbort` itself; a null value keeps the default)."""
    example = ("early_abort: {before_feasible: 5, after_feasible: 3, promote_below: 0.05} "
               "(or true / false)")
    if raw is None or isinstance(raw, bool):
        return build_early_abort(raw)
    d = as_mapping(raw, "early_abort", example)
    check_keys(d, "early_abort", EARLY_ABORT_KEYS)
    settings = {key: v for key, v in d.items() if v is not None}
    try:
        return build_early_abort(settings)
    except SettingError as exc:
        raise invalid_at("early_abort", exc) from None
    except (TypeError, ValueError) as exc:
        raise Invalid("early_abort", one_line(str(exc))) from None


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
        raise Invalid("sampler", f"{name!r} cannot be used here: {one_line(str(exc))}") \
            from None
    except (TypeError, ValueError) as exc:
        raise Invalid(at, f"the sampler {name!r} rejects {'its options' if options else 'the'}"
                      f"{'' if options else ' spec'}: {one_line(str(exc))}; fix or remove "
                      f"the option named there") from None
    except Exception as exc:
        raise Invalid(at, f"the sampler {name!r} cannot be built ({type(exc).__name__}: "
                      f"{one_line(str(exc))}); check its options") from None


def parse_confidence(raw: Any) -> float:
    """The chance constraint's level (default
    :data:`~deploytune.feasibility.DEFAULT_CONFIDENCE`)."""
    if raw is None:
        return DEFAULT_CONFIDENCE
    try:
        return check_confidence(raw)
    except ValueError:
        raise Invalid("confidence", f"must be a probability strictly between 0 and 1, got "
                      f"{kind_of(raw)}; e.g. confidence: 0.9 (9 fresh runs in 10 meet every "
                      f"constraint)") from None


def parse_validation_section(raw: Any) -> Validation:
    """The re-runs: true / false, or a mapping of :class:`~deploytune.validation.Validation`'s
    fields."""
    example = "validation: {finalists: 3, repeats: 2, during_search: true} (or true / false)"
    if raw is None or isinstance(raw, bool):
        return parse_validation(True if raw is None else raw)
    d = as_mapping(raw, "validation", example)
    check_keys(d, "validation", VALIDATION_KEYS)
    settings: dict[str, Any] = {}
    for key, v in d.items():
        at = f"validation.{key}"
        if v is None:
            continue
        if key == "during_search":
            if not isinstance(v, bool):
                raise Invalid(at, f"expected true or false, got {kind_of(v)}")
        else:
            v = int_at_least(v, at, 0, 100, {"finalists": 3, "repeats": 2}.get(key, 1))
        settings[key] = v
    return Validation(**settings)
