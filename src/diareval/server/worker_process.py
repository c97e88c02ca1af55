"""The body of an engine worker process (the protocol: :mod:`diareval.server.workers`).

Builds the engine factory once (models loaded once per worker), then serves the sessions the
server opens on it, each in its own thread, until told to stop or until the server's end of
the pipe closes (the server process is gone).
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
import traceback
from typing import Any

from diareval.server.engines.base import EngineError

METHODS = ("feed", "force_endpoint", "update_configuration", "finish")


def _error_reply(sid, exc: BaseException) -> tuple:
    code = exc.code if isinstance(exc, EngineError) else None
    return ("error", sid, code, type(exc).__name__, str(exc),
            "".join(traceback.format_exception(exc)))


def _session_thread(engine, sid, jobs: queue.Queue, reply) -> None:
    while True:
        job = jobs.get()
        if job is None:
            return
        method, args = job
        try:
            messages = getattr(engine, method)(*args)
            reply(("ok", sid, list(messages), time.process_time()))
        except Exception as exc:  # reported to the server, which ends the session
            reply(_error_reply(sid, exc))


def worker_main(conn, engine: str, options: dict) -> None:
    """The body of one worker process: build the factory, then serve sessions until
    ``("stop",)`` or until the server's end of ``conn`` closes."""
    from diareval.server.engines import make_engine_factory

    # Ctrl-C in a terminal reaches the whole process group: the server process handles it
    # (ends its sessions, then stops the workers); a worker must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lock = threading.Lock()

    def reply(message: tuple) -> None:
        with lock:
            try:
                conn.send(message)
            except (OSError, EOFError):  # the server is gone; the main loop ends too
                pass

    try:
        factory = make_engine_factory(engine, **options)
    except Exception as exc:
        reply(("failed", type(exc).__name__, str(exc), "".join(traceback.format_exception(exc))))
        return
    reply(("ready", os.getpid()))
    engines: dict = {}
    jobs: dict[Any, queue.Queue] = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        kind = message[0]
        if kind == "stop":
            break
        sid = message[1]
        if kind == "open":
            try:
                session_engine = factory(message[2])
            except Exception as exc:
                reply(_error_reply(sid, exc))
                continue
            jobs[sid] = queue.Queue()
            threading.Thread(target=_session_thread, daemon=True, name=f"session-{sid}",
                             args=(session_engine, sid, jobs[sid], reply)).start()
            del session_engine  # the session's thread owns it, and drops it when told to
            reply(("ok", sid, None, time.process_time()))
        elif kind == "call":
            if sid in jobs and message[2] in METHODS:
                jobs[sid].put((message[2], message[3]))
            else:
                reply(_error_reply(sid, EngineError(f"no session {sid} / method {message[2]}")))
        elif kind == "drop" and sid in jobs:
            jobs.pop(sid).put(None)
    os._exit(0)  # daemon session threads (and library threads) die with the process
