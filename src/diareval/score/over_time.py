"""DER over session time, exactly, from elementary intervals.

Recomputing DER with pyannote.metrics on every prefix ``[0, t]`` costs one full DER
call per time step (~3600 per hour of audio at 1 s steps). Instead:

1. Cut the time axis at every reference, hypothesis and scored-region boundary and at
   every time step: inside each *elementary interval* the sets of active reference and
   hypothesis speakers are constant.
2. For each interval ``i`` with scored duration ``d`` (0 outside the scored region: the
   UEM minus collars and, if asked, overlap, as :func:`diareval.score.der.prepare` makes
   it), duration ``d_map`` inside the region the mapping is computed on (the whole UEM by
   default, as md-eval-22.pl does), ``NR`` reference and ``NH`` hypothesis speakers:
   reference speech ``NR*d``, miss ``max(0, NR-NH)*d``, false alarm ``max(0, NH-NR)*d``,
   and ``min(NR, NH)*d`` = correct + confusion. The co-occurrence of hypothesis label
   ``h`` and reference label ``r`` is ``nh*nr*d_map`` (what ``Annotation.__mul__`` sums,
   the matrix pyannote's Hungarian mapper maximises); the speech a mapping ``h -> r``
   makes correct is ``min(nh, nr)*d`` (pyannote's ``LabelMatcher``).
3. Accumulate these once (cumulative sums over intervals). The DER of any span
   ``[a, b]`` between two grid times is a difference of cumulative sums plus one small
   Hungarian solve on the (hypothesis x reference) co-occurrence matrix.

That is the same arithmetic pyannote.metrics does on the cropped span, so the
results agree to floating-point rounding (tests/test_over_time.py checks every
prefix against pyannote on random annotations). A prefix ``[0, t]`` means the scored
region cut at ``t``: the reference is not cut (cutting it would add a segment
boundary, and a collar, at ``t``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyannote.core import Annotation, Timeline
from scipy.optimize import linear_sum_assignment

from diareval.errors import ConfigError
from diareval.score.der import Conventions, DERResult, JERResult, prepare, with_conventions
from diareval.score.hypothesis import is_unknown_label



def _tracks(annotation: Annotation, labels: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = {label: i for i, label in enumerate(labels)}
    starts, ends, which = [], [], []
    for segment, _, label in annotation.itertracks(yield_label=True):
        starts.append(segment.start)
        ends.append(segment.end)
        which.append(index[label])
    return (np.asarray(starts, dtype=float), np.asarray(ends, dtype=float),
            np.asarray(which, dtype=int))


def _activity(bounds: np.ndarray, starts: np.ndarray, ends: np.ndarray, which: np.ndarray,
              n_labels: int) -> np.ndarray:
    """(n_intervals, n_labels) count of tracks of each label active in each interval."""
    counts = np.zeros((len(bounds), max(n_labels, 1)), dtype=np.int64)
    if len(starts):
        np.add.at(counts, (np.searchsorted(bounds, starts), which), 1)
        np.add.at(counts, (np.searchsorted(bounds, ends), which), -1)
    return np.cumsum(counts, axis=0)[:-1, :n_labels]


@dataclass(frozen=True)
class Mapping:
    """One optimal mapping: hypothesis label -> reference label, and the speech it makes correct."""

    pairs: tuple[tuple[str, str], ...]
    correct: float

    def as_dict(self) -> dict:
        """``{hypothesis label: reference label}``."""
        return dict(self.pairs)

    def __str__(self) -> str:
        return ",".join(f"{h}->{r}" for h, r in self.pairs)


def solve_mapping(cooc: np.ndarray, gain: np.ndarray, hyp_labels, ref_labels) -> Mapping:
    """The optimal mapping of a (hypothesis x reference) co-occurrence matrix (pyannote's
    ``HungarianMapper``: maximise co-occurrence, keep only pairs that co-occur) and the speech
    it makes correct (the ``gain`` of its pairs)."""
    if cooc.size == 0:
        return Mapping((), 0.0)
    rows, cols = linear_sum_assignment(-cooc)
    keep = cooc[rows, cols] > 0
    rows, cols = rows[keep], cols[keep]
    pairs = tuple((hyp_labels[h], ref_labels[r]) for h, r in zip(rows, cols))
    return Mapping(pairs, float(gain[rows, cols].sum()))


class ElementaryIntervals:
    """Cumulative DER components over a time grid of one session (see the module docstring).

    ``grid`` are the times at which spans may start or end (0 and the session end are
    added). Build once, then :meth:`span` / :meth:`solve` any ``[grid[a], grid[b]]``.
    """

    def __init__(self, reference: Annotation, hypothesis: Annotation, uem: Timeline,
                 conventions: Conventions = Conventions(), grid=()):
        if uem is None:
            raise ConfigError("DER over time needs the scored region (uem)")
        self.conventions = conventions
        reference, hypothesis, scored, mapping_region = prepare(reference, hypothesis, uem,
                                                                conventions)
        self.ref_labels = sorted(reference.labels(), key=str)
        self.hyp_labels = sorted(hypothesis.labels(), key=str)
        self.known = np.array([not is_unknown_label(h) for h in self.hyp_labels], dtype=bool)
        rs, re_, rw = _tracks(reference, self.ref_labels)
        hs, he, hw = _tracks(hypothesis, self.hyp_labels)
        us = np.array([s.start for s in scored], dtype=float)
        ue = np.array([s.end for s in scored], dtype=float)
        ms = np.array([s.start for s in mapping_region], dtype=float)
        me = np.array([s.end for s in mapping_region], dtype=float)
        grid = np.asarray(sorted(set(float(t) for t in grid) | {0.0}), dtype=float)
        bounds = np.unique(np.concatenate([rs, re_, hs, he, us, ue, ms, me, grid]))
        if len(bounds) < 2:
            bounds = np.array([0.0, 0.0])
        self.bounds = bounds
        nr = _activity(bounds, rs, re_, rw, len(self.ref_labels))
        nh = _activity(bounds, hs, he, hw, len(self.hyp_labels))
        inside = _activity(bounds, us, ue, np.zeros(len(us), dtype=int), 1)[:, 0] > 0
        d = np.diff(bounds) * inside
        # the mapping sees the mapping region (the whole UEM, md-eval; or the scored region)
        d_map = np.diff(bounds) * (_activity(bounds, ms, me, np.zeros(len(ms), dtype=int),
                                             1)[:, 0] > 0)
        NR, NH = nr.sum(axis=1), nh.sum(axis=1)
        self.nr, self.nh, self.d, self.d_map = nr, nh, d, d_map
        per_interval = np.stack([NR * d, np.maximum(NR - NH, 0) * d, np.maximum(NH - NR, 0) * d,
                                 np.minimum(NR, NH) * d, (nh[:, ~self.known].sum(axis=1)) * d,
                                 (NR >= 2) * d], axis=1)
        # cumulative sums with a leading zero: the sum over intervals [i, j) is C[j] - C[i]
        self._parts = np.vstack([np.zeros((1, per_interval.shape[1])),
                                 np.cumsum(per_interval, axis=0)])
        known_nh = nh[:, self.known]
        self.known_labels = [h for h, k in zip(self.hyp_labels, self.known) if k]
        cooc = known_nh[:, :, None] * nr[:, None, :] * d_map[:, None, None]
        gain = np.minimum(known_nh[:, :, None], nr[:, None, :]) * d[:, None, None]
        zero = np.zeros((1,) + cooc.shape[1:])
        self._cooc = np.concatenate([zero, np.cumsum(cooc, axis=0)])
        self._gain = np.concatenate([zero, np.cumsum(gain, axis=0)])
        self._ref_cum = np.vstack([np.zeros((1, nr.shape[1])),
                                   np.cumsum((nr > 0) * d[:, None], axis=0)])
        self._hyp_cum = np.vstack([np.zeros((1, known_nh.shape[1])),
                                   np.cumsum((known_nh > 0) * d[:, None], axis=0)])
        self.grid = grid
        self.end = float(bounds[-1])

    def index(self, t: float) -> int:
        """Interval index at time ``t`` (``t`` must be a grid time or a boundary)."""
        return int(np.searchsorted(self.bounds, t))

    def solve(self, cooc: np.ndarray, gain: np.ndarray) -> Mapping:
        """Optimal mapping for a co-occurrence matrix (pyannote HungarianMapper semantics)."""
        return solve_mapping(cooc, gain, self.known_labels, self.ref_labels)

    def apply(self, mapping: Mapping, gain: np.ndarray) -> float:
        """The speech ``mapping`` makes correct given a span's ``gain`` matrix."""
        h_index = {h: i for i, h in enumerate(self.known_labels)}
        r_index = {r: i for i, r in enumerate(self.ref_labels)}
        return float(sum(gain[h_index[h], r_index[r]] for h, r in mapping.pairs))

    def span(self, a: int, b: int):
        """(parts, cooc, gain) summed over intervals ``[a, b)``."""
        return (self._parts[b] - self._parts[a], self._cooc[b] - self._cooc[a],
                self._gain[b] - self._gain[a])

    @staticmethod
    def result(parts: np.ndarray, correct: float) -> DERResult:
        """A DERResult from span parts and the correct speech of a mapping."""
        total, miss, fa, matched, unknown, _ = parts
        # clip tiny negative rounding residue of cumulative differences
        confusion = max(matched - correct, 0.0)
        return DERResult(reference_speech=max(total, 0.0), correct=correct, miss=max(miss, 0.0),
                         false_alarm=max(fa, 0.0), confusion=confusion,
                         unknown_speech=max(unknown, 0.0), sessions=1)

    def ref_time(self, a: int, b: int) -> np.ndarray:
        """Scored speech time of each reference label in intervals ``[a, b)``."""
        return self._ref_cum[b] - self._ref_cum[a]

    def hyp_time(self, a: int, b: int) -> np.ndarray:
        """Scored speech time of each known hypothesis label in intervals ``[a, b)``."""
        return self._hyp_cum[b] - self._hyp_cum[a]

    def der_result(self) -> tuple[DERResult, Mapping]:
        """The whole session's DER components and optimal mapping: what
        :func:`diareval.score.der.der_and_mapping` computes with pyannote.metrics, from the
        same arithmetic (agrees to rounding; tests/test_over_time.py)."""
        parts, cooc, gain = self.span(0, len(self.d))
        mapping = self.solve(cooc, gain)
        return self.result(parts, mapping.correct), mapping

    def jer_result(self) -> JERResult:
        """The session's JER components as :func:`diareval.score.der.jer` computes them with
        pyannote's ``JaccardErrorRate``: known labels only, the mapping maximising the
        co-occurrence on the scored region, and per reference speaker with scored speech
        ``(|h| + |r| - 2|h & r|) / |h | r|`` (1 when unpaired)."""
        _, _, inter = self.span(0, len(self.d))  # labels are 0/1 per interval: |h & r|
        ref_time, hyp_time = self.ref_time(0, len(self.d)), self.hyp_time(0, len(self.d))
        present = np.flatnonzero(ref_time > 0)
        if not len(present):
            return JERResult(0.0, 0.0)
        error = np.ones(len(self.ref_labels))
        if inter.size:
            # pyannote pairs reference -> hypothesis on the (reference x hypothesis) matrix
            cols, rows = linear_sum_assignment(-inter[:, present].T)
            for r, h in zip(present[cols], rows):
                if inter[h, r] > 0:
                    union = ref_time[r] + hyp_time[h] - inter[h, r]
                    error[r] = (ref_time[r] + hyp_time[h] - 2 * inter[h, r]) / union
        return JERResult(speaker_error=float(error[present].sum()),
                         speaker_count=float(len(present)))

    def overlap_speech(self, a: int, b: int) -> float:
        """Scored duration with >= 2 reference speakers in intervals ``[a, b)``."""
        return float(self._parts[b, 5] - self._parts[a, 5])


