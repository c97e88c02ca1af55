"""Figures that compare configurations: paired bootstrap differences (a forest plot) and
DER / turn accuracy against the SNR of a noise sweep."""

from __future__ import annotations

import re
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from diareval.report import _common as c
from diareval.score.bootstrap import bootstrap_ratio

_GROUP_NAMES = {"word_count": "words", "duration": "duration", "overlap": "overlap",
                "turn_index": "turn index"}


def _accuracy_rows(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(measure, bucket) of the turn-accuracy rows in reading order: overall first, then
    each breakdown in its bucket order."""
    from diareval.score.turns import BIN_ORDER
    rows = []
    measures = list(dict.fromkeys(table["measure"]))
    if "turn_accuracy" in measures:
        rows += [("turn_accuracy", str(b)) for b in dict.fromkeys(
            table.loc[table["measure"] == "turn_accuracy", "bucket"].astype(str))]
    for measure in measures:
        if not measure.startswith("turn_accuracy_by_"):
            continue
        by = measure.removeprefix("turn_accuracy_by_")
        buckets = list(dict.fromkeys(table.loc[table["measure"] == measure,
                                               "bucket"].astype(str)))
        order = BIN_ORDER.get(f"{by}_bin", [])
        buckets = [b for b in order if b in buckets] + [b for b in buckets if b not in order]
        rows += [(measure, b) for b in buckets]
    return rows


def _row_label(measure: str, bucket: str) -> str:
    if measure == "turn_accuracy":
        return "all turns"
    by = measure.removeprefix("turn_accuracy_by_")
    return f"{_GROUP_NAMES.get(by, by)}: {bucket}"


def _forest(axis, table: pd.DataFrame, rows: list[tuple[str, str]], colour, labels):
    b_configs = c.configs_of(table, column="b_config")
    step = 0.6 / max(len(b_configs), 1)
    for i, config in enumerate(b_configs):
        part = table[table["b_config"] == config]
        keyed = {(m, str(b)): r for m, b, r in zip(part["measure"], part["bucket"].astype(str),
                                                   part.itertuples())}
        for j, key in enumerate(rows):
            row = keyed.get(key)
            if row is None or not np.isfinite(row.difference):
                continue
            y = j + (i - (len(b_configs) - 1) / 2) * step
            significant = np.isfinite(row.lo) and (row.lo > 0 or row.hi < 0)
            axis.plot([100 * row.lo, 100 * row.hi], [y, y], color=colour[config], linewidth=1.4)
            axis.plot(100 * row.difference, y, marker="o", markersize=5, color=colour[config],
                      markerfacecolor=colour[config] if significant else "white")
    axis.axvline(0, color="0.3", linewidth=0.8)
    axis.set_yticks(range(len(rows)), [_row_label(*r) if r[0] != "der" else "DER"
                                       for r in rows], fontsize=7)
    axis.set_ylim(len(rows) - 0.5, -0.5)
    axis.grid(axis="x", alpha=0.3)
    axis.tick_params(axis="x", labelsize=7)
    previous = None
    for j, (measure, _) in enumerate(rows):
        if previous is not None and measure != previous:
            axis.axhline(j - 0.5, color="0.8", linewidth=0.6)
        previous = measure


def comparison_figure(scores):
    """Paired bootstrap differences between configurations (b minus a, in percentage
    points, 95% interval; filled marker: the interval excludes 0): DER on top, turn
    accuracy overall and per bucket of each breakdown below. One colour per compared
    configuration b; a is the run's first configuration.

    ``scores``: the RunScores or its ``comparisons`` table."""
    table = c.table(scores, "comparisons")
    if len(table):
        table = table.assign(bucket=table["bucket"].where(table["bucket"].notna(), "all"))
    der = table[table["measure"] == "der"] if len(table) else table
    accuracy = table[table["measure"].str.startswith("turn_accuracy")] if len(table) else table
    rows = _accuracy_rows(accuracy) if len(accuracy) else []
    b_configs = c.configs_of(table, column="b_config")
    every = c.configs_of(table, column="a_config") + b_configs
    colour = c.colours(sorted(set(every)))
    labels, common = c.short_labels(sorted(set(every)))
    top_rows = max(len(b_configs), 1)
    height = 1.9 + 0.22 * (top_rows + len(rows)) + 0.4
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(c.WIDTH, max(height, 3.5)),
        gridspec_kw=dict(height_ratios=(top_rows + 1.2, max(len(rows), 1) + 0.8)))
    if len(der):
        _forest(top, der.assign(bucket="all"), [("der", "all")], colour, labels)
    top.set_title("DER difference, b - a (pp; lower = b better)", fontsize=8, loc="left")
    if rows:
        _forest(bottom, accuracy, rows, colour, labels)
    bottom.set_title("turn accuracy difference, b - a (pp; higher = b better)", fontsize=8,
                     loc="left")
    a_names = sorted(set(c.configs_of(table, column="a_config")))
    figure.suptitle("Paired differences between configurations (95% paired bootstrap over "
                    "sessions)" + (f"\na = {', '.join(labels[a] for a in a_names)}"
                                   + (f"  ({common})" if common else "") if a_names else ""),
                    fontsize=9)
    handles = [Line2D([], [], color=colour[b], marker="o", label=f"b = {labels[b]}")
               for b in b_configs]
    handles += [Line2D([], [], color="0.3", marker="o", markerfacecolor="white",
                       linestyle="none", label="interval includes 0"),
                Line2D([], [], color="0.3", marker="o", linestyle="none",
                       label="interval excludes 0")]
    return c.finish(figure, table, legend=(handles, [h.get_label() for h in handles],
                                           min(len(handles), 4)))


_SNR_PART = re.compile(r"^(?:snr|noise)[-_]?(-?\d+(?:\.\d+)?)(?:-?db)?$", re.IGNORECASE)
_SNR_INSIDE = re.compile(r"@(-?\d+(?:\.\d+)?)db", re.IGNORECASE)


def split_snr(config: str) -> tuple[str, float | None]:
    """``(configuration without its SNR part, SNR in dB)`` from a configuration name: a
    ``__``-separated part ``snr-5``, ``snr5db``, ``snr-5-db`` or ``noise-5`` (a negative
    SNR: ``snr--5``), or ``...@5dB`` (the noisy dataset's derived name). No SNR: None."""
    parts = config.split("__")
    for i, part in enumerate(parts):
        match = _SNR_PART.match(part)
        if match:
            rest = "__".join(parts[:i] + parts[i + 1:])
            return rest or config, float(match.group(1))
    match = _SNR_INSIDE.search(config)
    if match:
        return (config[:match.start()] + config[match.end():]).strip("_-") or config, \
            float(match.group(1))
    return config, None


def _with_snr(scores) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scored sessions and turns, each with ``base`` (configuration without SNR) and
    ``snr`` columns. Sources, first found: a ``{snr: RunScores}`` mapping (one run per SNR
    level), an ``snr`` (or ``snr_db``) column of the sessions table, the configuration
    name (:func:`split_snr`)."""
    if isinstance(scores, Mapping):
        parts, turn_parts = [], []
        for snr, run in scores.items():
            sessions, turns = c.table(run, "sessions"), c.table(run, "turns")
            parts.append(sessions.assign(snr=float(snr)))
            if len(turns):
                turn_parts.append(turns.assign(snr=float(snr)))
        sessions = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        turns = pd.concat(turn_parts, ignore_index=True) if turn_parts else pd.DataFrame()
        if len(sessions):
            sessions["base"] = sessions["config"]
        if len(turns):
            turns["base"] = turns["config"]
    else:
        sessions = c.table(scores, "sessions").copy()
        turns = c.table(scores, "turns") if isinstance(scores, c.RunScores) else pd.DataFrame()
        if sessions.empty:
            return sessions, turns
        column = next((k for k in ("snr", "snr_db") if k in sessions.columns), None)
        split = {k: split_snr(k) for k in sessions["config"].unique()}
        sessions["base"] = sessions["config"].map(lambda k: split[k][0])
        if column is not None:
            sessions["snr"] = pd.to_numeric(sessions[column], errors="coerce")
        else:
            sessions["snr"] = sessions["config"].map(lambda k: split[k][1])
        if len(turns):
            key = sessions.drop_duplicates(["config", "uri"]).set_index(["config", "uri"])
            index = pd.MultiIndex.from_arrays([turns["config"], turns["uri"]])
            turns = turns.assign(snr=key["snr"].reindex(index).to_numpy(),
                                 base=key["base"].reindex(index).to_numpy())
    if "scored" in sessions:
        sessions = sessions[sessions["scored"].astype(bool)]
    sessions = sessions[pd.to_numeric(sessions.get("snr"), errors="coerce").notna()] \
        if len(sessions) else sessions
    return sessions, turns


def noise_levels(scores) -> list[float]:
    """The distinct SNR levels (dB) found in ``scores`` (see :func:`noise_figure`)."""
    sessions, _ = _with_snr(scores)
    return sorted(set(sessions["snr"].astype(float))) if len(sessions) else []


def noise_figure(scores, n_boot: int = c.N_BOOT, seed: int = c.SEED):
    """DER (left) and turn accuracy (right) against the SNR in dB, one line per
    configuration (without its SNR part), 95% bootstrap intervals over sessions.

    ``scores``: a RunScores whose configurations carry the SNR (an ``snr`` column on the
    sessions table, or an SNR part in the configuration name, :func:`split_snr`), its
    ``sessions`` table, or ``{snr: RunScores}`` (one run per SNR level). Returns None
    when fewer than two SNR levels are found."""
    sessions, turns = _with_snr(scores)
    if len(set(sessions["snr"])) < 2 if len(sessions) else True:
        return None
    bases = c.configs_of(sessions, column="base")
    colour = c.colours(bases)
    labels, common = c.short_labels(bases)
    with_turns = len(turns) > 0 and "correct" in turns and "base" in turns
    if with_turns:
        figure, (left, right) = plt.subplots(1, 2, figsize=(c.WIDTH, 3.8))
    else:  # a sessions table alone: DER only
        figure, left = plt.subplots(figsize=(c.WIDTH, 3.8))
        right = None
    for base in bases:
        group = sessions[sessions["base"] == base]
        errors = group.assign(errors=group["miss"] + group["false_alarm"] + group["confusion"],
                              session=group["uri"].astype(str) + "@" + group["snr"].astype(str))
        # sessions at different SNR levels are different sessions of the bootstrap
        der = bootstrap_ratio(errors, "errors", "reference_speech", by="snr",
                              session="session", n_boot=n_boot, seed=seed).sort_values("snr")
        x = der["snr"].to_numpy(float)
        left.errorbar(x, c.percent(der["estimate"]),
                      yerr=np.nan_to_num(np.vstack([c.percent(der["estimate"]) -
                                                    c.percent(der["lo"]),
                                                    c.percent(der["hi"]) -
                                                    c.percent(der["estimate"])]).clip(0)),
                      marker="o", markersize=4, capsize=3, color=colour[base],
                      label=labels[base])
        if with_turns:
            from diareval.score.turns import turn_counts
            part = turns[turns["base"] == base]
            part = part.assign(session=part["uri"].astype(str) + "@" + part["snr"].astype(str))
            counts = turn_counts(part, "snr", session="session")
            acc = bootstrap_ratio(counts, "n_correct", "n_scored", by="snr", session="session",
                                  wilson=True, n_boot=n_boot, seed=seed).sort_values("snr")
            est = c.percent(acc["estimate"])
            right.errorbar(acc["snr"].to_numpy(float), est,
                           yerr=np.nan_to_num(np.vstack([est - c.percent(acc["lo"]),
                                                         c.percent(acc["hi"]) - est]).clip(0)),
                           marker="o", markersize=4, capsize=3, color=colour[base],
                           label=labels[base])
    left.set_ylabel("DER (%)")
    left.set_ylim(bottom=0)
    if right is not None:
        right.set_ylabel("turns labelled correctly (%)")
        right.set_ylim(0, 102)
    for axis in (left, right) if right is not None else (left,):
        axis.set_xlabel("SNR (dB, over reference speech)")
        axis.grid(alpha=0.3)
    figure.suptitle(f"Noise: DER{' and turn accuracy' if right is not None else ''} against SNR "
                    "(95% bootstrap over sessions)", fontsize=10)
    c.legend(left, common, loc="best")
    return c.finish(figure, sessions, extra="SNR from " + (
        "one run per level" if isinstance(scores, Mapping) else
        "the sessions' snr column or the configuration name"))
