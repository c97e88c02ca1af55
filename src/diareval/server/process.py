"""The local server in a separate OS process (so a client's pacing is measured without the
server competing for the same interpreter). The child is ``python -m diareval serve``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from diareval.errors import DiarevalError
from diareval.server.app import FaultConfig

# The child reads the accepted keys from this variable (never from argv: argv is public).
API_KEYS_ENV = "DIAREVAL_SERVE_API_KEYS"
_URL_LINE = re.compile(r"listening on (ws://\S+)")


def fault_args(faults: FaultConfig) -> list[str]:
    """``serve`` command-line flags for ``faults`` (the inverse of the CLI's parsing)."""
    args: list[str] = []
    for name, value in asdict(faults).items():
        default = getattr(FaultConfig(), name)
        if value == default:
            continue
        flag = "--fault-" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag)
        else:
            args += [flag, str(value)]
    return args


class ServerProcess:
    """A running ``diareval serve`` child process: ``url``, ``stop()``, context manager."""

    def __init__(self, popen: subprocess.Popen, url: str):
        self.popen, self.url = popen, url
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        # Keep reading so the child never blocks on a full pipe.
        for line in self.popen.stdout:
            self._lines.append(line)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.popen.pid

    @property
    def output(self) -> str:
        """What the child printed after its URL line (stdout and stderr)."""
        return "".join(self._lines)

    def stop(self, timeout: float = 10.0) -> int:
        """Stop the child (SIGINT, then SIGKILL after ``timeout``); returns its exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server_process(engine: str = "oracle", dataset: str | Path | None = None,
                         dataset_options: dict | None = None,
                         engine_options: dict | None = None,
                         api_keys: tuple[str, ...] | list[str] | None = None,
                         lookahead_seconds: float | None = 300.0,
                         max_session_seconds: float = 10800,
                         faults: FaultConfig | None = None, host: str = "127.0.0.1",
                         port: int = 0, startup_timeout: float = 300.0,
                         compression: str | None = None,
                         workers: int | None = None) -> ServerProcess:
    """Start ``python -m diareval serve`` in a child process and wait for its URL.

    The child loads ``dataset`` itself (``diareval.datasets.load(dataset, **dataset_options)``).
    ``engine_options`` and ``dataset_options`` must be
    JSON-serialisable. ``workers``: engine worker processes of the child (``serve
    --workers``; 0 = engines in the child's threads; None = serve's default: one per core
    for the baseline, 0 for the oracle). Raises ``DiarevalError`` with the child's output if it fails to start.
    """
    command = [sys.executable, "-m", "diareval", "serve", "--engine", engine,
               "--host", host, "--port", str(port),
               "--max-session-seconds", str(max_session_seconds),
               "--engine-options", json.dumps(engine_options or {})]
    if dataset is not None:
        command += ["--dataset", str(dataset)]
        if dataset_options:
            command += ["--dataset-options", json.dumps(dataset_options)]
    command += ["--no-lookahead"] if lookahead_seconds is None else \
        ["--lookahead", str(lookahead_seconds)]
    command += ["--compression", compression or "none"]
    if workers is not None:
        command += ["--workers", str(workers)]
    command += fault_args(faults or FaultConfig())
    # POSIX: the child gets its own session, so a terminal's Ctrl-C (SIGINT to the
    # foreground process group) reaches only this process, which then terminates its
    # sessions while the server still answers them, and stops the child itself
    # (ServerProcess.stop); the child stops by itself if this process dies first.
    detach = os.name == "posix"
    if detach:
        command += ["--exit-with-parent", str(os.getpid())]
    env = dict(os.environ)
    env.pop(API_KEYS_ENV, None)
    if api_keys is not None:
        env[API_KEYS_ENV] = json.dumps(list(api_keys))
    env["PYTHONUNBUFFERED"] = "1"
    popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env, start_new_session=detach)
    seen: list[str] = []
    result: list[str] = []

    def read_url() -> None:
        for line in popen.stdout:
            seen.append(line)
            match = _URL_LINE.search(line)
            if match:
                result.append(match.group(1))
                return

    reader = threading.Thread(target=read_url, daemon=True)
    reader.start()
    reader.join(startup_timeout)
    if not result:
        if popen.poll() is None:
            popen.kill()
        popen.wait()
        raise DiarevalError("the server process did not start:\n" + "".join(seen)[-4000:])
    return ServerProcess(popen, result[0])
