"""The runner: every (configuration, recording) session of a run, many at once.

``run(...)`` is the whole job in one call (the CLI ``python -m diareval run`` mirrors it
argument for argument). It validates everything before it writes anything (``plan``), shows
a cost estimate before streaming to AssemblyAI (``cost``), then streams with a concurrency
limit and a limit on new sessions per minute (``limiter``), each session retried on
transient failures with seeded exponential backoff (``retry``), under a progress bar
(``progress``), and writes the run directory (``diareval.rundir``: run.json, one log and one
status file per session, earlier attempts' logs kept).

This module is the orchestration: the tasks, Ctrl-C, the local server, the Jupyter thread.
Ctrl-C (or cancelling ``run_async``, or :meth:`RunHandle.stop`) sends Terminate to every open
session (an unclosed session is billed for 3 h), waits briefly for Termination, marks the
sessions interrupted and flushes; ``resume=True`` later streams only what is not complete.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable

from diareval.errors import ConfigError
from diareval.rundir import SessionStatus
from diareval.stream.cost import ask, estimate_cost
from diareval.stream.plan import RunPlan, plan_run, run_manifest
from diareval.stream.progress import show_progress
from diareval.stream.results import RunResult, SessionResult
from diareval.stream.retry import RunControl, stream_with_retries


class RunHandle:
    """A run's stop button, for another thread (a Jupyter cell's Ctrl-C, a GUI): pass it to
    ``run(..., handle=h)`` or ``run_async``; ``h.stop()`` from any thread stops that run
    gracefully (as Ctrl-C does) and no other. A stop before the run starts stops it as soon
    as it starts. One run at a time per handle."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._control: RunControl | None = None
        self._stop_requested = False

    def stop(self) -> None:
        """Stop the run (thread-safe; nothing happens once the run is over)."""
        with self._lock:
            self._stop_requested = True
            loop, control = self._loop, self._control
        if loop is not None:
            try:
                loop.call_soon_threadsafe(_interrupt, control)
            except RuntimeError:  # the loop closed meanwhile: the run is over
                pass

    def _attach(self, control: RunControl) -> None:
        with self._lock:
            if self._control is not None:
                raise ConfigError("this RunHandle already serves a run in progress")
            self._loop, self._control = asyncio.get_running_loop(), control
            stop_now = self._stop_requested
        if stop_now:
            _interrupt(control)

    def _detach(self) -> None:
        with self._lock:
            self._loop = self._control = None
            self._stop_requested = False


def _interrupt(control: RunControl) -> None:
    control.interrupted = True
    control.request_stop()


def _session_result(plan: RunPlan, config, uri: str, status: SessionStatus | None,
                    skipped: bool = False) -> SessionResult:
    rundir = plan.rundir
    return SessionResult(config.name, uri, status.status if status else "pending",
                         len(status.attempts) if status else 0, plan.durations[uri],
                         rundir.log_path(config.name, uri), rundir.status_path(config.name, uri),
                         status.error if status else None, skipped=skipped)


async def _execute(plan: RunPlan, todo, host: str, install_sigint: bool,
                   handle: RunHandle) -> RunResult:
    t_start = time.monotonic()
    control = RunControl(plan, host)
    result = RunResult(run_dir=plan.run_dir, backend=plan.backend, configs=list(plan.configs))
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    sigint_count = 0

    def on_sigint():
        nonlocal sigint_count
        sigint_count += 1
        control.interrupted = True
        if sigint_count == 1:
            print("\ndiareval: Ctrl-C: terminating the open sessions (Ctrl-C again to force)",
                  file=sys.stderr)
            control.request_stop()
        else:
            main_task.cancel()

    handle._attach(control)
    if install_sigint:
        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (NotImplementedError, RuntimeError, ValueError):
            install_sigint = False
    todo_set = {(c.name, r.uri) for c, r in todo}
    tasks = [asyncio.create_task(stream_with_retries(control, c, r, i))
             for i, (c, r) in enumerate(todo)]
    progress = asyncio.create_task(show_progress(
        control.counters, len(todo), sum(plan.durations[r.uri] for _, r in todo),
        len(plan.configs) * len(plan.recordings) - len(todo))) if plan.progress else None
    try:
        try:
            # asyncio.wait, not gather: cancelling this task must not cancel the sessions,
            # which are stopped gracefully below (Terminate, Termination, close).
            if tasks:
                await asyncio.wait(tasks)
        except asyncio.CancelledError:
            # Cancelled from outside (or a second Ctrl-C): stop gracefully, briefly.
            _interrupt(control)
            await asyncio.wait(tasks, timeout=plan.interrupt_timeout + 5)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if sigint_count < 2:
                raise
    finally:
        handle._detach()
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
            by_key[(config.name, recording.uri)] = _session_result(
                plan, config, recording.uri, task.result())
    for config in plan.configs:
        for recording in plan.recordings:
            key = (config.name, recording.uri)
            if key in by_key:
                result.sessions.append(by_key[key])
                continue
            status = plan.rundir.read_status(config.name, recording.uri)
            result.sessions.append(_session_result(plan, config, recording.uri, status,
                                                   skipped=key not in todo_set))
    result.wall_seconds = time.monotonic() - t_start
    result.interrupted = control.interrupted
    if control.fatal is not None:
        result.error = str(control.fatal)
        raise control.fatal
    return result


