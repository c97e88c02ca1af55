"""Score a whole run directory (read through ``diareval.rundir``) -> its ``scores/`` tables.

Layout (``diareval.rundir``): ``run.json`` (dataset, configurations), one log and one status
file (``"status": complete|failed|interrupted|running``) per (configuration, recording).
Only complete sessions are scored; every other session still gets a row in the
sessions table with ``scored = False`` and a ``note`` saying why (status, missing log,
recording not in the dataset). I/O lives here and in :func:`write_scores`; everything
else is pure.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from diareval.errors import DatasetError, DiarevalError
from diareval.rundir import (CONVENTIONS, RunDir, RunDirError, RunManifest, atomic_paths,
                             score_table_paths, write_json_atomic)
from diareval.score.bootstrap import bootstrap_ratio, breakdown_with_ci, paired_bootstrap
from diareval.score.der import Conventions, DERResult, with_conventions
from diareval.score.latency import speaker_count_by_setting
from diareval.score.results import RunScores
from diareval.score.seen import der_seen_dataset
from diareval.score.session import score_session
from diareval.score.turns import BIN_ORDER, turn_counts
from diareval.score.word_tables import aggregate_words, with_reference_words
from diareval.sessionlog import read_session_log

BREAKDOWNS = ("word_count_bin", "duration_bin", "overlap_bin", "turn_index_bin")


def _config_settings(run: RunManifest) -> dict[str, Mapping]:
    return {c["name"]: c for c in run.configurations}


def _load_recordings(run: RunManifest, recordings, dataset, rundir: RunDir) -> dict:
    if recordings is not None:
        return {r.uri: r for r in recordings}
    name = dataset or run.dataset
    if not name:
        raise DatasetError("run.json names no dataset; pass dataset= (CLI: --dataset)")
    from diareval import datasets
    if not dataset:
        name = rundir.dataset_source(name)
    options = {} if dataset else dict(run.dataset_options or {})
    return {r.uri: r for r in datasets.load(name, **options)}


def score_run(run_dir: str | Path, conventions: Conventions = Conventions(), recordings=None,
              dataset: str | None = None, step: float = 1.0, window: float = 60.0,
              window_step: float = 10.0, n_boot: int = 1000, seed: int = 0,
              write: bool = True, words: str | Path | None = None) -> RunScores:
    """Score every complete session of a run; return (and by default write) its tables
    as a :class:`~diareval.score.results.RunScores`.

    ``recordings`` (a list of Recording) or ``dataset`` override run.json's dataset;
    ``words`` (an STM / SegLST file or folder, CLI ``--words``) the recordings' reference words.
    """
    rundir = RunDir(run_dir)
    if not rundir.path.is_dir():
        raise DiarevalError(f"{run_dir}: not a run directory")
    run = rundir.read_manifest() or RunManifest()
    sessions = rundir.sessions(run)
    if not sessions:
        raise DiarevalError(f"{run_dir}: no sessions (expected "
                            f"{rundir.log_path('<config>', '<uri>').relative_to(rundir.path)})")
    catalog = _load_recordings(run, recordings, dataset, rundir)
    if words is not None:
        catalog = with_reference_words(catalog, words)
    settings = _config_settings(run)
    if conventions.uem == Conventions().uem:
        # say where the scored region came from when every recording agrees
        sources = {str(r.meta.get("uem")) for r in catalog.values() if r.meta.get("uem")}
        if len(sources) == 1:
            conventions = replace(conventions, uem=sources.pop())
    rows, tables = [], {}
    for entry in sessions:
        config, uri = entry.config, entry.uri
        setting = settings.get(config, {})
        try:
            status = rundir.read_status(config, uri)
            state, problem = (status.status if status else "no status file"), None
        except RunDirError as exc:  # one broken file: a row saying so, not a failed scoring
            state, problem = "unreadable status file", f"not scored: {exc}"
        row = dict(config=config, uri=uri, model=setting.get("model"),
                   max_speakers=setting.get("max_speakers"), status=state, scored=False)
        if setting.get("snr") is not None:  # an SNR level of the run (run --snr)
            row["snr"] = float(setting["snr"])
        if problem:
            row["note"] = problem
        elif row["status"] != "complete":
            row["note"] = f"not scored: session status {row['status']}"
        elif not entry.log.exists():
            row["note"] = "not scored: status complete but the session log is missing"
        elif uri not in catalog:
            row["note"] = (f"not scored: recording {uri!r} is not in the dataset "
                           f"({run.dataset or dataset or 'given recordings'})")
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                log = read_session_log(entry.log)
            scores = score_session(log, catalog[uri], conventions, step=step, window=window,
                                   window_step=window_step)
            row.update(scores.summary)
            row["scored"] = True
            if caught:
                row["note"] = "; ".join(filter(None, [row.get("note", "")] +
                                               [str(w.message) for w in caught]))
            add_session_tables(tables, scores, config, uri)
        rows.append(row)
    scores = gather_scores(rows, tables, conventions, n_boot=n_boot, seed=seed)
    if write:
        write_scores(scores, rundir.scores_dir, conventions)
    return scores


def add_session_tables(tables: dict[str, list[pd.DataFrame]], scores, config: str,
                       uri: str) -> None:
    """Append one session's tables (``SessionScores.tables``), keyed by ``config`` and
    ``uri``, to the lists ``tables`` gathers per name."""
    for name, table in scores.tables.items():
        table.insert(0, "uri", uri)
        table.insert(0, "config", config)
        tables.setdefault(name, []).append(table)


def gather_scores(rows: list[dict], tables: dict[str, list[pd.DataFrame]],
                  conventions: Conventions, n_boot: int = 1000, seed: int = 0) -> RunScores:
    """The :class:`RunScores` of scored sessions: their summary ``rows`` (the sessions
    table), their tables concatenated per name, and the dataset-level tables
    (:func:`aggregate`), every one carrying the conventions."""
    out = {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}
    sessions = with_conventions(pd.DataFrame(rows), conventions)
    out.update(aggregate(sessions, out, conventions, n_boot=n_boot, seed=seed))
    for table in [sessions, *out.values()]:
        table.attrs["conventions"] = conventions.describe()
    return RunScores.from_tables(out, conventions.describe(), sessions=sessions)


def _der_rows(frame: pd.DataFrame) -> DERResult:
    return sum((DERResult(reference_speech=r.reference_speech, correct=r.correct, miss=r.miss,
                          false_alarm=r.false_alarm, confusion=r.confusion,
                          unknown_speech=r.unknown_speech, sessions=1)
                for r in frame.itertuples()), DERResult())


def _with_errors(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``errors`` = miss + false alarm + confusion (s) per row."""
    return frame.assign(errors=frame["miss"] + frame["false_alarm"] + frame["confusion"])


