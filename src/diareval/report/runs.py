"""The scored runs ``compare`` and ``report`` read: :class:`LoadedRun`, :func:`load_runs`.

A run is read only through ``diareval.rundir.RunDir`` (``run.json`` as ``RunManifest``,
``scores/`` with ``RunScores.read``, ``figures/``); :func:`_open_run` is the one function
that touches a run directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from diareval.errors import ConfigError, DiarevalError
from diareval.score.results import RunScores


@dataclass(frozen=True, eq=False)
class LoadedRun:
    """One scored run as compare and report read it."""

    name: str
    path: Path
    manifest: dict
    scores: RunScores
    conventions: dict
    figures_dir: Path
    report_path: Path


def _open_run(path: str | Path) -> list[LoadedRun]:
    """The run at ``path`` (or, for a folder of runs such as an older ``run --snr``'s, one
    run per level in ``snr-<level>/``, each run in it).

    The only function of compare and report that touches the run directory, through
    :class:`diareval.rundir.RunDir` (``run.json``, ``scores/``, ``figures/``) plus the
    page's name ``report.html``.
    """
    from diareval.rundir import CONVENTIONS, RunDir
    path = Path(path)
    rundir = RunDir(path)
    if not path.is_dir():
        raise DiarevalError(f"{path}: not a run directory")
    if not rundir.holds_run() and not rundir.scores_dir.is_dir():
        inner = sorted(p for p in path.iterdir() if p.is_dir() and
                       (RunDir(p).holds_run() or RunDir(p).scores_dir.is_dir()))
        if inner:
            return [run for p in inner for run in _open_run(p)]
        raise DiarevalError(f"{path}: not a run directory (no {rundir.manifest_path.name}, no "
                            f"{rundir.scores_dir.name}/)")
    manifest = rundir.read_manifest()
    scores = RunScores.read(rundir.scores_dir)
    conventions_path = rundir.scores_dir / CONVENTIONS
    try:
        conventions = json.loads(conventions_path.read_text()) if conventions_path.exists() \
            else {}
    except (OSError, ValueError) as error:
        raise DiarevalError(f"{conventions_path}: not a conventions file ({error})") from error
    return [LoadedRun(name=path.resolve().name, path=path,
                      manifest=manifest.to_json() if manifest is not None else {},
                      scores=scores, conventions=conventions, figures_dir=rundir.figures_dir,
                      report_path=path / "report.html")]


def load_runs(runs: Iterable[str | Path | LoadedRun]) -> list[LoadedRun]:
    """Every run of ``runs`` (paths, folders of runs, or already loaded), names made unique."""
    loaded: list[LoadedRun] = []
    for run in runs:
        loaded += [run] if isinstance(run, LoadedRun) else _open_run(run)
    if not loaded:
        raise ConfigError("no run to compare: give at least one run directory")
    seen: dict[str, int] = {}
    out = []
    for run in loaded:
        count = seen[run.name] = seen.get(run.name, 0) + 1
        if count > 1:
            run = LoadedRun(**{**run.__dict__, "name": f"{run.name}#{count}"})
        out.append(run)
    return out
