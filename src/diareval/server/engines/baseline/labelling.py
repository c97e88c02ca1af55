"""Which global speaker said each word, and the word extents that follow from it.

Each word gets the global speaker most active over its span in a grid (``grid``; with
``live_recluster`` a grid of the recent windows re-mapped by re-clustering the session so
far, ``recluster``); words nobody was found for take their neighbours' speaker, short
flickers join the runs around them (:func:`word_speakers`); where consecutive words
change speaker the change moves to where the grid's activity of the two crosses
(:func:`refine_changes`); the turn gets the speaker with most word time
(:func:`turn_speaker`); a turn with under ``unknown_below`` s of speech is unknown. The
outer words of each run of one speaker's words then stretch over the grid cells where
that speaker and another one are active at once (:func:`grow_runs`): Whisper gives one
word stream, and this is how the words come to hold overlapped speech. While a turn is
spoken, :func:`speaker_change` finds where its speaker changes without a pause on the
online grid (``change_min_run`` s of each side), and the engine ends the turn there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from diareval.constants import SAMPLE_RATE
from diareval.server.engines.baseline import recluster
from diareval.server.engines.baseline.buffer import AudioBuffer
from diareval.server.engines.baseline.config import MAX_LIVE_POINTS, BaselineConfig
from diareval.server.engines.baseline.diarizer import Diarizer
from diareval.server.engines.baseline.grid import GRID, SpeakerGrid
from diareval.server.engines.baseline.sliding import relabel
from diareval.server.engines.baseline.words import Word


def speaker_runs(speakers: Sequence) -> list[tuple[int, int, object]]:
    """Maximal runs of equal consecutive speakers: (first index, last index, speaker)."""
    runs: list[list] = []
    for i, s in enumerate(speakers):
        if runs and runs[-1][2] == s:
            runs[-1][1] = i
        else:
            runs.append([i, i, s])
    return [tuple(run) for run in runs]


def _is_speaker(value) -> bool:
    return isinstance(value, (int, np.integer))


def word_speakers(words: Sequence[Word], grid: SpeakerGrid, min_word_run: float) -> list:
    """The global speaker of each word in ``grid``; a run of words shorter than
    ``min_word_run`` s between two runs of one other speaker joins them (a flicker)."""
    speakers = [grid.speaker_at(w.start, w.end) for w in words]
    # words nobody was found for take their neighbours' speaker
    known = [i for i, s in enumerate(speakers) if s is not None]
    if not known:
        return speakers
    for i, s in enumerate(speakers):
        if s is None:
            j = min(known, key=lambda j: abs(j - i))
            speakers[i] = speakers[j]
    if min_word_run > 0:
        runs = speaker_runs(speakers)
        for r in range(1, len(runs) - 1):
            first, last, s = runs[r]
            if runs[r - 1][2] == runs[r + 1][2] and words[last].end - words[first].start < min_word_run:
                for i in range(first, last + 1):
                    speakers[i] = runs[r - 1][2]
    return speakers


def refine_changes(words: Sequence[Word], speakers: list | None, grid: SpeakerGrid,
                   margin: float) -> tuple[list[Word], list | None]:
    """Where consecutive words change speaker (x to y), place the change where the
    grid's activity of x and y crosses within ``margin`` s of the words' boundary: the
    words there whose centre falls on the other side change speaker, and the last x word
    and the first y word meet at the change. ``margin`` 0: unchanged."""
    if margin <= 0 or len(words) < 2 or speakers is None:
        return words, speakers
    words, speakers = list(words), list(speakers)
    for i in range(len(words) - 1):
        x, y = speakers[i], speakers[i + 1]
        if x == y or not _is_speaker(x) or not _is_speaker(y):
            continue
        boundary = (words[i].end + words[i + 1].start) / 2
        lo, hi = boundary - margin, boundary + margin
        c0, c1 = max(0, int(round(lo / GRID))), int(round(hi / GRID))
        if c1 <= c0:
            continue
        activity, covered = grid.mean_activity(c0, c1)
        if not covered.all():
            continue
        d = activity[:, x] - activity[:, y]  # > 0 where x is the more active
        # split k: cells before it are x's, from it on y's; maximise the agreement
        agreement = np.concatenate([[0.0], np.cumsum(d)]) - np.concatenate([np.cumsum(d[::-1])[::-1], [0.0]])
        change = (c0 + int(np.argmax(agreement))) * GRID
        for j in range(len(words)):
            centre = (words[j].start + words[j].end) / 2
            if lo <= centre <= hi and speakers[j] in (x, y):
                speakers[j] = x if centre < change else y
        last_x = max((j for j in range(len(words)) if speakers[j] == x and words[j].start < change),
                     default=None)
        if last_x is not None and last_x + 1 < len(words) and speakers[last_x + 1] == y:
            a, b = words[last_x], words[last_x + 1]
            if a.start < change < b.end and b.start <= a.end + 0.02:  # they meet: move the meeting point
                words[last_x] = a.with_times(a.start, change)
                words[last_x + 1] = b.with_times(change, b.end)
    return words, speakers


def grow_runs(words: Sequence[Word], speakers: list | None, grid: SpeakerGrid | None,
              config: BaselineConfig, end_of_audio: float) -> list[Word]:
    """Words with each same-speaker run's outer edges stretched over the grid activity
    of its speaker (``overlap_grow`` s at most), past other speakers' words."""
    limit = config.overlap_grow
    if limit <= 0 or grid is None or not words or speakers is None:
        return words
    out = list(words)
    for i, j, g in speaker_runs(speakers):
        if _is_speaker(g):
            w = out[i]
            start = min(w.start, grid.active_until(int(g), w.start, -1, limit, config.grow_threshold,
                                                   config.grow_overlap_only))
            out[i] = w.with_times(max(0.0, start), w.end)
            w = out[j]
            end = max(w.end, grid.active_until(int(g), w.end, 1, min(limit, end_of_audio - w.end),
                                               config.grow_threshold, config.grow_overlap_only))
            out[j] = w.with_times(w.start, end)
    return out


