"""DeployBench: the benchmark of deploytune's samplers and of the tool itself.

Kept apart from the library (its own distribution, ``bench/pyproject.toml``; not in the
deploytune wheel) and built on deploytune's public API only:

* problems: :mod:`deploybench.problem` (the :class:`~deploybench.problem.Problem` interface,
  its truth and regret), the simulated families (:mod:`~deploybench.deploy_sim`,
  :mod:`~deploybench.pipeline_sim`, :mod:`~deploybench.llm_sim`,
  :mod:`~deploybench.synthetic`, :mod:`~deploybench.generated`), recorded real workloads
  (:mod:`~deploybench.replay`, :mod:`~deploybench.real`, :mod:`~deploybench.recording`,
  tables in ``data/``) and :mod:`~deploybench.registry`, which names them all;
* runs and statistics: :mod:`~deploybench.runner`, :mod:`~deploybench.metrics`,
  :mod:`~deploybench.stats`, :mod:`~deploybench.figures`;
* experiments on the tool: :mod:`~deploybench.trust`, :mod:`~deploybench.probe`,
  :mod:`~deploybench.overhead`, :mod:`~deploybench.isolation`,
  :mod:`~deploybench.early_abort`;
* the commands ``deploytune bench`` and ``deploytune problems`` (:mod:`~deploybench.cli`),
  added to deploytune's command line through the ``deploytune.commands`` entry point.
"""
