"""Figures and tables from the score DataFrames (matplotlib); notebooks call these."""

from diareval.report.figures import breakdown_figure, der_over_time_figure, write_figures

__all__ = ["breakdown_figure", "der_over_time_figure", "write_figures"]

# comparisons across runs and the HTML report (report/compare.py, report/html.py)
from diareval.report.comparison import Comparison, compare_runs  # noqa: E402
from diareval.report.html import write_report  # noqa: E402

__all__ += ["Comparison", "compare_runs", "write_report"]
