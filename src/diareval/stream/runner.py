"""The runner: every (configuration, recording) session of a run, many at once.

``run(...)`` is the whole job in one call (the CLI ``python -m diareval run`` mirrors it
argument for argument). It validates everything before it writes anything, shows a cost
estimate before streaming to AssemblyAI, then streams with a concurrency limit and a
limit on new sessions per minute, retries transient failures with seeded exponential
backoff, and writes the run directory (DESIGN.md):

    <run_dir>/run.json                         what was asked (never the key)
    <run_dir>/sessions/<config>/<uri>.jsonl    the session log (last attempt)
    <run_dir>/sessions/<config>/<uri>.attemptK.jsonl   earlier attempts' logs, kept
    <run_dir>/sessions/<config>/<uri>.json     status: complete|failed|interrupted
                                               (running|retrying while the run is on)

Ctrl-C (or cancelling ``run_async``) sends Terminate to every open session (an unclosed
session is billed for 3 h), waits briefly for Termination, marks the sessions
interrupted and flushes; ``resume=True`` later streams only what is not complete.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import os
import platform
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from diareval.errors import ConfigError, DiarevalError
from diareval.stream.audio import check_chunk_seconds, recording_audio
from diareval.stream.config import (DEFAULT_HOST, StreamConfig, build_headers, make_configs)
from diareval.stream.session import (AttemptResult, AuthenticationError, Outcome, PacingError,
                                     stream_attempt)

logger = logging.getLogger(__name__)

API_KEY_ENV = "ASSEMBLYAI_API_KEY"
BACKENDS = ("assemblyai", "local")
RUNS_ROOT = Path("runs")
FREE_TIER_STARTS_PER_MINUTE = 5  # AssemblyAI caps NEW sessions per minute: Free 5, Paid 100+


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=1, ensure_ascii=False)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


# --- results --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionResult:
    """One (configuration, recording) session after the run."""

    config: str
    uri: str
    status: str             # complete | failed | interrupted | pending (never started)
    attempts: int           # attempts so far, over all invocations
    audio_seconds: float
    log_path: Path
    status_path: Path
    error: str | None = None
    skipped: bool = False   # complete before this invocation (resume)


@dataclass
class RunResult:
    """What a run did. ``sessions`` has one entry per (configuration, recording)."""

    run_dir: Path
    backend: str
    configs: list[StreamConfig]
    sessions: list[SessionResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    interrupted: bool = False
    error: str | None = None

    def count(self, status: str) -> int:
        """Sessions with this status (complete, failed, interrupted, pending)."""
        return sum(1 for s in self.sessions if s.status == status)

    @property
    def streamed(self) -> int:
        """Sessions streamed in this invocation (not skipped as already complete)."""
        return sum(1 for s in self.sessions if not s.skipped and s.status != "pending")

    @property
    def skipped(self) -> int:
        """Sessions complete before this invocation (resume), not streamed again."""
        return sum(1 for s in self.sessions if s.skipped)

    @property
    def ok(self) -> bool:
        """Every session complete."""
        return all(s.status == "complete" for s in self.sessions)

    def summary(self) -> str:
        """Counts by status, wall time, run directory and the first failures' errors."""
        parts = [f"{len(self.sessions)} sessions: {self.count('complete')} complete"]
        if self.skipped:
            parts.append(f"{self.skipped} of them already complete before (skipped)")
        for status in ("failed", "interrupted", "pending"):
            if self.count(status):
                parts.append(f"{self.count(status)} {status}")
        text = ", ".join(parts) + f"; {self.wall_seconds:.1f} s; run directory {self.run_dir}"
        failed = [s for s in self.sessions if s.status == "failed"]
        for s in failed[:10]:
            text += f"\n  failed: {s.config}/{s.uri}: {s.error}"
        if len(failed) > 10:
            text += f"\n  ... and {len(failed) - 10} more failed (see the status files)"
        return text


# --- the limit on new sessions per minute -----------------------------------------------------

