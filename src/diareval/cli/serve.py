"""``python -m diareval serve``: run the local v3 server until Ctrl-C.

    python -m diareval serve --engine oracle --dataset ../shared/data/ami-excerpts --port 8765

Then point a client (or the SDK: ``StreamingClientOptions(api_host="ws://127.0.0.1:8765")``)
at it. Accepted API keys: ``--api-key`` (repeatable) or the ``DIAREVAL_SERVE_API_KEYS``
environment variable (a JSON list); with neither, any non-empty key is accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from diareval.cli._args import at_least, json_object
from diareval.errors import ConfigError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """The ``serve`` subcommand's arguments."""
    parser = subparsers.add_parser(
        "serve", help="run the local AssemblyAI-v3-compatible server (oracle or baseline engine)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="oracle", help="engine name: oracle | baseline")
    parser.add_argument("--dataset", help="dataset folder or registered name (the oracle's "
                                          "catalog; required for the oracle)")
    parser.add_argument("--dataset-options", default=None, metavar="JSON",
                        help="keyword arguments of diareval.datasets.load as a JSON object, "
                             'e.g. \'{"n_speakers": 4}\' for synthetic')
    parser.add_argument("--engine-options", default="{}", metavar="JSON",
                        help='engine options as a JSON object, e.g. \'{"seed": 1}\'')
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                        help="accepted API key (repeatable); default: any non-empty key")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--lookahead", type=float, default=300.0, metavar="S",
                      help="seconds audio may run ahead of real time before 3007 (default 300)")
    pace.add_argument("--no-lookahead", action="store_true",
                      help="accept audio at any speed")
    parser.add_argument("--max-session-seconds", type=float, default=10800.0)
    parser.add_argument("--workers", type=at_least(int, 0), default=None, metavar="N",
                        help="engine worker processes (sessions go to the least-loaded one); "
                             "0 = engines in threads of the server process; default: one per "
                             "usable core for the baseline, 0 for the oracle")
    # start_server_process runs the child in its own session (a terminal's Ctrl-C reaches
    # only the parent, which then ends its sessions properly); this stops the child if
    # that parent dies without stopping it.
    parser.add_argument("--exit-with-parent", type=int, default=None, metavar="PID",
                        help=argparse.SUPPRESS)
    parser.add_argument("--auth-rejection", choices=("close", "http"), default="close",
                        help="bad key: Error+close 1008 after the upgrade (default) or HTTP 401")
    parser.add_argument("--param-rejection", choices=("close", "http"), default="close",
                        help="bad query parameter: Error+close 3006 (default) or HTTP 400")
    parser.add_argument("--compression", choices=("none", "deflate"), default="none",
                        help="accept permessage-deflate (default: decline; PCM barely compresses)")
    faults = parser.add_argument_group("fault modes (for testing clients)")
    faults.add_argument("--fault-drop-after-seconds", type=float, metavar="S",
                        help="abort the connection (no close frame) after S s of audio")
    faults.add_argument("--fault-error-after-seconds", type=float, metavar="S",
                        help="Error 3005 + close 3005 after S s of audio")
    faults.add_argument("--fault-reject-after-sessions", type=int, metavar="N",
                        help="reject every session after the first N")
    faults.add_argument("--fault-reject-code", type=int, choices=(3009, 1008), default=3009)
    faults.add_argument("--fault-message-delay-seconds", type=float, default=0.0, metavar="D",
                        help="send every message D s late")
    faults.add_argument("--fault-malformed-after-seconds", type=float, metavar="S",
                        help="send one broken JSON frame after S s of audio")
    faults.add_argument("--fault-never-terminate", action="store_true",
                        help="ignore Terminate (no Termination, socket left open)")
    faults.add_argument("--fault-max-new-sessions-per-minute", type=int, metavar="N",
                        help="reject sessions beyond N new ones in any 60 s (AssemblyAI's limit)")
    return parser


def _api_keys(args) -> tuple[str, ...] | None:
    if args.api_keys:
        return tuple(args.api_keys)
    from diareval.server.process import API_KEYS_ENV
    raw = os.environ.get(API_KEYS_ENV)
    if raw:
        try:
            keys = json.loads(raw)
        except json.JSONDecodeError:
            raise ConfigError(f"{API_KEYS_ENV} must be a JSON list of keys") from None
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise ConfigError(f"{API_KEYS_ENV} must be a JSON list of non-empty strings")
        return tuple(keys)
    return None


