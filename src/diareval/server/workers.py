"""Engine worker processes: the local server's sessions on several cores.

The asyncio front end (:class:`~diareval.server.app.LocalServer`: handshake, protocol
checks, pacing rules, close codes) stays in the server's process; with a
:class:`WorkerPool` as its engine factory, every session's engine runs in a worker
process instead of a thread, so engines on different workers do not share one GIL.

    pool = WorkerPool("baseline", {}, workers=4)        # 4 processes, models loaded once each
    async with LocalServer(pool) as server: ...          # the server starts and stops the pool

The protocol (one duplex :func:`multiprocessing.Pipe` per worker, pickled tuples):

* worker -> server, once: ``("ready", pid)`` when the engine factory is built (models
  loaded), or ``("failed", type_name, message, traceback)``.
* server -> worker: ``("open", sid, SessionParams)``, ``("call", sid, method, args)`` with
  ``method`` one of ``feed``, ``force_endpoint``, ``update_configuration``, ``finish``,
  ``("drop", sid)`` (the session ended; forget its engine), ``("stop",)``.
* worker -> server, one reply per open or call, in order per session:
  ``("ok", sid, messages, cpu)`` (``messages`` = the engine's list of dicts, None for an
  open; ``cpu`` = the worker process's CPU seconds so far), or
  ``("error", sid, code, type_name, message, traceback)``: ``code`` set for an
  :class:`EngineError` (the client gets that code), None for any other exception (3005).

A session's calls are sequential (the front end awaits each one), so one reply per session
is outstanding at a time. Inside a worker each session has its own thread (like the
in-process path), so one session's long decode does not hold back the others' chunks on
that worker. New sessions go to the live worker with the fewest open sessions. A worker
that dies (killed, crashed) ends its sessions with an :class:`EngineError` 3005 (the
client gets ``Error`` + close 3005 at once, also between chunks, never a hang) and is
replaced by a new one. A worker exits when the server's end of its pipe closes, so none
outlives the server process.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import multiprocessing
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from diareval.errors import ConfigError, DiarevalError
from diareval.server.engines.base import EngineError, SessionParams
from diareval.server.worker_process import worker_main

logger = logging.getLogger(__name__)


def usable_cpus() -> int:
    """Cores this process may use: the CPU affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def default_workers(engine: str) -> int:
    """Worker processes when not given: one per usable core for an engine that computes
    (the baseline); 0 (sessions in threads of the server's process) for the oracle, which
    only replays references and gains nothing from processes."""
    return 0 if engine == "oracle" else usable_cpus()


class WorkerDied(EngineError):
    """The worker process running a session's engine exited: the session ends with 3005."""


class RemoteEngineFailure(RuntimeError):
    """An exception other than EngineError raised by an engine in a worker; the subclass
    carries the original type's name (the client sees ``An error occurred (Name)``)."""


_FAILURE_TYPES: dict[str, type] = {}


def _remote_exception(code, type_name: str, message: str, trace: str) -> Exception:
    if code is not None:
        return EngineError(message, code=code)
    cls = _FAILURE_TYPES.setdefault(type_name, type(type_name, (RemoteEngineFailure,), {}))
    return cls(f"{message}\n--- in the engine worker ---\n{trace}")


@dataclass
class SessionStats:
    """One session's engine as seen from the server: audio fed, and how far behind real
    time its replies came (``max_lag``: reply time minus the audio's real-time due time,
    counted from the first chunk's submission; meaningful for clients paced at real time)."""

    worker: int
    opened: float = field(default_factory=time.monotonic)
    audio_seconds: float = 0.0
    first_chunk: float | None = None
    max_lag: float = 0.0
    calls: int = 0
    closed: float | None = None


class _Worker:
    """The server's handle on one worker process: pipe, writer thread, reader thread."""

    def __init__(self, pool: "WorkerPool", index: int):
        self.pool, self.index = pool, index
        ours, theirs = pool.context.Pipe(duplex=True)
        self.conn = ours
        self.process = pool.context.Process(target=worker_main, daemon=True,
                                            args=(theirs, pool.engine, pool.options),
                                            name=f"diareval-engine-worker-{index}")
        self.process.start()
        theirs.close()  # so a dead worker shows as EOF on our end
        self.sessions: set[int] = set()
        self.alive = True
        self.cpu = 0.0  # the worker's CPU seconds at its last reply
        self.ready: asyncio.Future = pool.loop.create_future()
        self.outbox: queue.Queue = queue.Queue()
        threading.Thread(target=self._write, daemon=True, name=f"worker-{index}-writer").start()
        threading.Thread(target=self._read, daemon=True, name=f"worker-{index}-reader").start()

    def send(self, message: tuple) -> None:
        """Queue ``message`` for the worker (never blocks the event loop)."""
        self.outbox.put(message)

    def _write(self) -> None:
        while True:
            message = self.outbox.get()
            if message is None:
                return
            try:
                self.conn.send(message)
            except (OSError, EOFError, ValueError):
                return  # the reader sees the death

    def _read(self) -> None:
        loop = self.pool.loop
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError, ValueError):
                break
            try:
                loop.call_soon_threadsafe(self.pool._on_message, self, message)
            except RuntimeError:  # the loop is closed: nobody listens any more
                return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self.pool._on_death, self)


