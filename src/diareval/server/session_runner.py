"""One websocket session after the handshake: audio and control frames in, the engine's
messages out, in order (:class:`SessionRunner`), with the chunk, rate, session-length and
inactivity rules of :mod:`diareval.server.app`'s docstring.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from typing import TYPE_CHECKING

import websockets
from websockets.asyncio.server import ServerConnection

from diareval.server import protocol as proto
from diareval.server.connection import MALFORMED_FRAME, Outbox, ServerSession
from diareval.server.engines.base import Engine, EngineError, SessionParams

if TYPE_CHECKING:
    from diareval.server.app import LocalServer


logger = logging.getLogger(__name__)


async def discard_frames(ws: ServerConnection) -> None:
    """Read and drop the client's frames until it closes (after the server has failed)."""
    with contextlib.suppress(websockets.ConnectionClosed):
        async for _ in ws:
            pass


class SessionRunner:
    """One accepted session: a receive loop and an engine worker.

    The receive loop timestamps every frame on arrival and applies the protocol rules
    (chunk size, rate, faults) at once; the engine work (feed, ForceEndpoint,
    UpdateConfiguration, Terminate) runs in order in a separate task, so a slow engine
    delays its own messages, never the arrival records or the rate check.
    """

    def __init__(self, server: LocalServer, ws: ServerConnection, session: ServerSession,
                 outbox: Outbox, params: SessionParams, engine: Engine):
        self.server, self.ws, self.session, self.outbox = server, ws, session, outbox
        self.params, self.engine = params, engine
        self.faults = server.faults
        self.jobs: asyncio.Queue = asyncio.Queue()
        self.first_chunk_at: float | None = None
        self.last_frame_at = time.monotonic()
        self.malformed_sent = False
        self.done = False  # no more client frames are acted on

    async def _call(self, method, *args) -> list[dict]:
        if self.engine.blocking:
            return await asyncio.to_thread(method, *args)
        result = method(*args)
        return await result if inspect.isawaitable(result) else result  # worker engines

    def _send_all(self, messages: list[dict]) -> None:
        if self.outbox.closing:  # an error already ended the session
            return
        for message in messages:
            self.outbox.message(message)

    def _fail(self, code: int, text: str) -> None:
        self.done = True
        if not self.outbox.closing:
            self.server._fail(self.outbox, self.session, code, text)

    def _fail_in_order(self, code: int, text: str) -> None:
        """End the session with an Error once the engine has handled the frames before it."""
        self.done = True
        self.jobs.put_nowait(("fail", (code, text)))

    def _terminate(self) -> None:
        """Graceful end (Terminate or inactivity): the worker sends the engine's last
        messages, Termination, and closes 1000."""
        self.done = True
        self.jobs.put_nowait(("terminate", None))

    async def _engine_worker(self) -> None:
        while True:
            kind, argument = await self.jobs.get()
            if kind == "stop" or self.outbox.closing:
                return
            if kind == "fail":  # a protocol violation, after the audio that preceded it
                self._fail(*argument)
                return
            try:
                if kind == "audio":
                    self._send_all(await self._call(self.engine.feed, argument))
                    if self.faults.malformed_after_seconds is not None and \
                            not self.malformed_sent and not self.outbox.closing and \
                            self.session.audio_seconds >= self.faults.malformed_after_seconds:
                        self.malformed_sent = True
                        self.outbox.text(MALFORMED_FRAME)
                elif kind == "force":
                    self._send_all(await self._call(self.engine.force_endpoint))
                elif kind == "update":
                    self._send_all(await self._call(self.engine.update_configuration, argument))
                elif kind == "terminate":
                    self._send_all(await self._call(self.engine.finish))
                    if not self.outbox.closing:
                        wall = time.monotonic() - self.session.started
                        self.outbox.message(proto.termination_message(
                            self.session.audio_seconds, wall))
                        self.outbox.close(proto.NORMAL, "")
                    return
            except EngineError as exc:
                self._fail(exc.code, str(exc))
                return
            except Exception as exc:  # an engine bug: the client sees 3005, the log the cause
                logger.exception("engine failed in session %d", self.session.index)
                self._fail(proto.SERVER_ERROR,
                           f"Session Cancelled: An error occurred ({type(exc).__name__})")
                return

    async def _watchdog(self) -> None:
        """Session expiry (3008) and the inactivity timeout."""
        expires = self.session.started + self.server.max_session_seconds
        inactivity = self.params.inactivity_timeout
        while not self.done:
            now = time.monotonic()
            if now >= expires:  # Termination too (the messages page), then Error + 3008
                self.done = True
                if not self.outbox.closing:
                    self.outbox.message(proto.termination_message(
                        self.session.audio_seconds, now - self.session.started))
                self._fail(proto.SESSION_EXPIRED,
                           "Session Expired: Maximum session duration exceeded")
                return
            if inactivity is not None and now - self.last_frame_at >= inactivity:
                self._terminate()
                return
            wake = expires - now
            if inactivity is not None:
                wake = min(wake, self.last_frame_at + inactivity - now)
            await asyncio.sleep(max(wake, 0.001))

    async def run(self) -> None:
        worker = asyncio.create_task(self._engine_worker())
        watchdog = asyncio.create_task(self._watchdog())
        try:
            async for frame in self.ws:
                self.last_frame_at = time.monotonic()
                if self.done:  # closing: discard until the client's close frame arrives
                    continue
                try:
                    if isinstance(frame, bytes):
                        self._on_audio(frame)
                    else:
                        self._on_text(frame)
                except proto.ProtocolError as exc:
                    self._fail_in_order(exc.code, exc.message)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.done = True
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            self.jobs.put_nowait(("stop", None))
            await worker

    def _on_audio(self, frame: bytes) -> None:
        now = time.monotonic()
        session, faults = self.session, self.faults
        duration = proto.check_chunk(len(frame), self.params)
        before = session.audio_seconds
        session.chunk_arrivals.append((now, before, duration))
        session.audio_seconds = before + duration
        if self.first_chunk_at is None:
            self.first_chunk_at = now
        elapsed = now - self.first_chunk_at
        lookahead = self.server.lookahead_seconds
        if lookahead is not None and session.audio_seconds - elapsed > lookahead:
            raise proto.ProtocolError(
                proto.AUDIO_VIOLATION, f"Audio Transmission Rate Exceeded: Received "
                f"{session.audio_seconds:.1f} sec. audio in {elapsed:.1f} sec")
        if faults.drop_after_seconds is not None and \
                session.audio_seconds >= faults.drop_after_seconds:
            self.done = True
            session.close_code, session.close_reason = 1006, "fault: connection dropped"
            session.closed_by = "abort"
            self.ws.transport.abort()
            return
        if faults.error_after_seconds is not None and \
                session.audio_seconds >= faults.error_after_seconds:
            self._fail_in_order(proto.SERVER_ERROR, "Session Cancelled: An error occurred")
            return
        self.jobs.put_nowait(("audio", proto.decode_audio(frame, self.params.encoding)))

    def _on_text(self, frame: str) -> None:
        try:
            message = json.loads(frame)
        except json.JSONDecodeError:
            self.session.received_messages.append(frame)
            raise proto.ProtocolError(proto.INVALID_MESSAGE, f"Invalid JSON: {frame[:200]}") \
                from None
        self.session.received_messages.append(message)
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise proto.ProtocolError(proto.INVALID_MESSAGE, f"Invalid Message: {frame[:200]}")
        kind = message["type"]
        if kind == "Terminate":
            if not self.faults.never_terminate:
                self._terminate()
        elif kind == "ForceEndpoint":
            self.jobs.put_nowait(("force", None))
        elif kind == "UpdateConfiguration":
            self.jobs.put_nowait(("update", proto.check_update(message)))
        elif kind == "KeepAlive":
            pass
        else:
            raise proto.ProtocolError(proto.INVALID_MESSAGE, f"Invalid Message Type: {kind}")
