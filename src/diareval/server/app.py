"""The local v3 server: websockets asyncio server, one engine per session, fault modes.

Protocol rules enforced (PROTOCOL.md; rejection behaviour and its sources:
:mod:`diareval.server.protocol`):

* ``ws://HOST:PORT/v3/ws`` only (other paths: HTTP 404).
* Auth: the raw key in ``Authorization`` or the ``token`` query parameter. Wrong or
  missing: ``Error 1008`` + close 1008 after the upgrade (default) or HTTP 401.
* Query parameters validated; invalid: ``Error 3006`` + close 3006 (default) or HTTP 400.
* ``Begin`` first; engine messages while audio arrives; ``Terminate`` -> the engine's last
  messages, ``Termination``, close 1000.
* Audio chunks 50..1000 ms (else 3007); audio ahead of the wall clock since the first chunk
  by more than ``lookahead_seconds`` -> 3007 "Audio Transmission Rate Exceeded";
  a session longer than ``max_session_seconds`` -> 3008.
* ``inactivity_timeout`` (seconds without any client frame): the server ends the session
  as if the client had sent Terminate (Termination, then close 1000). The docs do not
  say which close follows an inactivity timeout; this is the graceful reading.
* Invalid JSON, a non-object message or an unknown ``type`` -> ``Error 3006`` + close 3006.

Every text frame the server sends (including Error and deliberately broken frames) is
recorded, raw, in ``ServerSession.sent``. API keys are never stored or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import parse_qsl, urlsplit

import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from diareval.errors import ConfigError
from diareval.server import protocol as proto
from diareval.server.engines.base import Engine, EngineError, EngineFactory, SessionParams
from diareval.server.workers import RemoteEngine, WorkerPool

logger = logging.getLogger(__name__)

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


class _Outbox:
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


class LocalServer:
    """A local server speaking AssemblyAI's Universal-Streaming v3 protocol.

    ``api_keys=None`` accepts any non-empty key. ``lookahead_seconds=None`` lets clients
    stream as fast as they like. ``auth_rejection`` / ``param_rejection``: ``"close"``
    (the documented behaviour: Error frame + close 1008 / 3006 after the upgrade) or
    ``"http"`` (HTTP 401 / 400 at the handshake). ``compression=None`` (default) declines
    permessage-deflate: compressing PCM saves little and costs the client and the server
    much of their per-chunk CPU;
    ``"deflate"`` accepts it.

    ``engine_factory``: an EngineFactory (engines run in threads of this process), or a
    :class:`~diareval.server.workers.WorkerPool` (engines run in worker processes; the
    server starts the pool before listening and stops it after its last session).

    Use ``async with LocalServer(...) as server`` in asyncio code, or
    ``with LocalServer(...).running_in_thread() as server`` from synchronous code.
    """

    def __init__(self, engine_factory: EngineFactory | WorkerPool, host: str = "127.0.0.1", port: int = 0,
                 api_keys: tuple[str, ...] | list[str] | None = None,
                 lookahead_seconds: float | None = 300.0, max_session_seconds: float = 10800,
                 faults: FaultConfig | None = None, auth_rejection: str = "close",
                 param_rejection: str = "close", compression: str | None = None):
        if auth_rejection not in ("close", "http"):
            raise ConfigError(f"auth_rejection must be 'close' or 'http', got {auth_rejection!r}")
        if param_rejection not in ("close", "http"):
            raise ConfigError(f"param_rejection must be 'close' or 'http', "
                              f"got {param_rejection!r}")
        if api_keys is not None and (isinstance(api_keys, str) or not all(api_keys)):
            raise ConfigError("api_keys must be a list of non-empty keys (or None: accept any)")
        self.engine_factory = engine_factory
        self.host, self.port = host, port
        self._api_keys = None if api_keys is None else frozenset(api_keys)
        self.lookahead_seconds = lookahead_seconds
        self.max_session_seconds = max_session_seconds
        self.faults = faults or FaultConfig()
        self.auth_rejection, self.param_rejection = auth_rejection, param_rejection
        if compression not in (None, "deflate"):
            raise ConfigError(f"compression must be None or 'deflate', got {compression!r}")
        self.compression = compression
        self.sessions: list[ServerSession] = []
        self._server = None
        self._pending: dict[int, tuple[ServerSession, str | None, SessionParams | None]] = {}
        self._accepted = 0
        self._accepted_at: list[float] = []  # monotonic start times of accepted sessions
        self._stopping = False

    def __repr__(self) -> str:  # never shows the keys
        return f"LocalServer(url={self.url if self._server else None!r})"

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> "LocalServer":
        """Bind and start serving; ``url`` is valid afterwards."""
        if isinstance(self.engine_factory, WorkerPool):
            await self.engine_factory.start()
        self._server = await serve(self._handle, self.host, self.port,
                                   process_request=self._process_request,
                                   process_response=self._process_response,
                                   max_size=2 ** 22, ping_interval=None, server_header=None,
                                   compression=self.compression)
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            self._stopping = True  # open sessions end with 1001 "going away"
            self._server.close()
            await self._server.wait_closed()
        if isinstance(self.engine_factory, WorkerPool):
            await self.engine_factory.close()

    async def __aenter__(self) -> "LocalServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Run until cancelled (the ``serve`` command)."""
        await self._server.serve_forever()

    @property
    def url(self) -> str:
        """``ws://HOST:PORT`` (pass as the SDK's ``api_host``; the path is ``/v3/ws``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator["LocalServer"]:
        """Run the server on its own event loop in a daemon thread (for synchronous callers)."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="diareval-local-server", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    # --- handshake -----------------------------------------------------------------------

    def _auth_problem(self, request: Request, query: dict[str, str]) -> str | None:
        key = request.headers.get("Authorization") or query.get("token")
        if not key:
            return "Unauthorized Connection: Missing Authorization header"
        if self._api_keys is not None and key not in self._api_keys:
            return "Unauthorized Connection: Invalid API key"
        return None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        session = ServerSession(index=len(self.sessions), path=parts.path,
                                query={k: v for k, v in query.items() if k != "token"},
                                started=time.monotonic())
        self.sessions.append(session)
        if parts.path != proto.PATH:
            return self._reject_http(connection, session, 404, f"Not Found: {parts.path}; the "
                                                               f"endpoint is {proto.PATH}")
        auth_problem = self._auth_problem(request, query)
        if auth_problem and self.auth_rejection == "http":
            return self._reject_http(connection, session, 401, auth_problem)
        params = None
        if not auth_problem:
            try:
                params = proto.parse_query(parts.query)
            except proto.ParamError as exc:
                problem = f"Invalid query parameter: {exc}"
                if self.param_rejection == "http":
                    return self._reject_http(connection, session, 400, problem)
                self._pending[id(connection)] = (session, problem, None)
                return None
        self._pending[id(connection)] = (session, auth_problem, params)
        return None

    def _process_response(self, connection: ServerConnection, request: Request,
                          response: Response) -> None:
        # A request process_request let through can still fail the upgrade (not a websocket
        # request, bad headers): record the status the client got.
        pending = self._pending.get(id(connection))
        if pending is not None and response.status_code != 101:
            del self._pending[id(connection)]
            session = pending[0]
            session.http_status, session.ended = response.status_code, time.monotonic()
            session.error = response.reason_phrase

    def _reject_http(self, connection, session, status: int, text: str) -> Response:
        session.http_status, session.error, session.ended = status, text, time.monotonic()
        return connection.respond(status, text + "\n")

    # --- the session -----------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        session, problem, params = self._pending.pop(id(ws))
        outbox = _Outbox(ws, session, self.faults.message_delay_seconds)
        try:
            if problem is not None:
                code = proto.UNAUTHORIZED if problem.startswith("Unauthorized") else \
                    proto.INVALID_MESSAGE
                self._fail(outbox, session, code, problem)
            else:
                session.params = params
                await self._run_session(ws, session, outbox, params)
        except Exception as exc:  # a bug in an engine or here: the client sees 3005
            logger.exception("session %d failed", session.index)
            if not outbox.closing:
                self._fail(outbox, session, proto.SERVER_ERROR,
                           f"Session Cancelled: An error occurred ({type(exc).__name__})")
        finally:
            if not outbox.closing:  # the client closed (or the connection was aborted)
                outbox.stop()
            # Keep reading while the close handshake runs: unread frames would pause the
            # transport and the client's close reply would go unseen until close_timeout.
            drain = asyncio.create_task(_discard_frames(ws))
            await outbox.finish()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(drain, 1.0)
            session.ended = time.monotonic()
            if session.close_code is None:
                session.close_code, session.close_reason = ws.close_code, ws.close_reason
                session.closed_by = session.closed_by or \
                    ("server" if self._stopping else "client")

    def _fail(self, outbox: _Outbox, session: ServerSession, code: int, text: str) -> None:
        session.error = text
        outbox.message(proto.error_message(code, text))
        outbox.close(code, text)

    async def _run_session(self, ws: ServerConnection, session: ServerSession, outbox: _Outbox,
                           params: SessionParams) -> None:
        faults = self.faults
        if faults.reject_after_sessions is not None and \
                self._accepted >= faults.reject_after_sessions:
            self._fail(outbox, session, faults.reject_code,
                       "Unauthorized Connection: Too many concurrent sessions")
            return
        if faults.max_new_sessions_per_minute is not None:
            window = [t for t in self._accepted_at if t > session.started - 60.0]
            if len(window) >= faults.max_new_sessions_per_minute:
                self._fail(outbox, session, faults.reject_code,
                           "Unauthorized Connection: Too many concurrent sessions "
                           f"(more than {faults.max_new_sessions_per_minute} new per minute)")
                return
        # Take the session's place in both limits before the engine is built (an await):
        # sessions arriving meanwhile must see it, else a burst gets past the limits.
        self._accepted += 1
        self._accepted_at = [t for t in self._accepted_at if t > session.started - 60.0]
        self._accepted_at.append(session.started)
        try:
            if isinstance(self.engine_factory, WorkerPool):
                engine = await self.engine_factory.open_session(params)
            else:  # in a thread: building an engine may load models; others keep pace
                engine = await asyncio.to_thread(self.engine_factory, params)
        except BaseException as exc:
            self._accepted -= 1  # refused (or cancelled) sessions do not count
            with contextlib.suppress(ValueError):
                self._accepted_at.remove(session.started)
            if not isinstance(exc, EngineError):
                raise
            self._fail(outbox, session, exc.code, str(exc))
            return
        session.accepted = True
        begin = proto.begin_message(time.time() + self.max_session_seconds,
                                    configuration=proto.session_configuration(params))
        session.session_id = begin["id"]
        outbox.message(begin)
        runner = _SessionRunner(self, ws, session, outbox, params, engine)
        if isinstance(engine, RemoteEngine):  # its worker dying ends the session at once
            engine.on_death = lambda exc: runner._fail_in_order(exc.code, str(exc))
        try:
            await runner.run()
        finally:
            if isinstance(engine, RemoteEngine):
                engine.close()  # the worker forgets the session


async def _discard_frames(ws: ServerConnection) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for _ in ws:
            pass


class _SessionRunner:
    """One accepted session: a receive loop and an engine worker.

    The receive loop timestamps every frame on arrival and applies the protocol rules
    (chunk size, rate, faults) at once; the engine work (feed, ForceEndpoint,
    UpdateConfiguration, Terminate) runs in order in a separate task, so a slow engine
    delays its own messages, never the arrival records or the rate check.
    """

    def __init__(self, server: LocalServer, ws: ServerConnection, session: ServerSession,
                 outbox: _Outbox, params: SessionParams, engine: Engine):
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