class RemoteEngine:
    """A session's engine in a worker process; the front end awaits its methods
    (``async`` counterparts of :class:`~diareval.server.engines.base.Engine`'s)."""

    blocking = False

    def __init__(self, pool: "WorkerPool", worker: _Worker, sid: int, params: SessionParams):
        self.pool, self.worker, self.sid, self.params = pool, worker, sid, params
        self.stats = SessionStats(worker=worker.index)
        self.closed = False
        self.error: EngineError | None = None  # set when the worker died
        # Called with the error when the worker dies (the front end ends the session at
        # once, even between calls); set by the server.
        self.on_death = None

    async def _call(self, method: str, *args) -> list[dict]:
        if self.error is not None:
            raise self.error
        if self.closed:
            raise EngineError("Session Cancelled: the session's engine is closed")
        return await self.pool._request(self.worker, self.sid, ("call", self.sid, method, args))

    async def feed(self, pcm) -> list[dict]:
        """Feed one chunk (int16 PCM) to the engine in the worker; its messages."""
        stats = self.stats
        now = time.monotonic()
        if stats.first_chunk is None:
            stats.first_chunk = now
        stats.audio_seconds += len(pcm) / self.params.sample_rate
        messages = await self._call("feed", pcm)
        stats.calls += 1
        due = stats.first_chunk + stats.audio_seconds
        stats.max_lag = max(stats.max_lag, time.monotonic() - due)
        return messages

    async def force_endpoint(self) -> list[dict]:
        """The client's ForceEndpoint, in the worker."""
        return await self._call("force_endpoint")

    async def update_configuration(self, changes: dict) -> list[dict]:
        """The client's UpdateConfiguration, in the worker."""
        return await self._call("update_configuration", changes)

    async def finish(self) -> list[dict]:
        """The client's Terminate: the engine's last messages."""
        return await self._call("finish")

    def close(self) -> None:
        """The session ended (any way): the worker forgets its engine."""
        if not self.closed:
            self.closed = True
            self.stats.closed = time.monotonic()
            self.pool._release(self)


