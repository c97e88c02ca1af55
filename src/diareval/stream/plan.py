"""The plan of a run: every argument validated and the dataset loaded before anything is written.

:func:`plan_run` takes every option of ``run`` as an explicit keyword and returns a frozen
:class:`RunPlan`; :func:`run_manifest` turns a plan into the run.json it records.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from diareval.errors import ConfigError
from diareval.rundir import RunDir, RunManifest
from diareval.stream.audio import check_chunk_seconds
from diareval.stream.config import DEFAULT_HOST, StreamConfig, make_configs

API_KEY_ENV = "ASSEMBLYAI_API_KEY"
BACKENDS = ("assemblyai", "local")
RUNS_ROOT = Path("runs")
FREE_TIER_STARTS_PER_MINUTE = 5  # AssemblyAI caps NEW sessions per minute: Free 5, Paid 100+


def now_iso() -> str:
    """The current UTC time as the run directory's files record it (ms)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class RunPlan:
    """A validated run: what :func:`plan_run` decided (see ``run`` for the options).

    ``dataset``: the name run.json records (a folder as its absolute path); ``recordings``
    and ``configs``: what is streamed; ``durations``: uri -> audio seconds; ``host``: the
    service (empty: a local server is started); ``server_dataset``: what that server loads;
    ``dataset_options``: as recorded (JSON-normalised, without "yes"); ``noisy``: for each
    (noise, SNR level) of the configurations, the noisy copies of the recordings by uri
    (same uris, references and durations: only the audio differs)."""

    dataset: str
    recordings: tuple
    configs: tuple[StreamConfig, ...]
    backend: str
    host: str
    api_key: str | None = field(repr=False)
    run_dir: Path
    resume: bool
    concurrency: int
    max_starts_per_minute: float | None
    speed: float
    chunk_seconds: float
    max_attempts: int
    max_rejections: int
    retry_backoff: tuple[float, float]
    reject_backoff: tuple[float, float]
    terminate_timeout: float
    interrupt_timeout: float
    seed: int
    engine: str
    engine_options: Mapping[str, Any]
    progress: bool
    durations: Mapping[str, float]
    server_dataset: str | None = None
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    noisy: Mapping[tuple[str, float], Mapping[str, Any]] = field(default_factory=dict)

    @property
    def rundir(self) -> RunDir:
        """The run directory."""
        return RunDir(self.run_dir)

    def for_local_server(self) -> "RunPlan":
        """This plan with ``server_dataset`` / ``dataset_options`` as the local server loads
        them: with SNR levels, the ``noise-levels`` dataset (the clean dataset and its noisy
        copies, so the oracle recognises the noisy audio and knows its reference)."""
        if not self.noisy or self.server_dataset is None:
            return self
        from dataclasses import replace
        options = {"dataset": self.server_dataset, "options": dict(self.dataset_options),
                   "levels": [list(key) for key in self.noisy],
                   "clean": any(c.snr is None for c in self.configs)}
        if self.dataset_options.get("root") is not None:
            options["root"] = self.dataset_options["root"]
        return replace(self, server_dataset="noise-levels", dataset_options=options)

    def audio_of(self, config: StreamConfig, recording):
        """The recording ``config`` streams: ``recording``, or its noisy copy at the
        configuration's SNR."""
        if config.snr is None:
            return recording
        return self.noisy[(config.noise, config.snr)][recording.uri]

    def sessions_to_stream(self) -> list[tuple[StreamConfig, Any]]:
        """The (configuration, recording) sessions still to stream: all of them, unless
        resuming (then those whose status is not complete). Each recording is the one the
        configuration streams (:meth:`audio_of`)."""
        todo = []
        for config in self.configs:
            for recording in self.recordings:
                status = self.rundir.read_status(config.name, recording.uri) \
                    if self.resume else None
                if status and status.status == "complete":
                    continue
                todo.append((config, self.audio_of(config, recording)))
        return todo


