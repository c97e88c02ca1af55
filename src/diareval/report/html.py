"""One self-contained HTML page for one or more scored runs: :func:`write_report`.

The page holds the datasets, configurations, versions (``run.json``), conventions, the
summary table, the paired differences, every figure of the registry (PNG data URIs) and
the per-session table, with a table of contents of ``#anchors``. No network, no
JavaScript, no external URL: it opens from disk in any browser.
"""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from diareval.score.results import RunScores

#: columns of the per-session table, in order (those a run has)
SESSION_COLUMNS = ("config", "uri", "scored", "der", "miss_rate", "false_alarm_rate",
                   "confusion_rate", "jer", "n_turns", "turn_accuracy", "unknown_turn_rate",
                   "mapping_changes", "stable_from", "flips_per_minute", "note")
_RATES = {"der", "miss_rate", "false_alarm_rate", "confusion_rate", "jer", "turn_accuracy",
          "unknown_turn_rate"}


def _local_figures() -> dict[str, Callable]:
    """The figures of ``diareval.report.figures`` as a registry (used until the package
    has ``diareval.report.FIGURES``)."""
    from diareval.report import figures

    def over_time(scores):
        return None if scores.der_over_time_dataset.empty else figures.der_over_time_figure(scores)

    def accuracy(by):
        def draw(scores):
            table = scores.breakdowns
            if table.empty or not (table["breakdown"] == by).any():
                return None
            return figures.breakdown_figure(scores, by=by)
        return draw

    registry = {"der_over_time": over_time}
    for by in ("word_count", "duration", "overlap", "turn_index"):
        registry[f"accuracy_by_{by}"] = accuracy(by)
    registry["comparisons"] = differences_figure  # the name of report.FIGURES' forest plot
    return registry


def figure_registry() -> dict[str, Callable]:
    """Name -> function(RunScores) -> Figure | None: ``diareval.report.FIGURES`` when the
    package has it, else the local registry of the existing figure functions."""
    try:
        from diareval.report import FIGURES
    except ImportError:
        return _local_figures()
    return dict(FIGURES)


def differences_figure(scores: RunScores):
    """Forest plot of ``scores.comparisons`` (bucket "all"): each configuration minus the
    baseline with its paired-bootstrap interval, one panel row per measure."""
    import matplotlib.pyplot as plt
    table = scores.comparisons
    if table.empty or "bucket" not in table:
        return None
    table = table[table["bucket"].astype(str) == "all"]
    if table.empty:
        return None
    measures = list(dict.fromkeys(table["measure"]))
    configs = list(dict.fromkeys(table["b_config"]))
    figure, axis = plt.subplots(figsize=(8, 0.5 * len(measures) * max(1, len(configs) / 2)
                                         + 2.2))
    step = 0.7 / max(len(configs), 1)
    for i, config in enumerate(configs):
        rows = table[table["b_config"] == config].set_index("measure").reindex(measures)
        y = [len(measures) - 1 - k - (i - (len(configs) - 1) / 2) * step
             for k in range(len(measures))]
        difference = 100 * rows["difference"].to_numpy(float)
        low = difference - 100 * rows["lo"].to_numpy(float)
        high = 100 * rows["hi"].to_numpy(float) - difference
        axis.errorbar(difference, y, xerr=[low, high], fmt="o", capsize=3, label=config)
    axis.axvline(0, color="0.4", linewidth=0.8)
    axis.set_yticks(range(len(measures))[::-1], [m.replace("_", " ") for m in measures])
    axis.set_xlabel("configuration minus baseline (percentage points, 95% paired bootstrap)")
    axis.set_title(f"Paired differences against {table['a_config'].iloc[0]}", fontsize=10)
    axis.grid(axis="x", alpha=0.3)
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18),
                ncol=1 if len(configs) > 3 else len(configs), frameon=False)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    figure.text(0.01, 0.01, scores.conventions, fontsize=7, color="0.35")
    return figure


