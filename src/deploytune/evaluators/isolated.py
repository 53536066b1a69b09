"""Run a Python evaluation function in a fresh child process, isolated from the tuner.

TO BE IMPLEMENTED (helper A). Public interface, fixed:

    IsolatedEvaluator(target, *, timeout_s=None, memory_mb=None, env=None, cwd=None,
                      python=sys.executable, sys_path=(), log_tail_bytes=65536)

* ``target``: ``"package.module:function"`` (imported in the child) or a module-level function
  object (turned into that string; lambdas / nested / ``__main__`` functions are rejected with a
  ValueError that says to move the function into an importable module).
* The function is ``fn(config) -> dict`` or ``fn(config, report) -> dict``; ``report(metrics,
  step=None)`` / ``report(p95_ms=..., step=...)`` streams intermediate measurements to the parent,
  which calls ``monitor.report`` and, on :class:`AbortTrial`, kills the child's process group and
  returns ``Evaluation(partial metrics, aborted=reason)``.
* ``evaluate(config, monitor) -> Evaluation``; never raises for anything the child does;
  ``KeyboardInterrupt`` in the parent kills the child group and propagates.
* ``check()``: raises ValueError naming the target when the module cannot be imported or the
  function does not exist (done in a child process so import side effects stay out of the tuner).
"""