def _intervals(reference, hypothesis, uem, conventions, grid, intervals):
    """``intervals`` if given (built with a grid holding every time in ``grid``), else new ones.

    Sharing one :class:`ElementaryIntervals` between the curve, the windows and the
    regions of a session saves building it (and merging the annotations) again."""
    if intervals is None:
        return ElementaryIntervals(reference, hypothesis, uem, conventions, grid=grid)
    if intervals.conventions != conventions:
        raise ConfigError("the shared intervals were built under other conventions")
    wanted = np.asarray(list(grid), dtype=float)
    index = np.clip(np.searchsorted(intervals.bounds, wanted), 0, len(intervals.bounds) - 1)
    missing = wanted[intervals.bounds[index] != wanted].tolist()
    if missing:
        raise ConfigError(f"the shared intervals lack grid times {missing[:3]}...")
    return intervals


def time_grid(end: float, step: float) -> np.ndarray:
    """``step, 2*step, ...`` up to ``end``, plus ``end`` itself (times are ``k*step``, not sums)."""
    if not (step > 0 and math.isfinite(step)):
        raise ConfigError(f"step must be a positive number of seconds, got {step!r}")
    count = int(math.floor(end / step + 1e-9))
    times = [k * step for k in range(1, count + 1)]
    if not times or end - times[-1] > 1e-9:
        times.append(end)
    return np.asarray(times, dtype=float)