class StartLimiter:
    """At most ``per_minute`` session starts in any 60 s window (None = no limit)."""

    def __init__(self, per_minute: float | None, window: float = 60.0):
        self.per_minute, self.window = per_minute, window
        self._starts: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()
        self._hold_until = 0.0

    def hold(self, seconds: float) -> None:
        """No new starts for ``seconds`` (the service said "too many sessions": every other
        session waiting to start would be rejected too)."""
        self._hold_until = max(self._hold_until, time.monotonic() + seconds)

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait for a free start; False if ``stop`` was set meanwhile."""
        async with self._lock:
            while True:
                if stop.is_set():
                    return False
                now = time.monotonic()
                if now < self._hold_until:
                    await _sleep_unless(stop, self._hold_until - now)
                    continue
                if not self.per_minute:
                    return True
                while self._starts and self._starts[0] <= now - self.window:
                    self._starts.popleft()
                if len(self._starts) < self.per_minute:
                    self._starts.append(now)
                    return True
                wait = self._starts[0] + self.window - now
                await _sleep_unless(stop, min(wait, 1.0))


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True if stopped."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return False


# --- the plan: everything decided (and validated) before anything is written ----------------

@dataclass
class _Plan:
    dataset: str
    recordings: list
    configs: list[StreamConfig]
    backend: str
    host: str
    api_key: str | None
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
    engine_options: dict
    progress: bool
    durations: dict = field(default_factory=dict)
    server_dataset: str | None = None
    dataset_options: dict = field(default_factory=dict)

    def session_dir(self, config: StreamConfig) -> Path:
        return self.run_dir / "sessions" / config.name

    def status_path(self, config: StreamConfig, uri: str) -> Path:
        return self.session_dir(config) / f"{uri}.json"

    def log_path(self, config: StreamConfig, uri: str) -> Path:
        return self.session_dir(config) / f"{uri}.jsonl"


def _load_status(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, json.JSONDecodeError):
        return None


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
             dataset_options: Mapping[str, Any] | None = None,
             announce: Callable[[str], None] = print) -> _Plan:
    """Validate every argument of :func:`run` and load the dataset; writes nothing."""
    configs = make_configs(models, max_speakers, params)
    backend = resolve_backend(backend, announce)
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
    run_json = run_dir / "run.json"
    if run_json.exists() and not resume:
        raise ConfigError(f"{run_dir} already holds a run: pass --resume to continue it, or "
                          "choose another --run-dir")
    if resume and run_json.exists():
        previous = _load_status(run_json) or {}
        if previous.get("dataset") not in (None, dataset_name):
            raise ConfigError(f"{run_dir} is a run of dataset {previous.get('dataset')!r}, "
                              f"not {dataset_name!r}")
        # Other options can mean other recordings under the same URIs (synthetic: another
        # spec): complete sessions would be skipped, then scored against new references.
        if "dataset_options" in previous:
            before = _recorded_options(previous["dataset_options"])
            now = _recorded_options(dataset_options)
            if before != now:
                raise ConfigError(f"{run_dir} was run with dataset options "
                                  f"{json.dumps(before)}, not {json.dumps(now)}: resume with "
                                  "the same --dataset-options, or choose another --run-dir")
    plan = _Plan(dataset=dataset_name, recordings=recordings, configs=configs, backend=backend,
                 host=host or "", api_key=api_key, run_dir=run_dir, resume=resume,
                 concurrency=concurrency, max_starts_per_minute=max_starts_per_minute,
                 speed=float(speed), chunk_seconds=float(chunk_seconds),
                 max_attempts=max_attempts, max_rejections=max_rejections,
                 retry_backoff=tuple(retry_backoff), reject_backoff=tuple(reject_backoff),
                 terminate_timeout=terminate_timeout, interrupt_timeout=interrupt_timeout,
                 seed=seed, engine=engine, engine_options=dict(engine_options or {}),
                 progress=progress, server_dataset=server_dataset,
                 dataset_options=_recorded_options(dataset_options))
    plan.durations = {r.uri: float(r.meta.get("duration") or r.duration) for r in recordings}
    return plan


def _pending_sessions(plan: _Plan) -> list[tuple[StreamConfig, Any]]:
    """The sessions still to stream (all of them unless resuming)."""
    todo = []
    for config in plan.configs:
        for recording in plan.recordings:
            status = _load_status(plan.status_path(config, recording.uri)) if plan.resume else None
            if status and status.get("status") == "complete":
                continue
            todo.append((config, recording))
    return todo


def estimate_cost(plan: _Plan, todo: Sequence[tuple[StreamConfig, Any]]) -> tuple[float, str]:
    """(USD, text) for streaming ``todo`` to AssemblyAI: model price x audio hours."""
    lines, total, total_hours = [], 0.0, 0.0
    for config in plan.configs:
        hours = sum(plan.durations[r.uri] for c, r in todo if c is config) / 3600
        sessions = sum(1 for c, _ in todo if c is config)
        if not sessions:
            continue
        cost = hours * config.price_per_hour
        total += cost
        total_hours += hours
        lines.append(f"  {config.name}: {sessions} sessions, {hours:.3f} h x "
                     f"${config.price_per_hour:.2f}/h = ${cost:.2f}")
    text = (f"Streaming to AssemblyAI ({plan.host}): {len(todo)} sessions, "
            f"{total_hours:.3f} h of audio\n" + "\n".join(lines) +
            f"\nEstimated cost: ${total:.2f} (billed by connection time, a little more than the "
            "audio; an unclosed session is billed 3 h)")
    return total, text


def _ask(question: str) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        raise ConfigError("streaming to AssemblyAI costs money and there is no terminal to "
                          "confirm it: pass --yes (yes=True)")
    return input(question + " [y/N] ").strip().lower() in ("y", "yes")


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


def _run_json(plan: _Plan, host: str) -> dict:
    previous = _load_status(plan.run_dir / "run.json") if plan.resume else None
    configs = {c["name"]: c for c in (previous or {}).get("configurations", [])}
    for config in plan.configs:
        entry = config.to_json()
        entry["url"] = config.url(host) if host else configs.get(config.name, {}).get("url")
        configs[config.name] = entry
    invocations = list((previous or {}).get("invocations", []))
    invocations.append({"started_at": _now_iso(), "argv": sys.argv, "resume": plan.resume})
    return {
        "dataset": plan.dataset,
        "dataset_options": plan.dataset_options,
        "uris": [r.uri for r in plan.recordings],
        "audio_hours": round(sum(plan.durations.values()) / 3600, 6),
        "configurations": list(configs.values()),
        "backend": plan.backend,
        "host": host or (previous or {}).get("host"),
        "engine": plan.engine if plan.backend == "local" else None,
        "engine_options": plan.engine_options if plan.backend == "local" else None,
        "speed": plan.speed,
        "chunk_seconds": plan.chunk_seconds,
        "concurrency": plan.concurrency,
        "max_starts_per_minute": plan.max_starts_per_minute,
        "max_attempts": plan.max_attempts,
        "seed": plan.seed,
        "versions": _versions(),
        "git_sha": _git_sha(),
        "created_at": (previous or {}).get("created_at") or _now_iso(),
        "invocations": invocations,
    }


# --- the run ----------------------------------------------------------------------------------

class _Runner:
    def __init__(self, plan: _Plan, host: str):
        self.plan, self.host = plan, host
        self.headers = build_headers(plan.api_key)
        self.stop = asyncio.Event()
        self.fatal: DiarevalError | None = None
        self.interrupted = False
        self.semaphore = asyncio.Semaphore(plan.concurrency)
        self.limiter = StartLimiter(plan.max_starts_per_minute)
        self.audio_done = 0.0       # audio seconds sent by finished sessions
        self.audio_live: dict[tuple[str, str], float] = {}
        self.finished: collections.Counter = collections.Counter()
        self.running = 0

    def request_stop(self, error: DiarevalError | None = None) -> None:
        if error is not None and self.fatal is None:
            self.fatal = error
        self.stop.set()

    def _redact(self, text: str | None) -> str | None:
        if text and self.plan.api_key and self.plan.api_key in text:
            return text.replace(self.plan.api_key, "***")
        return text

    def _backoff(self, rng: random.Random, k: int, base_cap: tuple[float, float]) -> float:
        base, cap = base_cap
        return min(cap, base * 2 ** (k - 1)) * (0.5 + rng.random())

    def phase(self, index: int) -> float:
        """The send phase of session ``index``: spread over the chunk period (golden-ratio
        sequence, even for any number of open sessions) so that sessions that begin together
        do not all send at the same instant (a 256-session burst every 50 ms costs the
        client and the server tens of ms of lateness; spread, a few)."""
        return ((index * 0.6180339887498949) % 1.0) * self.plan.chunk_seconds

    async def session(self, config: StreamConfig, recording, index: int = 0) -> SessionResult:
        plan, uri = self.plan, recording.uri
        status_path, log_path = plan.status_path(config, uri), plan.log_path(config, uri)
        key = (config.name, uri)
        previous = _load_status(status_path) if plan.resume else None
        attempts: list[dict] = list((previous or {}).get("attempts", []))
        url = config.url(self.host)
        status = {
            "uri": uri, "config": config.name, "model": config.model,
            "max_speakers": config.max_speakers, "params": dict(config.params),
            "backend": plan.backend, "url": url, "status": "pending",
            "audio_seconds": round(plan.durations[uri], 6), "chunk_seconds": plan.chunk_seconds,
            "speed": plan.speed, "attempts": attempts, "error": None,
            "created_at": (previous or {}).get("created_at") or _now_iso(),
        }
        rng = random.Random(f"{plan.seed}:{config.name}:{uri}")
        failures = rejections = 0
        started_here = False
        try:
            async with self.semaphore:
                while True:
                    if not await self.limiter.acquire(self.stop):
                        if started_here:  # a retry waiting for a start: not "retrying" forever
                            status["status"] = "interrupted"
                        break
                    started_here = True
                    self.running += 1
                    k = len(attempts) + 1
                    self._keep_previous_log(log_path, attempts)
                    record = {"attempt": k, "log": log_path.name, "started_at": _now_iso()}
                    attempts.append(record)
                    status.update(status="running", error=None, started_at=status.get(
                        "started_at") or record["started_at"])
                    _write_json_atomic(status_path, status)
                    self.audio_live[key] = 0.0
                    try:
                        result = await self._attempt(config, recording, url, key, log_path,
                                                     self.phase(index + k - 1))
                    finally:
                        self.running -= 1
                        self.audio_live.pop(key, None)
                    self.audio_done += result.audio_sent
                    data = result.to_json()
                    data["error"] = self._redact(data["error"])
                    data["close_reason"] = self._redact(data["close_reason"])
                    record.update(data, ended_at=_now_iso())
                    outcome = result.outcome
                    if outcome is Outcome.COMPLETE:
                        status.update(status="complete", error=None)
                        break
                    status["error"] = record["error"]
                    if outcome is Outcome.INTERRUPTED:
                        status["status"] = "interrupted"
                        break
                    if outcome is Outcome.AUTH:
                        status["status"] = "failed"
                        self.request_stop(AuthenticationError(
                            f"the service rejected the API key ({record['error']}); check "
                            f"{API_KEY_ENV}. The run stopped; open sessions were terminated."))
                        break
                    if outcome is Outcome.PACING:
                        status["status"] = "failed"
                        self.request_stop(PacingError(
                            f"{config.name}/{uri}: the service says the audio came too fast or "
                            f"in bad chunks ({record['error']}). diareval's pacing is wrong: "
                            "the run stopped."))
                        break
                    if outcome is Outcome.FAILED:
                        status["status"] = "failed"
                        break
                    if outcome is Outcome.REJECTED:
                        rejections += 1
                        if rejections > plan.max_rejections:
                            status["status"] = "failed"
                            break
                        delay = self._backoff(rng, rejections, plan.reject_backoff)
                        self.limiter.hold(delay * 0.5)
                    else:
                        failures += 1
                        if failures >= plan.max_attempts:
                            status["status"] = "failed"
                            break
                        delay = self._backoff(rng, failures, plan.retry_backoff)
                    record["retry_after"] = round(delay, 3)
                    status["status"] = "retrying"
                    _write_json_atomic(status_path, status)
                    if await _sleep_unless(self.stop, delay):
                        status["status"] = "interrupted"
                        break
        except asyncio.CancelledError:
            if started_here:
                if attempts and "outcome" not in attempts[-1]:
                    attempts[-1].update(outcome="interrupted", error="cancelled",
                                        ended_at=_now_iso())
                status["status"] = "interrupted"
                status["error"] = status.get("error") or "interrupted"
                status["finished_at"] = _now_iso()
                _write_json_atomic(status_path, status)
            raise
        if not started_here:
            # Never started (the run stopped first): no files, resume will stream it.
            return SessionResult(config.name, uri, "pending", len(attempts),
                                 plan.durations[uri], log_path, status_path,
                                 (previous or {}).get("error"))
        status["finished_at"] = _now_iso()
        _write_json_atomic(status_path, status)
        self.finished[status["status"]] += 1
        return SessionResult(config.name, uri, status["status"], len(attempts),
                             plan.durations[uri], log_path, status_path, status["error"])

    async def _attempt(self, config, recording, url, key, log_path, phase):
        """One attempt; an unexpected exception (a bug, a full disk) fails this session with
        the error in its status instead of vanishing inside a task."""
        plan = self.plan
        try:
            return await stream_attempt(
                url, self.headers, recording_audio(recording), log_path,
                chunk_seconds=plan.chunk_seconds, speed=plan.speed,
                terminate_timeout=plan.terminate_timeout, stop=self.stop,
                interrupt_timeout=plan.interrupt_timeout,
                on_audio=lambda d: self._on_audio(key, d), phase=phase)
        except Exception as exc:  # noqa: BLE001 - reported in the status file
            logger.exception("%s/%s: internal error", config.name, recording.uri)
            return AttemptResult(outcome=Outcome.FAILED,
                                 error=f"internal error: {type(exc).__name__}: {exc}",
                                 audio_seconds=plan.durations[recording.uri])

    def _keep_previous_log(self, log_path: Path, attempts: list[dict]) -> None:
        """Before a new attempt, rename the last attempt's log to ``<uri>.attemptK.jsonl``."""
        if not log_path.exists():
            return
        k = len(attempts) if attempts else 0
        stem = log_path.name[:-len(".jsonl")]
        n = max(k, 1)
        target = log_path.with_name(f"{stem}.attempt{n}.jsonl")
        while target.exists():
            n += 1
            target = log_path.with_name(f"{stem}.attempt{n}.jsonl")
        os.replace(log_path, target)
        if attempts:
            attempts[-1]["log"] = target.name

    def _on_audio(self, key, seconds: float) -> None:
        self.audio_live[key] = self.audio_live.get(key, 0.0) + seconds

    def audio_sent(self) -> float:
        return self.audio_done + sum(self.audio_live.values())


