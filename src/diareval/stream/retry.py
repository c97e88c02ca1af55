"""One session of a run, attempt after attempt: outcome -> action, backoff, the status file.

:func:`stream_with_retries` streams one (configuration, recording) until it completes, fails
for good, or the run stops, writing its status file (``rundir.SessionStatus``) at every
change; :func:`decide` is the rule it follows after each attempt (a pure function). What
the sessions of a run share (stop event, limits, counters) is a :class:`RunControl`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, replace
from pathlib import Path

from diareval.errors import DiarevalError
from diareval.rundir import SessionStatus
from diareval.stream.audio import recording_audio
from diareval.stream.config import StreamConfig, build_headers
from diareval.stream.limiter import StartLimiter, sleep_unless
from diareval.stream.plan import API_KEY_ENV, RunPlan, now_iso
from diareval.stream.progress import Counters
from diareval.stream.session import (AttemptResult, AuthenticationError, Outcome, PacingError,
                                     stream_attempt)

logger = logging.getLogger(__name__)


class RunControl:
    """What the sessions of one run share: the plan, the service, the stop event and the
    first fatal error, the concurrency semaphore, the start limiter and the counters the
    progress bar reads. One per run: two runs in one process share nothing."""

    def __init__(self, plan: RunPlan, host: str):
        self.plan, self.host = plan, host
        self.rundir = plan.rundir
        self.headers = build_headers(plan.api_key)
        self.stop = asyncio.Event()
        self.fatal: DiarevalError | None = None
        self.interrupted = False
        self.semaphore = asyncio.Semaphore(plan.concurrency)
        self.limiter = StartLimiter(plan.max_starts_per_minute)
        self.counters = Counters()

    def request_stop(self, error: DiarevalError | None = None) -> None:
        """Stop every session of the run (``error``: the first one is raised at the end)."""
        if error is not None and self.fatal is None:
            self.fatal = error
        self.stop.set()

    def redact(self, text: str | None) -> str | None:
        """``text`` with the API key replaced by ``***``."""
        if text and self.plan.api_key and self.plan.api_key in text:
            return text.replace(self.plan.api_key, "***")
        return text

    def phase(self, index: int) -> float:
        """The send phase of session ``index``: spread over the chunk period (golden-ratio
        sequence, even for any number of open sessions) so that sessions that begin together
        do not all send at the same instant (a 256-session burst every 50 ms costs the
        client and the server tens of ms of lateness; spread, a few)."""
        return ((index * 0.6180339887498949) % 1.0) * self.plan.chunk_seconds


def backoff(rng: random.Random, k: int, base_cap: tuple[float, float]) -> float:
    """The wait before retry ``k`` (1, 2, ...): ``base * 2**(k-1)`` capped at ``cap``, times a
    seeded jitter in [0.5, 1.5)."""
    base, cap = base_cap
    return min(cap, base * 2 ** (k - 1)) * (0.5 + rng.random())


@dataclass(frozen=True)
class Decision:
    """What to do after an attempt: the session's ``status`` (``retrying``: wait ``delay`` s
    and try again), the failure and rejection counts so far, ``hold`` (s without new starts
    for the whole run) and ``stop_run`` (the run must stop: a rejected key, a pacing error)."""

    status: str
    failures: int
    rejections: int
    delay: float = 0.0
    hold: float = 0.0
    stop_run: bool = False


def decide(outcome: Outcome, failures: int, rejections: int, plan: RunPlan,
           rng: random.Random) -> Decision:
    """The action for ``outcome``: complete, interrupted and failed are final; the key
    rejected (AUTH) or 3007 (PACING) fail the session and stop the run; "too many sessions"
    (REJECTED) backs off on ``plan.reject_backoff`` up to ``plan.max_rejections`` times and
    holds every start for half the wait; anything else is retried on ``plan.retry_backoff``
    until ``plan.max_attempts`` failures. ``rng`` is drawn from only when a retry follows."""
    if outcome in (Outcome.COMPLETE, Outcome.INTERRUPTED, Outcome.FAILED):
        return Decision(outcome.value, failures, rejections)
    if outcome in (Outcome.AUTH, Outcome.PACING):
        return Decision("failed", failures, rejections, stop_run=True)
    if outcome is Outcome.REJECTED:
        rejections += 1
        if rejections > plan.max_rejections:
            return Decision("failed", failures, rejections)
        delay = backoff(rng, rejections, plan.reject_backoff)
        return Decision("retrying", failures, rejections, delay=delay, hold=delay * 0.5)
    failures += 1
    if failures >= plan.max_attempts:
        return Decision("failed", failures, rejections)
    return Decision("retrying", failures, rejections,
                    delay=backoff(rng, failures, plan.retry_backoff))


def _fatal_error(outcome: Outcome, config: StreamConfig, uri: str, error: str | None):
    if outcome is Outcome.AUTH:
        return AuthenticationError(
            f"the service rejected the API key ({error}); check {API_KEY_ENV}. The run "
            "stopped; open sessions were terminated.")
    return PacingError(
        f"{config.name}/{uri}: the service says the audio came too fast or in bad chunks "
        f"({error}). diareval's pacing is wrong: the run stopped.")


async def stream_with_retries(run: RunControl, config: StreamConfig, recording,
                              index: int = 0) -> SessionStatus:
    """Stream one session until it is complete, failed or interrupted; its status file is
    written whenever its state changes. Returns the final status; ``pending`` (nothing
    written) if the run stopped before it started. On cancellation the session is marked
    interrupted (if it started) and the cancellation goes on."""
    plan, rundir, uri = run.plan, run.rundir, recording.uri
    key = (config.name, uri)
    previous = rundir.read_status(config.name, uri) if plan.resume else None
    attempts: list[dict] = [dict(a) for a in (previous.attempts if previous else ())]
    url = config.url(run.host)
    status = SessionStatus(
        uri=uri, config=config.name, model=config.model, max_speakers=config.max_speakers,
        params=dict(config.params), backend=plan.backend, url=url, status="pending",
        audio_seconds=round(plan.durations[uri], 6), chunk_seconds=plan.chunk_seconds,
        speed=plan.speed, error=None,
        created_at=(previous.created_at if previous else None) or now_iso())

    def save(**changes) -> None:
        nonlocal status
        status = replace(status, attempts=tuple(dict(a) for a in attempts), **changes)
        rundir.write_status(config.name, uri, status)

    rng = random.Random(f"{plan.seed}:{config.name}:{uri}")
    failures = rejections = 0
    started_here = False
    final = None
    try:
        async with run.semaphore:
            while True:
                if not await run.limiter.acquire(run.stop):
                    if started_here:  # a retry waiting for a start: not "retrying" forever
                        final = "interrupted"
                    break
                started_here = True
                run.counters.running += 1
                k = len(attempts) + 1
                archived = rundir.archive_log(config.name, uri, len(attempts))
                if archived and attempts:
                    attempts[-1]["log"] = archived
                record = {"attempt": k, "log": rundir.log_path(config.name, uri).name,
                          "started_at": now_iso()}
                attempts.append(record)
                save(status="running", error=None,
                     started_at=status.started_at or record["started_at"])
                run.counters.audio_live[key] = 0.0
                try:
                    result = await _attempt(run, config, recording, key,
                                            run.phase(index + k - 1))
                finally:
                    run.counters.running -= 1
                    run.counters.audio_live.pop(key, None)
                run.counters.audio_done += result.audio_sent
                data = result.to_json()
                data["error"] = run.redact(data["error"])
                data["close_reason"] = run.redact(data["close_reason"])
                record.update(data, ended_at=now_iso())
                decision = decide(result.outcome, failures, rejections, plan, rng)
                failures, rejections = decision.failures, decision.rejections
                status = replace(status, error=None if decision.status == "complete"
                                 else record["error"])
                if decision.stop_run:
                    run.request_stop(_fatal_error(result.outcome, config, uri, record["error"]))
                if decision.status != "retrying":
                    final = decision.status
                    break
                if decision.hold:
                    run.limiter.hold(decision.hold)
                record["retry_after"] = round(decision.delay, 3)
                save(status="retrying")
                if await sleep_unless(run.stop, decision.delay):
                    final = "interrupted"
                    break
    except asyncio.CancelledError:
        if started_here:
            if attempts and "outcome" not in attempts[-1]:
                attempts[-1].update(outcome="interrupted", error="cancelled",
                                    ended_at=now_iso())
            save(status="interrupted", error=status.error or "interrupted",
                 finished_at=now_iso())
        raise
    if not started_here:
        # Never started (the run stopped first): no files, resume will stream it.
        return replace(status, attempts=tuple(attempts),
                       error=previous.error if previous else None)
    save(status=final or status.status, finished_at=now_iso())
    run.counters.finished[status.status] += 1
    return status


async def _attempt(run: RunControl, config: StreamConfig, recording, key,
                   phase: float) -> AttemptResult:
    """One attempt; an unexpected exception (a bug, a full disk) fails this session with
    the error in its status instead of vanishing inside a task."""
    plan = run.plan
    log_path: Path = run.rundir.log_path(config.name, recording.uri)

    def on_audio(seconds: float) -> None:
        run.counters.audio_live[key] = run.counters.audio_live.get(key, 0.0) + seconds
    try:
        return await stream_attempt(
            config.url(run.host), run.headers, recording_audio(recording), log_path,
            chunk_seconds=plan.chunk_seconds, speed=plan.speed,
            terminate_timeout=plan.terminate_timeout, stop=run.stop,
            interrupt_timeout=plan.interrupt_timeout, on_audio=on_audio, phase=phase)
    except Exception as exc:  # noqa: BLE001 - reported in the status file
        logger.exception("%s/%s: internal error", config.name, recording.uri)
        return AttemptResult(outcome=Outcome.FAILED,
                             error=f"internal error: {type(exc).__name__}: {exc}",
                             audio_seconds=plan.durations[recording.uri])
