"""Figures of turn-label accuracy by bucket, DER by region (overlap vs single speaker),
and latency distributions."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from diareval.errors import ConfigError
from diareval.report import _common as c

#: the turn-accuracy breakdowns ``breakdown_figure(by=...)`` draws (the ``breakdown``
#: column of ``RunScores.breakdowns``)
BREAKDOWNS = ("word_count", "duration", "overlap", "turn_index", "turn_k")

#: the vendor's own caveats, marked on the bars: buckets and the text drawn over them
VENDOR_THRESHOLDS = {
    "word_count": (("1", "2"), "vendor: < 3 words may be\nunlabelled or mislabelled"),
    "turn_index": (("1", "2"), "vendor: first 1-2 turns\nmay be mislabelled"),
    "turn_k": (("1", "2"), "vendor: first 1-2 turns\nmay be mislabelled"),
}
_AXIS_NAMES = {"word_count": "words in the turn", "duration": "turn duration",
               "overlap": "share of the turn's word time in overlapped speech",
               "turn_index": "turn index in the session", "turn_k": "turn index k"}


def _bucket_order(by: str, buckets: list[str]) -> list[str]:
    from diareval.score.turns import BIN_ORDER
    order = BIN_ORDER.get(f"{by}_bin")
    if by == "turn_k":
        return sorted(buckets, key=lambda b: float(b) if b.replace(".", "").isdigit() else 1e9)
    if not order:
        return buckets
    return [b for b in order if b in buckets] + [b for b in buckets if b not in order]


def _bars(axis, table: pd.DataFrame, configs, buckets, measure: str, colour, labels,
          counts: bool = False):
    width = 0.8 / max(len(configs), 1)
    for i, config in enumerate(configs):
        rows = table[table["config"] == config].set_index("bucket").reindex(buckets)
        x = np.arange(len(buckets)) + (i - (len(configs) - 1) / 2) * width
        value = c.percent(rows[measure])
        yerr = None
        if f"{measure}_lo" in rows:
            lo, hi = c.percent(rows[f"{measure}_lo"]), c.percent(rows[f"{measure}_hi"])
            yerr = np.vstack([np.clip(value - lo, 0, None), np.clip(hi - value, 0, None)])
            yerr = np.nan_to_num(yerr)
        axis.bar(x, np.nan_to_num(value), width * 0.95, yerr=yerr, capsize=2,
                 color=colour[config], label=labels[config],
                 error_kw=dict(elinewidth=0.8, ecolor="0.25"))
        if counts and "n_scored" in rows:
            for xi, n in zip(x, rows["n_scored"].to_numpy()):
                if pd.notna(n):
                    axis.text(xi, 1, f"{int(n)}", ha="center", va="bottom", fontsize=6,
                              color="white" if len(configs) < 5 else "black", rotation=90)


def breakdown_figure(scores, by: str = "word_count"):
    """Turn accuracy (top) and unknown-label rate (bottom) per bucket with 95% bootstrap
    intervals over sessions, one bar per configuration; the vendor's own thresholds
    (< 3 words, the first 1-2 turns) shaded. The number in a bar is its scored turns.

    ``scores``: the RunScores or its ``breakdowns`` table; ``by``: one of
    :data:`BREAKDOWNS` (``"word_count"``, ``"duration"``, ``"overlap"``, ``"turn_index"``,
    ``"turn_k"``)."""
    if by not in BREAKDOWNS:
        raise ConfigError(f"breakdown_figure(by={by!r}): choose one of {', '.join(BREAKDOWNS)}")
    breakdowns = c.table(scores, "breakdowns")
    table = breakdowns[breakdowns["breakdown"] == by] if len(breakdowns) else breakdowns
    configs = c.configs_of(table)
    colour = c.colours(configs)
    labels, common = c.short_labels(configs)
    buckets = _bucket_order(by, list(dict.fromkeys(table["bucket"].astype(str)))
                            if len(table) else [])
    table = table.assign(bucket=table["bucket"].astype(str)) if len(table) else table
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(c.WIDTH, 5.2), sharex=True,
                                         gridspec_kw=dict(height_ratios=(2, 1)))
    _bars(top, table, configs, buckets, "accuracy", colour, labels, counts=True)
    _bars(bottom, table, configs, buckets, "unknown_rate", colour, labels)
    marked = VENDOR_THRESHOLDS.get(by)
    if marked and buckets:
        inside = [i for i, b in enumerate(buckets) if b in marked[0]]
        if inside:
            for axis in (top, bottom):
                axis.axvspan(min(inside) - 0.5, max(inside) + 0.5, color="0.9", zorder=0)
            top.text(min(inside) - 0.45, 103, marked[1].replace("\n", " "), ha="left",
                     va="bottom", fontsize=7, color="0.3")
    top.set_ylim(0, 112 if marked else 105)
    top.set_yticks(range(0, 101, 20))
    bottom.set_ylim(0, 105)
    top.set_ylabel("turns labelled\ncorrectly (%)")
    bottom.set_ylabel("unknown\nlabel (%)")
    bottom.set_xticks(np.arange(len(buckets)), buckets)
    bottom.set_xlabel(_AXIS_NAMES.get(by, by.replace("_", " ")))
    for axis in (top, bottom):
        axis.grid(axis="y", alpha=0.3)
        axis.set_xlim(-0.6, max(len(buckets), 1) - 0.4)
    top.set_title(f"Turn accuracy by {by.replace('_', ' ')} (95% bootstrap interval over "
                  "sessions)", fontsize=10)
    handles, names = top.get_legend_handles_labels()
    if common:
        top.set_title(f"{top.get_title()}\n{common}", fontsize=10)
    return c.finish(figure, table, extra="number in a bar: scored turns",
                    legend=(handles, names, min(len(names), 3)))


def der_by_region_figure(scores):
    """DER on single-speaker and overlapped reference speech, one stacked bar per
    configuration (miss, false alarm, confusion; 95% bootstrap interval on the total), with
    each region's share of the reference speech.

    ``scores``: the RunScores or its ``der_by_region_dataset`` table."""
    regions = c.table(scores, "der_by_region_dataset")
    configs = c.configs_of(regions)
    colour = c.colours(configs)
    labels, common = c.short_labels(configs)
    order = [r for r in ("single", "overlap") if len(regions) and (regions["region"] == r).any()]
    order += [r for r in dict.fromkeys(regions["region"]) if r not in order] if len(regions) \
        else []
    figure, axis = plt.subplots(figsize=(c.WIDTH, 4.2))
    width = 0.8 / max(len(configs), 1)
    parts = (("miss", "miss_rate", ""), ("false alarm", "false_alarm_rate", "...."),
             ("confusion", "confusion_rate", "////"))
    for i, config in enumerate(configs):
        rows = regions[regions["config"] == config].set_index("region").reindex(order)
        x = np.arange(len(order)) + (i - (len(configs) - 1) / 2) * width
        base = np.zeros(len(order))
        for name, column, hatch in parts:
            value = np.nan_to_num(c.percent(rows[column]))
            axis.bar(x, value, width * 0.95, bottom=base, color=colour[config],
                     alpha=1.0 if not hatch else 0.55, hatch=hatch, edgecolor="white",
                     linewidth=0.5, label=labels[config] if name == "miss" else None)
            base = base + value
        if "der_lo" in rows:
            der = c.percent(rows["der"])
            yerr = np.nan_to_num(np.vstack([der - c.percent(rows["der_lo"]),
                                            c.percent(rows["der_hi"]) - der]).clip(0))
            axis.errorbar(x, np.nan_to_num(der), yerr=yerr, fmt="none", ecolor="0.2",
                          capsize=3, elinewidth=0.8)
    names = {"single": "single speaker", "overlap": "overlapped speech"}
    ticks = []
    total = regions.groupby("region")["reference_speech"].sum() if len(regions) else None
    for region in order:
        share = ""
        if total is not None and configs:
            first = regions[(regions["config"] == configs[0])]
            speech = first.set_index("region")["reference_speech"]
            if speech.sum() > 0 and region in speech:
                share = f"\n{100 * speech[region] / speech.sum():.1f}% of reference speaker time"
        ticks.append(names.get(region, region) + share)
    axis.set_xticks(np.arange(len(order)), ticks)
    axis.set_ylabel("DER (%)")
    axis.set_ylim(bottom=0)
    axis.grid(axis="y", alpha=0.3)
    axis.set_title("DER by region: single speaker vs overlap (95% bootstrap interval)",
                   fontsize=10)
    handles, names_ = axis.get_legend_handles_labels()
    for name, _, hatch in parts:
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="0.6",
                                     alpha=1.0 if not hatch else 0.55, hatch=hatch,
                                     edgecolor="white"))
        names_.append(name)
    axis.legend(handles, names_, fontsize=7, title=common or None, title_fontsize=7,
                loc="upper left", ncol=2)
    return c.finish(figure, regions, extra="stacked: miss, false alarm, confusion rates")


def _ecdf(axis, values: np.ndarray, **style):
    values = np.sort(values[np.isfinite(values)])
    if len(values) == 0:
        return
    y = np.arange(1, len(values) + 1) / len(values)
    axis.step(np.concatenate([[values[0]], values]), np.concatenate([[0], y]) * 100,
              where="post", **style)


def latency_figure(scores):
    """Empirical distribution (ECDF) of the turn finalisation latency (end-of-turn message
    minus the turn's last word end, in audio time) and of the label latency (from when the
    label shown stayed final, minus the last word end; negative = settled before the
    turn ended), one line per configuration, the median marked.

    ``scores``: the RunScores or its ``latency`` table."""
    latency = c.table(scores, "latency")
    configs = c.configs_of(latency)
    colour = c.colours(configs)
    labels, common = c.short_labels(configs)
    figure, axes = plt.subplots(1, 2, figsize=(c.WIDTH, 3.8), sharey=True)
    panels = (("finalisation_latency", "turn finalisation latency (s)"),
              ("label_latency", "label latency (s)"))
    for axis, (column, title) in zip(axes, panels):
        for config in configs:
            if column not in latency:
                continue
            values = pd.to_numeric(latency.loc[latency["config"] == config, column],
                                   errors="coerce").to_numpy(float)
            _ecdf(axis, values, color=colour[config],
                  label=f"{labels[config]} (n={int(np.isfinite(values).sum())})")
            if np.isfinite(values).any():
                axis.plot(np.nanmedian(values), 50, marker="o", color=colour[config],
                          markersize=4)
        axis.axvline(0, color="0.6", linewidth=0.8)
        values = pd.to_numeric(latency.get(column, pd.Series(dtype=float)),
                               errors="coerce").to_numpy(float)
        if np.isfinite(values).any() and np.nanmax(np.abs(values)) > 20:
            # end-of-session revisions give a long tail: linear to +-2 s, log beyond
            axis.set_xscale("symlog", linthresh=2.0)
            axis.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            title += ", log beyond +-2 s"
        axis.set_xlabel(title)
        axis.grid(alpha=0.3)
        axis.set_ylim(0, 101)
    axes[0].set_ylabel("turns with latency <= x (%)")
    figure.suptitle("Latency distributions (ECDF; dot: median)", fontsize=10)
    c.legend(axes[1], common, loc="lower right")
    return c.finish(figure, latency,
                    extra="label latency undefined for turns whose final label is unknown")
