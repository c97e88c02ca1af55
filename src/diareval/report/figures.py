"""Figures from a scored run (``diareval.score.score_run``'s :class:`RunScores`).

Each function takes the :class:`RunScores` or the one named table it draws (a DataFrame)
and returns a matplotlib Figure; every figure carries the scoring conventions in a
footnote. :func:`write_figures` saves them all as ``<run>/figures/*.png``.
"""

from __future__ import annotations

from pathlib import Path

# No matplotlib.use() here: notebooks need their inline backend, and matplotlib already
# falls back to Agg where there is no display.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from diareval.errors import ConfigError
from diareval.score.results import RunScores

#: the turn-accuracy breakdowns ``breakdown_figure(by=...)`` draws (the ``breakdown``
#: column of ``RunScores.breakdowns``)
BREAKDOWNS = ("word_count", "duration", "overlap", "turn_index", "turn_k")


def _table(scores: RunScores | pd.DataFrame, name: str) -> pd.DataFrame:
    """``scores.<name>`` when given the RunScores, else the table itself."""
    return getattr(scores, name) if isinstance(scores, RunScores) else scores


def _footnote(figure, table: pd.DataFrame) -> None:
    text = table.attrs.get("conventions") or ""
    if not text and "conv_collar" in table.columns and len(table):
        row = table.iloc[0]
        text = (f"collar {row['conv_collar']:g} s per side, overlap "
                f"{'skipped' if row['conv_skip_overlap'] else 'scored'}, UEM {row['conv_uem']}, "
                f"unknown={row['conv_unknown']}")
    figure.text(0.01, 0.01, text, fontsize=7, color="0.35", ha="left", va="bottom")


def der_over_time_figure(scores: RunScores | pd.DataFrame):
    """Pooled DER on [0, t] per configuration: the prefix's own mapping (solid), the
    final mapping (dashed) and, given the RunScores, what was on screen at t (dotted:
    ``der_seen_dataset``, messages as they arrived). ``scores``: the RunScores or its
    ``der_over_time_dataset``."""
    curve = _table(scores, "der_over_time_dataset")
    seen = scores.der_seen_dataset if isinstance(scores, RunScores) else pd.DataFrame()
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for config, group in curve.groupby("config", sort=False):
        line, = axis.plot(group["t"] / 60, 100 * group["der_prefix"], label=f"{config}")
        axis.plot(group["t"] / 60, 100 * group["der_final"], linestyle="--",
                  color=line.get_color(), label=f"{config} (final mapping)")
        if len(seen) and (seen["config"] == config).any():
            screen = seen[seen["config"] == config]
            axis.plot(screen["t"] / 60, 100 * screen["der"], linestyle=":",
                      color=line.get_color(), label=f"{config} (on screen at t)")
    axis.set_xlabel("session time (min)")
    axis.set_ylabel("DER on [0, t] (%)")
    axis.set_title("DER over session time (pooled over sessions)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    _footnote(figure, curve)
    return figure


def breakdown_figure(scores: RunScores | pd.DataFrame, by: str = "word_count"):
    """Turn accuracy per bucket with its bootstrap interval, one series per configuration.

    ``scores``: the RunScores or its ``breakdowns`` table; ``by``: one of
    :data:`BREAKDOWNS` (``"word_count"``, ``"duration"``, ``"overlap"``, ``"turn_index"``,
    ``"turn_k"``).
    """
    if by not in BREAKDOWNS:
        raise ConfigError(f"breakdown_figure(by={by!r}): choose one of {', '.join(BREAKDOWNS)}")
    breakdowns = _table(scores, "breakdowns")
    breakdown = by
    table = breakdowns[breakdowns["breakdown"] == breakdown] if len(breakdowns) else breakdowns
    figure, axis = plt.subplots(figsize=(8, 4.5))
    configs = list(dict.fromkeys(table["config"]))
    buckets = list(dict.fromkeys(table["bucket"]))
    width = 0.8 / max(len(configs), 1)
    for i, config in enumerate(configs):
        rows = table[table["config"] == config].set_index("bucket").reindex(buckets)
        x = np.arange(len(buckets)) + (i - (len(configs) - 1) / 2) * width
        accuracy = 100 * rows["accuracy"].to_numpy(float)
        low = accuracy - 100 * rows["accuracy_lo"].to_numpy(float)
        high = 100 * rows["accuracy_hi"].to_numpy(float) - accuracy
        axis.bar(x, accuracy, width, yerr=[low, high], capsize=3, label=config)
    axis.set_xticks(np.arange(len(buckets)), buckets)
    axis.set_xlabel(breakdown.replace("_", " "))
    axis.set_ylabel("turns labelled correctly (%)")
    axis.set_ylim(0, 105)
    axis.set_title(f"Turn accuracy by {breakdown.replace('_', ' ')} (95% bootstrap interval)")
    axis.legend(fontsize=7)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    _footnote(figure, table)
    return figure


def write_figures(scores: RunScores, figures_dir: str | Path) -> list[Path]:
    """Save every figure the scores allow as PNG files; return their paths."""
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    written = []
    figures = []
    if not scores.der_over_time_dataset.empty:
        figures.append(("der_over_time", der_over_time_figure(scores)))
    breakdowns = scores.breakdowns
    if not breakdowns.empty:
        for name in ("word_count", "duration", "overlap", "turn_index"):
            if (breakdowns["breakdown"] == name).any():
                figures.append((f"accuracy_by_{name}", breakdown_figure(scores, by=name)))
    for name, figure in figures:
        path = figures_dir / f"{name}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    return written
