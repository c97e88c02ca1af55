"""Every figure of a scored run, by name: :data:`FIGURES` and :func:`write_figures`.

Each entry of :data:`FIGURES` is ``name -> function(RunScores) -> Figure | None`` (None
when the run's tables lack what the figure needs: one configuration has no comparison, a
run without noise levels has no noise figure). :func:`write_figures` saves every figure
the run allows as ``<dir>/<name>.png`` (plus session timelines when given the run
directory); the HTML report embeds exactly these.

The figure functions themselves live in :mod:`~diareval.report.over_time`,
:mod:`~diareval.report.stability`, :mod:`~diareval.report.accuracy`,
:mod:`~diareval.report.timeline` and :mod:`~diareval.report.compare`; each takes the
RunScores or the one table it draws.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import pandas as pd

from diareval.errors import DiarevalError
from diareval.report._common import table
from diareval.report.accuracy import (BREAKDOWNS, breakdown_figure, der_by_region_figure,
                                      latency_figure)
from diareval.report.compare import comparison_figure, noise_figure, noise_levels
from diareval.report.over_time import (der_over_time_figure, der_seen_figure,
                                       der_windows_figure, turn_k_figure)
from diareval.report.stability import (STABILITY_COLUMNS, speaker_count_figure,
                                       stability_figure)
from diareval.report.words import cpwer_over_time_figure
from diareval.rundir import RunDir
from diareval.score.results import RunScores

__all__ = ["BREAKDOWNS", "FIGURES", "breakdown_figure", "der_over_time_figure", "figure",
           "write_figures"]


def _has(scores: RunScores, name: str, *columns: str) -> bool:
    frame = table(scores, name)
    return isinstance(frame, pd.DataFrame) and not frame.empty and \
        all(column in frame.columns for column in columns)


def _scored(scores: RunScores) -> pd.DataFrame:
    sessions = table(scores, "sessions")
    if sessions.empty or "scored" not in sessions:
        return sessions
    return sessions[sessions["scored"].astype(bool)]


def _when(test: Callable[[RunScores], bool], draw: Callable[[RunScores], object]):
    def entry(scores: RunScores):
        return draw(scores) if test(scores) else None
    entry.__doc__ = draw.__doc__
    entry.__wrapped__ = draw
    return entry


def _breakdown(by: str):
    def has(scores):
        return _has(scores, "breakdowns", "breakdown") and \
            bool((scores.breakdowns["breakdown"] == by).any())
    return _when(has, lambda scores: breakdown_figure(scores, by=by))


def _two_configs(scores) -> bool:
    return _has(scores, "comparisons", "b_config", "difference")


#: name -> function(RunScores) -> Figure | None, in the order a report shows them
FIGURES: dict[str, Callable] = {
    "der_over_time": _when(lambda s: _has(s, "der_over_time_dataset", "der_prefix")
                           or _has(s, "der_over_time", "confusion_prefix"),
                           der_over_time_figure),
    "der_seen": der_seen_figure,
    "der_windows": _when(lambda s: _has(s, "der_windows", "confusion_window"),
                         der_windows_figure),
    "accuracy_by_turn_k": _when(lambda s: _has(s, "breakdowns", "breakdown") and
                                bool((s.breakdowns["breakdown"] == "turn_k").any()),
                                turn_k_figure),
    "stability": _when(lambda s: not _scored(s).empty and
                       all(k in _scored(s).columns for k in STABILITY_COLUMNS),
                       stability_figure),
    "speaker_counts": _when(lambda s: _has(s, "speaker_counts", "n_hyp_labels_shown"),
                            speaker_count_figure),
    **{f"accuracy_by_{by}": _breakdown(by) for by in BREAKDOWNS if by != "turn_k"},
    "der_by_region": _when(lambda s: _has(s, "der_by_region_dataset", "region"),
                           der_by_region_figure),
    "latency": _when(lambda s: _has(s, "latency", "finalisation_latency"), latency_figure),
    "comparisons": _when(_two_configs, comparison_figure),
    "noise": _when(lambda s: len(noise_levels(s)) >= 2, noise_figure),
    "cpwer_over_time": _when(lambda s: _has(s, "cpwer_over_time_dataset", "cpwer"),
                             cpwer_over_time_figure),
}


def figure(scores: RunScores, name: str):
    """The figure ``name`` of :data:`FIGURES` for ``scores`` (None when the run lacks the
    data); an unknown name is an error listing the known ones."""
    from diareval.errors import ConfigError
    if name not in FIGURES:
        raise ConfigError(f"no figure {name!r}; known: {', '.join(FIGURES)}")
    return FIGURES[name](scores)


def _timelines(scores: RunScores, run_dir: Path, limit: int, recordings=None):
    """(name, figure) of the first scored recording's timeline in each configuration (at
    most ``limit`` configurations)."""
    from diareval.report.timeline import timeline_from_run
    sessions = _scored(scores)
    if sessions.empty or limit <= 0:
        return
    uri = sorted(sessions["uri"].astype(str))[0]
    recording = None
    for config in list(dict.fromkeys(sessions["config"]))[:limit]:
        if not RunDir(run_dir).log_path(config, uri).exists():
            continue
        if recording is None:
            from diareval.report.timeline import run_recording
            try:
                recording = run_recording(run_dir, uri) if recordings is None else \
                    {r.uri: r for r in recordings}[uri]
            except (DiarevalError, KeyError) as error:
                warnings.warn(f"no session timeline: cannot load recording {uri!r} "
                              f"({error})", stacklevel=3)
                return
        yield (f"timeline__{config}__{uri}",
               timeline_from_run(run_dir, uri, config=config, scores=scores,
                                 recording=recording))


def write_figures(scores: RunScores, figures_dir: str | Path, run_dir: str | Path | None = None,
                  timelines: int = 4, recordings=None, dpi: int = 110) -> list[Path]:
    """Save every figure of :data:`FIGURES` the scores allow as ``<figures_dir>/<name>.png``
    and, given the ``run_dir``, the timeline of the first scored recording in each of the
    first ``timelines`` configurations (``timeline__<config>__<uri>.png``; the recording
    from ``recordings``, else from run.json's dataset; a warning and no timeline when it
    cannot be loaded). Returns the paths, in :data:`FIGURES` order."""
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def save(name, fig):
        if fig is None:
            return
        path = figures_dir / f"{name}.png"
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        written.append(path)

    for name, draw in FIGURES.items():
        save(name, draw(scores))
    if run_dir is not None:
        for name, fig in _timelines(scores, Path(run_dir), timelines, recordings):
            save(name, fig)
    return written