def render_figures(scores: RunScores, registry: dict | None = None):
    """``[(name, Figure)]`` of every registry figure the scores allow, and ``[(name,
    error text)]`` of those whose function failed (said, not hidden)."""
    drawn, failed = [], []
    for name, function in (registry or figure_registry()).items():
        try:
            figure = function(scores)
        except Exception as error:  # a broken figure must not cost the whole report
            warnings.warn(f"figure {name}: {type(error).__name__}: {error}")
            failed.append((name, f"{type(error).__name__}: {error}"))
            continue
        if figure is not None:
            drawn.append((name, figure))
    return drawn, failed


def render_timelines(comparison, limit: int = 4):
    """``[(name, Figure)]``: the session timeline of the first compared recording in each
    of the first ``limit`` configurations, where ``diareval.report.timeline_from_run``
    exists and the recording loads; ``[(name, reason)]`` for those that could not."""
    try:
        from diareval.report import timeline_from_run
    except ImportError:
        return [], []
    drawn, failed = [], []
    if not comparison.uris:
        return drawn, failed
    uri = comparison.uris[0]
    rows = comparison.configurations.head(limit)
    runs = {run.name: run for run in comparison.runs}
    for row in rows.itertuples():
        name = f"timeline__{row.id}__{uri}"
        try:
            drawn.append((name, timeline_from_run(runs[row.run].path, uri, config=row.config)))
        except Exception as error:  # e.g. the run's dataset is not on this machine
            failed.append((name, f"{type(error).__name__}: {error}"))
    return drawn, failed


def write_registry_figures(scores: RunScores, figures_dir: str | Path) -> list[Path]:
    """Save every registry figure as ``<figures_dir>/<name>.png``; return the paths."""
    import matplotlib.pyplot as plt
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in render_figures(scores)[0]:
        path = figures_dir / f"{name}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    return written


def _png_data_uri(figure) -> str:
    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _table_html(frame: pd.DataFrame) -> str:
    if frame is None or frame.empty:
        return "<p class=note>(empty)</p>"
    return "<div class=scroll>" + frame.to_html(index=False, border=0, na_rep="",
                                                classes="data", escape=True) + "</div>"


def _sessions_table(sessions: pd.DataFrame) -> pd.DataFrame:
    columns = ["run"] * ("run" in sessions) + [c for c in SESSION_COLUMNS if c in sessions]
    out = sessions[columns].copy() if len(sessions) else sessions
    for column in _RATES & set(out.columns):
        out[column] = out[column].map(lambda v: "" if pd.isna(v) else f"{100 * v:.1f}%")
    for column in ("stable_from", "flips_per_minute"):
        if column in out:
            out[column] = out[column].map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
    return out


def _runs_html(runs) -> tuple[str, str, str]:
    datasets, versions, rows = [], [], []
    for run in runs:
        m = run.manifest
        datasets.append(dict(run=run.name, dataset=m.get("dataset"),
                             options=json.dumps(m.get("dataset_options") or {}),
                             recordings=len(m.get("uris") or []),
                             audio_hours=m.get("audio_hours")))
        versions.append(dict(run=run.name, created_at=m.get("created_at"),
                             git_sha=m.get("git_sha"), backend=m.get("backend"),
                             host=m.get("host"), engine=m.get("engine"),
                             engine_options=json.dumps(m.get("engine_options") or {}),
                             speed=m.get("speed"),
                             **{k: v for k, v in (m.get("versions") or {}).items()}))
        rows.append(run.conventions)
    # one column per run: a long list of fields reads better down than across
    versions = pd.DataFrame(versions).set_index("run").T.rename_axis("field").reset_index()
    conventions = pd.DataFrame(rows[:1]).drop(columns=["conventions"], errors="ignore")
    return _table_html(pd.DataFrame(datasets)), _table_html(versions), _table_html(conventions)


