"""What every figure module shares: table look-up, configuration colours and short
legend labels, the conventions footnote, and the notebook-width layout."""

from __future__ import annotations

import textwrap
from typing import Iterable

# No matplotlib.use() here: notebooks need their inline backend, and matplotlib already
# falls back to Agg where there is no display.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from diareval.score.results import RunScores

#: figure width in inches: a notebook cell at the default zoom
WIDTH = 8.0
#: errors / reference speech bootstrap over sessions, as in ``score.run`` (seeded)
N_BOOT = 1000
SEED = 0


def table(scores, name: str) -> pd.DataFrame:
    """``scores.<name>`` when given a RunScores (an absent field is an empty table), else
    ``scores`` itself (the caller passed that one table)."""
    if isinstance(scores, RunScores):
        value = getattr(scores, name, None)
        return value if isinstance(value, pd.DataFrame) else pd.DataFrame()
    if scores is None:
        return pd.DataFrame()
    return scores


def conventions_text(*tables: pd.DataFrame) -> str:
    """The conventions line of the first table that carries one (attrs, else conv_* columns)."""
    for frame in tables:
        if frame is None:
            continue
        text = frame.attrs.get("conventions") or ""
        if text:
            return text
        if "conv_collar" in frame.columns and len(frame):
            row = frame.iloc[0]
            return (f"collar {row['conv_collar']:g} s per side, overlap "
                    f"{'skipped' if row['conv_skip_overlap'] else 'scored'}, UEM "
                    f"{row['conv_uem']}, unknown={row['conv_unknown']}")
    return ""


def footnote(figure, *tables: pd.DataFrame, extra: str = "") -> None:
    """Write the scoring conventions (and ``extra``: how this figure was computed) at the
    bottom left, wrapped to the figure width."""
    text = "; ".join(t for t in (conventions_text(*tables), extra) if t)
    width = int(figure.get_figwidth() * 17)  # about 17 characters of 7 pt text per inch
    wrapped = "\n".join(textwrap.wrap(text, width)) if text else ""
    figure.text(0.01, 0.005, wrapped, fontsize=7, color="0.35", ha="left", va="bottom")
    figure._diareval_footnote_lines = wrapped.count("\n") + 1 if wrapped else 0


def finish(figure, *tables: pd.DataFrame, extra: str = "", legend=None):
    """Lay the figure out above the footnote; ``legend`` = (handles, labels, ncol) puts a
    figure legend between the axes and the footnote. Returns the figure."""
    footnote(figure, *tables, extra=extra)
    height = figure.get_figheight()
    lines = getattr(figure, "_diareval_footnote_lines", 1)
    bottom = (0.04 + 0.12 * lines) / height
    if legend is not None and legend[0]:
        handles, names, ncol = legend
        rows = int(np.ceil(len(names) / max(ncol, 1)))
        figure.legend(handles, names, loc="lower center", ncol=ncol, fontsize=7,
                      bbox_to_anchor=(0.5, bottom), frameon=False)
        bottom += (0.08 + 0.17 * rows) / height
    figure.tight_layout(rect=(0, min(bottom, 0.5), 1, 1))
    return figure


def configs_of(*tables: pd.DataFrame, column: str = "config") -> list[str]:
    """Configuration names over ``tables``, sorted (so a configuration has the same colour
    and place in every figure, whichever table it was drawn from)."""
    names: set[str] = set()
    for frame in tables:
        if frame is not None and column in frame.columns:
            names |= {str(c) for c in frame[column].dropna()}
    return sorted(names)


def colours(configs: Iterable[str]) -> dict[str, tuple]:
    """One colour per configuration (tab10 in order), the same in every figure of a run."""
    cycle = plt.get_cmap("tab10").colors
    return {config: cycle[i % len(cycle)] for i, config in enumerate(configs)}


def short_labels(configs: list[str]) -> tuple[dict[str, str], str]:
    """Legend labels without the ``__``-separated parts every configuration shares, and
    those shared parts (for the legend title). One configuration keeps its full name."""
    parts = [c.split("__") for c in configs]
    if len(configs) < 2:
        return {c: c for c in configs}, ""
    common = [p for p in parts[0] if all(p in other for other in parts[1:])]
    labels = {}
    for config, pieces in zip(configs, parts):
        rest = [p for p in pieces if p not in common]
        labels[config] = "__".join(rest) or config
    if len(set(labels.values())) < len(labels):
        return {c: c for c in configs}, ""
    return labels, "__".join(common)


def wrap_label(text: str, width: int = 24) -> str:
    """A long configuration name on several lines, broken before its ``__`` parts."""
    if len(text) <= width:
        return text
    lines, current = [], ""
    for i, part in enumerate(text.split("__")):
        piece = part if i == 0 else "__" + part
        if current and len(current) + len(piece) > width:
            lines.append(current)
            current = piece
        else:
            current += piece
    return "\n".join(lines + [current])


def legend(axis, title: str = "", **options):
    """A legend that stays readable: small font, framed, its title the shared config part."""
    handles, labels = axis.get_legend_handles_labels()
    if not handles:
        return None
    options.setdefault("fontsize", 7)
    options.setdefault("title_fontsize", 7)
    return axis.legend(title=title or None, **options)


def empty_figure(message: str, height: float = 2.0):
    """A figure saying why there is nothing to draw (used when called directly on a run
    without the data; the registry returns None instead)."""
    figure, axis = plt.subplots(figsize=(WIDTH, height))
    axis.axis("off")
    axis.text(0.5, 0.5, message, ha="center", va="center", fontsize=10, color="0.3",
              transform=axis.transAxes, wrap=True)
    return figure


def percent(values) -> np.ndarray:
    """Fractions as percentages (float array; None/NA -> NaN)."""
    return 100 * pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
