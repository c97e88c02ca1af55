"""The run directory on disk: every path in it, and its two JSON files.

    <run>/run.json                                 RunManifest: what was asked (never the key)
    <run>/sessions/<config>/<uri>.jsonl            the session log (``sessionlog``), last attempt
    <run>/sessions/<config>/<uri>.attemptK.jsonl   the logs of earlier attempts, kept
    <run>/sessions/<config>/<uri>.json             SessionStatus: complete | failed | interrupted
                                                   (running | retrying while the run is on)
    <run>/scores/<table>.parquet|csv, conventions.json   the tables of ``score``
    <run>/figures/*.png                            the plots of ``report``

The twin of ``sessionlog.py`` (which owns the lines inside a log): the writer (``stream``)
and the readers (``score``, ``report``, the CLI) all go through :class:`RunDir`; nothing
else builds these paths. A JSON file is written whole or not at all
(:func:`write_json_atomic`); a malformed one is a :class:`RunDirError` naming it.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Mapping

from diareval.errors import DiarevalError

MANIFEST = "run.json"
SESSIONS = "sessions"
SCORES = "scores"
FIGURES = "figures"
CONVENTIONS = "conventions.json"
LOG_SUFFIX = ".jsonl"
STATUS_SUFFIX = ".json"
_ATTEMPT = re.compile(r"\.attempt\d+$")

# pending: never started (no file is written for it); running/retrying: while the run is on
STATUSES = ("pending", "running", "retrying", "complete", "failed", "interrupted")


class RunDirError(DiarevalError):
    """A file of a run directory that is not what its name says (broken JSON, wrong fields)."""


# --- writing and reading JSON -----------------------------------------------------------------

@contextmanager
def atomic_paths(*paths: Path) -> Iterator[tuple[Path, ...]]:
    """Temporary paths beside ``paths`` to write into; renamed over ``paths`` only when the
    block ends without error (otherwise removed): a reader, a crash or a Ctrl-C never sees a
    half-written file, nor a set of files that disagree."""
    tmps = tuple(Path(p).with_name(Path(p).name + ".tmp") for p in paths)
    for tmp in tmps:
        tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmps
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in zip(tmps, paths):
        os.replace(tmp, path)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, flushed to disk, whole or not at all."""
    with atomic_paths(Path(path)) as (tmp,):
        with open(tmp, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=1, ensure_ascii=False)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())


def read_json(path: str | Path) -> Any | None:
    """The parsed JSON file at ``path``; None if there is no such file; a RunDirError naming
    the file if it cannot be read or is not JSON."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: cannot be read as JSON ({exc})") from None


def _check(source, ok: bool, what: str, value: Any) -> None:
    if not ok:
        raise RunDirError(f"{source}: {what}, got {value!r}")


def _optional(source, data: Mapping, key: str, types: tuple, what: str) -> None:
    value = data.get(key)
    _check(source, value is None or (isinstance(value, types) and not isinstance(value, bool)),
           f'"{key}" must be {what}', value)


def _number(source, data: Mapping, key: str) -> None:
    _optional(source, data, key, (int, float), "a number or null")


# --- run.json ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunManifest:
    """``run.json``: what a run was asked to do. Only ``run`` writes it; a run written by hand
    (or by an older diareval) may leave out every field but the ones its reader needs.

    ``configurations``: one dict per configuration (``name``, ``model``, ``max_speakers``,
    ``params``, ``url``; ``snr`` and ``noise`` for a noisy configuration, absent in older
    runs and in clean configurations); ``invocations``: one dict per ``run`` call
    (``started_at``, ``argv``, ``resume``); ``dataset``: a registered name or a folder's
    absolute path."""

    dataset: str | None = None
    dataset_options: Mapping[str, Any] | None = None  # None: not recorded (older runs)
    uris: tuple[str, ...] = ()
    audio_hours: float | None = None
    configurations: tuple[Mapping[str, Any], ...] = ()
    backend: str | None = None
    host: str | None = None
    engine: str | None = None
    engine_options: Mapping[str, Any] | None = None
    speed: float | None = None
    chunk_seconds: float | None = None
    concurrency: int | None = None
    max_starts_per_minute: float | None = None
    max_attempts: int | None = None
    seed: int | None = None
    versions: Mapping[str, Any] = field(default_factory=dict)
    git_sha: str | None = None
    created_at: str | None = None
    invocations: tuple[Mapping[str, Any], ...] = ()

    def configuration(self, name: str) -> Mapping[str, Any]:
        """The recorded settings of configuration ``name`` ({} if run.json does not list it)."""
        return next((c for c in self.configurations if c.get("name") == name), {})

    @property
    def configuration_names(self) -> list[str]:
        """The configurations' names, in run.json's order."""
        return [c["name"] for c in self.configurations]

    @property
    def snr_levels(self) -> list[float]:
        """The distinct SNR levels (dB) of the configurations, in run.json's order ([]: none,
        as in every run before SNR levels were a configuration axis)."""
        levels = [float(c["snr"]) for c in self.configurations
                  if isinstance(c.get("snr"), (int, float))]
        return list(dict.fromkeys(levels))

    def to_json(self) -> dict:
        """run.json's object (keys in this class's order)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("uris", "configurations", "invocations"):
            data[key] = [dict(v) if isinstance(v, Mapping) else v for v in data[key]]
        for key in ("dataset_options", "engine_options", "versions"):
            if data[key] is not None:
                data[key] = dict(data[key])
        return data

    @classmethod
    def from_json(cls, data: Any, source: str | Path = MANIFEST) -> "RunManifest":
        """Check and wrap run.json's object; a RunDirError naming ``source`` if it is not one.
        Keys this version does not know are ignored."""
        _check(source, isinstance(data, dict), "not a run manifest: a JSON object expected",
               type(data).__name__)
        for key in ("dataset", "backend", "host", "engine", "git_sha", "created_at"):
            _optional(source, data, key, (str,), "a string or null")
        for key in ("dataset_options", "engine_options", "versions"):
            _optional(source, data, key, (dict,), "an object or null")
        for key in ("audio_hours", "speed", "chunk_seconds", "concurrency",
                    "max_starts_per_minute", "max_attempts", "seed"):
            _number(source, data, key)
        uris = data.get("uris") or []
        _check(source, isinstance(uris, list) and all(isinstance(u, str) for u in uris),
               '"uris" must be a list of strings', uris)
        for key in ("configurations", "invocations"):
            value = data.get(key) or []
            _check(source, isinstance(value, list) and all(isinstance(v, dict) for v in value),
                   f'"{key}" must be a list of objects', value)
        for config in data.get("configurations") or []:
            _check(source, isinstance(config.get("name"), str) and config["name"],
                   'every configuration needs a "name" (a string)', config)
            snr = config.get("snr")
            _check(source, snr is None or (isinstance(snr, (int, float))
                                           and not isinstance(snr, bool)),
                   'a configuration\'s "snr" must be a number of dB or null', config)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["uris"] = tuple(uris)
        values["configurations"] = tuple(data.get("configurations") or [])
        values["invocations"] = tuple(data.get("invocations") or [])
        values["versions"] = data.get("versions") or {}
        return cls(**values)