def speaker_change(activity: np.ndarray, covered: np.ndarray, threshold: float,
                   min_run: float, flicker: float = 0.2) -> int | None:
    """Where the newest speaker took over, as a cell of ``activity`` (cells x speakers: the
    grid's mean activity over a turn so far; ``covered``: cells some window saw), or None.

    A cell's speaker is the most active one where that activity reaches ``threshold``
    (else nobody); runs of one speaker shorter than ``flicker`` s count as nobody. The
    newest speaker's run (pauses inside it allowed) must hold ``min_run`` s of speech and
    end within 0.5 s of the newest covered cell, after a run of another speaker holding
    ``min_run`` s too. The change is the newest run's first cell, or the middle of the
    pause between the two runs."""
    if len(activity) == 0 or not covered.any():
        return None
    top = activity.max(axis=1)
    who = np.where((top >= threshold) & covered, activity.argmax(axis=1), -1)
    for first, last, s in speaker_runs(list(who)):
        if s >= 0 and (last - first + 1) * GRID < flicker:
            who[first:last + 1] = -1
    speaking = np.flatnonzero(who >= 0)
    if len(speaking) == 0 or (np.flatnonzero(covered)[-1] - speaking[-1]) * GRID > 0.5:
        return None
    i = int(speaking[-1])
    newest, cells, first_new = who[i], 0, i
    while i >= 0 and who[i] in (newest, -1):
        if who[i] == newest:
            cells, first_new = cells + 1, i
        i -= 1
    if i < 0 or cells * GRID < min_run:
        return None
    before, last_before, cells = who[i], i, 0
    while i >= 0 and who[i] in (before, -1):
        cells += int(who[i] == before)
        i -= 1
    if cells * GRID < min_run:
        return None
    return (last_before + 1 + first_new) // 2 if first_new > last_before + 1 else first_new