def _dataset_recordings(dataset, options: Mapping[str, Any]) -> tuple[str, list]:
    """(the dataset's name as run.json records it, its recordings). A folder is recorded by
    its absolute path, so the run can be scored (and resumed) from any directory."""
    from diareval import datasets
    if isinstance(dataset, (list, tuple)):
        recordings = list(dataset)
        if not recordings:
            raise ConfigError("the dataset has no recordings")
        sources = {str(r.meta.get("dataset")) for r in recordings}
        return (sources.pop() if len(sources) == 1 else "<recordings>"), recordings
    name = str(dataset)
    if name not in datasets.REGISTRY and Path(name).expanduser().exists():
        name = str(Path(name).expanduser().resolve())
    recordings = datasets.load(name, **options)
    if not recordings:
        raise ConfigError(f"dataset {dataset!r} has no recordings")
    return name, recordings


def _noisy_copies(configs, recordings, dataset_options: Mapping[str, Any]) -> dict:
    """{(noise, snr): {uri: noisy copy}} for every SNR level of ``configs`` (cached copies,
    ``diareval.datasets.add_noise``; ``root`` of the dataset options is shared)."""
    from diareval.datasets.noise import add_noise
    from diareval.errors import DatasetError
    out: dict = {}
    for config in configs:
        key = (config.noise, config.snr)
        if config.snr is None or key in out:
            continue
        try:
            copies = add_noise(list(recordings), noise=config.noise, snr=config.snr,
                               root=dataset_options.get("root"))
        except DatasetError as exc:
            raise ConfigError(f"SNR {config.snr:g} dB ({config.noise} noise): {exc}") from None
        out[key] = {r.uri: r for r in copies}
    return out


def _recorded_options(dataset_options: Mapping[str, Any] | None) -> dict:
    """The dataset options as run.json records them and the local server and the scorer
    reuse them: JSON-normalised, without "yes" (it only confirms a download, which the
    runner's own load has done)."""
    return json.loads(json.dumps({k: v for k, v in (dataset_options or {}).items()
                                  if k != "yes"}))


def _check_uris(recordings) -> None:
    seen = set()
    for recording in recordings:
        uri = recording.uri
        if not uri or "/" in uri or "\\" in uri or uri in (".", "..") or "\0" in uri:
            raise ConfigError(f"recording URI {uri!r} cannot be a file name")
        if uri in seen:
            raise ConfigError(f"two recordings share the URI {uri!r}")
        seen.add(uri)


def resolve_backend(backend: str | None, announce: Callable[[str], None] = print) -> str:
    """``backend``, or the default: assemblyai if ASSEMBLYAI_API_KEY is set, else local (said so)."""
    if backend is None:
        if os.environ.get(API_KEY_ENV):
            announce(f"{API_KEY_ENV} is set: streaming to AssemblyAI (--backend local to use "
                     "the local server instead)")
            return "assemblyai"
        announce(f"{API_KEY_ENV} is not set: using the local server (backend local)")
        return "local"
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    return backend


def default_concurrency(backend: str, engine: str) -> int:
    """Sessions open at once when not given: 64, except for the local server with an engine
    that computes (the baseline), which shares this machine's cores with the client: two
    sessions per core hold real time there (benchmarks/engine.py), more fall behind."""
    if backend == "local" and engine != "oracle":
        return max(1, 2 * (os.cpu_count() or 1))
    return 64


def default_run_dir(dataset: str) -> Path:
    """``runs/<dataset name>-<UTC time>``."""
    name = Path(str(dataset).rstrip("/")).name or "run"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return RUNS_ROOT / f"{name}-{stamp}"


