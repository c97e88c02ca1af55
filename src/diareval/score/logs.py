"""Score session logs captured anywhere: ``score --log PATH --ref REF.rttm`` / :func:`score_logs`.

A log is a JSONL file, one JSON object per line, ``<uri>.jsonl`` (the uri is the file name
without ``.jsonl``; a folder holds one per session). Each line is one of:

- a diareval session-log line (``{"dir", "t_wall", "t_audio", "msg"}``, see
  :mod:`diareval.sessionlog`): read as is;
- a raw message as an app receives it from the SDK (``event.model_dump(mode="json")``) or the
  websocket (the text frame parsed): an object with a ``"type"``; the receive time may sit
  beside the message's own fields;
- a wrapped raw message: ``{"message": <object or JSON text>, <receive time>}``.

Receive time, read from these fields in this order (the first present wins):

- ``t_wall``: seconds since the session started (what diareval writes);
- ``received_at``: seconds (a Unix time, any origin) or an ISO-8601 string; made relative to
  the log's first ``received_at``.

``timestamp`` is **not** read: SpeechStarted's own ``timestamp`` (ms of audio) has that name.
``t_audio`` (audio seconds sent when the message arrived) is read when present, else taken
equal to the receive time (a real-time stream). A line without any receive time is placed at
the end of the latest word seen so far (the earliest audio time the message could have come):
latencies and the on-screen curve are then optimistic, and the session's ``note`` says so.
Client messages (``Terminate``, ``ForceEndpoint``, ``UpdateConfiguration``, ``KeepAlive``) in a
raw capture are taken as sent, everything else as received.

Scoring is :func:`~diareval.score.session.score_session` per log with the same tables as a
run (:class:`~diareval.score.results.RunScores`); :func:`log_table` is the per-file + TOTAL
table the CLI prints. Without a UEM each session is scored on ``[0, end]``, ``end`` the last
reference, hypothesis or audio (Termination's ``audio_duration_seconds``) time.
"""

from __future__ import annotations

import json
import math
import warnings
from datetime import datetime
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from pyannote.core import Annotation, Segment, Timeline

from diareval.datasets.recording import Recording
from diareval.datasets.rttm import load_rttm, load_uem
from diareval.errors import DatasetError
from diareval.score.der import Conventions, DERResult, JERResult
from diareval.score.hypothesis import hypothesis_from_log
from diareval.score.results import RunScores
from diareval.score.run import add_session_tables, gather_scores, write_scores
from diareval.score.session import score_session
from diareval.sessionlog import LogLine

TIME_FIELDS = ("t_wall", "received_at")
CLIENT_MESSAGES = ("Terminate", "ForceEndpoint", "UpdateConfiguration", "KeepAlive")
NO_TIMES_NOTE = ("no receive times in the log: times estimated from word ends (latencies and "
                 "der_seen optimistic)")


def _seconds(value, where: str) -> float | None:
    """A receive time as seconds: a number, or an ISO-8601 string (None when absent)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DatasetError(f"{where}: receive time {value!r} is not a number or ISO time")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise DatasetError(f"{where}: receive time {value!r} is not finite")
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            pass
    raise DatasetError(f"{where}: receive time {value!r} is not a number or ISO-8601 time")


def _latest_word_end(message: dict, current: float) -> float:
    words = message.get("words")
    ends = [w.get("end") for w in words if isinstance(w, dict)] if isinstance(words, list) else []
    ends = [e / 1000.0 for e in ends if isinstance(e, (int, float))]
    return max([current] + ends)


def read_message_log(path: str | Path) -> tuple[list[LogLine], list[str]]:
    """A log file in any of the three line forms (module docstring) as session-log lines,
    and notes about how it was read. A truncated last line is skipped with a warning; any
    other unreadable line is an error naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read the log ({error})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out: list[LogLine] = []
    origin = None
    estimated = 0
    latest = 0.0
    for number, raw in enumerate(lines, start=1):
        where = f"{path}:{number}"
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            if number == len(lines):
                warnings.warn(f"{where}: truncated last line skipped")
                break
            raise DatasetError(f"{where}: not JSON ({error})") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: a log line must be a JSON object, got {raw[:60]!r}")
        if "dir" in record and "msg" in record:  # diareval's own log line
            try:
                out.append(LogLine(str(record["dir"]), float(record["t_wall"]),
                                   float(record["t_audio"]), record["msg"]))
            except (KeyError, TypeError, ValueError) as error:
                raise DatasetError(f"{where}: not a session log line ({error})") from None
            continue
        message = record.get("message", record) if "type" not in record else record
        if isinstance(message, str):
            try:
                message = json.loads(message)
            except json.JSONDecodeError:
                pass  # a text frame that is not JSON: logged as text, as diareval logs it
        if isinstance(message, dict) and "type" not in message and message is not record:
            raise DatasetError(f"{where}: the wrapped message has no \"type\"")
        if message is record and "type" not in record:
            raise DatasetError(f"{where}: neither a message (no \"type\") nor a session log "
                               f"line (no \"dir\"/\"msg\")")
        t_wall = _seconds(record.get("t_wall"), where)
        if t_wall is None:
            received = _seconds(record.get("received_at"), where)
            if received is not None:
                origin = received if origin is None else origin
                t_wall = received - origin
        if isinstance(message, dict):
            latest = _latest_word_end(message, latest)
        if t_wall is None:
            estimated += 1
            t_wall = latest
        t_audio = _seconds(record.get("t_audio"), where)
        kind = message.get("type") if isinstance(message, dict) else None
        out.append(LogLine("send" if kind in CLIENT_MESSAGES else "recv", t_wall,
                           t_wall if t_audio is None else t_audio, message))
    notes = [NO_TIMES_NOTE] if estimated and estimated == len(out) else \
        [f"{estimated} line(s) without a receive time placed at the latest word end"] \
        if estimated else []
    return out, notes


