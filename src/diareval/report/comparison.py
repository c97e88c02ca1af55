"""Compare configurations across one or more scored runs: :func:`compare_runs`.

A run is read through its ``run.json`` (what was asked: dataset, configurations, backend,
engine, versions) and ``RunScores.read(<run>/scores)``, both by ``report/runs.py`` (the one
module that touches a run directory). Configurations of several runs (other engines, backends, error
models, SNR levels) on the same recordings compare like configurations of one run:
each gets a unique id (``<config>__<run>`` where config names clash across runs), the
per-session tables are concatenated under those ids, the pooled tables recomputed
(``diareval.score.run.aggregate``), and the paired differences against a baseline are
paired bootstraps over the recordings both were scored on
(:func:`diareval.score.bootstrap.paired_bootstrap`).

Refused, with a message naming the runs: runs scored under different conventions
(``scores/conventions.json`` differ), and runs on different recordings (unless
``common_recordings=True``, which keeps the recordings every run scored).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from diareval.errors import ConfigError, DiarevalError
from diareval.report.runs import LoadedRun, load_runs
from diareval.score.results import RunScores

#: the settings columns of :attr:`Comparison.configurations`, in order
SETTINGS = ("model", "max_speakers", "params", "snr", "engine", "backend")
#: (measure, numerator, denominator, table): what the paired differences are taken of
MEASURES = (("der", "errors", "reference_speech", "sessions"),
            ("miss", "miss", "reference_speech", "sessions"),
            ("false_alarm", "false_alarm", "reference_speech", "sessions"),
            ("confusion", "confusion", "reference_speech", "sessions"),
            ("turn_accuracy", "n_correct", "n_scored", "turns"),
            ("unknown_rate", "n_unknown", "n_turns", "turns"))

#: measures where a higher value is better (for the others, DER and its parts, lower is)
HIGHER_IS_BETTER = ("turn_accuracy",)


def _settings(run: LoadedRun, config: str) -> dict:
    manifest = run.manifest
    entry = next((c for c in manifest.get("configurations", []) if isinstance(c, dict)
                  and c.get("name") == config), {})
    sessions = run.scores.sessions
    rows = sessions[sessions["config"] == config] if "config" in sessions else sessions
    options = manifest.get("dataset_options") or {}
    params = entry.get("params") or {}
    model = entry.get("model") or (rows["model"].dropna().iloc[0]
                                   if "model" in rows and rows["model"].notna().any() else None)
    return dict(model=model, max_speakers=entry.get("max_speakers"),
                params=json.dumps(params, sort_keys=True) if params else "",
                # the configuration's SNR level (run --snr); older runs: one noisy dataset each
                snr=entry.get("snr") if entry.get("snr") is not None else
                options.get("snr") if manifest.get("dataset") == "noisy" else None,
                engine=manifest.get("engine"), backend=manifest.get("backend"),
                dataset=manifest.get("dataset"))


def configuration_table(runs: Sequence[LoadedRun]) -> pd.DataFrame:
    """One row per (run, configuration): ``id`` (unique across the runs), ``run``,
    ``config`` and the settings columns (:data:`SETTINGS`, plus ``dataset``)."""
    names: dict[str, int] = {}
    for run in runs:
        for config in _configs(run):
            names[config] = names.get(config, 0) + 1
    rows = []
    for run in runs:
        for config in _configs(run):
            unique = names[config] == 1
            # the run as one more ``__`` part of the name, so figures that split names
            # into parts (an ``snr-10`` part: report's noise figure) read it too
            rows.append(dict(id=config if unique else f"{config}__{run.name}", run=run.name,
                             config=config, **_settings(run, config)))
    return pd.DataFrame(rows, columns=["id", "run", "config", *SETTINGS, "dataset"])


def _configs(run: LoadedRun) -> list[str]:
    sessions = run.scores.sessions
    found = list(dict.fromkeys(sessions["config"])) if "config" in sessions else []
    named = [c.get("name") for c in run.manifest.get("configurations", []) if isinstance(c, dict)]
    return [c for c in dict.fromkeys(named + found) if c in found]


def _check_conventions(runs: Sequence[LoadedRun]) -> dict:
    first = runs[0]
    for run in runs[1:]:
        if run.conventions != first.conventions:
            keys = sorted(k for k in set(run.conventions) | set(first.conventions)
                          if run.conventions.get(k) != first.conventions.get(k))
            detail = "; ".join(f"{k}: {first.conventions.get(k)!r} vs {run.conventions.get(k)!r}"
                               for k in keys if k != "conventions")
            raise DiarevalError(
                f"runs scored under different conventions cannot be compared: {first.path} vs "
                f"{run.path} ({detail or 'conventions.json differ'}); score them alike "
                "(`python -m diareval score RUN ...` with the same options)")
    return first.conventions


def _scored_uris(run: LoadedRun) -> set[str]:
    sessions = run.scores.sessions
    if sessions.empty:
        return set()
    return set(sessions.loc[sessions["scored"].astype(bool), "uri"])


def _recording_source(manifest: dict) -> str:
    """The dataset and options a run's recordings came from, noise settings left out (the
    levels of an SNR sweep are the same recordings, each with its noise)."""
    dataset, options = manifest.get("dataset"), dict(manifest.get("dataset_options") or {})
    if dataset == "noisy":
        dataset = f"noisy copies of {options.pop('dataset', 'synthetic')}"
        for key in ("snr", "noise", "seed"):
            options.pop(key, None)
    return f"{dataset} {json.dumps(options, sort_keys=True)}"


def _check_recordings(runs: Sequence[LoadedRun], common_recordings: bool) -> list[str]:
    sets = [_scored_uris(run) for run in runs]
    common = set.intersection(*sets)
    sources = [_recording_source(run.manifest) for run in runs]
    if not common_recordings:
        for run, source in zip(runs[1:], sources[1:]):
            if source != sources[0]:
                # the same uris can name other recordings (another synthetic spec)
                raise DiarevalError(
                    f"runs on different recordings: {runs[0].path} streamed {sources[0]}, "
                    f"{run.path} {source}; pass --common-recordings (common_recordings=True) "
                    "if their recordings of the same uri are the same conversations")
        for run, uris in zip(runs[1:], sets[1:]):
            if uris != sets[0]:
                only_a, only_b = sorted(sets[0] - uris), sorted(uris - sets[0])
                raise DiarevalError(
                    f"runs on different recordings: {runs[0].path} scored {len(sets[0])}, "
                    f"{run.path} {len(uris)} ({len(common)} in common; only in the first: "
                    f"{', '.join(only_a[:3]) or '-'}; only in the second: "
                    f"{', '.join(only_b[:3]) or '-'}); pass --common-recordings "
                    "(common_recordings=True) to compare on the recordings they share")
    if not common:
        raise DiarevalError("the runs share no scored recording: nothing to compare")
    order = [u for run in runs for u in run.scores.sessions.get("uri", [])]
    return [u for u in dict.fromkeys(order) if u in common]


def _merged_tables(runs: Sequence[LoadedRun], configs: pd.DataFrame,
                   uris: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The per-session tables of every run, configs renamed to their ids, restricted to
    ``uris``."""
    ids = {(r.run, r.config): r.id for r in configs.itertuples()}
    snrs = {r.id: r.snr for r in configs.itertuples() if r.snr is not None and pd.notna(r.snr)}
    keep = set(uris)
    merged: dict[str, list[pd.DataFrame]] = {}
    for run in runs:
        for name, table in run.scores:
            if table.empty or "config" not in table or "uri" not in table:
                continue
            table = table[table["uri"].isin(keep)].copy()
            table["config"] = [ids.get((run.name, c), c) for c in table["config"]]
            table.insert(0, "run", run.name)
            if snrs and name in ("sessions", "turns"):
                table["snr"] = table["config"].map(snrs).astype(float)
            merged.setdefault(name, []).append(table)
    return {name: pd.concat(parts, ignore_index=True) for name, parts in merged.items()}