# --- the status file --------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionStatus:
    """``sessions/<config>/<uri>.json``: where one (configuration, recording) session stands.

    ``attempts``: one dict per attempt over all invocations, in order: ``attempt`` (1, 2,
    ...), ``log`` (the file its lines are in: ``<uri>.jsonl`` for the last, an archive
    ``<uri>.attemptK.jsonl`` for earlier ones), ``started_at``, ``ended_at``, then
    ``AttemptResult.to_json()``'s fields (``outcome``, ``error``, close code, timings, ...)
    and ``retry_after`` (s) when a retry followed. Only ``status`` is required in a file."""

    status: str
    uri: str | None = None
    config: str | None = None
    model: str | None = None
    max_speakers: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    backend: str | None = None
    url: str | None = None
    audio_seconds: float | None = None
    chunk_seconds: float | None = None
    speed: float | None = None
    attempts: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    _ORDER = ("uri", "config", "model", "max_speakers", "params", "backend", "url", "status",
              "audio_seconds", "chunk_seconds", "speed", "attempts", "error", "created_at",
              "started_at", "finished_at")

    def to_json(self) -> dict:
        """The status file's object (``started_at``/``finished_at`` only once set)."""
        data = {key: getattr(self, key) for key in self._ORDER}
        data["params"] = dict(self.params)
        data["attempts"] = [dict(a) for a in self.attempts]
        for key in ("started_at", "finished_at"):
            if data[key] is None:
                del data[key]
        return data

    @classmethod
    def from_json(cls, data: Any, source: str | Path = "status file") -> "SessionStatus":
        """Check and wrap a status file's object; a RunDirError naming ``source`` if it is not
        one. Keys this version does not know are ignored."""
        _check(source, isinstance(data, dict), "not a session status: a JSON object expected",
               type(data).__name__)
        _check(source, data.get("status") in STATUSES,
               f'"status" must be one of {", ".join(STATUSES)}', data.get("status"))
        for key in ("uri", "config", "model", "backend", "url", "error", "created_at",
                    "started_at", "finished_at"):
            _optional(source, data, key, (str,), "a string or null")
        for key in ("audio_seconds", "chunk_seconds", "speed", "max_speakers"):
            _number(source, data, key)
        _optional(source, data, "params", (dict,), "an object or null")
        attempts = data.get("attempts") or []
        _check(source, isinstance(attempts, list) and all(isinstance(a, dict) for a in attempts),
               '"attempts" must be a list of objects', attempts)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["attempts"] = tuple(dict(a) for a in attempts)
        values["params"] = data.get("params") or {}
        return cls(**values)


# --- the directory ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionFiles:
    """The files of one (configuration, recording) session (either may not exist)."""

    config: str
    uri: str
    log: Path
    status: Path


