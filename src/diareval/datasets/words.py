"""Reference words from files: NIST STM (as MeetEval reads it) or SegLST JSON.

- **STM**: ``<session_id> <channel> <speaker> <begin> <end> [words ...]`` per line; blank
  lines and lines starting with ``;`` (``;;`` comments) are skipped (MeetEval's
  ``STM.parse``). Times in seconds, ``0 <= begin <= end``.
- **SegLST** (``.json``): a list of objects with ``session_id``, ``speaker``, ``start_time``,
  ``end_time``, ``words`` (MeetEval's canonical form); other keys are ignored. In a
  ``<uri>.json`` beside an audio file ``session_id`` may be left out (it is the file's uri).

A segment with several words becomes one :class:`ReferenceWord` per word with MeetEval's
``character_based`` pseudo-word times (the times MeetEval's tcpWER gives reference words by
default), so cpWER and tcpWER are the same as on the file itself. Every problem is an error
naming the file and the line (STM) or entry (SegLST).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from diareval.datasets.recording import ReferenceWord
from diareval.errors import DatasetError

WORD_SUFFIXES = (".stm", ".json")


def _time(value, where: str, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: {name} {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise DatasetError(f"{where}: {name} {value!r} must be a finite number >= 0")
    return number


def _split(speaker: str, start: float, end: float, text: str) -> list[ReferenceWord]:
    from meeteval.wer.wer.time_constrained import character_based
    tokens = text.split()
    if not tokens:
        return []
    times = character_based((start, end), tokens) if len(tokens) > 1 else [(start, end)]
    return [ReferenceWord(speaker, float(a), float(b), token)
            for token, (a, b) in zip(tokens, times)]


def parse_stm(text: str, source: str = "<stm>") -> dict[str, list[ReferenceWord]]:
    """``{session_id: words}`` of STM text (see the module docstring)."""
    sessions: dict[str, list[ReferenceWord]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue
        where = f"{source}:{number}"
        fields = stripped.split(maxsplit=5)
        if len(fields) < 5:
            raise DatasetError(f"{where}: expected '<session> <channel> <speaker> <begin> <end> "
                               f"words...', got {stripped!r}")
        session, _channel, speaker, begin, end = fields[:5]
        start, stop = _time(begin, where, "begin time"), _time(end, where, "end time")
        if stop < start:
            raise DatasetError(f"{where}: end time {stop} before begin time {start}")
        sessions.setdefault(session, []).extend(
            _split(speaker, start, stop, fields[5] if len(fields) > 5 else ""))
    return sessions


def parse_seglst(data, source: str = "<seglst>", session_id: str | None = None,
                 only: bool = False) -> dict[str, list[ReferenceWord]]:
    """``{session_id: words}`` of SegLST data (a list of segment objects); ``session_id``
    fills in entries without one and, with ``only``, must match those that have one."""
    if not isinstance(data, list):
        raise DatasetError(f"{source}: a SegLST file holds a JSON list of segments, got "
                           f"{type(data).__name__}")
    sessions: dict[str, list[ReferenceWord]] = {}
    for index, entry in enumerate(data):
        where = f"{source}: entry {index}"
        if not isinstance(entry, dict):
            raise DatasetError(f"{where}: expected an object, got {type(entry).__name__}")
        missing = [k for k in ("speaker", "start_time", "end_time", "words") if k not in entry]
        if "session_id" not in entry and session_id is None:
            missing.insert(0, "session_id")
        if missing:
            raise DatasetError(f"{where}: missing {', '.join(missing)}")
        session = str(entry.get("session_id", session_id))
        if only and session != session_id:
            raise DatasetError(f"{where}: session_id {session!r} is not this file's uri "
                               f"{session_id!r}")
        start = _time(entry["start_time"], where, "start_time")
        stop = _time(entry["end_time"], where, "end_time")
        if stop < start:
            raise DatasetError(f"{where}: end_time {stop} before start_time {start}")
        if not isinstance(entry["words"], str):
            raise DatasetError(f"{where}: words must be a string, got {entry['words']!r}")
        sessions.setdefault(session, []).extend(
            _split(str(entry["speaker"]), start, stop, entry["words"]))
    return sessions


def load_words(path: str | Path, session_id: str | None = None
               ) -> dict[str, list[ReferenceWord]]:
    """``{session_id: words sorted by start}`` of an ``.stm`` or SegLST ``.json`` file, or of
    every such file in a folder (a session in two files is an error; in a folder, SegLST
    entries without ``session_id`` belong to the file's stem). With ``session_id`` the file
    must hold that session only (entries may leave it out)."""
    path = Path(path)
    if path.is_dir():
        found: dict[str, list[ReferenceWord]] = {}
        origin: dict[str, Path] = {}
        for file in sorted(p for p in path.iterdir() if p.suffix.lower() in WORD_SUFFIXES):
            for session, words in _load_file(file, file.stem, only=False).items():
                if session in found:
                    raise DatasetError(f"{file}: words of {session!r} already read from "
                                       f"{origin[session]}")
                found[session], origin[session] = words, file
        if not found:
            raise DatasetError(f"{path}: no .stm or .json word files")
        return {s: sorted(w, key=lambda x: (x.start, x.end)) for s, w in found.items()}
    if not path.is_file():
        raise DatasetError(f"{path}: no such word file")
    sessions = _load_file(path, session_id, only=session_id is not None)
    if session_id is not None:
        unexpected = sorted(set(sessions) - {session_id})
        if unexpected:
            raise DatasetError(f"{path}: sessions {', '.join(map(repr, unexpected))} in the "
                               f"word file of {session_id!r}")
        sessions.setdefault(session_id, [])
    return {s: sorted(w, key=lambda x: (x.start, x.end)) for s, w in sessions.items()}


def _load_file(path: Path, session_id: str | None, only: bool
               ) -> dict[str, list[ReferenceWord]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    if path.suffix.lower() == ".stm":
        return parse_stm(text, str(path))
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from None
        return parse_seglst(data, str(path), session_id, only)
    raise DatasetError(f"{path}: word files are .stm or SegLST .json")


def words_beside(audio_path: str | Path, uri: str) -> list[ReferenceWord] | None:
    """The words of ``<uri>.stm`` or ``<uri>.json`` next to the audio file, None if neither
    exists (both existing is an error: which one is meant?)."""
    folder = Path(audio_path).parent
    candidates = [folder / f"{uri}{suffix}" for suffix in WORD_SUFFIXES]
    present = [p for p in candidates if p.is_file()]
    if len(present) > 1:
        raise DatasetError(f"{folder}: both {present[0].name} and {present[1].name} give words "
                           f"of {uri!r}; keep one")
    if not present:
        return None
    return load_words(present[0], session_id=uri)[uri]