def _conventions_object(conventions: dict):
    from diareval.score.der import Conventions
    known = Conventions.__dataclass_fields__
    values = {k[5:]: v for k, v in conventions.items() if k.startswith("conv_") and k[5:] in known}
    try:
        return Conventions(**values)
    except (TypeError, DiarevalError) as error:
        raise DiarevalError(f"scores/conventions.json: conventions diareval cannot rebuild "
                            f"({error}); score the runs again") from error


def _counts(tables: dict, table: str, config: str) -> pd.DataFrame:
    from diareval.score.turns import turn_counts
    frame = tables.get(table, pd.DataFrame())
    if frame.empty:
        return frame
    frame = frame[frame["config"] == config]
    if table == "turns":
        return turn_counts(frame.assign(all="all"), "all")
    frame = frame[frame["scored"].astype(bool)]
    return frame.assign(errors=frame["miss"] + frame["false_alarm"] + frame["confusion"])


def paired_differences(tables: dict, baseline: str, others: Sequence[str], n_boot: int = 1000,
                       seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Paired bootstrap of every :data:`MEASURES` entry, ``config - baseline``, over the
    recordings both were scored on; ``significant`` = the interval excludes 0."""
    from diareval.score.bootstrap import paired_bootstrap
    rows = []
    for other in others:
        for measure, numerator, denominator, table in MEASURES:
            a, b = _counts(tables, table, baseline), _counts(tables, table, other)
            if a.empty or b.empty:
                continue
            try:
                with warnings.catch_warnings():  # a bucket no replicate can fill: NaN, said
                    warnings.simplefilter("ignore", RuntimeWarning)
                    d = paired_bootstrap(a, b, numerator, denominator, n_boot=n_boot,
                                         seed=seed, level=level)
            except DiarevalError:
                continue
            row = d.iloc[0].to_dict()
            rows.append(dict(a_config=baseline, b_config=other, measure=measure, bucket="all",
                             **row))
    frame = pd.DataFrame(rows, columns=["a_config", "b_config", "measure", "bucket", "a", "b",
                                        "difference", "lo", "hi", "p_b_lower", "n_sessions",
                                        "note"])
    frame["significant"] = (frame["lo"] > 0) | (frame["hi"] < 0)
    frame.attrs["bootstrap"] = f"paired, {n_boot} replicates over recordings, seed {seed}, " \
                               f"{level:.0%} percentile interval"
    return frame


def verdict(row) -> str:
    """One phrase for a paired difference: which side is lower and whether it is significant."""
    if not np.isfinite(row["difference"]):
        return "no data"
    if not row["significant"]:
        return "no significant difference (interval includes 0)"
    higher = row["difference"] > 0
    better = higher == (row["measure"] in HIGHER_IS_BETTER)
    return f"{'higher' if higher else 'lower'}: {'better' if better else 'worse'} " \
           "(interval excludes 0)"


@dataclass(frozen=True, eq=False)
class Comparison:
    """What :func:`compare_runs` found.

    ``configurations``: one row per configuration (id, run, config, settings, sessions,
    DER and its parts with bootstrap intervals, turn accuracy); ``differences``: paired
    differences against ``baseline``; ``scores``: the merged :class:`RunScores` (config
    ids unique, pooled tables recomputed, ``comparisons`` = ``differences``) that every
    figure takes; ``uris``: the recordings compared.
    """

    configurations: pd.DataFrame
    differences: pd.DataFrame
    scores: RunScores
    baseline: str
    uris: tuple[str, ...]
    conventions: str
    runs: tuple[LoadedRun, ...] = field(default=())

    def format(self) -> str:
        """The comparison as text (what ``python -m diareval compare`` prints)."""
        return format_comparison(self)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``configurations.csv``, ``differences.csv`` and every figure as PNG."""
        from diareval.report.html import write_registry_figures
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in ("configurations", "differences"):
            path = out_dir / f"{name}.csv"
            getattr(self, name).to_csv(path, index=False)
            written.append(path)
        return written + write_registry_figures(self.scores, out_dir / "figures")


def _interval_columns(configs: pd.DataFrame, tables: dict, n_boot: int, seed: int,
                      level: float) -> pd.DataFrame:
    from diareval.score.bootstrap import bootstrap_ratio
    rows = []
    for config in configs["id"]:
        row = {"id": config}
        for measure, numerator, denominator, table in MEASURES:
            counts = _counts(tables, table, config)
            if counts.empty:
                continue
            ci = bootstrap_ratio(counts, numerator, denominator, n_boot=n_boot, seed=seed,
                                 level=level, wilson=table == "turns").iloc[0]
            row.update({measure: ci["estimate"], f"{measure}_lo": ci["lo"],
                        f"{measure}_hi": ci["hi"]})
            if measure == "der":
                row["sessions"] = int(ci["n_sessions"])
        rows.append(row)
    return configs.merge(pd.DataFrame(rows), on="id", how="left")


def compare_runs(runs: Iterable[str | Path | LoadedRun], baseline: str | None = None,
                 common_recordings: bool = False, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> Comparison:
    """Compare every configuration of ``runs`` (run directories; ``compare`` CLI mirrors it).

    ``baseline``: the configuration the others are compared with (its id, or its config
    name when that is unique; default the first). Raises :class:`DiarevalError` for runs
    scored under different conventions, or on different recordings unless
    ``common_recordings``.
    """
    from diareval.score.run import aggregate
    loaded = load_runs(runs)
    conventions = _check_conventions(loaded)
    uris = _check_recordings(loaded, common_recordings)
    configs = configuration_table(loaded)
    if configs.empty:
        raise DiarevalError("no scored configuration in "
                            f"{', '.join(str(r.path) for r in loaded)}")
    base = _resolve_baseline(configs, baseline)
    tables = _merged_tables(loaded, configs, uris)
    conv = _conventions_object(conventions)
    sessions = tables.pop("sessions")
    with warnings.catch_warnings():  # empty replicate buckets: NaN, said in the tables
        warnings.simplefilter("ignore", RuntimeWarning)
        tables.update(aggregate(sessions, tables, conv, n_boot=n_boot, seed=seed))
    tables["sessions"] = sessions
    others = [c for c in configs["id"] if c != base]
    differences = paired_differences(tables, base, others, n_boot=n_boot, seed=seed, level=level)
    text = conventions.get("conventions") or conv.describe()
    tables["comparisons"] = differences
    for table in tables.values():
        table.attrs["conventions"] = text
    scores = RunScores.from_tables({k: v for k, v in tables.items()
                                    if k in RunScores.table_names()}, text)
    configurations = _interval_columns(configs, tables, n_boot, seed, level)
    return Comparison(configurations=configurations, differences=differences, scores=scores,
                      baseline=base, uris=tuple(uris), conventions=text, runs=tuple(loaded))


def _resolve_baseline(configs: pd.DataFrame, baseline: str | None) -> str:
    if baseline is None:
        return configs["id"].iloc[0]
    if baseline in set(configs["id"]):
        return baseline
    matches = configs[(configs["config"] == baseline) | (configs["run"] == baseline)]
    if len(matches) == 1:
        return matches["id"].iloc[0]
    raise ConfigError(f"--baseline {baseline!r} is {'ambiguous' if len(matches) else 'unknown'}; "
                      f"configurations: {', '.join(configs['id'])}")


def _pct(value, lo=None, hi=None) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    text = f"{100 * value:.1f}%"
    if lo is not None and np.isfinite(lo) and np.isfinite(hi):
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return text


def summary_table(comparison: Comparison) -> pd.DataFrame:
    """Configurations as rows with formatted DER, parts and turn accuracy (intervals in [])."""
    frame = comparison.configurations
    out = frame[["id", *SETTINGS]].copy()
    out["max_speakers"] = out["max_speakers"].map(lambda v: "none" if v is None or
                                                  (isinstance(v, float) and np.isnan(v))
                                                  else str(int(v)))
    out["snr"] = out["snr"].map(lambda v: "" if v is None or pd.isna(v) else f"{v:g} dB")
    out["sessions"] = frame.get("sessions")
    for measure, *_ in MEASURES:
        if measure in frame:
            out[measure] = [_pct(r[measure], r[f"{measure}_lo"], r[f"{measure}_hi"])
                            for _, r in frame.iterrows()]
    return out.fillna("")


def differences_table(comparison: Comparison) -> pd.DataFrame:
    """The paired differences, formatted, with the verdict."""
    frame = comparison.differences
    return pd.DataFrame({
        "configuration": frame["b_config"], "measure": frame["measure"],
        "against": [_pct(v) for v in frame["a"]], "value": [_pct(v) for v in frame["b"]],
        "difference": [f"{100 * d:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                       if np.isfinite(d) else "-" for d, lo, hi in
                       zip(frame["difference"], frame["lo"], frame["hi"])],
        "verdict": [verdict(r) for _, r in frame.iterrows()]})


def format_comparison(comparison: Comparison) -> str:
    """The text ``compare`` prints: conventions, configurations, paired differences."""
    lines = [f"conventions: {comparison.conventions}",
             f"recordings: {len(comparison.uris)} (scored in every run)", "",
             "configurations (DER and parts over the recordings, 95% bootstrap interval):",
             summary_table(comparison).to_string(index=False)]
    if len(comparison.differences):
        lines += ["", f"paired differences against {comparison.baseline} (each configuration "
                  f"minus it; paired bootstrap over {len(comparison.uris)} recordings):",
                  differences_table(comparison).to_string(index=False)]
    else:
        lines += ["", "one configuration only: no paired difference"]
    return "\n".join(lines)
