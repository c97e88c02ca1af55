"""One session's state on the local server: the fault modes (:class:`FaultConfig`), what
the server saw and sent (:class:`ServerSession`), and the ordered, optionally delayed
outbox of text frames and the close (:class:`Outbox`). Used by :mod:`diareval.server.app`
and :mod:`diareval.server.session_runner`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.server import ServerConnection

from diareval.errors import ConfigError
from diareval.server import protocol as proto
from diareval.server.engines.base import SessionParams

# A broken text frame for the malformed-message fault: the start of a Turn, cut off.
MALFORMED_FRAME = '{"type":"Turn","turn_order":'


@dataclass(frozen=True)
class FaultConfig:
    """Faults the server injects, for testing clients. All off by default.

    Times are seconds of *audio received* in the session (deterministic under any pacing).

    * ``drop_after_seconds``: abort the TCP connection (no close frame) once this much audio
      has arrived.
    * ``error_after_seconds``: send ``Error 3005`` and close 3005.
    * ``reject_after_sessions``: accept this many sessions, then reject every new one with
      ``Error`` + close ``reject_code`` (3009, or 1008 as some docs have it).
    * ``message_delay_seconds``: send every message this long after it is due (order kept).
    * ``malformed_after_seconds``: send one broken (non-JSON) text frame, then carry on.
    * ``never_terminate``: ignore Terminate (no Termination, socket stays open).
    * ``max_new_sessions_per_minute``: AssemblyAI's real limit (on *new* sessions per
      minute, not on concurrent ones): a session beyond it in any sliding 60 s window is
      rejected like ``reject_after_sessions`` (``Error`` + close ``reject_code``).
    """

    drop_after_seconds: float | None = None
    error_after_seconds: float | None = None
    reject_after_sessions: int | None = None
    reject_code: int = proto.TOO_MANY_SESSIONS
    message_delay_seconds: float = 0.0
    malformed_after_seconds: float | None = None
    never_terminate: bool = False
    max_new_sessions_per_minute: int | None = None

    def __post_init__(self):
        if self.reject_code not in (proto.TOO_MANY_SESSIONS, proto.UNAUTHORIZED):
            raise ConfigError(f"reject_code must be 3009 or 1008, got {self.reject_code}")
        if self.message_delay_seconds < 0:
            raise ConfigError("message_delay_seconds must be >= 0")
        if self.reject_after_sessions is not None and self.reject_after_sessions < 0:
            raise ConfigError("reject_after_sessions must be >= 0")
        if self.max_new_sessions_per_minute is not None and self.max_new_sessions_per_minute < 1:
            raise ConfigError("max_new_sessions_per_minute must be >= 1")

    @property
    def active(self) -> bool:
        """True when any fault is switched on."""
        return self != FaultConfig()


@dataclass
class ServerSession:
    """What the server saw and did in one connection attempt (accepted or rejected)."""

    index: int
    path: str
    query: dict[str, str]  # as sent, without ``token``
    started: float  # time.monotonic() at the request
    http_status: int = 101  # 101 = upgraded; 401/400/404 = rejected at the handshake
    params: SessionParams | None = None
    session_id: str | None = None
    sent: list[str] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # time.monotonic() of each ``sent``
    received_messages: list[Any] = field(default_factory=list)  # client text frames, parsed
    close_code: int | None = None
    close_reason: str | None = None
    closed_by: str | None = None  # "server" | "client" | "abort" (fault: no close frame)
    ended: float | None = None
    audio_seconds: float = 0.0
    chunk_arrivals: list[tuple[float, float, float]] = field(default_factory=list)
    error: str | None = None  # the text of the Error the server sent, if any
    accepted: bool = False  # got a Begin

    @property
    def sent_messages(self) -> list[Any]:
        """``sent`` parsed: dicts, or the raw string for a frame that is not JSON."""
        out = []
        for text in self.sent:
            try:
                out.append(json.loads(text))
            except json.JSONDecodeError:
                out.append(text)
        return out


class Outbox:
    """Sends one session's frames in order, each ``delay`` seconds after it was queued."""

    def __init__(self, ws: ServerConnection, session: ServerSession, delay: float):
        self.ws, self.session, self.delay = ws, session, delay
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.create_task(self._run())
        self.closing = False

    def text(self, text: str) -> None:
        self.queue.put_nowait(("text", time.monotonic() + self.delay, text))

    def message(self, message: dict) -> None:
        self.text(proto.dumps(message))

    def close(self, code: int, reason: str) -> None:
        self.closing = True
        self.queue.put_nowait(("close", time.monotonic() + self.delay, (code, reason)))

    def stop(self) -> None:
        """Send what is queued (if the connection is still up), then stop without closing."""
        self.closing = True
        self.queue.put_nowait(("stop", 0.0, None))

    async def _run(self) -> None:
        while True:
            kind, due, payload = await self.queue.get()
            if kind == "stop":
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                if kind == "text":
                    if self.session.closed_by == "abort":
                        return  # the connection was dropped: nothing more reaches the client
                    sent_at = time.monotonic()
                    await self.ws.send(payload)
                    # recorded once handed to the transport, so `sent` never lists a frame
                    # the client could not have received
                    self.session.sent.append(payload)
                    self.session.sent_at.append(sent_at)
                else:
                    code, reason = payload
                    if self.session.close_code is None:
                        self.session.close_code, self.session.close_reason = code, reason
                        self.session.closed_by = "server"
                    await self.ws.close(code, proto.close_reason(reason))
                    return
            except websockets.ConnectionClosed:
                return

    async def finish(self) -> None:
        """Wait until everything queued is sent (or the connection is gone)."""
        await self.task


