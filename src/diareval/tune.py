"""Tune the baseline engine's thresholds on a dataset: grid search (or optuna when installed).

Every configuration streams every recording through the engine in this process
(:func:`diareval.stream.offline.stream_offline`: audio time only, so the messages equal
the local server's) and is scored by the DER of the word-level hypothesis
(:func:`diareval.score.session.session_der`, the DER ``score_session`` reports; collar per
side, overlap scored unless ``skip_overlap``). Models load once and are shared by all
configurations. ``python -m diareval tune`` is the command line.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Callable

import pandas as pd

from diareval.errors import ConfigError
from diareval.score.der import Conventions
from diareval.score.session import session_der
from diareval.server.engines.base import SessionParams
from diareval.stream.offline import stream_offline


def parse_values(name: str, text: str) -> list:
    """``"0.5,0.6"`` -> [0.5, 0.6] typed like BaselineConfig's field ``name``."""
    from diareval.server.engines.baseline.engine import BaselineConfig

    known = {f.name for f in fields(BaselineConfig)}
    if name not in known:
        raise ConfigError(f"unknown baseline option {name!r}; valid: {', '.join(sorted(known))}")
    return [BaselineConfig.from_options({name: v.strip()}).as_dict()[name]
            for v in text.split(",") if v.strip()]


def _der(log, recording, conventions: Conventions):
    """DER components of a session log's hypothesis built as ``conventions`` say (exactly
    the DER ``score_session`` reports: the same intervals, :func:`session_der`)."""
    return session_der(log, recording, conventions)


def evaluate(recordings, options: dict, max_speakers: int | None = None, collar: float = 0.0,
             skip_overlap: bool = False) -> dict:
    """One configuration over ``recordings``: DER (time-weighted) and its parts with the
    end-of-stream SpeakerRevision applied, ``der_live`` without it (the labels the Turns
    carried when they were sent), and the real-time factor."""
    from diareval.server.engines.baseline import make_baseline_factory

    factory = make_baseline_factory(**options)
    params = SessionParams(speaker_labels=True, max_speakers=max_speakers)
    revised = Conventions(collar=collar, skip_overlap=skip_overlap, level="word", unknown="error")
    as_sent = replace(revised, revisions=False)
    total, live, cpu, audio = 0, 0, 0.0, 0.0
    for recording in recordings:
        session = stream_offline(factory, recording, params)
        total = total + _der(session.log, recording, revised)
        live = live + _der(session.log, recording, as_sent)
        cpu += session.cpu_seconds
        audio += session.audio_seconds
    return dict(der=total.der, miss=total.miss / total.reference_speech,
                false_alarm=total.false_alarm / total.reference_speech,
                confusion=total.confusion / total.reference_speech, der_live=live.der,
                rtf=cpu / audio if audio else float("nan"))


OBJECTIVES = {"revised": "der", "live": "der_live"}


def tune(recordings, grid: dict[str, list] | None = None, ranges: dict[str, tuple] | None = None,
         trials: int = 20, fixed: dict | None = None, max_speakers: int | None = None,
         collar: float = 0.0, skip_overlap: bool = False, seed: int = 0,
         progress: Callable[[dict], None] | None = None, objective: str = "revised") -> pd.DataFrame:
    """Evaluate configurations; one row per configuration, best (lowest objective) first.

    ``grid``: option -> values (every combination is tried); ``ranges``: option ->
    (low, high) searched by optuna's TPE sampler for ``trials`` trials (needs
    ``pip install optuna``). ``fixed`` options apply to every configuration.
    ``objective``: "revised" minimises the DER with the end-of-stream SpeakerRevision
    applied (column ``der``), "live" the DER of the labels as the Turns were sent
    (``der_live``). With the default ``revise_offline``, the revised labels come from
    re-clustering the whole session (``offline_threshold``), so the online clustering's
    thresholds (``delta_new``, ``tau_active``, ``rho_update``) move the live DER mostly.
    """
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
    column = OBJECTIVES[objective]
    fixed = dict(fixed or {})
    rows = []

    def run(options: dict) -> float:
        t0 = time.monotonic()
        result = evaluate(recordings, {**fixed, **options}, max_speakers, collar, skip_overlap)
        row = {**options, **result, "seconds": time.monotonic() - t0}
        rows.append(row)
        if progress:
            progress(row)
        return result[column]

    if ranges:
        try:
            import optuna
        except ImportError as exc:
            raise ConfigError("--range needs optuna: pip install optuna (or use --grid)") from exc
        from diareval.server.engines.baseline.engine import BaselineConfig

        defaults = BaselineConfig().as_dict()
        optuna.logging.set_verbosity(optuna.logging.WARNING)

        def objective(trial):
            options = {name: values for name, values in (grid or {}).items() if len(values) == 1}
            for name, (low, high) in ranges.items():
                if isinstance(defaults[name], int) and not isinstance(defaults[name], bool):
                    options[name] = trial.suggest_int(name, int(low), int(high))
                else:
                    options[name] = trial.suggest_float(name, float(low), float(high))
            for name, values in (grid or {}).items():
                if len(values) > 1:
                    options[name] = trial.suggest_categorical(name, values)
            return run(options)

        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=trials)
    else:
        names = list((grid or {}).keys())
        for values in itertools.product(*[(grid or {})[n] for n in names]):
            run(dict(zip(names, values)))
    return pd.DataFrame(rows).sort_values(column, kind="stable").reset_index(drop=True)


def write_results(results: pd.DataFrame, output: str | Path, fixed: dict | None = None,
                  meta: dict | None = None) -> tuple[Path, Path]:
    """Write the best options as a JSON object (usable as ``--engine-options``) and every
    configuration's scores as CSV beside it (``<output stem>.csv``)."""
    from diareval.server.engines.baseline.engine import BaselineConfig

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    known = {f.name for f in fields(BaselineConfig)}
    best = {k: v for k, v in results.iloc[0].to_dict().items() if k in known}
    best = {**(fixed or {}), **{k: (v.item() if hasattr(v, "item") else v) for k, v in best.items()}}
    output.write_text(json.dumps(best, indent=1, sort_keys=True) + "\n")
    table = output.with_suffix(".csv")
    frame = results.copy()
    for key, value in (meta or {}).items():
        frame[key] = value
    frame.to_csv(table, index=False)
    return output, table
