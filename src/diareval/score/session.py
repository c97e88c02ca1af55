"""Everything diareval measures about one session: (session log, Recording) -> tables.

Pure: reads nothing, writes nothing. :func:`score_session` is the one call; the run
level (:mod:`diareval.score.run`) concatenates sessions and adds the breakdowns.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd

from diareval.errors import DiarevalError
from diareval.score.der import Conventions, DERResult, with_conventions
from diareval.score.hypothesis import (apply_revisions, final_turns, hypothesis_from_turns,
                                       session_turns)
from diareval.score.latency import latency_summary, speaker_count, turn_latency
from diareval.score.over_time import (ElementaryIntervals, der_by_region, der_over_time,
                                      der_windows, session_end, time_grid, window_edges)
from diareval.score.seen import der_seen
from diareval.score.stability import (label_flips, mapping_stability, partial_changes,
                                      speaker_counts_over_time)
from diareval.score.turns import reference_segment_table, turn_table
from diareval.score.word_tables import session_words
from diareval.sessionlog import LogLine


@dataclass
class SessionScores:
    """The tables of one session. ``summary`` is one row (dict) of the sessions table."""

    summary: dict
    der: DERResult
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def _uem_description(recording) -> str:
    return str(recording.meta.get("uem", "from the recording")) if recording.meta else \
        "from the recording"


def session_intervals(reference, hypothesis, uem, conventions: Conventions, step: float = 1.0,
                      window: float = 60.0, window_step: float = 10.0
                      ) -> tuple[ElementaryIntervals, float]:
    """The session's one :class:`ElementaryIntervals` (cut at every curve step and window edge)
    and the session end: what :func:`score_session` computes every DER-based table from."""
    end = session_end(reference, hypothesis, uem)
    grid = set(time_grid(end, step).tolist()) | set(window_edges(end, window, window_step)[1])
    return ElementaryIntervals(reference, hypothesis, uem, conventions, grid=sorted(grid)), end


def session_der(log: Sequence[LogLine], recording, conventions: Conventions = Conventions(),
                step: float = 1.0, window: float = 60.0, window_step: float = 10.0) -> DERResult:
    """The DER components :func:`score_session` reports for ``log`` (the same hypothesis and
    intervals, so equal to the last bit), without the other tables: for a tuner's loop."""
    session = session_turns(log, revisions=conventions.revisions)
    hypothesis = hypothesis_from_turns(session.turns, conventions.level, conventions.unknown,
                                       uri=recording.uri)
    intervals, _ = session_intervals(recording.reference, hypothesis, recording.uem,
                                     conventions, step, window, window_step)
    return intervals.der_result()[0]


