"""One websocket session: connect, send audio on a real-time schedule, log everything, terminate.

The pacer sends chunk ``n`` at the absolute deadline ``t0 + n * chunk / speed`` of
``time.monotonic()`` (``t0`` = the moment Begin arrived): sleeping until a
deadline instead of for a duration means a late wake-up never accumulates into
drift. A reader task logs every received frame with ``t_wall`` (s since the
attempt started) and ``t_audio`` (s of audio sent so far) the moment it arrives.

After the last chunk the client sends ``Terminate``, waits (bounded) for
``Termination`` and closes. Every attempt ends in an :class:`Outcome`; what to do
with it (retry, back off, stop the run) is the runner's business.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from diareval.datasets.audio import SAMPLE_RATE
from diareval.errors import DiarevalError
from diareval.sessionlog import AUDIO_CHUNK, SessionLogWriter, parse_message
from diareval.stream.audio import AudioSource, check_chunk_seconds, chunks


class AuthenticationError(DiarevalError):
    """The service rejected the API key (HTTP 401/403 or close 1008): the whole run stops."""


class PacingError(DiarevalError):
    """The service closed with 3007 (audio sent too fast or bad chunk size): our pacing is wrong."""


class Outcome(str, Enum):
    """How one attempt ended."""

    COMPLETE = "complete"        # all audio sent, Termination received
    RETRY = "retry"              # transient (dropped connection, 3005, no Termination): retry
    REJECTED = "rejected"        # too many sessions (3009, HTTP 429, 1008 "too many"): back off
    FAILED = "failed"            # this session cannot succeed (3006, 3008, ...): no retry
    AUTH = "auth"                # the key was rejected: stop the run
    PACING = "pacing"            # 3007: stop the run, the simulator is broken
    INTERRUPTED = "interrupted"  # stopped by the user (Ctrl-C) or the run


# Close codes (PROTOCOL.md) -> outcome. Anything else: retry.
_CODE_OUTCOMES = {
    1008: Outcome.AUTH,       # refined below: some docs use 1008 for "too many sessions" too
    3005: Outcome.RETRY,
    3006: Outcome.FAILED,
    3007: Outcome.PACING,
    3008: Outcome.FAILED,
    3009: Outcome.REJECTED,
    4001: Outcome.AUTH,
    4003: Outcome.AUTH,
}
BEGIN_TIMEOUT = 10.0  # s to wait for Begin before streaming anyway
# Whole words only: "generate" or "accurate" in an auth message must not read as "rate".
_LIMIT_WORDS = re.compile(r"\b(too many|concurren\w*|limit\w*|rate|quota\w*|throttl\w*|"
                          r"capacity)\b", re.I)


@dataclass
class AttemptResult:
    """What happened in one attempt (times in s since the attempt started)."""

    outcome: Outcome = Outcome.RETRY
    error: str | None = None
    close_code: int | None = None
    close_reason: str | None = None
    error_code: int | None = None          # from an Error message
    http_status: int | None = None         # handshake rejection
    session_id: str | None = None          # Begin.id
    expires_at: float | None = None        # Begin.expires_at
    termination: dict | None = None        # the Termination message
    audio_seconds: float = 0.0             # audio of the source (as its duration claims)
    audio_sent: float = 0.0
    all_audio_sent: bool = False           # every chunk of the source went out
    chunks_sent: int = 0
    messages_received: int = 0
    t_open: float | None = None            # handshake complete
    t_begin: float | None = None
    t_first_chunk: float | None = None
    t_last_chunk: float | None = None
    t_terminate_sent: float | None = None
    t_termination: float | None = None
    t_closed: float | None = None
    lateness_ms: dict = field(default_factory=dict)  # send time minus deadline: median, p99, max

    def to_json(self) -> dict:
        """A JSON-ready dict (outcome as its string, floats rounded to the microsecond)."""
        data = asdict(self)
        data["outcome"] = self.outcome.value
        return {key: (round(value, 6) if isinstance(value, float) else value)
                for key, value in data.items()}


class _State:
    def __init__(self):
        self.audio_sent = 0.0
        self.begin = asyncio.Event()
        self.termination = asyncio.Event()
        self.error_seen = False


async def stream_attempt(url: str, headers: dict, source: AudioSource, log_path: str | Path, *,
                         chunk_seconds: float = 0.05, speed: float = 1.0,
                         terminate_timeout: float = 10.0, open_timeout: float = 10.0,
                         stop: asyncio.Event | None = None,
                         on_audio: Callable[[float], None] | None = None,
                         interrupt_timeout: float = 3.0, phase: float = 0.0) -> AttemptResult:
    """Stream ``source`` once through the service at ``url`` and log it to ``log_path``.

    ``headers`` carries the key (never logged). ``speed`` > 1 streams faster than real
    time (the local server only; ``math.inf`` = as fast as possible). Setting ``stop``
    ends the stream early: Terminate is sent, Termination awaited for at most
    ``interrupt_timeout`` s and the outcome is INTERRUPTED. ``on_audio(seconds)`` is
    called after each chunk (progress bars). ``phase`` (s, 0 <= phase < chunk) delays the
    first chunk after Begin: sessions that begin together then send at spread-out instants
    instead of all at the same deadline (smoother load on client and server). Never raises for a service failure: the
    outcome says what happened. Task cancellation, or an exception of the client's own
    (the audio source failing to read), is handled like ``stop`` (best effort Terminate
    and close) and then propagates.
    """
    check_chunk_seconds(chunk_seconds)
    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    result = AttemptResult(audio_seconds=source.duration)
    state = _State()
    t_start = time.monotonic()

    def clock() -> float:
        return time.monotonic() - t_start

    secret = headers.get("Authorization")
    log = SessionLogWriter(log_path, secrets=(secret,) if secret else ())
    try:
        local = url.startswith(("ws://127.", "ws://localhost", "ws://[::1]"))
        log.write("event", clock(), 0.0, {"type": "Connecting", "url": url})
        try:
            ws = await connect(url, additional_headers=headers, user_agent_header=None,
                               compression=None, open_timeout=open_timeout, max_size=None,
                               close_timeout=5, proxy=None if local else True)
        except InvalidStatus as exc:
            response = exc.response
            result.http_status = response.status_code
            body = bytes(response.body or b"")[:500].decode("utf-8", "replace")
            log.write("event", clock(), 0.0, {"type": "HandshakeRejected",
                                              "status": response.status_code,
                                              "reason": response.reason_phrase, "body": body})
            result.error = f"handshake rejected: HTTP {response.status_code} " \
                           f"{response.reason_phrase} {body}".strip()
            result.outcome = _http_outcome(response.status_code)
            return result
        except (OSError, asyncio.TimeoutError, InvalidHandshake, InvalidURI) as exc:
            log.write("event", clock(), 0.0, {"type": "ConnectFailed",
                                              "error": f"{type(exc).__name__}: {exc}"})
            result.error = f"cannot connect: {type(exc).__name__}: {exc}"
            result.outcome = Outcome.FAILED if isinstance(exc, InvalidURI) else Outcome.RETRY
            return result

        result.t_open = clock()
        log.write("event", result.t_open, 0.0, {"type": "Connected"})
        reader = asyncio.create_task(_read(ws, log, state, result, clock))
        stopped = False
        try:
            how = await _send_audio(ws, source, log, state, result, clock, reader,
                                    chunk_seconds, speed, stop, on_audio, phase)
            stopped = how == "stopped"
            if how != "closed":
                await _terminate(ws, log, state, result, clock, reader,
                                 interrupt_timeout if stopped else terminate_timeout)
            await ws.close()
            await asyncio.wait_for(asyncio.shield(reader), 10)
        except BaseException:
            # Hard cancellation (second Ctrl-C, the caller cancelled us) or a client-side
            # error (an unreadable audio file, a bug): an unclosed session is billed for
            # 3 h, so still try to end it, briefly, then let the exception go on.
            stopped = True
            try:
                await asyncio.wait_for(_terminate(ws, log, state, result, clock, reader,
                                                  interrupt_timeout), interrupt_timeout + 1)
                await asyncio.wait_for(ws.close(), 2)
            except BaseException:
                pass
            _finish(ws, log, result, clock, state, reader, stopped)
            raise
        finally:
            if not reader.done():
                reader.cancel()
        _finish(ws, log, result, clock, state, reader, stopped)
        return result
    finally:
        log.close()


def _finish(ws, log, result, clock, state, reader, stopped):
    result.t_closed = clock()
    result.close_code = ws.close_code
    result.close_reason = ws.close_reason or None
    log.write("event", result.t_closed, state.audio_sent,
              {"type": "Closed", "code": result.close_code, "reason": result.close_reason})
    _classify(result, stopped)


async def _read(ws, log: SessionLogWriter, state: _State, result: AttemptResult, clock) -> None:
    """Log every frame the moment it arrives; note Begin, Error and Termination."""
    try:
        async for frame in ws:
            t = clock()
            if isinstance(frame, (bytes, bytearray)):
                msg = {"type": "BinaryFrame", "bytes": len(frame)}
            else:
                msg = parse_message(frame)
            log.write("recv", t, state.audio_sent, msg)
            result.messages_received += 1
            kind = msg.get("type") if isinstance(msg, dict) else None
            if kind == "Begin":
                result.t_begin = t
                result.session_id = msg.get("id")
                result.expires_at = msg.get("expires_at")
                state.begin.set()
            elif kind == "Termination":
                result.t_termination = t
                result.termination = msg
                state.termination.set()
            elif kind == "Error":
                code = msg.get("error_code")
                result.error_code = code if isinstance(code, int) else result.error_code
                result.error = f"Error {code}: {msg.get('error')}"
                state.error_seen = True  # the server closes next: send nothing more
    except ConnectionClosed:
        pass


async def _until(events, reader: asyncio.Task, timeout: float) -> None:
    """Wait until one of ``events`` is set, the reader ends (the connection closed) or
    ``timeout`` s."""
    waiters = {asyncio.ensure_future(event.wait()) for event in events if event is not None}
    try:
        await asyncio.wait(waiters | {reader}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _send_audio(ws, source, log, state, result, clock, reader, chunk_seconds, speed, stop,
                      on_audio, phase=0.0) -> str:
    """Send every chunk on its deadline. Returns "done", "stopped" or "closed".

    The clock starts at Begin (or after ``BEGIN_TIMEOUT`` s without one): a session that is
    rejected right after the upgrade (Error 3009/1008) never gets audio."""
    await _until((state.begin, stop), reader, BEGIN_TIMEOUT)
    if reader.done() or state.error_seen:
        return "closed"
    if stop is not None and stop.is_set():  # stopped before Begin: no audio, Terminate now
        return "stopped"
    step = chunk_seconds / speed  # 0 for speed = inf
    lateness = []
    t0 = time.monotonic() + max(0.0, phase) / speed
    n = 0
    how = "done"
    for chunk in chunks(source, chunk_seconds):
        deadline = t0 + n * step
        delay = deadline - time.monotonic()
        # Sleeping until an absolute deadline: a late wake-up is caught up, never accumulated.
        await asyncio.sleep(delay if delay > 0 else 0)
        if stop is not None and stop.is_set():
            how = "stopped"
            break
        if n == 0:
            result.t_first_chunk = clock()
        if reader.done() or state.error_seen:
            how = "closed"
            break
        data = chunk.tobytes()
        try:
            await ws.send(data)
        except ConnectionClosed:
            how = "closed"
            break
        now = time.monotonic()
        lateness.append(now - deadline)
        duration = len(chunk) / SAMPLE_RATE
        state.audio_sent += duration
        result.audio_sent = state.audio_sent
        result.chunks_sent += 1
        result.t_last_chunk = clock()
        log.write("send", clock(), state.audio_sent,
                  {"type": AUDIO_CHUNK, "bytes": len(data), "duration": round(duration, 6)})
        if on_audio is not None:
            on_audio(duration)
        n += 1
    else:
        # The source ran out: all its audio is sent. (Comparing audio_sent with the claimed
        # duration would not do: a resampled file can be a fraction of a sample shorter
        # than its header says, an AMI file a little shorter than its UEM.)
        result.all_audio_sent = True
    if lateness:
        ordered = sorted(lateness)
        result.lateness_ms = {
            "median": round(ordered[len(ordered) // 2] * 1000, 3),
            "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 3),
            "max": round(ordered[-1] * 1000, 3)}
    return how


async def _terminate(ws, log, state, result, clock, reader, timeout) -> None:
    """Send Terminate and wait (at most ``timeout`` s) for Termination or the connection's end."""
    if state.termination.is_set() or reader.done():
        return
    message = {"type": "Terminate"}
    try:
        await ws.send(json.dumps(message))
    except ConnectionClosed:
        return
    result.t_terminate_sent = clock()
    log.write("send", result.t_terminate_sent, state.audio_sent, message)
    await _until((state.termination,), reader, timeout)
    if not state.termination.is_set() and not reader.done():
        log.write("event", clock(), state.audio_sent,
                  {"type": "TerminationTimeout", "timeout": timeout})