class RunDir:
    """A run directory: its paths, its manifest and status files, its sessions."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def manifest_path(self) -> Path:
        """``run.json``."""
        return self.path / MANIFEST

    @property
    def sessions_dir(self) -> Path:
        """``sessions/``."""
        return self.path / SESSIONS

    @property
    def scores_dir(self) -> Path:
        """``scores/`` (the tables of ``score``)."""
        return self.path / SCORES

    @property
    def figures_dir(self) -> Path:
        """``figures/`` (the plots of ``report``)."""
        return self.path / FIGURES

    def holds_run(self) -> bool:
        """Whether a run was started here (run.json exists)."""
        return self.manifest_path.exists()

    def session_dir(self, config: str) -> Path:
        """``sessions/<config>/``."""
        return self.sessions_dir / config

    def log_path(self, config: str, uri: str) -> Path:
        """``sessions/<config>/<uri>.jsonl``: the log of the last attempt."""
        return self.session_dir(config) / f"{uri}{LOG_SUFFIX}"

    def status_path(self, config: str, uri: str) -> Path:
        """``sessions/<config>/<uri>.json``."""
        return self.session_dir(config) / f"{uri}{STATUS_SUFFIX}"

    def attempt_path(self, config: str, uri: str, k: int) -> Path:
        """``sessions/<config>/<uri>.attemptK.jsonl``: the kept log of attempt ``k``."""
        return self.session_dir(config) / f"{uri}.attempt{k}{LOG_SUFFIX}"

    # run.json and status files

    def read_manifest(self) -> RunManifest | None:
        """run.json, or None if there is none (RunDirError if it is malformed)."""
        data = read_json(self.manifest_path)
        return None if data is None else RunManifest.from_json(data, self.manifest_path)

    def write_manifest(self, manifest: RunManifest) -> None:
        """Write run.json (atomically; creates the directory)."""
        write_json_atomic(self.manifest_path, manifest.to_json())

    def read_status(self, config: str, uri: str) -> SessionStatus | None:
        """The session's status, or None if it has no status file (RunDirError if malformed)."""
        path = self.status_path(config, uri)
        data = read_json(path)
        return None if data is None else SessionStatus.from_json(data, path)

    def write_status(self, config: str, uri: str, status: SessionStatus) -> None:
        """Write the session's status file (atomically)."""
        write_json_atomic(self.status_path(config, uri), status.to_json())

    def archive_log(self, config: str, uri: str, attempts: int) -> str | None:
        """Before a new attempt: rename the session's log to ``<uri>.attemptK.jsonl`` (K =
        ``attempts`` so far, at least 1, the next free number if taken) and return the new
        name; None if there is no log to keep."""
        log = self.log_path(config, uri)
        if not log.exists():
            return None
        n = max(attempts, 1)
        while self.attempt_path(config, uri, n).exists():
            n += 1
        target = self.attempt_path(config, uri, n)
        os.replace(log, target)
        return target.name

    # discovery

    def sessions(self, manifest: RunManifest | None = None) -> list[SessionFiles]:
        """Every (config, uri) of the run: configurations from run.json and the folders under
        ``sessions/``; recordings from run.json's ``uris`` and the log and status files
        (attempt archives are not sessions). Sorted by uri within each configuration."""
        if manifest is None:
            manifest = self.read_manifest() or RunManifest()
        configs = list(manifest.configuration_names)
        if self.sessions_dir.is_dir():
            configs += sorted(p.name for p in self.sessions_dir.iterdir() if p.is_dir())
        found = []
        for config in dict.fromkeys(c for c in configs if c):
            folder = self.session_dir(config)
            uris = set(manifest.uris)
            if folder.is_dir():
                uris |= {p.name[:-len(LOG_SUFFIX)] for p in folder.glob(f"*{LOG_SUFFIX}")
                         if not _ATTEMPT.search(p.name[:-len(LOG_SUFFIX)])}
                uris |= {p.stem for p in folder.glob(f"*{STATUS_SUFFIX}")}
            found += [SessionFiles(config, uri, self.log_path(config, uri),
                                   self.status_path(config, uri)) for uri in sorted(uris)]
        return found

    def dataset_source(self, name: str) -> str:
        """run.json's ``dataset`` as the loaders take it. A registered name or a path that
        exists is returned as it is; a relative folder that does not exist from here but does
        beside the runs folder (``runs/<run>/../<name>``: a run started from the repository
        root by a diareval that recorded folders relative) becomes that path."""
        from diareval import datasets
        if name in datasets.REGISTRY or Path(name).exists():
            return name
        beside = self.path.resolve().parent.parent / name
        return str(beside) if beside.exists() else name


def score_table_paths(scores_dir: str | Path, name: str) -> tuple[Path, Path]:
    """(parquet, csv) of the score table ``name`` in ``scores_dir``."""
    scores_dir = Path(scores_dir)
    return scores_dir / f"{name}.parquet", scores_dir / f"{name}.csv"
