"""Analysis of deploytune studies: summaries, parameter importance, figures and an HTML report.

Example:
    >>> from deploytune.analysis import load_result, summary_text, write_report
    >>> result = load_result(study)
    >>> print(summary_text(result))
    >>> write_report(study, Path("report"))

Parameter importance by target (objective, crashes, infeasibility):
:func:`~deploytune.analysis.importance.importance_of_study`.

Everything here returns data (or writes files); the command line prints it on a rich console
(:mod:`deploytune.cli.render_analysis`). Importing this package does not import matplotlib or
scikit-learn; :func:`write_report` and the importance functions do, when called.
"""

from __future__ import annotations

from deploytune.analysis.importance import (
    ImportanceReport,
    importance,
    importance_of_study,
    write_importance_figure,
)
from deploytune.analysis.report import CATEGORY_COLORS, write_report
from deploytune.analysis.summary import (
    Closest,
    closest_constraint,
    load_result,
    summary_text,
)

__all__ = [
    "CATEGORY_COLORS",
    "Closest",
    "ImportanceReport",
    "closest_constraint",
    "importance",
    "importance_of_study",
    "load_result",
    "summary_text",
    "write_importance_figure",
    "write_report",
]
