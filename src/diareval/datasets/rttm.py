"""Strict RTTM and UEM readers, and their writers (format_rttm, format_uem).

pyannote.database has loaders for these formats, but they accept broken lines
silently (or fail with a pandas error that names neither file nor line). A tool
that produces numbers people trust must reject a broken reference loudly, so the
parsing here is by hand; the result is pyannote.core objects.
"""

from __future__ import annotations

import math
from pathlib import Path

from pyannote.core import Annotation, Segment, Timeline

from diareval.errors import DatasetError

# RTTM record types that carry no speaker turn: skipped (NIST RT-09 spec).
_SKIPPED_TYPES = {"SPKR-INFO", "LEXEME", "NON-LEX", "NON-SPEECH", "SEGMENT", "NOSCORE",
                  "NO_RT_METADATA", "SU", "CB", "IP", "EDIT", "FILLER", "A/P"}
_RTTM_FIELDS = ("type", "file", "channel", "start", "duration", "ortho", "stype", "name")


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: {what} {text!r} is not a number "
                           "(a URI or speaker name with spaces shifts the fields)") from None
    if not math.isfinite(value):
        raise DatasetError(f"{where}: {what} {text!r} is not a finite number")
    return value


def _records(text: str, source: str):
    """``(where, fields)`` of every line that is neither blank nor a ``#`` comment;
    ``where`` = ``source:line`` (1-based) for error messages."""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield f"{source}:{number}", line.split()


def parse_rttm(text: str, source: str = "<rttm>") -> dict[str, Annotation]:
    """Parse RTTM text into one ``Annotation`` per URI (file id).

    Only ``SPEAKER`` lines count; ``SPKR-INFO`` and other non-turn types are
    skipped, as are blank lines and ``#`` comments. Every error names
    ``source`` and the 1-based line number.
    """
    annotations: dict[str, Annotation] = {}
    for where, fields in _records(text, source):
        kind = fields[0]
        if kind in _SKIPPED_TYPES:
            continue
        if kind != "SPEAKER":
            raise DatasetError(f"{where}: unknown RTTM record type {kind!r} (expected SPEAKER)")
        if len(fields) < 8:
            missing = ", ".join(_RTTM_FIELDS[len(fields):])
            raise DatasetError(f"{where}: SPEAKER line has {len(fields)} fields, "
                               f"at least 8 needed (missing: {missing})")
        if len(fields) > 10:
            raise DatasetError(f"{where}: SPEAKER line has {len(fields)} fields, at most 10 "
                               "(spaces in a URI or speaker name?)")
        uri, start_text, duration_text, speaker = fields[1], fields[3], fields[4], fields[7]
        start = _number(start_text, "start", where)
        duration = _number(duration_text, "duration", where)
        if start < 0:
            raise DatasetError(f"{where}: negative start {start_text}")
        if duration <= 0:
            raise DatasetError(f"{where}: duration must be positive, got {duration_text}")
        if not math.isfinite(start + duration):
            raise DatasetError(f"{where}: start + duration ({start_text} + {duration_text}) "
                               "is not a finite time")
        if speaker in ("<NA>", ""):
            raise DatasetError(f"{where}: missing speaker name")
        annotation = annotations.setdefault(uri, Annotation(uri=uri))
        annotation[Segment(start, start + duration), annotation.new_track(
            Segment(start, start + duration))] = speaker
    return annotations


def _read_text(path: Path, kind: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: {kind} file not found") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc})") from None


def load_rttm(path: str | Path) -> dict[str, Annotation]:
    """Read an RTTM file: ``{uri: Annotation}``. See :func:`parse_rttm`."""
    return parse_rttm(_read_text(Path(path), "RTTM"), source=str(path))


def parse_uem(text: str, source: str = "<uem>") -> dict[str, Timeline]:
    """Parse UEM text (``uri channel start end`` per line) into one ``Timeline`` per URI."""
    timelines: dict[str, list[Segment]] = {}
    for where, fields in _records(text, source):
        if len(fields) != 4:
            raise DatasetError(f"{where}: UEM line needs 4 fields (uri channel start end), "
                               f"got {len(fields)}")
        start = _number(fields[2], "start", where)
        end = _number(fields[3], "end", where)
        if start < 0:
            raise DatasetError(f"{where}: negative start {fields[2]}")
        if end <= start:
            raise DatasetError(f"{where}: end {fields[3]} is not after start {fields[2]}")
        timelines.setdefault(fields[0], []).append(Segment(start, end))
    return {uri: Timeline(segments, uri=uri).support() for uri, segments in timelines.items()}


def load_uem(path: str | Path) -> dict[str, Timeline]:
    """Read a UEM file: ``{uri: Timeline}``. See :func:`parse_uem`."""
    return parse_uem(_read_text(Path(path), "UEM"), source=str(path))


def format_rttm(annotation: Annotation, uri: str | None = None) -> str:
    """RTTM text of ``annotation`` (segments sorted by start)."""
    uri = uri or annotation.uri or "unknown"
    lines = [
        f"SPEAKER {uri} 1 {segment.start:.3f} {segment.duration:.3f} <NA> <NA> {label} <NA> <NA>"
        for segment, _, label in annotation.itertracks(yield_label=True)
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def format_uem(uem: Timeline, uri: str | None = None, decimals: int = 3) -> str:
    """UEM text of ``uem`` (``uri 1 start end`` per segment, sorted; times to ``decimals``
    places), read back by :func:`parse_uem`. ``uri`` defaults to the timeline's."""
    uri = uri or uem.uri
    if not uri:
        raise DatasetError("format_uem: the timeline has no uri; pass uri=...")
    lines = [f"{uri} 1 {segment.start:.{decimals}f} {segment.end:.{decimals}f}" for segment in uem]
    return "\n".join(lines) + ("\n" if lines else "")