async def _progress(runner: _Runner, total_sessions: int, total_audio: float, skipped: int):
    from tqdm.auto import tqdm
    hours = total_audio / 3600
    interval = 0.5 if sys.stderr.isatty() else 15.0  # a log file gets a line per 15 s
    bar = tqdm(total=round(hours, 6), unit="h", file=sys.stderr, dynamic_ncols=True,
               desc="audio", bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.4f}/{total:.4f} h"
                                        " [{elapsed}<{remaining}{postfix}]")
    try:
        while True:
            bar.n = min(round(runner.audio_sent() / 3600, 6), bar.total)
            done = sum(runner.finished.values())
            bar.set_postfix_str(
                f"sessions {done}/{total_sessions} done ({runner.running} open"
                + (f", {runner.finished['failed']} failed" if runner.finished["failed"] else "")
                + (f", {skipped} skipped" if skipped else "") + ")", refresh=False)
            bar.refresh()
            await asyncio.sleep(interval)
    finally:
        bar.n = min(round(runner.audio_sent() / 3600, 6), bar.total)
        bar.refresh()
        bar.close()


async def _execute(plan: _Plan, todo, host: str, install_sigint: bool) -> RunResult:
    t_start = time.monotonic()
    runner = _Runner(plan, host)
    result = RunResult(run_dir=plan.run_dir, backend=plan.backend, configs=plan.configs)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    sigint_count = 0

    def on_sigint():
        nonlocal sigint_count
        sigint_count += 1
        runner.interrupted = True
        if sigint_count == 1:
            print("\ndiareval: Ctrl-C: terminating the open sessions (Ctrl-C again to force)",
                  file=sys.stderr)
            runner.request_stop()
        else:
            main_task.cancel()

    if install_sigint:
        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (NotImplementedError, RuntimeError, ValueError):
            install_sigint = False
    def stop_from_elsewhere():
        runner.interrupted = True
        runner.request_stop()

    _CURRENT[0] = lambda: loop.call_soon_threadsafe(stop_from_elsewhere)
    todo_set = {(c.name, r.uri) for c, r in todo}
    tasks = [asyncio.create_task(runner.session(c, r, i)) for i, (c, r) in enumerate(todo)]
    progress = asyncio.create_task(_progress(
        runner, len(todo), sum(plan.durations[r.uri] for _, r in todo),
        len(plan.configs) * len(plan.recordings) - len(todo))) if plan.progress else None
    try:
        try:
            # asyncio.wait, not gather: cancelling this task must not cancel the sessions,
            # which are stopped gracefully below (Terminate, Termination, close).
            if tasks:
                await asyncio.wait(tasks)
        except asyncio.CancelledError:
            # Cancelled from outside (or a second Ctrl-C): stop gracefully, briefly.
            runner.interrupted = True
            runner.request_stop()
            await asyncio.wait(tasks, timeout=plan.interrupt_timeout + 5)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if sigint_count < 2:
                raise
    finally:
        _CURRENT[0] = None
        if progress is not None:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
        if install_sigint:
            loop.remove_signal_handler(signal.SIGINT)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()
    by_key = {}
    for (config, recording), task in zip(todo, tasks):
        if task.done() and not task.cancelled() and task.exception() is None:
            by_key[(config.name, recording.uri)] = task.result()
    for config in plan.configs:
        for recording in plan.recordings:
            key = (config.name, recording.uri)
            if key in by_key:
                result.sessions.append(by_key[key])
                continue
            status = _load_status(plan.status_path(config, recording.uri)) or {}
            result.sessions.append(SessionResult(
                config.name, recording.uri, status.get("status", "pending"),
                len(status.get("attempts", [])), plan.durations[recording.uri],
                plan.log_path(config, recording.uri), plan.status_path(config, recording.uri),
                status.get("error"), skipped=key not in todo_set))
    result.wall_seconds = time.monotonic() - t_start
    result.interrupted = runner.interrupted
    if runner.fatal is not None:
        result.error = str(runner.fatal)
        raise runner.fatal
    return result


