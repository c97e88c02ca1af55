"""One sentence per known limitation the service's documentation states, computed from a
scored run: short utterances, overlapping speech, the start of a session, unknown labels.

Each function takes a :class:`RunScores` and returns the sentence(s), one per
configuration: the two groups' rates with their bootstrap intervals (Wilson-guarded) and
the within-session paired difference (paired bootstrap over sessions), and whether the
documentation's claim holds on these recordings (the difference's interval excludes 0 in
the claimed direction). ``03-known-limitations.ipynb`` prints them under each figure.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from diareval.errors import DiarevalError
from diareval.score.results import RunScores


def _pct(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{100 * value:.0f}%"


def _interval(lo: float, hi: float) -> str:
    return "" if not (np.isfinite(lo) and np.isfinite(hi)) else \
        f" [{100 * lo:.0f}, {100 * hi:.0f}]"


def _claim(lo: float, hi: float, claimed_sign: int) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "too few turns to tell"
    if lo > 0 or hi < 0:
        holds = (lo > 0) == (claimed_sign > 0)
        return ("the documented limitation shows here" if holds else
                "the opposite of the documented limitation") + " (interval excludes 0)"
    return "no significant difference on these recordings (interval includes 0)"


def contrast(turns: pd.DataFrame, group: Callable[[pd.DataFrame], pd.Series],
             other: Callable[[pd.DataFrame], pd.Series], measure: str = "accuracy",
             n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per configuration: ``measure`` ("accuracy" = correct / scored turns, or
    "unknown_rate" = unknown / all turns) of the turns selected by ``group`` and by
    ``other`` with bootstrap intervals, and the paired difference group minus other over
    the sessions that have both (``difference``, ``lo``, ``hi``)."""
    from diareval.score.bootstrap import bootstrap_ratio, paired_bootstrap
    from diareval.score.turns import turn_counts
    numerator, denominator = (("n_correct", "n_scored") if measure == "accuracy" else
                              ("n_unknown", "n_turns"))
    rows = []
    for config, table in turns.groupby("config", sort=False):
        counts = {}
        for name, select in (("group", group), ("other", other)):
            part = table[select(table).to_numpy(bool)]
            counts[name] = turn_counts(part.assign(all="all"), "all") if len(part) else None
        row = dict(config=config)
        for name, frame in counts.items():
            ci = bootstrap_ratio(frame, numerator, denominator, n_boot=n_boot, seed=seed,
                                 wilson=True).iloc[0] if frame is not None else None
            row.update({name: np.nan if ci is None else ci["estimate"],
                        f"{name}_lo": np.nan if ci is None else ci["lo"],
                        f"{name}_hi": np.nan if ci is None else ci["hi"],
                        f"{name}_turns": 0 if frame is None else int(frame["n_turns"].sum())})
        difference = lo = hi = np.nan
        if counts["group"] is not None and counts["other"] is not None:
            try:
                d = paired_bootstrap(counts["other"], counts["group"], numerator, denominator,
                                     n_boot=n_boot, seed=seed).iloc[0]
                difference, lo, hi = d["difference"], d["lo"], d["hi"]
            except DiarevalError:  # no session with both kinds of turn
                pass
        row.update(difference=difference, lo=lo, hi=hi)
        rows.append(row)
    return pd.DataFrame(rows)


def _sentences(scores: RunScores, group, other, group_text: str, other_text: str,
               measure: str, claimed_sign: int, n_boot: int, seed: int) -> str:
    turns = scores.turns
    if turns.empty:
        return "no scored turns"
    word = "correct" if measure == "accuracy" else "unknown"
    lines = []
    for row in contrast(turns, group, other, measure, n_boot, seed).itertuples():
        if not row.group_turns:
            lines.append(f"{row.config}: no {group_text} in these sessions")
            continue
        lines.append(
            f"{row.config}: {group_text}: {_pct(row.group)} {word}"
            f"{_interval(row.group_lo, row.group_hi)} ({row.group_turns} turns) vs "
            f"{_pct(row.other)}{_interval(row.other_lo, row.other_hi)} for {other_text} "
            f"({row.other_turns}); difference {100 * row.difference:+.0f} pts"
            f"{_interval(row.lo, row.hi)}: {_claim(row.lo, row.hi, claimed_sign)}."
            if np.isfinite(row.difference) else
            f"{row.config}: {group_text}: {_pct(row.group)} {word}"
            f"{_interval(row.group_lo, row.group_hi)} vs {_pct(row.other)} for {other_text}")
    return "\n".join(lines)


