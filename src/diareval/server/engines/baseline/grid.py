"""The session's speaker-activity grid: who the windows say is speaking, per 20 ms cell.

Every diarization window (``diarizer.Diarizer.step``) adds its local speakers' activity,
mapped to global speakers, to the cells it covers, weighted by a Hamming window over
its span (diart's aggregation). Two sums are kept per global speaker:

- ``act``: the Hamming-weighted activity of every window (``weight`` holds the weights),
  i.e. how active each speaker is in a cell, averaged over the windows that saw it;
- ``evidence``: the activity of a local speaker only over the span its embedding's
  audio came from. A window maps each local speaker to a global one from an embedding
  of its most recent speech, so the mapping is only known to hold there: on far-field
  audio segmentation-3.0 sometimes gives two real speakers one local track, and then
  the whole window would otherwise take the label of whoever spoke last.

:meth:`SpeakerGrid.speaker_at` names a word's speaker: among the speakers active
enough over the word (``evidence_floor`` times the most active one's mean activity),
the one with most evidence; where no window's embedding covered the word, the most
active one. ``evidence_floor=None`` gives the most active one always (the engine's
live words; its end-of-stream revision uses the evidence).
"""

from __future__ import annotations

import numpy as np

GRID = 0.02  # seconds per cell


class SpeakerGrid:
    """Per-cell sums of mapped speaker activity for up to ``n_speakers`` global speakers."""

    def __init__(self, n_speakers: int, evidence_floor: float | None = 0.25, origin: int = 0):
        """``evidence_floor``: share of the top mean activity a speaker needs for its
        evidence to count over a word; None ignores the evidence (activity only).
        ``origin``: the first cell the grid holds (cells are absolute; a grid of the recent
        windows only, e.g. the live re-clustering's, starts there instead of at cell 0, so
        it costs the same at any point of a long session). Cells before it read as
        covered by no window."""
        self.n_speakers = n_speakers
        self.evidence_floor = evidence_floor
        self.origin = int(origin)
        self.act = np.zeros((0, n_speakers), dtype=np.float32)
        self.evidence = np.zeros((0, n_speakers), dtype=np.float32)
        self.weight = np.zeros(0, dtype=np.float32)
        self.speech = np.zeros(0, dtype=np.float32)  # weighted sums of local speech activity

    @property
    def end(self) -> int:
        """One past the last cell held (absolute)."""
        return self.origin + len(self.weight)

    def _ensure(self, cells: int) -> None:
        """Room for the cells up to ``cells`` (counted from ``origin``)."""
        if cells > len(self.weight):
            grow = max(cells, 2 * len(self.weight), 500) - len(self.weight)
            self.act = np.vstack([self.act, np.zeros((grow, self.n_speakers), np.float32)])
            self.evidence = np.vstack([self.evidence, np.zeros((grow, self.n_speakers), np.float32)])
            self.speech = np.concatenate([self.speech, np.zeros(grow, np.float32)])
            self.weight = np.concatenate([self.weight, np.zeros(grow, np.float32)])

    def reset(self) -> None:
        """Forget every window (the end-of-stream revision adds them again, re-mapped)."""
        for array in (self.act, self.evidence, self.weight, self.speech):
            array[:] = 0

    def add(self, c0: int, local: np.ndarray, weights: np.ndarray, mapping: dict,
            sourced: np.ndarray) -> None:
        """Add one window: ``local`` (cells, local speakers) activity from cell ``c0``,
        ``weights`` per cell, ``mapping`` {local speaker: global speaker}, ``sourced``
        (cells, local speakers) True where that speaker's embedding audio lies."""
        if c0 < self.origin:
            raise ValueError(f"window from cell {c0} before the grid's origin {self.origin}")
        c0 -= self.origin
        c1 = c0 + len(local)
        self._ensure(c1)
        self.weight[c0:c1] += weights
        self.speech[c0:c1] += weights * np.clip(local.sum(axis=1), 0.0, 1.0)
        for k, g in mapping.items():
            self.act[c0:c1, g] += weights * local[:, k]
            self.evidence[c0:c1, g] += local[:, k] * sourced[:, k]

    def add_speech(self, c0: int, speech: np.ndarray, weights: np.ndarray) -> None:
        """Add one window's speech activity only (no speakers), from cell ``c0``."""
        if c0 < self.origin:
            raise ValueError(f"window from cell {c0} before the grid's origin {self.origin}")
        c0 -= self.origin
        c1 = c0 + len(speech)
        self._ensure(c1)
        self.weight[c0:c1] += weights
        self.speech[c0:c1] += weights * np.clip(speech, 0.0, 1.0)

    def covered(self, c0: int, c1: int) -> np.ndarray:
        """Bool per cell of [c0, c1): some window was added there."""
        cells = np.arange(c0, c1) - self.origin
        out = np.zeros(len(cells), dtype=bool)
        inside = (cells >= 0) & (cells < len(self.weight))
        out[inside] = self.weight[cells[inside]] > 0
        return out

    def speech_cells(self, c0: int, c1: int, threshold: float) -> np.ndarray:
        """Bool per cell of [c0, c1): the windows' mean local speech is >= ``threshold``."""
        out = np.zeros(max(0, c1 - c0), dtype=bool)
        cells = np.arange(c0, c1) - self.origin
        inside = (cells >= 0) & (cells < len(self.weight))
        w = self.weight[cells[inside]]
        out[inside] = (w > 0) & (self.speech[cells[inside]] >= threshold * np.maximum(w, 1e-9))
        return out

    def mean_activity(self, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean activity per cell of [c0, c1) and speaker (cells x speakers; 0 where no
        window was added), and whether any window covered each cell."""
        out = np.zeros((max(0, c1 - c0), self.n_speakers), dtype=np.float32)
        covered = np.zeros(len(out), dtype=bool)
        cells = np.arange(c0, c1) - self.origin
        inside = (cells >= 0) & (cells < len(self.weight))
        w = self.weight[cells[inside]]
        covered[inside] = w > 0
        out[inside] = self.act[cells[inside]] / np.maximum(w, 1e-9)[:, None]
        return out, covered

    def active_until(self, speaker: int, t: float, direction: int, limit: float,
                     threshold: float, overlap: bool = False) -> float:
        """The time (s) up to which ``speaker`` stays active from ``t`` on, going back
        (``direction`` -1) or forward (+1), at most ``limit`` s: the cells where its
        mean activity over the windows is at least ``threshold`` (with ``overlap``, and
        another speaker's too), contiguous from ``t``."""
        n, c = int(round(limit / GRID)), int(round(t / GRID))
        c0, c1 = (max(0, c - n), c) if direction < 0 else (c, min(self.end, c + n))
        if n <= 0 or c1 <= c0:
            return t
        activity, covered = self.mean_activity(c0, c1)
        on = covered & (activity[:, speaker] >= threshold)
        if overlap:
            on &= (np.delete(activity, speaker, axis=1) >= threshold).any(axis=1)
        if direction < 0:
            on = on[::-1]
        run = len(on) if on.all() else int(np.argmin(on))
        if run == 0:
            return t
        return (c - run) * GRID if direction < 0 else (c + run) * GRID

    def speaker_at(self, start: float, end: float):
        """The global speaker of a word over [start, end] s (see the module docstring),
        widened by 0.25 then 0.75 s if no window saw speech there; None if none did."""
        o = self.origin  # cells before it hold no window: clip there
        c0 = max(o, int(start / GRID)) - o
        c1 = min(self.end, int(np.ceil(end / GRID)) + 1) - o
        weight = self.weight[c0:c1].sum() if c1 > c0 else 0.0
        if self.evidence_floor is not None and weight > 0:
            votes = self.evidence[c0:c1].sum(axis=0)
            if votes.max() >= 1.0:  # at least one cell's worth of evidence
                mean = self.act[c0:c1].sum(axis=0) / weight
                votes = np.where(mean >= self.evidence_floor * mean.max(), votes, 0.0)
                if votes.max() > 0:
                    return int(np.argmax(votes))
        for pad in (0.0, 0.25, 0.75):
            c0 = max(o, int((start - pad) / GRID)) - o
            c1 = min(self.end, int(np.ceil((end + pad) / GRID)) + 1) - o
            if c1 <= c0:
                continue
            w = self.weight[c0:c1]
            if w.sum() <= 0:
                continue
            mean = self.act[c0:c1].sum(axis=0) / w.sum()
            best = int(np.argmax(mean))
            if mean[best] >= 0.1:
                return best
        return None