# The stop callback of the run in progress (for a caller in another thread, e.g. Jupyter).
_CURRENT: list[Callable[[], None] | None] = [None]


async def run_async(dataset, *, models: Iterable[str] | str = ("universal-streaming-english",),
                    max_speakers: Any = None, backend: str | None = None,
                    run_dir: str | Path | None = None, concurrency: int | None = None,
                    resume: bool = False, yes: bool = False, speed: float = 1.0,
                    confirm: Callable[[str], bool] | None = None,
                    announce: Callable[[str], None] = print, _install_sigint: bool = False,
                    **options) -> RunResult:
    """The asyncio form of :func:`run` (same arguments)."""
    workers = options.pop("workers", None)  # the local server's engine processes
    plan = plan_run(dataset, models=models, max_speakers=max_speakers, backend=backend,
                    run_dir=run_dir, concurrency=concurrency, resume=resume, speed=speed,
                    announce=announce, **options)
    todo = _pending_sessions(plan)
    skipped = len(plan.configs) * len(plan.recordings) - len(todo)
    if skipped:
        announce(f"resume: {skipped} sessions already complete, {len(todo)} to stream")
    if plan.backend == "assemblyai" and todo:
        _, text = estimate_cost(plan, todo)
        announce(text)
        if not yes and not (confirm or _ask)("Stream now?"):
            raise ConfigError("cancelled: nothing was streamed")
    with ExitStack() as stack:
        host = plan.host
        if plan.backend == "local" and not host and todo:
            from diareval.server import start_server_process
            plan.api_key = "local-" + secrets.token_hex(16)  # throwaway, never written
            announce(f"starting the local server (engine {plan.engine}) ...")
            server = await asyncio.to_thread(
                start_server_process, engine=plan.engine, dataset=plan.server_dataset,
                dataset_options=plan.dataset_options,
                engine_options=plan.engine_options, api_keys=(plan.api_key,),
                lookahead_seconds=300.0 if plan.speed == 1.0 else None, port=0,
                workers=workers)
            stack.callback(server.stop)
            host = server.url
        plan.run_dir.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(plan.run_dir / "run.json", _run_json(plan, host))
        if not todo:
            return await _execute(plan, todo, host, False)
        return await _execute(plan, todo, host, _install_sigint)


