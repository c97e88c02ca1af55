"""Speed of the baseline (issue 16, item 6): embeddings the diarizer does not compute again.

A local speaker whose embedding frames are nearly those an embedding of the previous window
was computed from takes that embedding (``reuse_embeddings``): CAM++ is the engine's main
cost, and a speaker who stopped talking has the same last 2 s in window after window.
Stub models: no model is loaded.
"""

from __future__ import annotations

import numpy as np

from diareval.server.engines.baseline.config import BaselineConfig
from diareval.server.engines.baseline.diarizer import Diarizer
from diareval.server.engines.baseline.segmentation import frame_centers

SAMPLE_RATE = 16000


class _Stream:
    """Fbank stub: frame i covers samples [160 i, 160 i + 400); its values are i."""

    def window(self, start: int, end: int):
        lo, hi = -(-max(start, 0) // 160), (end - 400) // 160 + 1
        return lo, np.repeat(np.arange(lo, hi, dtype=np.float32)[:, None], 80, axis=1)


class _Embedding:
    """CAM++ stub: records the frames of every embedding asked for; embedding = a unit
    vector per call (so reused and computed ones differ)."""

    def __init__(self):
        self.asked: list[tuple[int, int]] = []
        self.fbank = type("F", (), {"stream": staticmethod(_Stream)})()

    def from_features(self, feats):
        out = np.zeros((len(feats), 192), np.float32)
        for i, f in enumerate(feats):
            self.asked.append((int(f[0, 0]), int(f[-1, 0])))
            out[i, len(self.asked) % 192] = 1.0
        return out


def _diarizer(reuse: float) -> Diarizer:
    models = type("M", (), {"embedding": _Embedding()})()
    return Diarizer(BaselineConfig(reuse_embeddings=reuse), models)


def _activity(window_start: int, spans: list[tuple[float, float]]) -> np.ndarray:
    """Frame activity of a 5 s window: local speaker k active (1.0) over spans[k] (s, absolute)."""
    times = (window_start + frame_centers(293)) / SAMPLE_RATE
    activity = np.zeros((293, 3), np.float32)
    for k, (a, b) in enumerate(spans):
        activity[(times >= a) & (times < b), k] = 1.0
    return activity


def _three_windows(reuse: float):
    """Speaker 0 talks 0.5-3 s then stops; speaker 1 talks from 3.5 s on. Windows of 5 s end
    at 5, 5.5 and 6 s: speaker 0's last 2 s are the same frames in all three; speaker 1's
    grow from 1.5 s (3.5-5) to its last 2 s (3.5-5.5, then 4-6)."""
    diarizer = _diarizer(reuse)
    got = []
    for end in (5.0, 5.5, 6.0):
        start = int((end - 5.0) * SAMPLE_RATE)
        activity = _activity(start, [(0.5, 3.0), (3.5, end)])
        embeddings, valid, sources = diarizer._local_embeddings(start, start + 80000, activity)
        got.append((embeddings.copy(), valid.copy(), sources))
    return diarizer.models.embedding.asked, got


def test_a_speaker_who_stopped_keeps_the_embedding_of_the_same_frames():
    """Fbank frames asked for (first, last; frame i is centred on sample 160 i + 200):
    speaker 0's last 2 s are frames 98-297, then 100-299 and 100-298 (its edges move by a
    frame or two as the 17 ms segmentation frames fall differently in each window);
    speaker 1's are 349-497 (3.5-5 s), then 348-547 and 398-597. reuse 0 (off):
    both speakers embedded in every window. 0.9: speaker 0 is embedded once (Jaccard
    198/202 and 198/201 with window 1's frames after); speaker 1's frames change by more
    (149/201 = 0.74, then 150/250 = 0.6 against window 2's): computed each time."""
    asked, _ = _three_windows(0.0)
    assert asked == [(98, 297), (349, 497), (100, 299), (348, 547), (100, 298), (398, 597)]
    asked, got = _three_windows(0.9)
    assert asked == [(98, 297), (349, 497), (348, 547), (398, 597)]
    for embeddings, valid, _ in got[1:]:
        assert valid[:2].all()
        assert np.array_equal(embeddings[0], got[0][0][0])  # window 1's embedding of speaker 0
    assert not np.array_equal(got[1][0][1], got[0][0][1])  # speaker 1: computed again


def test_reuse_compares_with_the_frames_an_embedding_was_computed_from():
    """0.7: window 2 reuses window 1's embedding of speaker 1 (Jaccard 0.74) and keeps window
    1's frames with it; window 3 compares against those (100/249 = 0.40), not against
    window 2's (0.6), and computes a new one: a reused embedding stays within one
    threshold of the frames it came from."""
    asked, got = _three_windows(0.7)
    assert asked == [(98, 297), (349, 497), (398, 597)]
    assert np.array_equal(got[1][0][1], got[0][0][1])
    assert not np.array_equal(got[2][0][1], got[0][0][1])
    assert got[2][1][:2].all()