def plan_run(dataset, *, models: Iterable[str] | str = ("universal-streaming-english",),
             max_speakers: Any = None, params: Mapping[str, Any] | None = None,
             backend: str | None = None, run_dir: str | Path | None = None,
             concurrency: int | None = None, resume: bool = False, speed: float = 1.0,
             chunk_seconds: float = 0.05, max_starts_per_minute: float | None = None,
             max_attempts: int = 3, max_rejections: int = 10,
             retry_backoff: tuple[float, float] = (1.0, 30.0),
             reject_backoff: tuple[float, float] = (5.0, 60.0),
             terminate_timeout: float = 15.0, interrupt_timeout: float = 3.0,
             host: str | None = None, api_key: str | None = None, engine: str = "oracle",
             engine_options: Mapping | None = None, seed: int = 0, progress: bool = True,
             dataset_options: Mapping[str, Any] | None = None, snr: Any = None,
             noise: str | None = None,
             announce: Callable[[str], None] = print) -> RunPlan:
    """Validate every argument of :func:`~diareval.stream.run` (the same keywords, same
    defaults) and load the dataset (and its noisy copies at each ``snr`` level); writes
    nothing. ``announce`` says which backend the default chose."""
    if snr is not None and str(dataset) == "noisy":
        raise ConfigError("snr= mixes the noise itself: pass the clean dataset (e.g. "
                          "'synthetic', or the noisy dataset's own dataset option) with "
                          "noise=, not the 'noisy' dataset")
    backend = resolve_backend(backend, announce)
    # the local server's engines must know a model's message style; AssemblyAI gets any name
    configs = make_configs(models, max_speakers, params, snr=snr, noise=noise,
                           known_only=backend == "local")
    check_chunk_seconds(chunk_seconds)
    if concurrency is None:
        concurrency = default_concurrency(backend if host is None else "remote", engine)
    if not (isinstance(concurrency, int) and concurrency >= 1):
        raise ConfigError(f"concurrency must be a positive integer, got {concurrency!r}")
    if not speed > 0:
        raise ConfigError(f"speed must be > 0, got {speed}")
    if max_attempts < 1:
        raise ConfigError(f"max_attempts must be >= 1, got {max_attempts}")
    if max_starts_per_minute is not None and max_starts_per_minute <= 0:
        raise ConfigError("max_starts_per_minute must be positive (or None: no limit)")
    for name, value in (("terminate_timeout", terminate_timeout),
                        ("interrupt_timeout", interrupt_timeout)):
        # a timeout <= 0 would declare every session's Termination missing: retries, failures
        if not (isinstance(value, (int, float)) and value > 0):
            raise ConfigError(f"{name} must be a number > 0 (seconds), got {value:g}"
                              if isinstance(value, (int, float)) else
                              f"{name} must be a number > 0 (seconds), got {value!r}")
    if not (isinstance(max_rejections, int) and max_rejections >= 0):
        raise ConfigError(f"max_rejections must be an integer >= 0, got {max_rejections!r}")
    for name, value in (("retry_backoff", retry_backoff), ("reject_backoff", reject_backoff)):
        try:
            base, cap = (float(v) for v in value)
        except (TypeError, ValueError):
            base, cap = math.nan, math.nan
        if not 0 <= base <= cap:
            raise ConfigError(f"{name} must be (base, cap) with 0 <= base <= cap seconds, "
                              f"got {value!r}")
    if backend == "assemblyai":
        if speed != 1.0:
            raise ConfigError("--speed is for the local backend only: AssemblyAI closes a "
                              "session that streams faster than real time (3007)")
        if api_key is not None:
            raise ConfigError(f"the AssemblyAI key comes from {API_KEY_ENV} only")
        api_key = os.environ.get(API_KEY_ENV)
        if not api_key:
            raise ConfigError(f"backend assemblyai needs the API key in {API_KEY_ENV}")
        host = host or DEFAULT_HOST
        if max_starts_per_minute is None:
            max_starts_per_minute = FREE_TIER_STARTS_PER_MINUTE
        if engine_options:
            raise ConfigError("engine options are for the local backend only")
    else:
        from diareval.server.engines import ENGINES
        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}; choose one of: "
                              f"{', '.join(sorted(ENGINES))}")
        if host is not None and api_key is None:
            # a server started by `diareval serve` without keys accepts any non-empty key
            api_key = os.environ.get("DIAREVAL_LOCAL_API_KEY") or "local"
    dataset_name, recordings = _dataset_recordings(dataset, dataset_options or {})
    _check_uris(recordings)
    server_dataset = None
    if backend == "local" and host is None:
        if dataset_name == "<recordings>":
            raise ConfigError("recordings from several datasets: the local server needs one "
                              "dataset name or folder (or pass host= of a running server)")
        server_dataset = dataset_name
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(dataset_name)
    rundir = RunDir(run_dir)
    if rundir.holds_run() and not resume:
        raise ConfigError(f"{run_dir} already holds a run: pass --resume to continue it, or "
                          "choose another --run-dir")
    previous = rundir.read_manifest() if resume else None
    if previous is not None:
        if previous.dataset not in (None, dataset_name):
            raise ConfigError(f"{run_dir} is a run of dataset {previous.dataset!r}, "
                              f"not {dataset_name!r}")
        # Other options can mean other recordings under the same URIs (synthetic: another
        # spec): complete sessions would be skipped, then scored against new references.
        if previous.dataset_options is not None:
            before = _recorded_options(previous.dataset_options)
            now = _recorded_options(dataset_options)
            if before != now:
                raise ConfigError(f"{run_dir} was run with dataset options "
                                  f"{json.dumps(before)}, not {json.dumps(now)}: resume with "
                                  "the same --dataset-options, or choose another --run-dir")
    noisy = _noisy_copies(configs, recordings, dataset_options or {})
    return RunPlan(
        dataset=dataset_name, recordings=tuple(recordings), configs=tuple(configs),
        backend=backend, host=host or "", api_key=api_key, run_dir=run_dir, resume=resume,
        concurrency=concurrency, max_starts_per_minute=max_starts_per_minute,
        speed=float(speed), chunk_seconds=float(chunk_seconds), max_attempts=max_attempts,
        max_rejections=max_rejections, retry_backoff=tuple(retry_backoff),
        reject_backoff=tuple(reject_backoff), terminate_timeout=terminate_timeout,
        interrupt_timeout=interrupt_timeout, seed=seed, engine=engine,
        engine_options=dict(engine_options or {}), progress=progress,
        durations={r.uri: float(r.meta.get("duration") or r.duration) for r in recordings},
        server_dataset=server_dataset, dataset_options=_recorded_options(dataset_options),
        noisy=noisy)