def run(dataset, *, models: Iterable[str] | str = ("universal-streaming-english",),
        max_speakers: Any = None, backend: str | None = None, run_dir: str | Path | None = None,
        concurrency: int | None = None, resume: bool = False, yes: bool = False, speed: float = 1.0,
        **options) -> RunResult:
    """Stream every recording of ``dataset`` through every configuration; one call = one run.

    ``dataset``: a folder, a registered name (``diareval.datasets.load``) or a list of
    Recordings. ``models`` x ``max_speakers`` (``"none,2,4"`` or ``[None, 2, 4]``; None =
    not sent) are the configurations; ``params`` adds other v3 parameters (any name the
    SDK's ``StreamingParameters`` knows). ``backend``: "assemblyai" (key from
    ASSEMBLYAI_API_KEY only) or "local" (a local server process with ``engine``, default
    "oracle"); None = assemblyai if the key is set, else local. ``speed`` > 1 (local only)
    streams faster than real time. Other options: ``chunk_seconds`` (0.05..1),
    ``max_starts_per_minute`` (default: none for local, 5 for AssemblyAI = Free tier),
    ``max_attempts``, ``max_rejections``, ``retry_backoff``, ``reject_backoff`` ((base, cap)
    s), ``terminate_timeout``, ``interrupt_timeout``, ``host``, ``engine``,
    ``engine_options``, ``workers`` (the local server's engine processes: ``serve --workers``;
    default one per core for the baseline), ``seed``, ``progress``, ``confirm``, ``announce``,
    ``dataset_options``
    (keyword arguments of ``diareval.datasets.load``, e.g. ``{"subset": "dev"}`` for AMI or
    ``{"n_speakers": 4, "minutes": 10}`` for synthetic; the local server and ``score`` load
    the dataset with the same options).

    Ctrl-C terminates every open session, marks it interrupted and raises
    KeyboardInterrupt once everything is flushed. A rejected key (or a 3007 pacing
    violation) stops the run and raises AuthenticationError (PacingError).
    """
    kwargs = dict(models=models, max_speakers=max_speakers, backend=backend, run_dir=run_dir,
                  concurrency=concurrency, resume=resume, yes=yes, speed=speed, **options)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_loop = False
    else:
        in_loop = True
    if not in_loop:
        main = threading.current_thread() is threading.main_thread()
        result = asyncio.run(run_async(dataset, _install_sigint=main, **kwargs))
    else:
        result = _run_in_thread(dataset, kwargs)
    if result.interrupted:
        raise KeyboardInterrupt(f"interrupted: {result.summary()}")
    return result


def _run_in_thread(dataset, kwargs) -> RunResult:
    """A caller with a running loop (Jupyter): run on a fresh loop in a thread; Ctrl-C in the
    caller's thread stops the run gracefully."""
    box: dict = {}

    def target():
        try:
            box["result"] = asyncio.run(run_async(dataset, **kwargs))
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="diareval-run", daemon=True)
    thread.start()
    while thread.is_alive():
        try:
            thread.join(0.2)
        except KeyboardInterrupt:
            stop = _CURRENT[0]
            if stop is not None:
                stop()
    if "error" in box:
        raise box["error"]
    return box["result"]