def short_utterances(scores: RunScores, n_boot: int = 1000, seed: int = 0) -> str:
    """"Short utterances (< 3 words) are unreliable": accuracy of 1-2 word turns vs 6+."""
    return _sentences(scores, lambda t: t["word_count"] <= 2, lambda t: t["word_count"] >= 6,
                      "turns of 1-2 words", "6+ words", "accuracy", -1, n_boot, seed)


def overlap(scores: RunScores, n_boot: int = 1000, seed: int = 0) -> str:
    """"Overlapping speech goes to one speaker": accuracy of turns more than 30% overlapped
    vs turns without overlap, and DER in overlapped vs single-speaker regions."""
    text = _sentences(scores, lambda t: t["overlap_ratio"] > 0.3,
                      lambda t: t["overlap_ratio"] == 0, "turns more than 30% overlapped",
                      "turns without overlap", "accuracy", -1, n_boot, seed)
    regions = scores.der_by_region_dataset
    if not regions.empty:
        for config, group in regions.groupby("config", sort=False):
            by = group.set_index("region")
            if {"overlap", "single"} <= set(by.index):
                o, s = by.loc["overlap"], by.loc["single"]
                text += (f"\n{config}: DER in overlapped speech {_pct(o['der'])}"
                         f"{_interval(o['der_lo'], o['der_hi'])} vs {_pct(s['der'])}"
                         f"{_interval(s['der_lo'], s['der_hi'])} in single-speaker speech.")
    return text


def session_start(scores: RunScores, n_boot: int = 1000, seed: int = 0) -> str:
    """"The first 1-2 turns may be misassigned": accuracy of turns 1-2 vs later turns."""
    return _sentences(scores, lambda t: t["turn_index"] <= 2, lambda t: t["turn_index"] > 2,
                      "the first 2 turns", "later turns", "accuracy", -1, n_boot, seed)


def unknown_labels(scores: RunScores, n_boot: int = 1000, seed: int = 0) -> str:
    """How often a turn has no speaker (null or "UNKNOWN"): overall, and 1-2 word turns vs
    3+ word turns."""
    turns = scores.turns
    if turns.empty:
        return "no scored turns"
    overall = turns.groupby("config", sort=False)["unknown"].mean()
    head = "\n".join(f"{config}: {_pct(rate)} of all turns had no speaker label"
                     for config, rate in overall.items())
    return head + "\n" + _sentences(scores, lambda t: t["word_count"] <= 2,
                                    lambda t: t["word_count"] >= 3, "turns of 1-2 words",
                                    "3+ words", "unknown_rate", 1, n_boot, seed)


def unknown_rate_figure(scores: RunScores, by: str = "word_count"):
    """Unknown-label rate per bucket of ``by`` with its interval, one bar group per
    configuration (from ``scores.breakdowns``)."""
    import matplotlib.pyplot as plt
    table = scores.breakdowns
    table = table[table["breakdown"] == by] if len(table) else table
    if table.empty:
        return None
    figure, axis = plt.subplots(figsize=(8, 4.5))
    configs, buckets = list(dict.fromkeys(table["config"])), list(dict.fromkeys(table["bucket"]))
    width = 0.8 / len(configs)
    for i, config in enumerate(configs):
        rows = table[table["config"] == config].set_index("bucket").reindex(buckets)
        rate = 100 * rows["unknown_rate"].to_numpy(float)
        errors = [rate - 100 * rows["unknown_rate_lo"].to_numpy(float),
                  100 * rows["unknown_rate_hi"].to_numpy(float) - rate]
        axis.bar(np.arange(len(buckets)) + (i - (len(configs) - 1) / 2) * width, rate, width,
                 yerr=errors, capsize=3, label=config)
    axis.set_xticks(np.arange(len(buckets)), buckets)
    axis.set_xlabel(by.replace("_", " "))
    axis.set_ylabel("turns without a speaker label (%)")
    axis.set_title(f"Unknown labels by {by.replace('_', ' ')} (95% interval)")
    axis.legend(fontsize=7)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.text(0.01, 0.01, scores.conventions, fontsize=7, color="0.35")
    return figure
