"""Helpers for the stream/run/fault tests: log and status checks (no tests here; the
generated recordings are in ``fixtures.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from diareval.sessionlog import AUDIO_CHUNK, read_session_log


def attempt_logs(status: dict, session_dir: Path) -> list[Path]:
    """The log of every attempt in a status file, in order."""
    return [session_dir / attempt["log"] for attempt in status["attempts"]]


def read_status(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def received(log_path: Path) -> list:
    """The messages a session log records as received, in order."""
    return [line.msg for line in read_session_log(log_path) if line.dir == "recv"]


def assert_log_has_everything(server_session, log_path: Path) -> None:
    """Every text frame the server sent in ``server_session`` is in the log, in order, as
    parsed JSON (or the raw text when it is not JSON)."""
    assert received(log_path) == server_session.sent_messages
    lines = read_session_log(log_path)
    sent_audio = sum(line.msg["duration"] for line in lines
                     if line.dir == "send" and isinstance(line.msg, dict)
                     and line.msg.get("type") == AUDIO_CHUNK)
    assert abs(sent_audio - server_session.audio_seconds) < 1e-6
    t_walls = [line.t_wall for line in lines]
    assert t_walls == sorted(t_walls)
    t_audios = [line.t_audio for line in lines]
    assert t_audios == sorted(t_audios)


def heal_after(server, ended_sessions: int):
    """Switch the server's faults off once ``ended_sessions`` sessions have closed (the server
    records the close code before the client can see it; a daemon thread polls every 2 ms):
    the first attempts see the fault, the retries do not."""
    import threading
    import time

    from diareval.server import FaultConfig

    def watch():
        while True:
            sessions = list(server.sessions)
            if len(sessions) >= ended_sessions and \
                    all(s.close_code is not None for s in sessions[:ended_sessions]):
                server.faults = FaultConfig()
                return
            time.sleep(0.002)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file())