def _der_row_with_ci(group: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """The pooled DER components of ``group``'s sessions and the bootstrap interval of the
    DER (``der_lo``, ``der_hi``)."""
    row = _der_rows(group).as_row()
    ci = bootstrap_ratio(_with_errors(group), "errors", "reference_speech", n_boot=n_boot,
                         seed=seed)
    row.update(der_lo=ci["lo"].iloc[0], der_hi=ci["hi"].iloc[0])
    return row


def aggregate(sessions: pd.DataFrame, tables: dict[str, pd.DataFrame], conventions: Conventions,
              n_boot: int = 1000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Dataset-level tables from the sessions table and the per-session ones (``tables``):
    DER per configuration (time-weighted, bootstrap CI), breakdowns with CIs,
    reference-side accuracy, DER by region, the pooled DER-over-time curve, speaker-count
    error per setting, paired comparisons."""
    scored = sessions[sessions["scored"]] if "scored" in sessions else sessions.iloc[0:0]
    out: dict[str, pd.DataFrame] = {}
    der_rows = []
    for config, group in scored.groupby("config", sort=False):
        row = dict(config=config, **_der_row_with_ci(group, n_boot, seed))
        # JER pooled over every reference speaker of the configuration's sessions
        count = group["jer_speaker_count"].sum()
        row["jer"] = group["jer_speaker_error"].sum() / count if count > 0 else np.nan
        der_rows.append(row)
    out["der_dataset"] = with_conventions(pd.DataFrame(der_rows), conventions)

    turns = tables.get("turns")
    parts = []
    if turns is not None and not turns.empty:
        for config, group in turns.groupby("config", sort=False):
            for by in BREAKDOWNS:
                table = breakdown_with_ci(group, by, n_boot=n_boot, seed=seed)
                table = table.rename(columns={by: "bucket"})
                table["bucket"] = table["bucket"].astype(str)
                table.insert(0, "breakdown", by.removesuffix("_bin"))
                table.insert(0, "config", config)
                parts.append(table)
            first = group[group["turn_index"] <= 20].assign(
                turn_k=lambda f: f["turn_index"].astype(str))
            table = breakdown_with_ci(first, "turn_k", n_boot=n_boot, seed=seed)
            table = table.rename(columns={"turn_k": "bucket"})
            table = table.iloc[np.argsort(table["bucket"].astype(int).to_numpy())]
            table.insert(0, "breakdown", "turn_k")
            table.insert(0, "config", config)
            parts.append(table)
    out["breakdowns"] = with_conventions(pd.concat(parts, ignore_index=True), conventions) \
        if parts else pd.DataFrame()

    segments = tables.get("reference_segments")
    parts = []
    if segments is not None and not segments.empty:
        for config, group in segments.groupby("config", sort=False):
            counts = group.assign(n=1, n_scored=group["correct"].notna().astype(int),
                                  n_correct=group["correct"].fillna(False).astype(int))
            time = bootstrap_ratio(counts, "correct_time", "scored_time", by="duration_bin",
                                   n_boot=n_boot, seed=seed)
            majority = bootstrap_ratio(counts, "n_correct", "n_scored", by="duration_bin",
                                       wilson=True, n_boot=n_boot, seed=seed)
            table = pd.DataFrame({
                "config": config, "bucket": time["duration_bin"],
                "n_segments": counts.groupby("duration_bin")["n"].sum()
                .reindex(time["duration_bin"]).to_numpy(),
                "time_accuracy": time["estimate"], "time_accuracy_lo": time["lo"],
                "time_accuracy_hi": time["hi"], "segment_accuracy": majority["estimate"],
                "segment_accuracy_lo": majority["lo"], "segment_accuracy_hi": majority["hi"]})
            order = BIN_ORDER["duration_bin"]
            table = table.iloc[np.argsort([order.index(b) for b in table["bucket"]])]
            parts.append(table)
    out["reference_breakdown"] = with_conventions(pd.concat(parts, ignore_index=True),
                                                  conventions) if parts else pd.DataFrame()

    regions = tables.get("der_by_region")
    if regions is not None and not regions.empty:
        rows = []
        for (config, region), group in regions.groupby(["config", "region"], sort=False):
            rows.append(dict(config=config, region=region,
                             **_der_row_with_ci(group, n_boot, seed)))
        out["der_by_region_dataset"] = with_conventions(pd.DataFrame(rows), conventions)

    curve = tables.get("der_over_time")
    if curve is not None and not curve.empty:
        pooled = curve.groupby(["config", "t"], sort=True)[
            ["reference_speech", "miss", "false_alarm", "confusion_prefix",
             "confusion_final"]].sum().reset_index()
        pooled["sessions"] = curve.groupby(["config", "t"], sort=True).size().to_numpy()
        speech = pooled["reference_speech"].where(pooled["reference_speech"] > 0)
        base = pooled["miss"] + pooled["false_alarm"]
        pooled["der_prefix"] = (base + pooled["confusion_prefix"]) / speech
        pooled["der_final"] = (base + pooled["confusion_final"]) / speech
        pooled["note"] = np.where(pooled["reference_speech"] > 0, "",
                                  "no reference speech yet: DER undefined")
        out["der_over_time_dataset"] = with_conventions(pooled, conventions)

    seen = tables.get("der_seen")
    if seen is not None and not seen.empty:
        out["der_seen_dataset"] = der_seen_dataset(seen, conventions)

    if "speaker_count_error" in scored:
        out["speaker_count_by_setting"] = with_conventions(speaker_count_by_setting(scored),
                                                           conventions)

    configs = list(dict.fromkeys(scored["config"])) if len(scored) else []
    comparisons = []
    if len(configs) >= 2:
        base_config = configs[0]
        a = _with_errors(scored[scored["config"] == base_config])
        for other in configs[1:]:
            b = _with_errors(scored[scored["config"] == other])
            try:
                d = paired_bootstrap(a, b, "errors", "reference_speech", n_boot=n_boot,
                                     seed=seed)
            except DiarevalError:
                continue
            d.insert(0, "measure", "der")
            d.insert(0, "b_config", other)
            d.insert(0, "a_config", base_config)
            comparisons.append(d)
            if turns is not None and not turns.empty:
                turns_a = turns[turns["config"] == base_config]
                turns_b = turns[turns["config"] == other]
                for by in (None,) + BREAKDOWNS:
                    column = by or "all"
                    ca = turn_counts(turns_a.assign(all="all"), column)
                    cb = turn_counts(turns_b.assign(all="all"), column)
                    try:
                        d = paired_bootstrap(ca, cb, "n_correct", "n_scored", by=column,
                                             n_boot=n_boot, seed=seed)
                    except DiarevalError:
                        continue
                    d = d.rename(columns={column: "bucket"})
                    d.insert(0, "measure", "turn_accuracy" if by is None else
                             f"turn_accuracy_by_{by.removesuffix('_bin')}")
                    d.insert(0, "b_config", other)
                    d.insert(0, "a_config", base_config)
                    comparisons.append(d)
    # who said what: wer_dataset, wer_breakdowns, cpwer_over_time_dataset, paired differences
    word_tables, word_comparisons = aggregate_words(scored, tables, conventions, n_boot=n_boot,
                                                    seed=seed)
    out.update(word_tables)
    comparisons += word_comparisons
    out["comparisons"] = with_conventions(pd.concat(comparisons, ignore_index=True),
                                          conventions) if comparisons else pd.DataFrame()
    return out


def write_scores(scores: RunScores, scores_dir: Path,
                 conventions: Conventions) -> list[Path]:
    """Write every table as ``<name>.parquet`` and ``<name>.csv`` plus ``conventions.json``
    (empty tables are written too, so a reader finds every name)."""
    scores_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in scores.tables().items():
        if table is None:
            continue
        frame = table.copy()
        for column in frame.columns:
            if frame[column].dtype == object:
                frame[column] = frame[column].map(lambda v: None if v is None or
                                                  (isinstance(v, float) and math.isnan(v))
                                                  else str(v) if not isinstance(v, str) else v)
        frame.attrs = {}
        parquet, csv = score_table_paths(scores_dir, name)
        # both to temporary files first, then renamed: a stop mid-write leaves the previous
        # tables (or none), never a truncated file or a parquet/csv pair that disagree
        with atomic_paths(parquet, csv) as (tmp_parquet, tmp_csv):
            frame.to_parquet(tmp_parquet, index=False)
            frame.to_csv(tmp_csv, index=False)
        written += [parquet, csv]
    info = dict(conventions=conventions.describe(), **conventions.as_columns())
    write_json_atomic(Path(scores_dir) / CONVENTIONS, info)
    return written
