"""The session log on disk: one JSON object per line, appended and flushed as messages pass.

``{"dir": "recv"|"send", "t_wall": s since session start (monotonic clock),
"t_audio": s of audio sent so far, "msg": <message>}``

``msg`` is the message exactly as received or sent: the parsed JSON object for a
JSON text frame, the raw string for a text frame that is not valid JSON. Audio
frames are summarised as ``{"type": "AudioChunk", "bytes": n, "duration": s}``
(``"AudioChunk"`` is diareval's, not the protocol's), never stored. The API key, should
the service echo it, is written as ``***``. A connection
event that is not a message (close code, handshake rejection) is logged as
``{"dir": "event", ..., "msg": {"type": "Closed"|"HandshakeRejected"|..., ...}}``.
The writer (``stream``) and the reader (``score``) both use this module.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

AUDIO_CHUNK = "AudioChunk"


@dataclass(frozen=True)
class LogLine:
    """One line of a session log."""

    dir: str
    t_wall: float
    t_audio: float
    msg: Any

    @property
    def type(self) -> str | None:
        """The message's ``type`` field, or None for a non-JSON / typeless message."""
        return self.msg.get("type") if isinstance(self.msg, dict) else None


class SessionLogWriter:
    """Append-only writer; every line is flushed at once so a crash loses nothing already seen.

    ``secrets`` (the API key) are replaced by ``***`` wherever they appear in a line: a
    service that echoes the key (an HTTP rejection body, an Error text) must not get it
    written to disk. That is the one change ever made to a logged message. Secrets under
    8 characters (the local server's placeholder key "local") are left alone: replacing
    them would garble ordinary text ("localhost")."""

    def __init__(self, path: str | Path, secrets: tuple[str, ...] = ()):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # each secret as it appears inside a JSON string too (quotes, backslashes escaped)
        forms = {form for secret in secrets if secret and len(secret) >= 8
                 for form in (secret, json.dumps(secret, ensure_ascii=False)[1:-1])}
        self._secrets = sorted(forms, key=len, reverse=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, direction: str, t_wall: float, t_audio: float, msg: Any) -> None:
        """Append one line and flush it."""
        record = {"dir": direction, "t_wall": round(t_wall, 6), "t_audio": round(t_audio, 6),
                  "msg": msg}
        line = json.dumps(record, ensure_ascii=False)
        for secret in self._secrets:
            line = line.replace(secret, "***")
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "SessionLogWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_message(text: str) -> Any:
    """A received text frame as it goes into the log: parsed JSON, or the raw text if not JSON."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text


def iter_session_log(path: str | Path) -> Iterator[LogLine]:
    """Read a session log. A truncated *last* line (a crash mid-write) is skipped with a
    warning; a broken line elsewhere is an error naming the file and line."""
    path = Path(path)
    with open(path, encoding="utf-8") as file:
        lines = file.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, text in enumerate(lines, start=1):
        try:
            record = json.loads(text)
            yield LogLine(record["dir"], float(record["t_wall"]), float(record["t_audio"]),
                          record["msg"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            if number == len(lines):
                warnings.warn(f"{path}:{number}: truncated last line skipped")
                return
            raise ValueError(f"{path}:{number}: not a session log line ({exc})") from None


def read_session_log(path: str | Path) -> list[LogLine]:
    """All lines of a session log (see :func:`iter_session_log`)."""
    return list(iter_session_log(path))