def _accepts_recordings(engine: str) -> bool:
    """Whether engine ``engine``'s factory function takes ``recordings`` (the oracle does;
    an engine that only listens to the audio need not)."""
    import importlib
    import inspect

    from diareval.server.engines import ENGINES
    if engine not in ENGINES:
        return False  # make_engine_factory reports the unknown name
    module_name, function = ENGINES[engine].split(":")
    parameters = inspect.signature(getattr(importlib.import_module(module_name),
                                           function)).parameters
    return "recordings" in parameters or any(p.kind is p.VAR_KEYWORD
                                             for p in parameters.values())


def build_server(args):
    """The :class:`LocalServer` the arguments describe (the dataset is loaded here)."""
    from diareval.server import LocalServer
    from diareval.server.engines import make_engine_factory

    options = json_object(args.engine_options, "--engine-options")
    if args.dataset is not None and _accepts_recordings(args.engine):
        from diareval.datasets import load
        options.setdefault("recordings", load(args.dataset, **json_object(
            args.dataset_options, "--dataset-options")))
    elif args.engine == "oracle" and "recordings" not in options:
        raise ConfigError("the oracle engine needs --dataset (the recordings it replays)")
    from diareval.server.workers import WorkerPool, default_workers
    workers = default_workers(args.engine) if args.workers is None else args.workers
    # workers: the engine is built in each worker process (models loaded once per worker)
    factory = WorkerPool(args.engine, options, workers) if workers else \
        make_engine_factory(args.engine, **options)
    return LocalServer(factory, host=args.host, port=args.port, api_keys=_api_keys(args),
                       lookahead_seconds=None if args.no_lookahead else args.lookahead,
                       max_session_seconds=args.max_session_seconds,
                       faults=faults_from_args(args), auth_rejection=args.auth_rejection,
                       param_rejection=args.param_rejection,
                       compression=None if args.compression == "none" else args.compression)


def faults_from_args(args):
    """The :class:`FaultConfig` of the ``--fault-*`` flags (inverse of ``process.fault_args``)."""
    from diareval.server import FaultConfig
    return FaultConfig(
        drop_after_seconds=args.fault_drop_after_seconds,
        error_after_seconds=args.fault_error_after_seconds,
        reject_after_sessions=args.fault_reject_after_sessions,
        reject_code=args.fault_reject_code,
        message_delay_seconds=args.fault_message_delay_seconds,
        malformed_after_seconds=args.fault_malformed_after_seconds,
        never_terminate=args.fault_never_terminate,
        max_new_sessions_per_minute=args.fault_max_new_sessions_per_minute)


def _say(text: str) -> None:
    """Print a status line; a closed stdout (the parent that read it died) is no error."""
    try:
        print(text, flush=True)
    except (BrokenPipeError, ValueError):
        pass


async def _watch_parent(pid: int, stop: asyncio.Event, interval: float = 0.5) -> None:
    """Set ``stop`` once this process's parent is no longer ``pid`` (it died: the
    child was re-parented)."""
    while not stop.is_set():
        if os.getppid() != pid:
            stop.set()
            _say(f"diareval serve: parent process {pid} is gone, stopping")
            return
        await asyncio.sleep(interval)


async def _serve(server, parent: int | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.ensure_future(_watch_parent(parent, stop)) if parent else None
    async with server:
        print(f"diareval serve: listening on {server.url} (endpoint {server.url}/v3/ws)",
              flush=True)
        if getattr(server.engine_factory, "pids", None):
            print(f"diareval serve: {len(server.engine_factory.pids)} engine worker processes "
                  f"(pids {' '.join(map(str, server.engine_factory.pids))})", flush=True)
        if server.faults.active:
            print(f"diareval serve: faults {server.faults}", flush=True)
        await stop.wait()
    if watcher is not None:
        watcher.cancel()
    _say("diareval serve: stopped")


def main(args) -> int:
    """Run the server until SIGINT/SIGTERM."""
    server = build_server(args)
    asyncio.run(_serve(server, args.exit_with_parent))
    return 0
