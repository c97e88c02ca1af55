"""Figures of label stability (per session, as strips) and of the speaker count over
session time against the reference and the ``max_speakers`` setting."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from diareval.report import _common as c

#: (title, function of the sessions table -> values) of the stability strip's panels; the
#: columns are those ``score.stability`` writes on the sessions table
STABILITY_PANELS = (
    ("prefix-mapping changes", lambda s: s["mapping_changes"]),
    ("time to stable mapping (s)", lambda s: s["stable_from"]),
    ("label flips per minute", lambda s: s["flips_per_minute"]),
    ("partial label != final\n(% of turns)",
     lambda s: 100 * s["turns_partial_label_changed"] / s["turns"].where(s["turns"] > 0)),
    ("revised turns (% of turns)",
     lambda s: 100 * s["revised_turns"] / s["turns"].where(s["turns"] > 0)),
    ("revised with a new label\n(% of turns)",
     lambda s: 100 * s["revised_label_changed"] / s["turns"].where(s["turns"] > 0)),
)
STABILITY_COLUMNS = ("mapping_changes", "stable_from", "flips_per_minute",
                     "turns_partial_label_changed", "revised_turns", "revised_label_changed",
                     "turns")


def _scored(sessions: pd.DataFrame) -> pd.DataFrame:
    if sessions.empty or "scored" not in sessions:
        return sessions
    return sessions[sessions["scored"].astype(bool)]


def stability_figure(scores, seed: int = c.SEED):
    """Label stability per session: one point per session (jittered), one row per
    configuration, the median as a bar; panels: prefix-mapping changes, time until the
    prefix mapping agrees with the final one, label flips per minute of single-speaker
    speech, turns whose partial label differed from the final one, revised turns and
    revised turns whose label changed (SpeakerRevision).

    ``scores``: the RunScores or its ``sessions`` table (scored rows are used)."""
    sessions = _scored(c.table(scores, "sessions"))
    missing = [name for name in STABILITY_COLUMNS if name not in sessions.columns]
    configs = c.configs_of(sessions)
    colour = c.colours(configs)
    labels, common = c.short_labels(configs)
    height = 1.6 + 2 * (0.45 + 0.28 * max(len(configs), 1))
    figure, axes = plt.subplots(2, 3, figsize=(c.WIDTH, height), sharey=True)
    rng = np.random.default_rng(seed)
    for axis, (title, values) in zip(axes.flat, STABILITY_PANELS):
        axis.set_title(title, fontsize=8)
        axis.grid(axis="x", alpha=0.3)
        axis.tick_params(labelsize=7)
        if missing:
            continue
        largest = 0.0
        for row, config in enumerate(configs):
            group = sessions[sessions["config"] == config]
            y = pd.to_numeric(values(group), errors="coerce").to_numpy(float)
            y = y[np.isfinite(y)]
            largest = max([largest, *np.abs(y)])
            jitter = rng.uniform(-0.18, 0.18, len(y))
            axis.scatter(y, row + jitter, s=14, color=colour[config], alpha=0.8,
                         edgecolor="none")
            if len(y):
                median = float(np.median(y))
                axis.plot([median, median], [row - 0.3, row + 0.3], color="black",
                          linewidth=1.5)
        if largest == 0:
            axis.set_xlim(-0.05, 1)  # every session 0: show 0 at the left edge, not centred
        else:
            axis.set_xlim(left=min(0, axis.get_xlim()[0]))
    for axis in axes[:, 0]:
        axis.set_yticks(range(len(configs)), [c.wrap_label(labels[k]) for k in configs])
    axes[0, 0].set_ylim(len(configs) - 0.5, -0.5)
    title = "Label stability per session (points: sessions; bar: median)"
    figure.suptitle(title + (f"\n{common}" if common else ""), fontsize=10)
    extra = f"missing columns {', '.join(missing)}" if missing else \
        "time to stable: first t from which every prefix mapping pairs only final pairs"
    return c.finish(figure, sessions, extra=extra)


def _max_speakers(config: str, sessions: pd.DataFrame):
    """The configuration's ``max_speakers`` (None = not sent): the sessions table's
    column, else the ``max-speakers-N`` part of the configuration name."""
    if len(sessions) and "max_speakers" in sessions:
        values = pd.to_numeric(sessions.loc[sessions["config"] == config, "max_speakers"],
                               errors="coerce").dropna()
        if len(values):
            return int(values.iloc[0])
        if (sessions["config"] == config).any():
            return None
    match = re.search(r"max-speakers-(\d+)", config)
    return int(match.group(1)) if match else None


def speaker_count_figure(scores, max_panels: int = 6):
    """Speaker labels the service had shown by session time t (one step line per
    configuration) against the reference speakers who had spoken by t (black), with each
    configuration's ``max_speakers`` setting as a dotted line. One panel per recording
    (at most ``max_panels``; more recordings: one panel of the means over sessions).

    ``scores``: the RunScores (``speaker_counts``; ``max_speakers`` from ``sessions``) or
    the ``speaker_counts`` table (``max_speakers`` from the configuration names)."""
    counts = c.table(scores, "speaker_counts")
    sessions = c.table(scores, "sessions") if isinstance(scores, c.RunScores) else pd.DataFrame()
    configs = c.configs_of(counts)
    colour = c.colours(configs)
    labels, common = c.short_labels(configs)
    uris = sorted(counts["uri"].unique()) if len(counts) else []
    pooled = len(uris) > max_panels
    panels = ["mean over sessions"] if pooled or not uris else uris
    columns = min(len(panels), 3)
    rows = int(np.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(c.WIDTH, 1.2 + 2.3 * rows),
                                sharex=True, squeeze=False)
    offsets = np.linspace(-0.06, 0.06, max(len(configs), 1))
    for axis, panel in zip(axes.flat, panels):
        part = counts if pooled else counts[counts["uri"] == panel] if len(counts) else counts
        if len(part):
            reference = part.groupby("t")["n_ref_speakers"].mean()
            axis.step(reference.index / 60, reference.to_numpy(float), where="post",
                      color="black", linewidth=2, label="reference speakers")
        for i, config in enumerate(configs):
            group = part[part["config"] == config]
            if group.empty:
                continue
            shown = group.groupby("t")["n_hyp_labels_shown"].mean()
            axis.step(shown.index / 60, shown.to_numpy(float) + offsets[i], where="post",
                      color=colour[config], label=labels[config])
            cap = _max_speakers(config, sessions)
            if cap is not None:
                axis.axhline(cap + offsets[i], color=colour[config], linestyle=":",
                             linewidth=1.2)
        axis.set_title(panel, fontsize=8)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
        axis.set_ylim(bottom=0)
        axis.yaxis.get_major_locator().set_params(integer=True)
    for axis in list(axes.flat)[len(panels):]:
        axis.axis("off")
    for axis in axes[-1]:
        axis.set_xlabel("session time t (min)", fontsize=8)
    for axis in axes[:, 0]:
        axis.set_ylabel("speakers so far", fontsize=8)
    handles, names = axes.flat[0].get_legend_handles_labels()
    if any(_max_speakers(k, sessions) is not None for k in configs):
        handles.append(plt.Line2D([], [], color="0.3", linestyle=":"))
        names.append("max_speakers setting")
    figure.suptitle("Speaker count over session time: labels shown vs reference"
                    + (f" ({common})" if common else ""), fontsize=10)
    return c.finish(figure, counts, legend=(handles, names, min(len(names), 4)),
                    extra="labels shown: distinct known labels in any message received "
                          "by audio time t")
