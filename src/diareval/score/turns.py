"""Per-turn and per-reference-segment tables, and their breakdowns.

One row per final Turn (with at least one word): when it was said, its index in the
session, word count, duration, overlap ratio (share of its word time where >= 2
reference speakers talk), true speaker, label, mapped label, correct, unknown.

- *Word time* is the union of the turn's word intervals inside the UEM. Zero-length words
  (``start == end``, common on Universal-Streaming's 80 ms grid) count in ``word_count`` and
  add no word time; a turn made only of them is judged at its words' instants (the
  reference speakers talking there, inside the UEM), so it is scored, not dropped.
- *True speaker*: the reference speaker with the most speech inside the word time;
  none = a phantom turn (no reference speech under it). Two speakers covering the
  whole word time (a short turn inside someone's long turn) tie; the tie goes to the
  one with less speech in the 2 s around the turn (the backchannel's own speaker,
  not the long talker around it).
- *Mapped label*: the turn's label through the session's optimal DER mapping (the
  same mapping :func:`diareval.score.der.der` uses, under the same conventions).
- *correct*: mapped label == true speaker. Undefined (<NA>) for phantom turns and
  turns outside the UEM; for unknown turns False under the "error" policy, <NA>
  under "nonspeech", and by the mapping under "label".

Per-turn accuracy ignores the collar and ``skip_overlap`` (the overlap ratio column
carries overlap instead); the conventions columns say which mapping was used.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from pyannote.core import Annotation, Timeline

from diareval.constants import UNKNOWN, WORD_COUNT_BINS
from diareval.score.der import Conventions, with_conventions
from diareval.score.hypothesis import Turn, is_unknown

DURATION_BINS = ((0.0, 0.5, "<0.5 s"), (0.5, 1.0, "0.5-1 s"), (1.0, 2.0, "1-2 s"),
                 (2.0, 5.0, "2-5 s"), (5.0, 10.0, "5-10 s"), (10.0, math.inf, "10+ s"))
OVERLAP_BINS = ("0", "<=10%", "10-30%", ">30%")
TURN_INDEX_BINS = ((1, 1, "1"), (2, 2, "2"), (3, 3, "3"), (4, 5, "4-5"), (6, 10, "6-10"),
                   (11, 20, "11-20"), (21, math.inf, "21+"))
TIE_WINDOW = 2.0  # s around a turn used to break true-speaker ties


def word_count_bin(count: int) -> str:
    """"1", "2", "3-5", "6-10", "11-20" or "21+"."""
    for low, high, name in WORD_COUNT_BINS:
        if low <= count <= high:
            return name
    return "0"


def duration_bin(seconds: float) -> str:
    """Duration bucket: "<0.5 s", "0.5-1 s", "1-2 s", "2-5 s", "5-10 s", "10+ s"."""
    for low, high, name in DURATION_BINS:
        if low <= seconds < high:
            return name
    return DURATION_BINS[-1][2]


def overlap_bin(ratio: float) -> str:
    """"0", "<=10%", "10-30%" or ">30%" (the share of word time in overlapped speech)."""
    if ratio <= 0:
        return "0"
    if ratio <= 0.10:
        return "<=10%"
    if ratio <= 0.30:
        return "10-30%"
    return ">30%"


def turn_index_bin(index: int) -> str:
    """1-based turn index bucket: "1", "2", "3", "4-5", "6-10", "11-20", "21+"."""
    for low, high, name in TURN_INDEX_BINS:
        if low <= index <= high:
            return name
    return "21+"


class ReferenceActivity:
    """Integrals of reference activity inside the UEM, evaluated anywhere by interpolation.

    ``speech(r, a, b)`` = seconds of [a, b] inside the UEM where speaker r talks;
    ``overlap(a, b)`` = seconds where >= 2 speakers talk; ``scored(a, b)`` = seconds
    inside the UEM. Exact: the integrals are piecewise linear between boundaries.
    """

    def __init__(self, reference: Annotation, uem: Timeline):
        self.labels = sorted(reference.labels(), key=str)
        index = {label: i for i, label in enumerate(self.labels)}
        tracks = [(s.start, s.end, index[label])
                  for s, _, label in reference.itertracks(yield_label=True)]
        uem_segments = [(s.start, s.end) for s in uem] if uem is not None else []
        points = [t for s, e, _ in tracks for t in (s, e)] + \
                 [t for s, e in uem_segments for t in (s, e)]
        bounds = np.unique(np.asarray(points + [0.0], dtype=float))
        if len(bounds) < 2:
            bounds = np.array([0.0, 1.0])
        n = len(bounds)
        counts = np.zeros((n, max(len(self.labels), 1)), dtype=np.int64)
        inside = np.zeros(n, dtype=np.int64)
        for s, e, i in tracks:
            counts[np.searchsorted(bounds, s), i] += 1
            counts[np.searchsorted(bounds, e), i] -= 1
        for s, e in uem_segments:
            inside[np.searchsorted(bounds, s)] += 1
            inside[np.searchsorted(bounds, e)] -= 1
        active = np.cumsum(counts, axis=0)[:-1, :len(self.labels)] > 0
        scored = np.diff(bounds) * (np.cumsum(inside)[:-1] > 0)
        self.bounds = bounds
        zero = np.zeros((1, active.shape[1]))
        self._speech = np.vstack([zero, np.cumsum(active * scored[:, None], axis=0)])
        self._overlap = np.concatenate([[0.0], np.cumsum((active.sum(axis=1) >= 2) * scored)])
        self._scored = np.concatenate([[0.0], np.cumsum(scored)])

    def _integral(self, table: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        return np.interp(ends, self.bounds, table) - np.interp(starts, self.bounds, table)

    def speech_each(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """(len(starts), n_speakers): speech of every speaker inside each interval."""
        if not self.labels:
            return np.zeros((len(starts), 0))
        return np.stack([self._integral(self._speech[:, i], starts, ends)
                         for i in range(len(self.labels))], axis=-1)

    def speech(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """(1, n_speakers): speech of every speaker summed over the intervals."""
        return self.speech_each(starts, ends).sum(axis=0, keepdims=True)

    def overlap_each(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Seconds of overlapped speech inside each interval."""
        return self._integral(self._overlap, starts, ends)

    def scored_each(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Seconds of each interval inside the UEM."""
        return self._integral(self._scored, starts, ends)

    def active_at(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n_points, n_speakers) who talks at each instant, and whether each is in the UEM
        (an instant on a boundary belongs to the interval that starts there)."""
        index = np.clip(np.searchsorted(self.bounds, points, side="right") - 1, 0,
                        len(self.bounds) - 2)
        inside = (self._scored[index + 1] - self._scored[index]) > 0
        talking = (self._speech[index + 1] - self._speech[index]) > 0
        return talking & inside[:, None], inside

    def overlap(self, starts: np.ndarray, ends: np.ndarray) -> float:
        """Seconds of overlapped speech inside the intervals."""
        return float(self._integral(self._overlap, starts, ends).sum())

    def scored(self, starts: np.ndarray, ends: np.ndarray) -> float:
        """Seconds of the intervals inside the UEM."""
        return float(self._integral(self._scored, starts, ends).sum())


def _union(intervals: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return (np.array([m[0] for m in merged], dtype=float),
            np.array([m[1] for m in merged], dtype=float))


def turn_label(turn: Turn) -> str | None:
    """The turn's label: ``speaker_label``, or, when its words carry their own speakers, the
    speaker with the most word time (ties to the turn's label)."""
    if not any(w.speaker is not None for w in turn.words):
        return turn.label
    time: dict[str | None, float] = {}
    timed = any(w.end > w.start for w in turn.words)  # zero-length words only: count words
    for w in turn.words:
        speaker = w.speaker if w.speaker is not None else turn.label
        time[speaker] = time.get(speaker, 0.0) + (max(w.end - w.start, 0.0) if timed else 1.0)
    best = max(time.values())
    if time.get(turn.label, -1.0) == best:
        return turn.label
    return max(time, key=lambda k: (time[k], str(k)))


def turn_table(turns: Sequence[Turn], reference: Annotation, uem: Timeline, mapping: dict,
               conventions: Conventions = Conventions()) -> pd.DataFrame:
    """One row per final turn with words (see the module docstring for every column)."""
    activity = ReferenceActivity(reference, uem)
    rows = []
    index = 0
    for turn in turns:
        if not turn.words:
            continue
        index += 1
        starts, ends = _union([(w.start, w.end) for w in turn.words])
        if float((ends - starts).sum()) > 0:
            word_time = activity.scored(starts, ends)
            speech = activity.speech(starts, ends)[0]
            overlap = activity.overlap(starts, ends)
            weight = word_time
        else:  # zero-length words only: judged at the words' instants (weights = counts)
            talking, inside = activity.active_at(starts)
            word_time = 0.0
            speech = talking.sum(axis=0).astype(float)
            overlap = float((talking.sum(axis=1) >= 2).sum())
            weight = float(inside.sum())
        true_speaker, true_share = None, 0.0
        if len(speech) and speech.max() > 1e-9:
            best = speech.max()
            tied = [i for i in range(len(speech)) if speech[i] >= best - 1e-3]
            if len(tied) > 1:
                around = activity.speech(np.array([turn.start - TIE_WINDOW]),
                                         np.array([turn.end + TIE_WINDOW]))[0]
                tied.sort(key=lambda i: (around[i] - speech[i], activity.labels[i]))
            true_speaker = activity.labels[tied[0]]
            true_share = float(speech[tied[0]] / weight) if weight > 0 else 0.0
        label = turn_label(turn)
        unknown = is_unknown(label)
        if unknown:
            key = UNKNOWN if conventions.unknown == "label" else None
            mapped = mapping.get(key) if key else None
        else:
            mapped = mapping.get(label)
        phantom = true_speaker is None
        if weight <= 0 or phantom or (unknown and conventions.unknown == "nonspeech"):
            correct = pd.NA
        elif unknown and conventions.unknown == "error":
            correct = False
        else:
            correct = mapped is not None and mapped == true_speaker
        rows.append(dict(
            turn_order=turn.turn_order, turn_index=index, start=turn.start, end=turn.end,
            duration=turn.end - turn.start, word_count=len(turn.words), word_time=word_time,
            overlap_ratio=overlap / weight if weight > 0 else 0.0,
            true_speaker=true_speaker, true_share=true_share,
            label=label, mapped_label=mapped, unknown=unknown, phantom=phantom,
            correct=correct, revised=turn.revised, t_audio_final=turn.t_audio,
            t_wall_final=turn.t_wall))
    columns = ["turn_order", "turn_index", "start", "end", "duration", "word_count", "word_time",
               "overlap_ratio", "true_speaker", "true_share", "label", "mapped_label", "unknown",
               "phantom", "correct", "revised", "t_audio_final", "t_wall_final"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["correct"] = frame["correct"].astype("boolean")
    frame["word_count_bin"] = [word_count_bin(n) for n in frame["word_count"]]
    frame["duration_bin"] = [duration_bin(d) for d in frame["duration"]]
    frame["overlap_bin"] = [overlap_bin(r) for r in frame["overlap_ratio"]]
    frame["turn_index_bin"] = [turn_index_bin(k) for k in frame["turn_index"]]
    return with_conventions(frame, conventions)


BIN_ORDER = {
    "word_count_bin": [b[2] for b in WORD_COUNT_BINS],
    "duration_bin": [b[2] for b in DURATION_BINS],
    "overlap_bin": list(OVERLAP_BINS),
    "turn_index_bin": [b[2] for b in TURN_INDEX_BINS],
}


def turn_counts(table: pd.DataFrame, by: str, session: str = "uri") -> pd.DataFrame:
    """Per (session, bucket) counts: turns, scored (correct defined), correct, unknown, phantom.

    The unit :mod:`diareval.score.bootstrap` resamples; also the input of :func:`breakdown`.
    """
    keys = [session, by] if session in table.columns else [by]
    work = table.assign(
        n_turns=1, n_scored=table["correct"].notna().astype(int),
        n_correct=table["correct"].fillna(False).astype(bool).astype(int),
        n_unknown=table["unknown"].astype(int), n_phantom=table["phantom"].astype(int))
    return work.groupby(keys, observed=True, sort=False)[
        ["n_turns", "n_scored", "n_correct", "n_unknown", "n_phantom"]].sum().reset_index()


def breakdown(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """Accuracy, unknown rate and phantom rate per bucket of column ``by`` (pooled over
    sessions: accuracy = correct / scored turns). Empty buckets are absent; a bucket whose
    turns are all unscored has accuracy NaN with ``note`` saying so."""
    counts = turn_counts(table, by, session="__none__")
    counts = counts.groupby(by, sort=False)[["n_turns", "n_scored", "n_correct", "n_unknown",
                                             "n_phantom"]].sum().reset_index()
    order = BIN_ORDER.get(by)
    if order:
        counts[by] = pd.Categorical(counts[by], categories=order, ordered=True)
        counts = counts.sort_values(by).reset_index(drop=True)
    else:
        counts = counts.sort_values(by).reset_index(drop=True)
    counts["accuracy"] = np.where(counts["n_scored"] > 0,
                                  counts["n_correct"] / counts["n_scored"].where(
                                      counts["n_scored"] > 0, 1), np.nan)
    counts["unknown_rate"] = counts["n_unknown"] / counts["n_turns"]
    counts["phantom_rate"] = counts["n_phantom"] / counts["n_turns"]
    counts["note"] = np.where(counts["n_scored"] > 0, "", "no scored turn in this bucket")
    counts.attrs.update(table.attrs)
    for column in [c for c in table.columns if c.startswith("conv_")]:
        counts[column] = table[column].iloc[0] if len(table) else None
    return counts


def reference_segment_table(reference: Annotation, hypothesis: Annotation, uem: Timeline,
                            mapping: dict, conventions: Conventions = Conventions()
                            ) -> pd.DataFrame:
    """One row per reference segment (continuous speech of one speaker: same-speaker
    segments that touch or overlap merged): its scored time, the part of it the hypothesis
    labels with a label mapped to that speaker (``correct_time``), ``correct_share`` and
    ``correct`` (share >= 0.5), and the overlap ratio."""
    inverse = {r: h for h, r in mapping.items()}
    activity = ReferenceActivity(reference, uem)
    rows = []
    for speaker in sorted(reference.labels(), key=str):
        runs = reference.label_timeline(speaker).support()
        starts = np.array([s.start for s in runs], dtype=float)
        ends = np.array([s.end for s in runs], dtype=float)
        correct = np.zeros(len(starts))
        if speaker in inverse:
            # inside a run the speaker talks throughout, so the mapped label's speech inside
            # the run (and the UEM) is exactly the correctly labelled time
            mapped = Annotation()
            for segment in hypothesis.label_timeline(inverse[speaker]).support():
                mapped[segment] = "h"
            if len(mapped):
                correct = ReferenceActivity(mapped, uem).speech_each(starts, ends)[:, 0]
        scored = activity.scored_each(starts, ends)
        overlap = activity.overlap_each(starts, ends)
        for s, e, c, sc, ov in zip(starts, ends, correct, scored, overlap):
            rows.append(dict(speaker=speaker, start=s, end=e, duration=e - s, scored_time=sc,
                             correct_time=float(c),
                             correct_share=float(c / sc) if sc > 0 else np.nan,
                             correct=bool(c / sc >= 0.5) if sc > 0 else pd.NA,
                             overlap_ratio=float(ov / sc) if sc > 0 else 0.0))
    frame = pd.DataFrame(rows, columns=["speaker", "start", "end", "duration", "scored_time",
                                        "correct_time", "correct_share", "correct",
                                        "overlap_ratio"])
    frame["correct"] = frame["correct"].astype("boolean")
    frame["duration_bin"] = [duration_bin(d) for d in frame["duration"]]
    return with_conventions(frame, conventions)