def _versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in ("diareval", "assemblyai", "websockets", "numpy", "pyannote.core",
                 "pyannote.metrics"):
        try:
            from importlib.metadata import version
            versions[name] = version(name)
        except Exception:
            versions[name] = None
    return versions


def _git_sha() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run_manifest(plan: RunPlan, host: str, previous: RunManifest | None = None) -> RunManifest:
    """What run.json records for ``plan`` streamed through ``host``; on resume, ``previous``
    (the run.json so far) keeps its configurations, host, creation time and invocations."""
    configs = {c["name"]: dict(c) for c in (previous.configurations if previous else ())}
    for config in plan.configs:
        entry = config.to_json()
        entry["url"] = config.url(host) if host else configs.get(config.name, {}).get("url")
        configs[config.name] = entry
    invocations = list(previous.invocations if previous else ())
    invocations.append({"started_at": now_iso(), "argv": sys.argv, "resume": plan.resume})
    local = plan.backend == "local"
    return RunManifest(
        dataset=plan.dataset, dataset_options=dict(plan.dataset_options),
        uris=tuple(r.uri for r in plan.recordings),
        audio_hours=round(sum(plan.durations.values()) / 3600, 6),
        configurations=tuple(configs.values()), backend=plan.backend,
        host=host or (previous.host if previous else None),
        engine=plan.engine if local else None,
        engine_options=dict(plan.engine_options) if local else None,
        speed=plan.speed, chunk_seconds=plan.chunk_seconds, concurrency=plan.concurrency,
        max_starts_per_minute=plan.max_starts_per_minute, max_attempts=plan.max_attempts,
        seed=plan.seed, versions=_versions(), git_sha=_git_sha(),
        created_at=(previous.created_at if previous else None) or now_iso(),
        invocations=tuple(invocations))
