"""Analysis of deploytune studies: text and rich summaries, figures and an HTML report.

Example:
    >>> from deploytune.analysis import load_result, summary_text, write_report
    >>> result = load_result(study)
    >>> print(summary_text(result))
    >>> write_report(study, Path("report"))

Importing this package does not import matplotlib; :func:`write_report` does, when called.
"""

from __future__ import annotations

from deploytune.analysis.report import CATEGORY_COLORS, write_report
from deploytune.analysis.summary import (
    Closest,
    closest_constraint,
    load_result,
    render_summary,
    summary_text,
)

__all__ = [
    "CATEGORY_COLORS",
    "Closest",
    "closest_constraint",
    "load_result",
    "render_summary",
    "summary_text",
    "write_report",
]
