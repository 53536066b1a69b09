"""What each registered sampler is for, in one line, and which ones are experimental.

``deploytune samplers`` prints this catalogue: by default the samplers a user would choose (the
default ``cabo``, the peers users know, our stable baselines); with ``--all`` the experimental
ones too (``cabo``'s ablations and research variants kept for ``deploytune bench``). Every
registered name stays usable everywhere (``bench --samplers``, specs, ``optimize``) whether
listed by default or not.

A sampler registered without an entry here is listed with ``(no description)``;
``tests/samplers/test_registry.py`` fails until it has one.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploytune.samplers import DEFAULT_SAMPLER, available

__all__ = ["CATALOGUE", "NO_DESCRIPTION", "Entry", "describe", "is_experimental", "listed"]

NO_DESCRIPTION = "(no description)"
"""The description of a registered name that has no catalogue entry."""


@dataclass(frozen=True)
class Entry:
    """One sampler's line in the catalogue."""

    description: str
    """What the sampler is for, one line, plain text (the extra it needs, if any)."""
    experimental: bool = False
    """Ablations and research variants: listed only by ``deploytune samplers --all``."""


def _ablation(without: str) -> Entry:
    return Entry(f"ablation of cabo without {without}", experimental=True)


CATALOGUE: dict[str, Entry] = {
    # The default first, then the peers users know, then our stable baselines.
    "cabo": Entry("the default: crash- and cost-aware constrained Bayesian optimisation for "
                  "feasible-first search"),
    "default": Entry("the sampler used when none is named"),  # describe() adds its name
    "random": Entry("uniform random search over the space; the reference to beat"),
    "tpe": Entry("Optuna's TPE as a typical user runs it: objective only, crashes ignored, "
                 "constraints unseen"),
    "ctpe": Entry("Optuna's TPE told about the constraints; crashes become graded infeasible "
                  "trials"),
    "gp": Entry("Optuna's Gaussian-process sampler, told about the constraints like ctpe; "
                "needs PyTorch: pip install 'deploytune[gp]'"),
    "smac": Entry("SMAC-style random-forest Bayesian optimisation (our own code); crashes cost "
                  "worse than anything seen"),
    "smac3": Entry("the real SMAC3 package (HPO facade, as its users run it), as a peer to "
                   "compare with; crashes and missed constraints are its CRASHED trials; needs "
                   "pip install 'deploytune[peers]'"),
    "tba": Entry("Thermal Budget Annealing: feasible-first, crash-aware simulated annealing"),
    "tba-tpe": Entry("TBA's feasible-first annealing, then the whole history handed to "
                     "Optuna's TPE"),
    "tba-tpe-paper": Entry("tba-tpe with the original research code's settings "
                           "(re-evaluations allowed)"),
    # Experimental: ablations and research variants, for deploytune bench.
    "cabo-no-crash": _ablation("the crash model (feasibility from the constraint models only)"),
    "cabo-no-constraints": _ablation("the constraint models (feasibility from the crash model "
                                     "only)"),
    "cabo-no-ei": _ablation("expected improvement (keeps maximising the probability of "
                            "feasibility)"),
    "cabo-no-cost": _ablation("the cost penalty (wasted seconds not penalised)"),
    "cabo-no-coverage": _ablation("early coverage of every categorical value"),
    "cabo-no-ordinal": _ablation("rank encoding (numeric choice lists treated as unordered)"),
    "cabo-no-local": _ablation("the local search (random candidates only)"),
    "cabo-no-random": _ablation("random exploration"),
    "cabo-no-memory": _ablation("the memory rules (the previous default)"),
    "tba-tpe-gate": Entry("tba-tpe whose proposals must pass a crash-model gate (crash "
                          "probability at most 0.5) in both phases", experimental=True),
    "tba-tpe-gate2": Entry("tba-tpe with the crash-model gate at 0.7, in the TPE phase only",
                           experimental=True),
}
"""Every sampler's entry, in the order ``deploytune samplers`` lists them."""


def describe(name: str) -> str:
    """One line on what the registered sampler ``name`` is for (``(no description)`` when the
    catalogue has no entry for it)."""
    entry = CATALOGUE.get(name)
    if entry is None:
        return NO_DESCRIPTION
    return f"= {DEFAULT_SAMPLER}: {entry.description}" if name == "default" else entry.description


def is_experimental(name: str) -> bool:
    """Whether ``name`` is an ablation or research variant (unknown names are not)."""
    entry = CATALOGUE.get(name)
    return entry is not None and entry.experimental


def listed(include_experimental: bool = False) -> list[str]:
    """The registered sampler names in catalogue order (the default first), names without an
    entry last; experimental ones only with ``include_experimental``."""
    order = {name: i for i, name in enumerate(CATALOGUE)}
    names = sorted(available(), key=lambda n: (order.get(n, len(order)), n))
    return [n for n in names if include_experimental or not is_experimental(n)]