def discover_logs(paths: Iterable[str | Path]) -> list[tuple[str, str, Path]]:
    """``(config, uri, path)`` for every log: a file ``<uri>.jsonl`` (config "logs") or every
    ``*.jsonl`` in a folder (config: the folder's name when several folders are given)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise DatasetError("no log given (--log PATH)")
    folders = [p for p in paths if p.is_dir()]
    found, seen = [], set()
    for path in paths:
        if path.is_dir():
            files = sorted(path.glob("*.jsonl"))
            if not files:
                raise DatasetError(f"{path}: no <uri>.jsonl logs in this folder")
            config = path.resolve().name if len(folders) > 1 else "logs"
        elif path.is_file():
            files, config = [path], "logs"
        else:
            raise DatasetError(f"{path}: no such log file or folder")
        for file in files:
            uri = file.name[:-len(".jsonl")] if file.name.endswith(".jsonl") else file.stem
            if (config, uri) in seen:
                raise DatasetError(f"{file}: a second log for uri {uri!r} ({config})")
            seen.add((config, uri))
            found.append((config, uri, file))
    return found


def _session_uem(reference: Annotation, log: Sequence[LogLine], uri: str, conventions):
    """[0, end] (module docstring): the scored region when no UEM is given."""
    end = reference.get_timeline().extent().end if reference else 0.0
    hypothesis = hypothesis_from_log(log, conventions.level, conventions.unknown,
                                     conventions.revisions)
    if hypothesis:
        end = max(end, hypothesis.get_timeline().extent().end)
    for line in log:
        if isinstance(line.msg, dict) and line.msg.get("type") == "Termination":
            seconds = line.msg.get("audio_duration_seconds")
            if isinstance(seconds, (int, float)) and math.isfinite(seconds):
                end = max(end, float(seconds))
    return Timeline([Segment(0.0, end)], uri=uri) if end > 0 else Timeline(uri=uri)


def score_logs(logs: str | Path | Iterable[str | Path], reference, uem=None,
               conventions: Conventions = Conventions(), step: float = 1.0,
               window: float = 60.0, window_step: float = 10.0, n_boot: int = 1000,
               seed: int = 0, out: str | Path | None = None) -> RunScores:
    """Score logs (files or folders, module docstring) against reference RTTM(s).

    ``reference``: an RTTM path or ``{uri: Annotation}``; several uris in one RTTM are matched
    to the logs by uri (one log and one reference uri match whatever their names). ``uem``: a
    UEM path, ``{uri: Timeline}`` or None (``[0, end]`` per session). Returns the run tables
    (:class:`RunScores`, one configuration per log folder when several are given) and, with
    ``out``, writes them there (``<table>.parquet|csv``, ``conventions.json``)."""
    if isinstance(logs, (str, Path)):
        logs = [logs]
    found = discover_logs(logs)
    references = load_rttm(reference) if isinstance(reference, (str, Path)) else dict(reference)
    uems = load_uem(uem) if isinstance(uem, (str, Path)) else (dict(uem) if uem else None)
    if not references:
        raise DatasetError(f"{reference}: no reference speakers")
    single = len(found) == 1 and len(references) == 1
    if conventions.uem == Conventions().uem:
        from dataclasses import replace
        conventions = replace(conventions, uem="UEM file" if uems is not None else
                              "[0, end of reference/hypothesis/audio]")
    rows, tables = [], {}
    for config, uri, path in found:
        ref_uri = next(iter(references)) if single else uri
        if ref_uri not in references:
            raise DatasetError(f"{path}: no reference for uri {uri!r} in {reference} "
                               f"(it has {', '.join(sorted(references)[:5])}"
                               f"{', ...' if len(references) > 5 else ''})")
        log, notes = read_message_log(path)
        annotation = references[ref_uri]
        if uems is not None:
            if ref_uri not in uems:
                raise DatasetError(f"the UEM has no entry for {ref_uri!r} ({path})")
            region = uems[ref_uri]
        else:
            region = _session_uem(annotation, log, ref_uri, conventions)
        recording = Recording(uri=uri, audio_path=path, reference=annotation, uem=region,
                              meta={"uem": conventions.uem, "log": str(path)})
        scores = score_session(log, recording, conventions, step=step, window=window,
                               window_step=window_step)
        row = dict(config=config, uri=uri, log=str(path), model=None, max_speakers=None,
                   status="complete", scored=True,
                   **scores.summary)
        row["note"] = "; ".join(filter(None, [row.get("note", "")] + notes))
        rows.append(row)
        add_session_tables(tables, scores, config, uri)
    result = gather_scores(rows, tables, conventions, n_boot=n_boot, seed=seed)
    if out is not None:
        write_scores(result, Path(out), conventions)
    return result


def log_table(scores: RunScores) -> pd.DataFrame:
    """One row per log plus a TOTAL row per configuration: the DER components and rates,
    JER, the unknown-turn rate and the revised turns (the ``score --log`` printout)."""
    sessions = scores.sessions
    several = sessions["config"].nunique() > 1
    turns = scores.turns
    rows = []
    for config, group in sessions.groupby("config", sort=False):
        results, jers = [], []
        for row in group.itertuples():
            result = DERResult(reference_speech=row.reference_speech, correct=row.correct,
                               miss=row.miss, false_alarm=row.false_alarm,
                               confusion=row.confusion, unknown_speech=row.unknown_speech,
                               sessions=1)
            results.append(result)
            jers.append(JERResult(row.jer_speaker_error, row.jer_speaker_count))
            rows.append(dict(config=config, file=f"{config}/{row.uri}" if several else row.uri,
                             **{**result.as_row(), "note": row.note}, jer=row.jer,
                             unknown_turn_rate=row.unknown_turn_rate,
                             revised_turns=int(row.revised_turns)))
        total = sum(results, DERResult())
        mine = turns[turns["config"] == config] if len(turns) else turns
        rows.append(dict(config=config, file=f"TOTAL {config}" if several else "TOTAL",
                         **total.as_row(), jer=sum(jers, JERResult()).jer,
                         unknown_turn_rate=float(mine["unknown"].mean()) if len(mine)
                         else np.nan,
                         revised_turns=int(group["revised_turns"].sum())))
    frame = pd.DataFrame(rows)
    frame.attrs["conventions"] = scores.conventions
    return frame


def format_log_scores(table: pd.DataFrame) -> str:
    """The per-file + TOTAL table as text (percentages; a rate that is undefined is shown as
    "n/a" with its reason, never as nan)."""
    def pct(x):
        return f"{100 * x:7.2f}" if isinstance(x, (int, float)) and not math.isnan(x) \
            else f"{'n/a':>7}"
    width = max([24] + [len(str(f)) for f in table["file"]])
    lines = [f"# {table.attrs.get('conventions', '')}",
             f"{'file':<{width}} {'DER%':>7} {'miss%':>7} {'FA%':>7} {'conf%':>7} {'JER%':>7} "
             f"{'unknown%':>8} {'revised':>7} {'ref speech s':>12}"]
    for row in table.itertuples():
        lines.append(f"{row.file:<{width}} {pct(row.der)} {pct(row.miss_rate)} "
                     f"{pct(row.false_alarm_rate)} {pct(row.confusion_rate)} {pct(row.jer)} "
                     f"{pct(row.unknown_turn_rate):>8} {row.revised_turns:7d} "
                     f"{row.reference_speech:12.3f}" + (f"  ({row.note})" if row.note else ""))
    lines.append("unknown% = final turns without a speaker label; revised = final turns a "
                 "SpeakerRevision entry was applied to")
    return "\n".join(lines)


def reference_uris_without_log(scores: RunScores, reference) -> list[str]:
    """Reference uris no log was scored against (the CLI says how many)."""
    references = load_rttm(reference) if isinstance(reference, (str, Path)) else \
        dict(reference) if isinstance(reference, Mapping) else {}
    return sorted(set(references) - set(scores.sessions["uri"])) if len(references) > 1 else []
