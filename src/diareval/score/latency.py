"""Latency of turns and labels, and speaker-count error.

- *Turn finalisation latency*: ``t_audio`` at the end-of-turn message (audio sent so far
  when it arrived) minus the end of the turn's last word. ``_wall`` uses ``t_wall``
  (session wall clock) instead; at real-time pacing the two agree up to network delay.
- *Label latency*: the audio time from which the label shown for the turn stayed equal
  to its final label (partials included; a SpeakerRevision that changes the label moves
  it to the revision's arrival), minus the end of the turn's last word. Negative when a
  partial already showed the final label before the turn ended. Undefined (NaN, with
  ``label_note``) for turns whose final label is unknown.
- *Speaker count error*: distinct known labels in the final hypothesis minus reference
  speakers with speech in the UEM, per session (and per ``max_speakers`` setting when the
  session table carries it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyannote.core import Annotation, Timeline

from diareval.score.der import Conventions, with_conventions
from diareval.score.hypothesis import SessionTurns, is_unknown
from diareval.score.stability import final_message_label


def turn_latency(session: SessionTurns, conventions: Conventions = Conventions()) -> pd.DataFrame:
    """One row per final turn with words: finalisation and label latency (seconds)."""
    rows = []
    for turn in session.turns:
        if not turn.words:
            continue
        end = turn.end
        final = turn.label
        shown = list(turn.partial_labels) + [(turn.t_audio, final_message_label(turn))]
        settled = None
        note = ""
        if is_unknown(final):
            note = "final label unknown"
        elif turn.revised and turn.label != turn.original_label:
            settled = turn.revised_at
        else:
            for t, label in reversed(shown):
                if label != final:
                    break
                settled = t
        rows.append(dict(turn_order=turn.turn_order, end=end, t_audio_final=turn.t_audio,
                         finalisation_latency=turn.t_audio - end,
                         finalisation_latency_wall=turn.t_wall - end,
                         label_settled_at=settled if settled is not None else np.nan,
                         label_latency=settled - end if settled is not None else np.nan,
                         label_note=note))
    frame = pd.DataFrame(rows, columns=["turn_order", "end", "t_audio_final",
                                        "finalisation_latency", "finalisation_latency_wall",
                                        "label_settled_at", "label_latency", "label_note"])
    return with_conventions(frame, conventions)


def latency_summary(latency: pd.DataFrame) -> dict:
    """Median and 90th percentile of both latencies (NaN only when there is no turn)."""
    out = {"n_turns_latency": int(len(latency))}
    for column in ("finalisation_latency", "label_latency"):
        values = latency[column].dropna().to_numpy() if len(latency) else np.array([])
        out[f"{column}_median"] = float(np.median(values)) if len(values) else np.nan
        out[f"{column}_p90"] = float(np.percentile(values, 90)) if len(values) else np.nan
    return out


def speaker_count(reference: Annotation, hypothesis: Annotation, uem: Timeline) -> dict:
    """Known hypothesis labels and reference speakers inside the UEM, and the error."""
    from diareval.score.hypothesis import UNKNOWN_LABEL, is_unknown_label
    ref = reference.crop(uem, mode="intersection") if uem is not None else reference
    hyp = hypothesis.crop(uem, mode="intersection") if uem is not None else hypothesis
    n_ref = len(ref.labels())
    n_hyp = len([h for h in hyp.labels() if not is_unknown_label(h) and h != UNKNOWN_LABEL])
    return dict(n_ref_speakers=n_ref, n_hyp_speakers=n_hyp, speaker_count_error=n_hyp - n_ref)


def _setting(value) -> str:
    """A max_speakers setting as text: "none" when not sent, else the integer."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "none"
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return str(value)


def speaker_count_by_setting(sessions: pd.DataFrame, by: str = "max_speakers") -> pd.DataFrame:
    """Mean (signed) and mean absolute speaker-count error and share exact, per setting."""
    if sessions.empty:
        return pd.DataFrame(columns=[by, "sessions", "mean_error", "mean_abs_error", "exact"])
    work = sessions.assign(_abs=sessions["speaker_count_error"].abs(),
                           _exact=(sessions["speaker_count_error"] == 0).astype(float),
                           _key=[_setting(v) for v in sessions[by]])
    out = work.groupby("_key").agg(sessions=("speaker_count_error", "size"),
                                   mean_error=("speaker_count_error", "mean"),
                                   mean_abs_error=("_abs", "mean"), exact=("_exact", "mean"))
    return out.reset_index().rename(columns={"_key": by})