def score_session(log: Sequence[LogLine], recording, conventions: Conventions = Conventions(),
                  step: float = 1.0, window: float = 60.0, window_step: float = 10.0
                  ) -> SessionScores:
    """Score one session log against its Recording (reference Annotation + UEM).

    Tables: ``der_over_time`` (step ``step``), ``der_seen`` (what was on screen at wall time
    ``t``, :mod:`diareval.score.seen`), ``der_windows``, ``der_by_region``, ``turns``,
    ``reference_segments``, ``latency``, ``speaker_counts`` and, when the recording has
    reference words, ``word_alignment`` and ``cpwer_over_time``. DER, JER and the curves all
    come from one :class:`~diareval.score.over_time.ElementaryIntervals` of the session.
    The summary row holds the
    DER components (with the other revision setting too: ``der_revisions_ignored`` or
    ``der_revisions_applied``), JER, stability, latency, speaker counts, unknown rate, and
    the word metrics (:mod:`diareval.score.word_tables`; absent with ``words_note``).
    """
    if recording is None:
        raise DiarevalError("score_session needs the session's Recording (reference and UEM)")
    if conventions.uem == Conventions().uem:
        conventions = replace(conventions, uem=_uem_description(recording))
    reference, uem = recording.reference, recording.uem
    read = final_turns(log)
    session = apply_revisions(read) if conventions.revisions else read
    hypothesis = hypothesis_from_turns(session.turns, conventions.level, conventions.unknown,
                                       uri=recording.uri)
    # one set of elementary intervals for DER, JER, the curve, the windows and the regions
    # (the same arithmetic as pyannote.metrics; tests/test_over_time.py checks they agree)
    intervals, end = session_intervals(reference, hypothesis, uem, conventions, step, window,
                                       window_step)
    result, best = intervals.der_result()
    mapping = best.as_dict()
    other = replace(conventions, revisions=not conventions.revisions)
    other_result = result
    if read.revisions:
        other_turns = read if conventions.revisions else apply_revisions(read)
        other_hypothesis = hypothesis_from_turns(other_turns.turns, other.level, other.unknown,
                                                 uri=recording.uri)
        other_result = ElementaryIntervals(reference, other_hypothesis, uem,
                                           other).der_result()[0]

    curve = der_over_time(reference, hypothesis, uem, conventions, step=step, end=end,
                          intervals=intervals)
    windows = der_windows(reference, hypothesis, uem, conventions, window=window,
                          step=window_step, end=end, intervals=intervals)
    regions = der_by_region(reference, hypothesis, uem, conventions, intervals=intervals)
    seen = der_seen(log, reference, uem, conventions, step=step, session=read)
    turns = turn_table(session.turns, reference, uem, mapping, conventions)
    segments = reference_segment_table(reference, hypothesis, uem, mapping, conventions)
    latency = turn_latency(session, conventions)
    counts = speaker_counts_over_time(log, reference, uem, curve["t"].to_numpy(), conventions)

    n_turns = len(turns)
    summary = dict(result.as_row())
    jer_result = intervals.jer_result()
    summary.update(
        jer=jer_result.jer, jer_speaker_error=jer_result.speaker_error,
        jer_speaker_count=jer_result.speaker_count,
        der_revisions_applied=(result if conventions.revisions else other_result).der,
        der_revisions_ignored=(other_result if conventions.revisions else result).der,
        n_turns=n_turns, n_turn_messages=session.n_turn_messages,
        unknown_turn_rate=float(turns["unknown"].mean()) if n_turns else np.nan,
        turn_accuracy=float(turns["correct"].dropna().astype(bool).mean())
        if turns["correct"].notna().any() else np.nan,
        mapping=", ".join(f"{h}->{r}" for h, r in sorted(mapping.items())),
        **mapping_stability(curve), **label_flips(reference, hypothesis, uem, intervals),
        **partial_changes(session), **latency_summary(latency),
        **speaker_count(reference, hypothesis, uem))
    # who said what (cpWER, tcpWER, WDER, WER): absent with `words_note` without reference words
    words_row, word_tables = session_words(session.turns, recording, conventions, turns, end=end,
                                           log=log)
    summary.update(words_row)
    notes = [summary.get("note", "")]
    if not session.turns:
        notes.append("the log has no final Turn: all reference speech is missed")
    if n_turns == 0 and session.turns:
        notes.append("no final Turn has words")
    notes += list(session.warnings)
    summary["note"] = "; ".join(n for n in notes if n)
    summary.update(conventions.as_columns())
    tables = dict(der_over_time=curve, der_seen=seen, der_windows=windows, der_by_region=regions,
                  turns=turns, reference_segments=segments, latency=latency,
                  speaker_counts=counts, **word_tables)
    for table in tables.values():
        table.attrs.setdefault("conventions", conventions.describe())
    return SessionScores(summary=summary, der=result, tables=tables)


def sessions_frame(rows: list[dict], conventions: Conventions) -> pd.DataFrame:
    """The sessions table from summary rows (conventions in attrs and columns)."""
    frame = pd.DataFrame(rows)
    return with_conventions(frame, conventions)
