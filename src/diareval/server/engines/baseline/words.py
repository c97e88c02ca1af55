"""The baseline's words: what Whisper said and when, and the stretching of word extents.

Times are seconds from the start of the stream. Whisper's alignment makes words too short
(even zero), so final words are stretched over the speech next to them (:func:`snap`),
where speech is silero's VAD or the segmentation's (:func:`speech_mask`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from diareval.constants import SAMPLE_RATE
from diareval.server.engines.baseline.config import VAD_FRAME
from diareval.server.engines.baseline.grid import GRID

if TYPE_CHECKING:
    from diareval.server.engines.baseline.diarizer import Diarizer

SENTENCE_END = re.compile(r"[.?!]['\")\]]*$")
_PUNCT = re.compile(r"[^\w'\s-]")


def plain(text: str) -> str:
    """The unformatted form of a word: lower case, no punctuation (apostrophes kept)."""
    return _PUNCT.sub("", text).lower().strip("-") or text.lower()


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word: formatted text, start and end (s), Whisper's probability."""

    text: str
    start: float
    end: float
    probability: float

    def with_times(self, start: float, end: float) -> "Word":
        """The same word over [start, end]."""
        return Word(self.text, start, end, self.probability)


def speech_mask(start: float, end: float, vad_probs: Sequence[float], vad_threshold: float,
                diarizer: "Diarizer | None" = None) -> np.ndarray:
    """Speech (bool) per GRID cell of [start, end): silero's VAD, or (with ``diarizer``)
    the segmentation's speech (:meth:`Diarizer.speech_cells`)."""
    c0, c1 = max(0, int(round(start / GRID))), max(0, int(round(end / GRID)))
    if c1 <= c0:
        return np.zeros(0, dtype=bool)
    times = (np.arange(c0, c1) + 0.5) * GRID
    frames = (times * SAMPLE_RATE / VAD_FRAME).astype(int)
    # only the frames asked for (vad_probs grows with the session: converting all of it
    # cost 1.5 ms per call at 30 min)
    f0 = int(frames[0])
    probs = np.asarray(vad_probs[f0:int(frames[-1]) + 1], dtype=np.float32)
    vad = np.zeros(len(frames), dtype=bool)
    ok = frames - f0 < len(probs)
    vad[ok] = probs[frames[ok] - f0] >= vad_threshold
    if diarizer is None:
        return vad
    return vad | diarizer.speech_cells(c0, c1)


def snap(words: Sequence[Word], speech, limit: float, end_of_audio: float,
         bounds: tuple[float, float | None] = (0.0, None)) -> list[Word]:
    """Each word stretched over the contiguous speech next to it, up to its neighbours and
    at most ``limit`` s per side, the first and last words no further than ``bounds`` (s;
    None: the end of the audio); ``speech(start, end)`` gives the speech per GRID cell."""
    out: list[Word] = []
    first, last = bounds[0], end_of_audio if bounds[1] is None else bounds[1]
    for i, word in enumerate(words):
        start, end = word.start, word.end
        lo = max(out[-1].end if out else min(first, start), start - limit)
        hi = min(words[i + 1].start if i + 1 < len(words) else max(last, end), end + limit)
        new_start, new_end = start, end
        if start > lo:
            before = speech(lo, start)[::-1]
            run = len(before) if before.all() else int(np.argmin(before))
            new_start = max(lo, start - run * GRID)
        if hi > end:
            after = speech(end, hi)
            run = len(after) if after.all() else int(np.argmin(after))
            new_end = min(hi, end + run * GRID)
        out.append(word.with_times(new_start, max(new_end, new_start)))
    return out
