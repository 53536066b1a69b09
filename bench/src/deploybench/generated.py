"""Generated DeployBench problems: a seeded family of random deployment-like instances.

The hand-written problems (``crashy-branin``, ``deploy-sim-*``, ``llm-sim-*``, ...) are few, so a
sampler setting chosen on them can be overfitted to them. This module draws as many problems as
needed from one family, each determined by an integer ``instance`` (NumPy's PCG64 seeded with
``[17, instance]``; the same instance gives the same problem on every machine), and fixes two
splits: a development set (:data:`DEV_INSTANCES`, ``gen-dev-00`` .. ``gen-dev-19``) to choose
sampler settings on, and a test set (:data:`TEST_INSTANCES`, ``gen-test-00`` ..
``gen-test-19``) to report on, never to tune on.

The family (every draw is independent and uniform unless stated; "log-uniform" = uniform in
log space):

Search space
    ``n`` parameters, ``n`` uniform in 3..14. ``n_u`` = min(n - 1, uniform 0..3) unordered
    categoricals ``catK`` come first (2-5 string choices ``"a"``, ``"b"``, ...); of the rest,
    each is an ordered categorical ``ordK`` with probability 1/4 (3-6 numeric choices: powers
    of two from 1, 2, 4 or 8, or evenly spaced rounded floats), otherwise an ``intK`` or a
    ``realK`` (even odds), each on a log scale with probability 1/2 (ints) or 2/5 (reals).
    ``K`` is the parameter's position. With probability ``p_cond`` (per instance, uniform in
    [0, 0.5]) a parameter after an unordered categorical is conditional: active only when a
    random earlier unordered categorical takes one of a random non-empty proper subset of its
    choices (so categoricals can nest). Ordered parameters are positioned in ``u`` in [0, 1]
    (log scale for log parameters, choice index for ordered categoricals); an inactive
    parameter contributes nothing below.

Metrics (noise-free model; ``u_i`` the positions, ``v`` unordered choices)
    * Speed ``S = sum_i a_i u_i - b_i (u_i - c_i)^2 + sum_cat s[v] + sum_pairs g (u_i - 1/2)
      (u_j - 1/2)``, with ``c_i`` uniform in [0, 1], ``b_i`` 0 or uniform in [0, 2] (even
      odds), cat offsets ``s`` ~ N(0, 0.4), 0-2 pairwise terms with ``g`` ~ N(0, 1.5).
    * Memory ``memory_mb = M0 * prod_i (1 + r_i u_i)^(d_i e_i) * prod_cat m[v]``: each ordered
      parameter drives memory with probability ``p_mem`` (uniform in [0.2, 0.6]; at least one
      when there are ordered parameters), increasing (``d = +1``, odds 3/4) or decreasing
      (``d = -1``); ``r_i`` log-uniform in [1, 30], exponent ``e_i`` uniform in [0.3, 1.5],
      ``M0`` log-uniform in [200, 20000] MB, cat factors ``m = exp(N(0, 0.4))``. Each driver
      is declared (``memory: increasing|decreasing``) with probability 0.85; a declaration is
      always true (undeclared drivers model a user who did not know).
    * Latency ``latency_ms = L0 * exp(sum_i l_i u_i + sum_cat l[v])``: drivers grow in their
      memory direction (``l_i = d_i * U(0.2, 1.5)``: a bigger batch is slower per request),
      other parameters ``l_i = -rho a_i + N(0, 0.3)`` with ``rho`` uniform in [0, 1]; ``L0``
      log-uniform in [5, 500] ms, cat offsets N(0, 0.3).
    * Quality ``quality = q0 - sum_i q_i u_i^2 - sum_cat q[v]``: each ordered parameter trades
      quality for speed with probability 0.3 (``q_i`` uniform in [0.02, 0.2], ``a_i`` raised by
      uniform [0.3, 1]; at least one does); ``q0`` uniform in [0.8, 0.98], cat penalties
      uniform in [0, 0.08].
    * Drivers have ``a_i`` = U(0.3, 1.5) (increasing) or -U(0.1, 1) (decreasing); others
      ``a_i`` ~ N(0, 0.7).
    * Objective (even odds): maximise ``throughput = T0 * exp(S)`` (``T0`` log-uniform in
      [10, 1000]) or minimise ``time_per_item_ms = t0 * exp(-S)`` (``t0`` log-uniform in
      [1, 100]).
    * Measurement noise: every reported metric is multiplied by ``max(0.05, 1 + sigma z)``,
      ``z`` standard normal from the ``rng`` the Problem API passes in, ``sigma`` uniform in
      [0, 0.1] per instance (``sigma / 4`` for quality, which sits in a narrow band near its
      floor, as an accuracy measured on a fixed evaluation set would). Crashes are
      noise-free.

Crashes (checked in this order)
    * 1-4 rules, each a conjunction of 1-3 conditions on distinct parameters: an unordered
      categorical equal to one random choice, or an ordered parameter's ``u`` above ``1 - s``
      or below ``s`` (even odds), ``s = r^(1/m)`` for ``m`` ordered conditions and a rule share
      ``r`` uniform in [0.02, 0.12]. A condition on an inactive parameter is false. A rule
      of unordered conditions only raises :class:`~deploytune.InvalidConfig`; one with an
      ordered condition raises ``InvalidConfig`` (odds 0.3), else ``RuntimeError`` or
      ``TimeoutError`` (even odds). Invalid-config rules are checked first.
    * Out of memory: ``MemoryError`` when the noise-free memory exceeds the device memory,
      placed at the ``1 - o`` quantile of the memory of random configurations that passed the
      invalid-config rules, ``o`` uniform in [0.03, 0.25]; with probability 0.15 the device
      is big enough for everything (no OOM).
    * Then the runtime-error / timeout rules. Rules are dropped, last first, while more than
      60 % of the placement sample (below) crashes.

Constraints and placement
    1-3 (uniform) of ``latency_ms <= L``, ``memory_mb <= M``, ``quality >= Q``, chosen at
    random. The limits come from 2000 random configurations (``space.sample`` with the
    generator ``[17, instance, 1]``), evaluated noise-free: with weights ``w`` ~
    Dirichlet(1, ..., 1), limit ``c`` is the ``t^(w_c)`` quantile (``1 - t^(w_c)`` for
    quality) of the non-crashed values, and ``t`` is bisected so that a target share ``p``
    of all 2000 (crashed included) is feasible, ``p`` uniform in [0.01, 0.20] (ties in the
    metric values can leave the share a little off ``p``). Limits are rounded to 6
    significant digits.

Optimum and reference
    ``optimum`` is estimated: the best noise-free feasible objective among those 2000 samples,
    then improved by local search (8 starts from the best, 50 :meth:`Space.neighbor` moves
    each, accepting noise-free feasible improvements). A sampler may beat the estimate; its
    regret is then 0. ``reference`` is the mean noise-free objective of the feasible samples,
    so normalised regret is 1 at the mean feasible random configuration.

Cost model
    A full run costs ``F`` simulated seconds (log-uniform in [30, 300]), an infeasible run the
    same, an aborted one ``F / 4``. Crashes cost ``F`` times: invalid config log-uniform in
    [0.1, 1], oom and runtime error log-uniform in [0.1, 3], timeout log-uniform in [1, 10],
    transient 0.1; so crash costs range from 0.1x to 10x a full run.

Fidelity rung (issue 21)
    With rungs (:attr:`Problem.staged <deploybench.problem.Problem.staged>`), an evaluation
    that does not crash reports the rung ``short`` before its end: a measurement over a quarter
    of the timed windows, with twice the noise (drawn from a child generator, so the final
    metrics are those without rungs). A run stopped there costs ``F / 4``, the aborted cost.

Noisy variant (issue 18)
    Real CPUs are noisier in some regions (dynamic INT8 quantization measures far noisier than
    fp32), so each instance also has a variant whose noise depends on the configuration:
    ``gen-noisy-dev-NN`` / ``gen-noisy-test-NN`` (:func:`generate_noisy`; other instances
    ``gen-noisy-<instance>``) is instance ``gen-dev-NN`` / ``gen-test-NN`` with the same
    space, metric model, crash rules, constraint limits, optimum, reference and costs (all
    noise-free quantities, placed on the base instance), and only its noise changed. The
    changes are drawn from a separate generator seeded with ``[17, instance, 3]``, so the base
    instance is untouched, in this order: a base ``sigma`` uniform in [0.02, 0.08], a factor
    ``f`` uniform in [2, 5], then the noisy region (:class:`NoisyRegion`). With unordered
    categoricals, one of them (uniform among the unconditional ones, all of them if none is)
    and one of its choices (uniform): a configuration taking that choice is measured with
    ``sigma * f``, any other with ``sigma``. Without unordered categoricals, one ordered
    parameter (uniform): the noise grows along it, ``sigma * (1 + (f - 1) u)`` with ``u`` its
    position (``sigma`` when it is inactive). The config-dependent sigma
    (:meth:`GeneratedInstance.noise_of`) replaces the per-instance one in the noise model
    above (``max(0.05, 1 + sigma z)``, a quarter of it for quality); crashes stay noise-free
    and an evaluation depends only on the configuration and the ``rng`` passed in.

Generation takes 40-150 ms (most of it evaluating the placement sample), one evaluation
about 60 microseconds.

The family is split by job: the instance model and its evaluation
(:mod:`deploybench.generated_model`), drawing an instance (:mod:`deploybench.generated_draw`)
and placing its limits and optimum (:mod:`deploybench.generated_placement`). Their public
names are importable from here.

Example:
    >>> from deploybench.generated import generate
    >>> generate(3).name, generate(5000).name
    ('gen-dev-03', 'gen-5000')
    >>> generate_noisy(3).name, generate_noisy(1001).name
    ('gen-noisy-dev-03', 'gen-noisy-test-01')
"""