def _http_outcome(status: int) -> Outcome:
    if status in (401, 403):
        return Outcome.AUTH
    if status == 429:
        return Outcome.REJECTED
    if 400 <= status < 500 and status not in (408,):
        return Outcome.FAILED
    return Outcome.RETRY


def _classify(result: AttemptResult, stopped: bool) -> None:
    """Set ``result.outcome`` (and ``error``) from what was seen."""
    code = result.error_code
    if code is None and result.close_code not in (None, 1000, 1005, 1006):
        code = result.close_code
    all_sent = result.all_audio_sent
    if stopped:
        result.outcome = Outcome.INTERRUPTED
        result.error = result.error or "interrupted"
        return
    if code is not None:
        outcome = _CODE_OUTCOMES.get(code, Outcome.RETRY)
        text = f"{result.error or ''} {result.close_reason or ''}"
        if outcome is Outcome.AUTH and code == 1008 and _LIMIT_WORDS.search(text):
            outcome = Outcome.REJECTED
        result.outcome = outcome
        if result.error is None:
            result.error = f"closed with code {result.close_code}: {result.close_reason or ''}"\
                .strip()
        return
    if result.termination is not None and all_sent:
        result.outcome = Outcome.COMPLETE
        result.error = None
        return
    result.outcome = Outcome.RETRY
    if result.termination is not None:
        result.error = (f"the server ended the session after {result.audio_sent:.2f} s of "
                        f"{result.audio_seconds:.2f} s of audio")
    elif all_sent and result.t_terminate_sent is not None and result.close_code != 1006:
        result.error = "no Termination after Terminate (timed out)"
    elif result.close_code == 1006 or result.close_code is None:
        result.error = (f"connection dropped after {result.audio_sent:.2f} s of audio "
                        f"(close code {result.close_code})")
    else:
        result.error = (f"connection closed ({result.close_code} {result.close_reason or ''}) "
                        "before Termination").strip()
