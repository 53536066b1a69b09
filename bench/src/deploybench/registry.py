"""The DeployBench problem registry: problem names -> :class:`~deploybench.problem.Problem`.

Example:
    >>> from deploybench.registry import expand_problem_names, get_problem
    >>> [get_problem(n).name for n in expand_problem_names(["deploy-sim"])]
    ['deploy-sim-edge', 'deploy-sim-server']
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from deploybench.deploy_sim import deploy_sim_edge, deploy_sim_server
from deploybench.generated import (
    generate,
    generate_noisy,
    generated_noisy_problems,
    generated_problems,
)
from deploybench.llm_sim import (
    llm_sim_8b_24gb,
    llm_sim_70b_2xh100,
    llm_sim_70b_4xh100,
    llm_sim_70b_8xh100,
)
from deploybench.pipeline_sim import pipeline_sim
from deploybench.problem import Problem
from deploybench.synthetic import crashy_branin, hierarchical_rosenbrock


def _real(name: str, replay: bool) -> Problem:
    from deploybench.real import split_problem_name
    from deploybench.replay import live_problem, replay_problem

    parsed = split_problem_name(name)
    assert parsed is not None, name
    workload, scenario, _ = parsed
    return replay_problem(workload, scenario) if replay else live_problem(workload, scenario)


_REAL_SCENARIOS = {"effnet": ("edge", "server"), "minilm": ("edge", "server"),
                   "whisper": ("edge", "server")}
_REPLAY = [f"{w}-{s}-replay" for w, scenarios in _REAL_SCENARIOS.items() for s in scenarios]
_LIVE = [f"{w}-{s}" for w, scenarios in _REAL_SCENARIOS.items() for s in scenarios]

__all__ = ["ALIASES", "expand_problem_names", "get_problem", "problem_names"]

_FACTORIES: dict[str, Callable[[], Problem]] = {
    "crashy-branin": crashy_branin,
    "hierarchical-rosenbrock": hierarchical_rosenbrock,
    "deploy-sim-edge": deploy_sim_edge,
    "deploy-sim-server": deploy_sim_server,
    "pipeline-sim": pipeline_sim,
    "llm-sim-8b-24gb": llm_sim_8b_24gb,
    "llm-sim-70b-2xh100": llm_sim_70b_2xh100,
    "llm-sim-70b-4xh100": llm_sim_70b_4xh100,
    "llm-sim-70b-8xh100": llm_sim_70b_8xh100,
    **{name: functools.partial(_real, name, True) for name in _REPLAY},
}

def _llama_cpu() -> Problem:
    from deploybench.llama_cpu import llama_cpu

    return llama_cpu()


_LIVE_FACTORIES: dict[str, Callable[[], Problem]] = {
    **{name: functools.partial(_real, name, False) for name in _LIVE},
    "llama-cpu": _llama_cpu,
}
"""Problems whose evaluations really run (minutes per run): never part of ``all``."""

_GENERATED_FACTORIES: dict[str, Callable[[], Problem]] = {
    **{name: functools.partial(generate, instance)
       for name, instance in generated_problems().items()},
    **{name: functools.partial(generate_noisy, instance)
       for name, instance in generated_noisy_problems().items()},
}
"""The generated family's two splits and their noisy variants (region-dependent noise)
(:mod:`deploybench.generated`): never part of ``all``, so what ``all`` runs stays what
earlier results were measured on."""

ALIASES: dict[str, tuple[str, ...]] = {
    "deploy-sim": ("deploy-sim-edge", "deploy-sim-server"),
    "llm-sim": ("llm-sim-8b-24gb", "llm-sim-70b-2xh100", "llm-sim-70b-4xh100",
                "llm-sim-70b-8xh100"),
    "replay": tuple(_REPLAY),
    "live": (*_LIVE, "llama-cpu"),
    "gen-dev": tuple(n for n in _GENERATED_FACTORIES if n.startswith("gen-dev-")),
    "gen-test": tuple(n for n in _GENERATED_FACTORIES if n.startswith("gen-test-")),
    "gen-noisy-dev": tuple(n for n in _GENERATED_FACTORIES if n.startswith("gen-noisy-dev-")),
    "gen-noisy-test": tuple(n for n in _GENERATED_FACTORIES
                            if n.startswith("gen-noisy-test-")),
}
"""Names that stand for several problems (``all`` stands for every problem except the live
ones, which run real evaluations, and the generated ones, ``gen-dev``, ``gen-test``,
``gen-noisy-dev`` and ``gen-noisy-test``)."""


def problem_names() -> list[str]:
    """Every registered problem name, in registration order (generated problems, then live
    problems last)."""
    return [*_FACTORIES, *_GENERATED_FACTORIES, *_LIVE_FACTORIES]


def get_problem(name: str) -> Problem:
    """Build a fresh instance of the problem called ``name``.

    Args:
        name: A name from :func:`problem_names`.

    Returns:
        The problem.

    Raises:
        ValueError: For an unknown name (aliases such as ``deploy-sim`` included, since they
            stand for several problems), listing the known names.
    """
    factory = _FACTORIES.get(name) or _GENERATED_FACTORIES.get(name) \
        or _LIVE_FACTORIES.get(name)
    if factory is None:
        hint = ""
        if name in ALIASES or name == "all":
            members = ALIASES.get(name, tuple(_FACTORIES))
            hint = f"; {name!r} stands for several problems ({', '.join(members)}), " \
                   f"use expand_problem_names() first"
        raise ValueError(f"unknown problem {name!r}; known problems: "
                         f"{', '.join(problem_names())}{hint}")
    return factory()


def expand_problem_names(names: Sequence[str]) -> list[str]:
    """Expand aliases: ``deploy-sim`` -> both deploy-sim scenarios, ``all`` -> every simulated
    and replayed problem (not the generated or live ones), ``gen-dev`` -> the generated
    development set, ``gen-noisy-dev`` -> its noisy variant (region-dependent noise).

    The result keeps the order of first mention and holds no duplicates.

    Args:
        names: Problem names and aliases.

    Returns:
        Problem names accepted by :func:`get_problem`.

    Raises:
        ValueError: For an unknown name, listing the known names and aliases.
    """
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for name in names:
        if name == "all":
            members: Sequence[str] = list(_FACTORIES)
        elif name in ALIASES:
            members = ALIASES[name]
        elif name in _FACTORIES or name in _GENERATED_FACTORIES or name in _LIVE_FACTORIES:
            members = [name]
        else:
            raise ValueError(f"unknown problem {name!r}; known problems: "
                             f"{', '.join(problem_names())}; aliases: "
                             f"{', '.join([*ALIASES, 'all'])}")
        out.extend(m for m in members if m not in out)
    return out