def turn_speaker(words: Sequence[Word], speakers: list | None):
    """The speaker with most word time (each word counts at least 20 ms), or None."""
    totals: dict = {}
    for w, s in zip(words, speakers or []):
        if s is not None:
            totals[s] = totals.get(s, 0.0) + max(w.end - w.start, 0.02)
    return max(totals, key=totals.get) if totals else None


@dataclass(frozen=True, slots=True)
class LabelledTurn:
    """A final turn's words with their global speakers.

    ``words``: as sent (runs grown over overlapped speech); ``spans``: before growing (what
    the revision labels again); ``speakers``: one per word (None without a speaker);
    ``label``: the turn's speaker; ``unknown``: too short, or nobody found (sent UNKNOWN).
    """

    words: list[Word]
    spans: list[Word]
    speakers: list | None
    label: object
    unknown: bool


class Labeller:
    """Labels a session's turns from its :class:`Diarizer` (and audio, for a turn no window
    saw a speaker in)."""

    def __init__(self, config: BaselineConfig, diarizer: Diarizer, audio: AudioBuffer):
        self.config, self.diarizer, self.audio = config, diarizer, audio

    def partial(self, words: Sequence[Word]) -> tuple[list, object]:
        """Word speakers and turn speaker of a partial Turn, from the online mapping."""
        speakers = word_speakers(words, self.diarizer.grid, self.config.min_word_run)
        return speakers, turn_speaker(words, speakers)

    def change(self, start: float, end: float) -> float | None:
        """The time (s) in [start, end) where the speaker changes without a pause on the
        online grid (:func:`speaker_change`, ``change_min_run``), or None."""
        cfg = self.config
        if cfg.change_min_run <= 0 or end - start < 2 * cfg.change_min_run:
            return None
        c0, c1 = max(0, int(round(start / GRID))), int(round(end / GRID))
        activity, covered = self.diarizer.grid.mean_activity(c0, c1)
        cell = speaker_change(activity, covered, cfg.speaker_threshold, cfg.change_min_run)
        return None if cell is None else (c0 + cell) * GRID

    def final(self, words: list[Word]) -> LabelledTurn:
        """Speakers of a final turn (see the module docstring)."""
        cfg, diarizer = self.config, self.diarizer
        grid = clusters = None
        if cfg.live_recluster and words:
            clusters = recluster.offline_clusters(diarizer.windows, cfg, diarizer.max_speakers,
                                                  MAX_LIVE_POINTS, diarizer.points,
                                                  diarizer.clusterer,
                                                  diarizer.sliding_vectors
                                                  if cfg.narrow_points == "sliding" else None)
            grid = recluster.reclustered_grid(diarizer.windows, words[0].start, cfg,
                                              diarizer.max_speakers, diarizer.evidence_floor,
                                              MAX_LIVE_POINTS, diarizer.points,
                                              clusterer=diarizer.clusterer, clusters=clusters)
        grid = diarizer.grid if grid is None else grid
        speakers = word_speakers(words, grid, cfg.min_word_run)
        words, speakers = refine_changes(words, speakers, grid, cfg.refine_changes)
        if diarizer.relabels and words:
            diarizer.sliding.embed(words[0].start, words[-1].end, self.audio)
            speakers = relabel(words, speakers, diarizer.sliding, clusters, cfg.relabel_margin)
        label = turn_speaker(words, speakers)
        span = (words[-1].end - words[0].start) if words else 0.0
        if label is None and words and span >= cfg.unknown_below:
            # no window saw a speaker over this turn: embed the turn itself
            label = diarizer.speaker_of_audio(self.audio.audio(int(words[0].start * SAMPLE_RATE),
                                                               int(words[-1].end * SAMPLE_RATE)))
            speakers = [label] * len(words)
        unknown = label is None or span < cfg.unknown_below
        if not unknown:  # what the points under these words were shown as names clusters
            diarizer.points.sync(diarizer.windows).show(words, speakers, cfg.window)
        spans = list(words)
        if not unknown:
            words = grow_runs(words, speakers, grid, cfg, self.audio.received / SAMPLE_RATE)
        return LabelledTurn(list(words), spans, speakers, label, unknown)