class WorkerPool:
    """``workers`` processes running engine ``engine`` (``make_engine_factory(engine,
    **options)`` in each; ``options`` must pickle, e.g. the oracle's ``recordings``).

    Pass it to :class:`~diareval.server.app.LocalServer` as the engine factory: the server
    starts it (waiting until every worker has built its factory) and stops it.
    ``start_timeout``: seconds a worker may take to start (loading models) before the
    start fails. ``stats``: :class:`SessionStats` of the last 10000 sessions.
    """

    def __init__(self, engine: str, options: dict | None = None, workers: int | None = None,
                 context: str = "spawn", start_timeout: float = 300.0):
        from diareval.server.engines import ENGINES
        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}; choose one of: "
                              f"{', '.join(sorted(ENGINES))}")
        workers = usable_cpus() if workers is None else workers
        if not (isinstance(workers, int) and workers >= 1):
            raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
        if context not in ("spawn", "forkserver"):
            raise ConfigError(f"context must be 'spawn' or 'forkserver' (torch and threads do "
                              f"not survive fork), got {context!r}")
        self.engine, self.options, self.size = engine, dict(options or {}), workers
        self.context = multiprocessing.get_context(context)
        self.start_timeout = start_timeout
        self.workers: list[_Worker] = []
        self.stats: collections.deque[SessionStats] = collections.deque(maxlen=10000)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._engines: dict[int, RemoteEngine] = {}
        self._next_sid = 0
        self._next_index = 0
        self._closing = False
        self.deaths = 0  # workers that exited unasked

    def __repr__(self) -> str:
        return f"WorkerPool({self.engine!r}, workers={self.size})"

    # --- lifecycle -------------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        worker = _Worker(self, self._next_index)
        self._next_index += 1
        self.workers.append(worker)
        return worker

    async def start(self) -> "WorkerPool":
        """Start the workers; returns once every one is ready. Raises DiarevalError with
        the worker's error if an engine fails to build."""
        self.loop = asyncio.get_running_loop()
        self._closing = False
        started = [self._spawn() for _ in range(self.size)]
        try:
            results = await asyncio.wait_for(asyncio.gather(
                *(w.ready for w in started), return_exceptions=True), self.start_timeout)
        except BaseException as exc:
            await self.close()
            if isinstance(exc, asyncio.TimeoutError):
                raise DiarevalError(f"engine workers did not start within "
                                    f"{self.start_timeout:g} s") from None
            raise
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.close()
            raise failures[0]
        return self

    async def close(self, timeout: float = 5.0) -> None:
        """Stop every worker (ask, then terminate, then kill) and wait for it to exit."""
        self._closing = True
        workers, self.workers = self.workers, []
        for worker in workers:
            worker.alive = False
            worker.send(("stop",))
            worker.outbox.put(None)

        def join_all() -> None:
            deadline = time.monotonic() + timeout
            for worker in workers:
                worker.process.join(max(0.0, deadline - time.monotonic()))
            for worker in workers:
                if worker.process.is_alive():
                    worker.process.terminate()
                    worker.process.join(2.0)
                if worker.process.is_alive():
                    worker.process.kill()
                    worker.process.join()
                worker.conn.close()
                worker.process.close()

        await asyncio.to_thread(join_all)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerDied("Session Cancelled: the server is stopping"))
        self._pending.clear()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (replacements included once spawned)."""
        return [w.process.pid for w in self.workers if w.alive]

    # --- sessions --------------------------------------------------------------------------

    async def open_session(self, params: SessionParams) -> RemoteEngine:
        """Build a session's engine on the least-loaded live worker."""
        live = [w for w in self.workers if w.alive and w.ready.done()
                and not w.ready.exception()]
        if not live:
            raise WorkerDied("Session Cancelled: no engine worker is running")
        worker = min(live, key=lambda w: (len(w.sessions), w.index))
        sid = self._next_sid
        self._next_sid += 1
        worker.sessions.add(sid)
        engine = RemoteEngine(self, worker, sid, params)
        self._engines[sid] = engine
        try:
            await self._request(worker, sid, ("open", sid, params))
        except BaseException:
            worker.sessions.discard(sid)
            self._engines.pop(sid, None)
            self._pending.pop(sid, None)
            if worker.alive:  # cancelled while the worker builds it: forget it there too
                worker.send(("drop", sid))
            raise
        self.stats.append(engine.stats)
        return engine

    def _request(self, worker: _Worker, sid: int, message: tuple) -> asyncio.Future:
        future = self.loop.create_future()
        if not worker.alive:
            future.set_exception(self._death_error(worker))
            return future
        self._pending[sid] = future
        worker.send(message)
        return future

    def _release(self, engine: RemoteEngine) -> None:
        worker = engine.worker
        worker.sessions.discard(engine.sid)
        self._engines.pop(engine.sid, None)
        future = self._pending.pop(engine.sid, None)
        if future is not None and not future.done():
            future.cancel()
        if worker.alive:
            worker.send(("drop", engine.sid))

    def _death_error(self, worker: _Worker) -> WorkerDied:
        try:
            code = worker.process.exitcode
        except ValueError:  # closed by close()
            code = None
        return WorkerDied(f"Session Cancelled: An error occurred (engine worker "
                          f"{worker.index} exited, code {code})")

    def _on_message(self, worker: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            if not worker.ready.done():
                worker.ready.set_result(message[1])
            return
        if kind == "failed":
            _, type_name, text, trace = message
            if not worker.ready.done():
                worker.ready.set_exception(DiarevalError(
                    f"engine {self.engine!r} failed to start in a worker: {type_name}: "
                    f"{text}\n{trace}"))
            return
        sid = message[1]
        future = self._pending.pop(sid, None)
        if kind == "ok":
            worker.cpu = message[3]
            if future is not None and not future.done():
                future.set_result(message[2])
        elif future is not None and not future.done():
            future.set_exception(_remote_exception(*message[2:]))

    def _on_death(self, worker: _Worker) -> None:
        was_alive, worker.alive = worker.alive, False
        if not was_alive:  # close() stopped it
            worker.ready.cancel()
            return
        # replaced only if it had started: an engine that cannot start must not respawn forever
        had_started = worker.ready.done() and not worker.ready.cancelled() and \
            worker.ready.exception() is None
        with contextlib.suppress(ValueError):
            worker.process.join(0.05)  # reap it (its exit code goes into the error text)
            if worker.process.exitcode is None:  # not yet: reap it in the background
                self.loop.run_in_executor(None, worker.process.join, 5.0)
        error = self._death_error(worker)
        if not worker.ready.done():
            worker.ready.set_exception(DiarevalError(
                f"engine worker {worker.index} exited while starting ({error})"))
        for sid in list(worker.sessions):
            future = self._pending.pop(sid, None)
            if future is not None and not future.done():
                future.set_exception(error)
            engine = self._engines.get(sid)
            if engine is not None:
                engine.error = error  # later calls fail at once
                if engine.on_death is not None:
                    engine.on_death(error)
        worker.sessions.clear()
        worker.outbox.put(None)
        self.deaths += 1
        logger.warning("engine worker %d (pid %s) exited: %s", worker.index,
                       worker.process.pid, error)
        if had_started and not self._closing and worker in self.workers:
            self.workers.remove(worker)
            worker.conn.close()
            replacement = self._spawn()  # it takes sessions once ready
            replacement.ready.add_done_callback(self._replacement_started)

    def _replacement_started(self, ready: asyncio.Future) -> None:
        if not ready.cancelled() and ready.exception() is not None:
            logger.error("a replacement engine worker failed to start: %s", ready.exception())