def session_end(reference: Annotation, hypothesis: Annotation, uem: Timeline) -> float:
    """The end of session time: the end of the UEM (or of the annotations, if later)."""
    ends = [uem.extent().end if uem else 0.0]
    for annotation in (reference, hypothesis):
        if annotation:
            ends.append(annotation.get_timeline().extent().end)
    return float(max(ends))


def der_over_time(reference: Annotation, hypothesis: Annotation, uem: Timeline,
                  conventions: Conventions = Conventions(), step: float = 1.0,
                  end: float | None = None, intervals: ElementaryIntervals | None = None
                  ) -> pd.DataFrame:
    """Cumulative DER on ``[0, t]`` at ``t = step, 2*step, ..., end``.

    One row per ``t``: the prefix's components, ``der_prefix`` with the prefix's own
    optimal mapping (``mapping`` column, ``mapping_changed`` vs the previous step),
    ``der_final`` with the whole session's mapping, and the number of reference /
    (known) hypothesis speakers with scored speech so far. ``der_*`` is NaN while the
    prefix holds no reference speech (``note`` says so).
    """
    end = session_end(reference, hypothesis, uem) if end is None else float(end)
    times = time_grid(end, step)
    ei = _intervals(reference, hypothesis, uem, conventions, times, intervals)
    final_parts, final_cooc, final_gain = ei.span(0, len(ei.d))
    final = ei.solve(final_cooc, final_gain)
    # every prefix at once: cumulative sums at each step's boundary (the leading row is 0)
    b = np.searchsorted(ei.bounds, times)
    parts, cooc, gain = ei._parts[b], ei._cooc[b], ei._gain[b]
    h_index = {h: i for i, h in enumerate(ei.known_labels)}
    r_index = {r: i for i, r in enumerate(ei.ref_labels)}
    hf = [h_index[h] for h, _ in final.pairs]
    rf = [r_index[r] for _, r in final.pairs]
    correct_final = gain[:, hf, rf].sum(axis=1) if hf else np.zeros(len(times))
    owns = [ei.solve(cooc[k], gain[k]) for k in range(len(times))]
    correct_own = np.array([own.correct for own in owns], dtype=float)
    # as ElementaryIntervals.result: clip rounding residue, matched speech unclipped
    total, miss, fa, _, unknown = (np.maximum(parts[:, i], 0.0) for i in range(5))
    matched = parts[:, 3]
    confusion_own = np.maximum(matched - correct_own, 0.0)
    confusion_final = np.maximum(matched - correct_final, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        speech = np.where(total > 0, total, np.nan)
        der_prefix = (miss + fa + confusion_own) / speech
        der_final = (miss + fa + confusion_final) / speech
    previous = [None] + [own.pairs for own in owns[:-1]]
    frame = pd.DataFrame(dict(
        t=times.astype(float), reference_speech=total, miss=miss, false_alarm=fa,
        confusion_prefix=confusion_own, der_prefix=der_prefix, confusion_final=confusion_final,
        der_final=der_final, unknown_speech=unknown, mapping=[str(own) for own in owns],
        mapping_changed=[before is not None and own.pairs != before
                         for own, before in zip(owns, previous)],
        n_ref_speakers=((ei._ref_cum[b] - ei._ref_cum[0]) > 0).sum(axis=1).astype(int),
        n_hyp_speakers=((ei._hyp_cum[b] - ei._hyp_cum[0]) > 0).sum(axis=1).astype(int),
        n_mapped=[len(own.pairs) for own in owns],
        note=[DERResult(reference_speech=t_, false_alarm=f_).note if t_ <= 0 else ""
              for t_, f_ in zip(total, fa)]))
    frame.attrs["final_mapping"] = str(final)
    return with_conventions(frame, conventions)


def window_edges(end: float, window: float, step: float) -> tuple[list[float], list[float]]:
    """Window starts ``0, step, ...`` (before ``end``) and every start/end time."""
    if not (window > 0 and math.isfinite(window)):
        raise ConfigError(f"window must be a positive number of seconds, got {window!r}")
    if not (step > 0 and math.isfinite(step)):
        raise ConfigError(f"window step must be a positive number of seconds, got {step!r}")
    starts = [k * step for k in range(int(math.floor(end / step + 1e-9)) + 1)
              if k * step < end or k == 0]
    edges = sorted(set(starts) | {min(s + window, end) for s in starts})
    return starts, edges


def der_windows(reference: Annotation, hypothesis: Annotation, uem: Timeline,
                conventions: Conventions = Conventions(), window: float = 60.0,
                step: float = 10.0, end: float | None = None,
                intervals: ElementaryIntervals | None = None) -> pd.DataFrame:
    """DER on sliding windows ``[s, s + window]`` (``s = 0, step, ...``; the last windows are
    cut at the session end), each with its own optimal mapping (``der_window``) and with
    the whole session's mapping (``der_global``)."""
    end = session_end(reference, hypothesis, uem) if end is None else float(end)
    starts, edges = window_edges(end, window, step)
    ei = _intervals(reference, hypothesis, uem, conventions, edges, intervals)
    _, final_cooc, final_gain = ei.span(0, len(ei.d))
    final = ei.solve(final_cooc, final_gain)
    rows = []
    for s in starts:
        e = min(s + window, end)
        parts, cooc, gain = ei.span(ei.index(s), ei.index(e))
        own = ei.solve(cooc, gain)
        local = ei.result(parts, own.correct)
        global_ = ei.result(parts, ei.apply(final, gain))
        rows.append(dict(window_start=float(s), window_end=float(e),
                         reference_speech=local.reference_speech, miss=local.miss,
                         false_alarm=local.false_alarm, confusion_window=local.confusion,
                         der_window=local.der, confusion_global=global_.confusion,
                         der_global=global_.der, mapping=str(own), note=local.note))
    frame = pd.DataFrame(rows)
    frame.attrs["final_mapping"] = str(final)
    frame.attrs["window"] = window
    frame.attrs["step"] = step
    return with_conventions(frame, conventions)


def der_by_region(reference: Annotation, hypothesis: Annotation, uem: Timeline,
                  conventions: Conventions = Conventions(),
                  intervals: ElementaryIntervals | None = None) -> pd.DataFrame:
    """DER split into overlap (>= 2 reference speakers) and single-speaker regions.

    Both use the session's optimal mapping; the "single" region also holds the
    scored time without reference speech (where false alarms happen), so the two rows'
    components add up to the session's DER components.
    """
    ei = _intervals(reference, hypothesis, uem, conventions, (), intervals)
    _, cooc, gain = ei.span(0, len(ei.d))
    final = ei.solve(cooc, gain)
    overlap = ei.nr.sum(axis=1) >= 2
    rows = []
    for region, mask in (("overlap", overlap), ("single", ~overlap)):
        sub = _masked(ei, mask)
        parts, sub_cooc, sub_gain = sub
        result = ei.result(parts, ei.apply(final, sub_gain))
        row = result.as_row()
        row.update(region=region, scored_time=float(ei.d[mask].sum()))
        rows.append(row)
    frame = pd.DataFrame(rows)
    return with_conventions(frame, conventions)


def _masked(ei: ElementaryIntervals, mask: np.ndarray):
    """(parts, cooc, gain) summed over the intervals where ``mask`` holds."""
    parts = np.diff(ei._parts, axis=0)[mask].sum(axis=0)
    cooc = np.diff(ei._cooc, axis=0)[mask].sum(axis=0)
    gain = np.diff(ei._gain, axis=0)[mask].sum(axis=0)
    return parts, cooc, gain


def session_mapping(reference: Annotation, hypothesis: Annotation, uem: Timeline,
                    conventions: Conventions = Conventions()) -> Mapping:
    """The session's optimal mapping (known labels only) and the speech it makes correct."""
    ei = ElementaryIntervals(reference, hypothesis, uem, conventions)
    _, cooc, gain = ei.span(0, len(ei.d))
    return ei.solve(cooc, gain)