from __future__ import annotations

from deploybench.generated_draw import (
    DEV_INSTANCES,
    TEST_INSTANCES,
    build_instance,
    build_noisy_instance,
    instance_name,
    noisy_instance_name,
)
from deploybench.generated_model import PLACEMENT_SAMPLES, GeneratedInstance, NoisyRegion
from deploybench.problem import Problem

__all__ = [
    "DEV_INSTANCES",
    "PLACEMENT_SAMPLES",
    "TEST_INSTANCES",
    "GeneratedInstance",
    "NoisyRegion",
    "build_instance",
    "build_noisy_instance",
    "generate",
    "generate_noisy",
    "generated_noisy_problems",
    "generated_problems",
]


def generate(instance: int) -> Problem:
    """A random problem instance drawn deterministically from its integer seed.

    Args:
        instance: A non-negative integer; the same instance gives the identical problem on
            every machine.

    Returns:
        The :class:`~deploybench.problem.Problem` (named ``gen-dev-NN`` for
        :data:`DEV_INSTANCES`, ``gen-test-NN`` for :data:`TEST_INSTANCES`, ``gen-<instance>``
        otherwise).
    """
    return build_instance(instance).problem()


def generated_problems() -> dict[str, int]:
    """Registry names of the two splits -> their instances (development set first)."""
    return {instance_name(i): i for i in (*DEV_INSTANCES, *TEST_INSTANCES)}


def generate_noisy(instance: int) -> Problem:
    """The noisy variant of :func:`generate` ``(instance)``: same space, limits, optimum and
    reference, with noise that depends on the configuration (see the module docstring).

    Args:
        instance: A non-negative integer; the same instance gives the identical problem on
            every machine.

    Returns:
        The :class:`~deploybench.problem.Problem`, named ``gen-noisy-dev-NN``,
        ``gen-noisy-test-NN`` or ``gen-noisy-<instance>``.
    """
    return build_noisy_instance(instance).problem()


def generated_noisy_problems() -> dict[str, int]:
    """Registry names of the noisy variants of the two splits -> their instances."""
    return {noisy_instance_name(i): i for i in (*DEV_INSTANCES, *TEST_INSTANCES)}
