"""Figures of the word-level scores (``score.words``): cumulative cpWER over session time
beside the speaker-agnostic WER, so the gap reads as what the labels cost in words."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from diareval.report import _common as c
from diareval.score.results import RunScores


def cpwer_over_time_figure(scores: RunScores | pd.DataFrame):
    """Pooled cumulative cpWER on [0, t] per configuration (each prefix with its own speaker
    permutation), with the run's speaker-agnostic WER dotted: the gap is what the labels cost
    in words. ``scores``: the RunScores (WER lines need its ``wer_dataset``) or its
    ``cpwer_over_time_dataset``."""
    curve = c.table(scores, "cpwer_over_time_dataset")
    words = c.table(scores, "wer_dataset") if isinstance(scores, RunScores) else pd.DataFrame()
    wer = words.set_index("config")["wer"] if len(words) and "wer" in words else \
        pd.Series(dtype=float)
    if curve.empty:
        return c.empty_figure("no reference words: cpWER over time needs them")
    figure, axis = plt.subplots(figsize=(c.WIDTH, 4.5))
    configs = c.configs_of(curve)
    colour = c.colours(configs)
    labels, common = c.short_labels(configs)
    for config in configs:
        group = curve[curve["config"] == config].sort_values("t")
        axis.plot(group["t"] / 60, c.percent(group["cpwer"]), marker="o", color=colour[config],
                  label=labels[config])
        if config in wer.index and pd.notna(wer[config]):
            axis.axhline(100 * wer[config], linestyle=":", color=colour[config],
                         label=f"{labels[config]}: WER (no speakers)")
    axis.set_xlabel("session time (min)")
    axis.set_ylabel("cpWER on [0, t] (%)")
    axis.set_title("cpWER over session time (pooled over sessions with reference words)")
    axis.grid(alpha=0.3)
    c.legend(axis, title=common)
    extra = ""
    if "conv_wer_normalizer" in curve.columns and len(curve):
        extra = (f"words normalised {curve['conv_wer_normalizer'].iloc[0] or 'not at all'} "
                 "on both sides; each prefix [0, t] with its own permutation")
    return c.finish(figure, curve, extra=extra)