async def _start_local_server(plan: RunPlan, announce: Callable[[str], None],
                              workers: int | None = None):
    """Start the local server process for ``plan`` (its engine, its dataset; ``workers``
    engine processes, None = the engine's default); returns (the server, the plan with the
    throwaway key the server accepts)."""
    from diareval.server import start_server_process
    plan = replace(plan, api_key="local-" + secrets.token_hex(16))  # throwaway, never written
    announce(f"starting the local server (engine {plan.engine}) ...")
    server = await asyncio.to_thread(
        start_server_process, engine=plan.engine, dataset=plan.server_dataset,
        dataset_options=dict(plan.dataset_options), engine_options=dict(plan.engine_options),
        api_keys=(plan.api_key,), lookahead_seconds=300.0 if plan.speed == 1.0 else None,
        port=0, workers=workers)
    return server, plan


async def run_async(dataset, *, yes: bool = False, confirm: Callable[[str], bool] | None = None,
                    announce: Callable[[str], None] = print, handle: RunHandle | None = None,
                    _install_sigint: bool = False, **options) -> RunResult:
    """The asyncio form of :func:`run` (same arguments; ``options`` are :func:`plan_run`'s
    keywords)."""
    # the local server's engine processes (server/workers.py); not part of the plan: it
    # changes where the engine runs, not what is streamed or scored
    workers = options.pop("workers", None)
    plan = plan_run(dataset, announce=announce, **options)
    todo = plan.sessions_to_stream()
    skipped = len(plan.configs) * len(plan.recordings) - len(todo)
    if skipped:
        announce(f"resume: {skipped} sessions already complete, {len(todo)} to stream")
    if plan.backend == "assemblyai" and todo:
        _, text = estimate_cost(plan, todo)
        announce(text)
        if not yes and not (confirm or ask)("Stream now?"):
            raise ConfigError("cancelled: nothing was streamed")
    with ExitStack() as stack:
        host = plan.host
        if plan.backend == "local" and not host and todo:
            # with SNR levels the server loads the noisy copies too (plan.for_local_server)
            server, served = await _start_local_server(plan.for_local_server(), announce,
                                                       workers)
            plan = replace(plan, api_key=served.api_key)
            stack.callback(server.stop)
            host = server.url
        rundir = plan.rundir
        rundir.path.mkdir(parents=True, exist_ok=True)
        rundir.write_manifest(run_manifest(plan, host,
                                           rundir.read_manifest() if plan.resume else None))
        return await _execute(plan, todo, host, _install_sigint and bool(todo),
                              handle or RunHandle())


def run(dataset, *, models: Iterable[str] | str = ("universal-streaming-english",),
        max_speakers: Any = None, backend: str | None = None, run_dir: str | Path | None = None,
        concurrency: int | None = None, resume: bool = False, yes: bool = False, speed: float = 1.0,
        handle: RunHandle | None = None, **options) -> RunResult:
    """Stream every recording of ``dataset`` through every configuration; one call = one run.

    ``dataset``: a folder, a registered name (``diareval.datasets.load``) or a list of
    Recordings. ``models`` x ``max_speakers`` (``"none,2,4"`` or ``[None, 2, 4]``; None =
    not sent) are the configurations; ``params`` adds other v3 parameters (any name the
    SDK's ``StreamingParameters`` knows); ``snr`` (``[30, 0]`` or ``"30,0"``, dB) makes
    each configuration one per SNR level (``__snr-<level>``), streaming the recordings
    mixed with ``noise`` (default pink) at that level (same uris and references; the noise
    figure of ``diareval.report`` draws them). ``backend``: "assemblyai" (key from
    ASSEMBLYAI_API_KEY only) or "local" (a local server process with ``engine``, default
    "oracle"); None = assemblyai if the key is set, else local. ``speed`` > 1 (local only)
    streams faster than real time. Other options (:func:`plan_run`): ``chunk_seconds``
    (0.05..1), ``max_starts_per_minute`` (default: none for local, 5 for AssemblyAI = Free
    tier), ``max_attempts``, ``max_rejections``, ``retry_backoff``, ``reject_backoff``
    ((base, cap) s), ``terminate_timeout``, ``interrupt_timeout``, ``host``, ``engine``,
    ``engine_options``, ``seed``, ``progress``, ``confirm``, ``announce``, ``dataset_options``
    (keyword arguments of ``diareval.datasets.load``, e.g. ``{"subset": "dev"}`` for AMI or
    ``{"n_speakers": 4, "minutes": 10}`` for synthetic; the local server and ``score`` load
    the dataset with the same options). ``handle``: a :class:`RunHandle` to stop the run
    from another thread.

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
        result = asyncio.run(run_async(dataset, handle=handle, _install_sigint=main, **kwargs))
    else:
        result = _run_in_thread(dataset, kwargs, handle or RunHandle())
    if result.interrupted:
        raise KeyboardInterrupt(f"interrupted: {result.summary()}")
    return result


def _run_in_thread(dataset, kwargs, handle: RunHandle) -> RunResult:
    """A caller with a running loop (Jupyter): run on a fresh loop in a thread; Ctrl-C in the
    caller's thread stops this run (through its handle) gracefully."""
    box: dict = {}
    done = threading.Event()

    def target():
        try:
            box["result"] = asyncio.run(run_async(dataset, handle=handle, **kwargs))
        except BaseException as exc:  # handed to the caller
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=target, name="diareval-run", daemon=True)
    thread.start()
    # An Event, not thread.join(timeout): a KeyboardInterrupt inside join (Python 3.11) can
    # mark the thread finished while it still runs, and the result would be lost.
    while not done.is_set():
        try:
            done.wait(0.2)
        except KeyboardInterrupt:
            handle.stop()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
