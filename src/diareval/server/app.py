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

This module is the handshake, authentication and session start (:class:`LocalServer`);
a session's state and outbox are in :mod:`diareval.server.connection`, its frame loop in
:mod:`diareval.server.session_runner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Iterator
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from diareval.errors import ConfigError
from diareval.server import protocol as proto
from diareval.server.engines.base import EngineError, EngineFactory, SessionParams
# FaultConfig, ServerSession and MALFORMED_FRAME stay importable from here (callers do)
from diareval.server.connection import (MALFORMED_FRAME, FaultConfig, Outbox,  # noqa: F401
                                        ServerSession)
from diareval.server.session_runner import SessionRunner, discard_frames
from diareval.server.workers import RemoteEngine, WorkerPool

logger = logging.getLogger(__name__)


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
        outbox = Outbox(ws, session, self.faults.message_delay_seconds)
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
            drain = asyncio.create_task(discard_frames(ws))
            await outbox.finish()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(drain, 1.0)
            session.ended = time.monotonic()
            if session.close_code is None:
                session.close_code, session.close_reason = ws.close_code, ws.close_reason
                session.closed_by = session.closed_by or \
                    ("server" if self._stopping else "client")

    def _fail(self, outbox: Outbox, session: ServerSession, code: int, text: str) -> None:
        session.error = text
        outbox.message(proto.error_message(code, text))
        outbox.close(code, text)

    async def _run_session(self, ws: ServerConnection, session: ServerSession, outbox: Outbox,
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
        runner = SessionRunner(self, ws, session, outbox, params, engine)
        if isinstance(engine, RemoteEngine):  # its worker dying ends the session at once
            engine.on_death = lambda exc: runner._fail_in_order(exc.code, str(exc))
        try:
            await runner.run()
        finally:
            if isinstance(engine, RemoteEngine):
                engine.close()  # the worker forgets the session
