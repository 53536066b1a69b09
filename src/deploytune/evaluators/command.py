"""Run an evaluation as an external command built from an argv template (never a shell).

TO BE IMPLEMENTED (helper A). Public interface, fixed:

    CommandEvaluator(argv, *, env=None, cwd=None, timeout_s=None, memory_mb=None,
                     metrics_file=None, log_tail_bytes=65536)
"""
