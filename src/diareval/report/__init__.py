"""Figures and tables from the score DataFrames (matplotlib); notebooks call these."""

from diareval.report.figures import breakdown_figure, der_over_time_figure, write_figures

__all__ = ["breakdown_figure", "der_over_time_figure", "write_figures"]
