"""Figures of DER along session time: cumulative (prefix and final mapping, with a
bootstrap band over sessions), sliding windows, the k-th turn, and what the user saw.

Each pools sessions the way ``score_run`` does (errors and reference speech summed over
sessions at the same time ``t``) and draws the session-bootstrap interval with
:func:`diareval.score.bootstrap.bootstrap_ratio` (same seed as the tables).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from diareval.report import _common as c
from diareval.score.bootstrap import bootstrap_ratio

#: the vendor's own caveat on the session start: the first 1-2 turns may be mislabelled
FIRST_TURNS = 2


def session_band(curve: pd.DataFrame, confusion: str, by: str = "t", n_boot: int = c.N_BOOT,
                 seed: int = c.SEED) -> pd.DataFrame:
    """Pooled DER (errors = miss + false alarm + ``confusion`` over reference speech) per
    value of ``by`` for one configuration's per-session rows, with the percentile interval
    of a bootstrap over sessions (``uri``). Columns: ``by``, estimate, lo, hi, n_sessions."""
    frame = curve.assign(errors=curve["miss"] + curve["false_alarm"] + curve[confusion])
    band = bootstrap_ratio(frame, "errors", "reference_speech", by=by, session="uri",
                           n_boot=n_boot, seed=seed)
    return band.sort_values(by).reset_index(drop=True)


def _draw_curves(axis, pooled: pd.DataFrame, sessions: pd.DataFrame, lines, band: bool,
                 n_boot: int, seed: int, x: str = "t", session_x: str | None = None):
    """One line per (configuration, line spec); ``lines``: (pooled column, per-session
    confusion column, linestyle, label suffix, band?)."""
    configs = c.configs_of(pooled, sessions)
    colour = c.colours(configs)
    labels, common = c.short_labels(configs)
    drawn_band = False
    for config in configs:
        rows = pooled[pooled["config"] == config] if len(pooled) else pooled
        per_session = sessions[sessions["config"] == config] if len(sessions) else sessions
        for column, confusion, style, suffix, with_band in lines:
            xs = ys = None
            if len(rows) and column in rows:
                rows = rows.sort_values(x)
                xs, ys = rows[x].to_numpy(float), c.percent(rows[column])
            spread = None
            if len(per_session) and confusion in per_session and (band and with_band
                                                                  or xs is None):
                spread = session_band(per_session, confusion, by=session_x or x,
                                      n_boot=n_boot, seed=seed)
                if xs is None:
                    xs, ys = spread[session_x or x].to_numpy(float), c.percent(spread["estimate"])
            if xs is None:
                continue
            axis.plot(xs / 60, ys, linestyle=style, color=colour[config],
                      label=f"{labels[config]}{suffix}")
            if spread is not None and band and with_band and len(spread):
                sx = spread[session_x or x].to_numpy(float)
                axis.fill_between(sx / 60, c.percent(spread["lo"]), c.percent(spread["hi"]),
                                  color=colour[config], alpha=0.15, linewidth=0)
                drawn_band = True
    return common, drawn_band


def der_over_time_figure(scores, band: bool = True, n_boot: int = c.N_BOOT,
                         seed: int = c.SEED):
    """Cumulative DER on [0, t] per configuration: the prefix's own optimal mapping (solid,
    with a 95% bootstrap band over sessions) and the final mapping (dashed).

    ``scores``: the RunScores (pooled curve from ``der_over_time_dataset``, band from the
    per-session ``der_over_time``), or one of those two tables (a per-session table gives
    the band too; the pooled one gives none)."""
    pooled = c.table(scores, "der_over_time_dataset")
    sessions = c.table(scores, "der_over_time") if isinstance(scores, c.RunScores) else \
        pd.DataFrame()
    if "uri" in pooled.columns:
        pooled, sessions = pd.DataFrame(), pooled
    figure, axis = plt.subplots(figsize=(c.WIDTH, 4.5))
    common, drawn = _draw_curves(axis, pooled, sessions, [
        ("der_prefix", "confusion_prefix", "-", " (prefix mapping)", True),
        ("der_final", "confusion_final", "--", " (final mapping)", False)], band, n_boot, seed)
    axis.set_xlabel("session time t (min)")
    axis.set_ylabel("DER on [0, t] (%)")
    axis.set_title("Cumulative DER over session time (pooled over sessions)")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    c.legend(axis, common, loc="best")
    extra = "band: 95% bootstrap over sessions (prefix mapping)" if drawn else ""
    return c.finish(figure, pooled, sessions, extra=extra)


def window_length(windows: pd.DataFrame) -> tuple[float, bool]:
    """(window length in s, known): the table's ``attrs["window"]``, else the span of the
    windows not cut by their session's end; when every window is cut (sessions shorter
    than the window), the longest span and False."""
    if windows.attrs.get("window"):
        return float(windows.attrs["window"]), True
    span = windows["window_end"] - windows["window_start"]
    end = windows.groupby(["config", "uri"])["window_end"].transform("max")
    uncut = span[windows["window_end"] < end - 1e-9]
    if len(uncut):
        return float(uncut.max()), True
    return float(span.max()), False


def der_windows_figure(scores, band: bool = True, n_boot: int = c.N_BOOT, seed: int = c.SEED,
                       min_share: float = 0.5):
    """DER in sliding windows (``score_run``'s ``window``, 60 s by default) at each window's
    centre: each window's own optimal mapping (solid, bootstrap band over sessions) and the
    whole session's mapping (dashed). Windows cut by the session end to less than
    ``min_share`` of the window length are left out.

    ``scores``: the RunScores or its ``der_windows`` table."""
    windows = c.table(scores, "der_windows")
    figure, axis = plt.subplots(figsize=(c.WIDTH, 4.5))
    length = np.nan
    drawn = False
    common = ""
    known = True
    if len(windows):
        span = windows["window_end"] - windows["window_start"]
        length, known = window_length(windows)
        keep = windows[span >= min_share * length - 1e-9]
        keep = keep.assign(t=(keep["window_start"] + length / 2))
        common, drawn = _draw_curves(axis, pd.DataFrame(), keep, [
            ("", "confusion_window", "-", " (window mapping)", True),
            ("", "confusion_global", "--", " (session mapping)", False)], band, n_boot, seed)
    axis.set_xlabel("window centre (min)")
    axis.set_ylabel("DER in the window (%)")
    size = f"{length:g} s" if np.isfinite(length) else "sliding"
    if known:
        axis.set_title(f"DER in {size} windows over session time (pooled over sessions)")
    else:
        axis.set_title(f"DER in sliding windows, each cut at the session end (<= {size})\n"
                       "(every session is shorter than the window)", fontsize=10)
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    c.legend(axis, common, loc="best")
    extra = f"windows shorter than {min_share:.0%} of {size} (cut at the session end) left out"
    if drawn:
        extra += "; band: 95% bootstrap over sessions (window mapping)"
    return c.finish(figure, windows, extra=extra)


def turn_k_figure(scores):
    """Label accuracy and unknown rate of the k-th final turn of a session (k = 1..20), one
    line per configuration with its 95% bootstrap interval over sessions (bars, dodged);
    the vendor's caveat (the first 1-2 turns) shaded. A turn is correct when its mapped
    label is its true speaker.

    ``scores``: the RunScores or its ``breakdowns`` table (rows ``breakdown == "turn_k"``)."""
    breakdowns = c.table(scores, "breakdowns")
    rows = breakdowns[breakdowns["breakdown"] == "turn_k"] if len(breakdowns) else breakdowns
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(c.WIDTH, 5.5), sharex=True,
                                         gridspec_kw=dict(height_ratios=(2, 1)))
    configs = c.configs_of(rows)
    colour = c.colours(configs)
    labels, common = c.short_labels(configs)
    dodge = 0.5 / max(len(configs), 1)
    for i, config in enumerate(configs):
        group = rows[rows["config"] == config].copy()
        group["k"] = pd.to_numeric(group["bucket"], errors="coerce")
        group = group.sort_values("k")
        k = group["k"].to_numpy(float) + (i - (len(configs) - 1) / 2) * dodge
        for axis, measure in ((top, "accuracy"), (bottom, "unknown_rate")):
            value = c.percent(group[measure])
            yerr = None
            if f"{measure}_lo" in group:
                yerr = np.nan_to_num(np.vstack([value - c.percent(group[f"{measure}_lo"]),
                                                c.percent(group[f"{measure}_hi"]) - value])
                                     .clip(0))
            axis.errorbar(k, value, yerr=yerr, marker="o", markersize=3, capsize=0,
                          elinewidth=0.8, color=colour[config], label=labels[config])
    for axis in (top, bottom):
        axis.axvspan(0.5, FIRST_TURNS + 0.5, color="0.85", zorder=0)
        axis.grid(alpha=0.3)
        axis.set_ylim(-2, 102)
    top.text(FIRST_TURNS + 0.6, 3, f"vendor: first {FIRST_TURNS} turns may be mislabelled",
             fontsize=7, color="0.35", va="bottom")
    top.set_ylabel("turns labelled\ncorrectly (%)")
    bottom.set_ylabel("unknown (%)")
    bottom.set_xlabel("turn index k in the session")
    if len(rows):
        last = int(np.nanmax(pd.to_numeric(rows["bucket"], errors="coerce")))
        bottom.set_xticks(range(1, last + 1))
        bottom.set_xlim(0.5, last + 0.5)
    top.set_title("Label accuracy of the k-th turn (95% bootstrap interval over sessions)")
    c.legend(top, common, loc="lower right")
    return c.finish(figure, rows)


def der_seen_figure(scores, band: bool = True, n_boot: int = c.N_BOOT, seed: int = c.SEED):
    """DER of what the user saw at time t: the labels on screen at t (partials included,
    before later corrections), scored on [0, t]. One line per configuration, bootstrap
    band over sessions when the per-session table is there.

    ``scores``: the RunScores (``der_seen_dataset``, band from ``der_seen``) or one of those
    tables (columns config, [uri,] t, reference_speech, miss, false_alarm, confusion, der).
    Returns None when the run has no such table (older scorer)."""
    if isinstance(scores, c.RunScores):
        pooled = getattr(scores, "der_seen_dataset", None)
        sessions = getattr(scores, "der_seen", None)
    else:
        pooled, sessions = scores, None
    pooled = pooled if isinstance(pooled, pd.DataFrame) else pd.DataFrame()
    sessions = sessions if isinstance(sessions, pd.DataFrame) else pd.DataFrame()
    if "uri" in pooled.columns:
        pooled, sessions = pd.DataFrame(), pooled
    if pooled.empty and sessions.empty:
        return None
    figure, axis = plt.subplots(figsize=(c.WIDTH, 4.5))
    common, drawn = _draw_curves(axis, pooled, sessions, [("der", "confusion", "-", "", True)],
                                 band, n_boot, seed)
    if not pooled.empty and isinstance(scores, c.RunScores):
        final = c.table(scores, "der_over_time_dataset")
        configs = c.configs_of(pooled, sessions)
        colour = c.colours(configs)
        for config in configs:
            rows = final[final["config"] == config].sort_values("t") if len(final) else final
            if len(rows):
                axis.plot(rows["t"] / 60, c.percent(rows["der_final"]), linestyle=":",
                          color=colour[config], linewidth=1)
        if len(final):
            axis.plot([], [], linestyle=":", color="0.4", label="final labels (for reference)")
    axis.set_xlabel("session time t (min)")
    axis.set_ylabel("DER of the labels shown, on [0, t] (%)")
    axis.set_title("DER of what the user sees at t (pooled over sessions)")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    c.legend(axis, common, loc="best")
    extra = "band: 95% bootstrap over sessions" if drawn else ""
    return c.finish(figure, pooled, sessions, extra=extra)
