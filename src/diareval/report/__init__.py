"""Figures from a scored run (matplotlib); notebooks and the HTML report call these.

Every figure function takes the :class:`~diareval.score.results.RunScores` (or the one
table it draws) and returns a Figure; :data:`FIGURES` names them all and
:func:`write_figures` saves every one the run allows. The session timeline needs the
session log and the Recording too (:func:`session_timeline_figure`,
:func:`timeline_from_run`).
"""

from diareval.report.accuracy import (BREAKDOWNS, breakdown_figure, der_by_region_figure,
                                      latency_figure)
from diareval.report.compare import comparison_figure, noise_figure, split_snr
from diareval.report.figures import FIGURES, figure, write_figures
from diareval.report.over_time import (der_over_time_figure, der_seen_figure,
                                       der_windows_figure, turn_k_figure)
from diareval.report.stability import speaker_count_figure, stability_figure
from diareval.report.timeline import (error_regions, session_timeline_figure,
                                      timeline_from_run)
from diareval.report.words import cpwer_over_time_figure

__all__ = ["BREAKDOWNS", "FIGURES", "breakdown_figure", "comparison_figure",
           "cpwer_over_time_figure",
           "der_by_region_figure", "der_over_time_figure", "der_seen_figure",
           "der_windows_figure", "error_regions", "figure", "latency_figure", "noise_figure",
           "session_timeline_figure", "speaker_count_figure", "split_snr", "stability_figure",
           "timeline_from_run", "turn_k_figure", "write_figures"]

# comparisons across runs and the HTML report (report/comparison.py, report/html.py)
from diareval.report.comparison import Comparison, compare_runs  # noqa: E402
from diareval.report.html import write_report  # noqa: E402

__all__ += ["Comparison", "compare_runs", "write_report"]