_STYLE = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:2em}
table.data{border-collapse:collapse;font-size:.85em;margin:.5em 0}
table.data th,table.data td{border:1px solid #ddd;padding:.25em .5em;text-align:left;
white-space:nowrap}
table.data th{background:#f3f3f3}.note{color:#666;font-size:.9em}
nav ul{columns:2}figure{margin:1em 0}figure img{max-width:100%;height:auto;
border:1px solid #eee}a.top{font-size:.8em;margin-left:.5em}.error{color:#a00}
.scroll{overflow-x:auto}
"""


def report_html(comparison, title: str | None = None) -> str:
    """The whole page for a :class:`~diareval.report.comparison.Comparison`."""
    from diareval.report.comparison import differences_table, summary_table
    runs = comparison.runs
    title = title or "diareval report: " + ", ".join(run.name for run in runs)
    datasets, versions, conventions = _runs_html(runs)
    drawn, failed = render_figures(comparison.scores)
    timelines, missing = render_timelines(comparison)
    drawn, failed = drawn + timelines, failed + missing
    figure_links, blocks = [], []
    for name, figure in drawn:
        anchor = f"figure-{name}"
        figure_links.append(f'<li><a href="#{anchor}">{html.escape(name)}</a></li>')
        blocks.append(f'<figure id="{anchor}"><img alt="{html.escape(name)}" '
                      f'src="{_png_data_uri(figure)}"><figcaption>{html.escape(name)} '
                      '<a class=top href="#contents">contents</a></figcaption></figure>')
    blocks += [f'<p class=error>figure {html.escape(n)} failed: {html.escape(e)}</p>'
               for n, e in failed]
    # the numbers first (what a reader opens the page for), then what produced them
    sections = [("summary", "Summary", "<p class=note>DER and its parts over the "
                 f"{len(comparison.uris)} recordings scored in every run, 95% bootstrap "
                 "interval over recordings; turn accuracy and unknown rate with a "
                 "Wilson-guarded interval. Conventions: "
                 f'{html.escape(comparison.conventions)} (<a href="#conventions">details</a>).'
                 "</p>" + _table_html(summary_table(comparison)))]
    if len(comparison.differences):
        note = (f"<p class=note>Each configuration minus {html.escape(comparison.baseline)}, "
                "paired bootstrap over the common recordings; significant when the interval "
                "excludes 0.</p>")
        sections.append(("differences", "Paired differences",
                         note + _table_html(differences_table(comparison))))
    sections += [
        ("figures", "Figures", "".join(blocks) or "<p class=note>(none)</p>"),
        ("configurations", "Configurations", _table_html(comparison.configurations[
            ["id", "run", "config", "model", "max_speakers", "params", "snr", "engine",
             "backend", "dataset"]])),
        ("datasets", "Datasets", datasets),
        ("versions", "Versions", versions),
        ("conventions", "Conventions", f"<p>{html.escape(comparison.conventions)}</p>"
         + conventions),
        ("sessions", "Per-session table",
         _table_html(_sessions_table(comparison.scores.sessions)))]
    toc = "".join(f'<li><a href="#{a}">{html.escape(t)}</a>'
                  + (f"<ul>{''.join(figure_links)}</ul>" if a == "figures" and figure_links
                     else "") + "</li>" for a, t, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{html.escape(t)} <a class=top href="#contents">'
                   f"contents</a></h2>{content}</section>" for a, t, content in sections)
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>"
            f"{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><nav id=contents><h2>Contents</h2><ul>{toc}</ul>"
            f"</nav>{body}</body></html>\n")


def write_report(runs: Iterable, out: str | Path | None = None, baseline: str | None = None,
                 common_recordings: bool = False, n_boot: int = 1000, seed: int = 0) -> Path:
    """Write ``report.html`` for ``runs`` (run directories; ``python -m diareval report``
    mirrors it) and return its path: ``out`` (a folder, or a path ending in .html), by
    default the first run's directory (for a folder of runs: that folder)."""
    from diareval.report.comparison import compare_runs
    runs = list(runs)
    comparison = compare_runs(runs, baseline=baseline, common_recordings=common_recordings,
                              n_boot=n_boot, seed=seed)
    if out is None:
        first = runs[0]
        path = first.report_path if hasattr(first, "report_path") else \
            _default_report_path(Path(first))
    else:
        out = Path(out)
        path = out if out.suffix == ".html" else out / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_html(comparison), encoding="utf-8")
    return path


def _default_report_path(folder: Path) -> Path:
    from diareval.report.runs import _open_run
    runs = _open_run(folder)
    # one run: its own report path; a folder of runs: report.html in that folder
    return runs[0].report_path if len(runs) == 1 and runs[0].path == folder else \
        folder / "report.html"
