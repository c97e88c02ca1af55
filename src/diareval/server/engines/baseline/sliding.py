"""Word speakers from sliding embeddings, where the segmentation hears one voice for two.

On a phone line (and at times elsewhere) segmentation-3.0 gives two voices taking quick turns one local
track: its window's embedding is of both, and every word under that track takes one
speaker (issue 16, calls seed 7 recording 00: 0.75 of its single-speaker word time
labelled right, although the re-clustering separated the two voices' clean embeddings
perfectly). Here each final turn's audio is also embedded in short windows
(``relabel_window`` s, every ``relabel_hop`` s, CAM++ as everywhere else), and a word
whose windows lie closer to another cluster of the re-clustering than to the one its grid
speaker belongs to, by ``relabel_margin`` in cosine similarity, takes that cluster's
speaker (:func:`relabel`). The windows are kept for the session (192 floats each, 2 per
second of turn at the default hop: under 6 MB per hour), so the end-of-stream revision
labels the words again against the final clusters without embedding anything, and on
narrow-band audio clusters them (``narrow_points``, ``recluster.offline_clusters``). One batch
of CAM++ per turn: about 0.02 of a core per second of audio here (calls RTF 0.14 -> 0.16).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from diareval.constants import SAMPLE_RATE
from diareval.server.engines.baseline.buffer import AudioBuffer
from diareval.server.engines.baseline.words import Word


class SlidingEmbeddings:
    """CAM++ embeddings of ``window`` s of audio starting every ``hop`` s (window k starts
    at k * hop), computed on demand over the spans asked for and kept for the session."""

    def __init__(self, embedding, window: float, hop: float):
        self.embedding, self.window, self.hop = embedding, float(window), float(hop)
        self._row: dict[int, int] = {}  # window index -> its row of the matrix
        self._matrix = np.zeros((0, 0), dtype=np.float32)  # the vectors in the order embedded

    def __len__(self) -> int:
        return len(self._row)

    def _indices(self, start: float, end: float) -> range:
        """Windows whose centre lies in [start, end]."""
        first = int(np.ceil((start - self.window / 2) / self.hop - 1e-9))
        last = int(np.floor((end - self.window / 2) / self.hop + 1e-9))
        return range(max(first, 0), last + 1)

    def embed(self, start: float, end: float, audio: AudioBuffer) -> None:
        """Embed the windows centred in [start, end] not embedded yet (those the audio
        kept, up to what was received, holds in full)."""
        todo = [k for k in self._indices(start, end) if k not in self._row]
        if not todo:
            return
        length = int(round(self.window * SAMPLE_RATE))
        a = max(int(round(todo[0] * self.hop * SAMPLE_RATE)), audio.start)
        b = min(int(round(todo[-1] * self.hop * SAMPLE_RATE)) + length, audio.received)
        features = self.embedding.features(audio.audio(a, b))  # one fbank pass, 10 ms frames
        shift = SAMPLE_RATE // 100
        feats, keys = [], []
        for k in todo:
            f0 = (int(round(k * self.hop * SAMPLE_RATE)) - a) // shift
            f1 = f0 + length // shift
            if f0 < 0 or f1 > len(features):
                continue  # not all in the audio kept: left out
            feats.append(features[f0:f1])
            keys.append(k)
        if feats:
            for k, vector in zip(keys, self.embedding.from_features(feats)):
                self._append(k, vector)

    def _append(self, k: int, vector: np.ndarray) -> None:
        rows = len(self._row)
        if rows == len(self._matrix):  # amortised O(1): double the capacity
            grow = max(64, rows)
            self._matrix = np.vstack([self._matrix.reshape(-1, len(vector)),
                                      np.zeros((grow, len(vector)), dtype=np.float32)])
        self._matrix[rows] = vector
        self._row[k] = rows

    @property
    def matrix(self) -> np.ndarray:
        """(n, 192) every window embedded so far, in the order embedded (a view)."""
        return self._matrix[:len(self._row)]

    def similarities(self, start: float, end: float, unit: np.ndarray) -> np.ndarray | None:
        """Mean cosine similarity of the windows centred in [start, end] (the nearest one
        to the span's middle when none is) to each row of ``unit`` (unit-norm centroids);
        None when no window near the span was embedded."""
        keys = [k for k in self._indices(start, end) if k in self._row]
        if not keys:
            k = int(round(((start + end) / 2 - self.window / 2) / self.hop))
            keys = [k] if k in self._row else []
        if not keys:
            return None
        vectors = self._matrix[[self._row[k] for k in keys]]
        return (vectors @ unit.T).mean(axis=0)


def relabel(words: Sequence[Word], speakers: list | None, sliding: SlidingEmbeddings,
            clusters: tuple[np.ndarray, list[int]] | None, margin: float) -> list | None:
    """``speakers`` with each word whose sliding windows are closer to another cluster's
    centroid than to its own speaker's cluster by ``margin`` (cosine similarity) given
    that cluster's speaker (``clusters``: centroids and the speaker each is named after,
    as ``recluster.offline_clusters`` returns them). Words without a speaker, or with one
    no cluster is named after, keep theirs; so does every word with under two clusters."""
    if speakers is None or clusters is None or len(clusters[1]) < 2:
        return speakers
    centroids, names = clusters
    unit = centroids / (np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-12)  # once a turn
    out = list(speakers)
    for i, (word, speaker) in enumerate(zip(words, speakers)):
        if speaker is None or int(speaker) not in names:
            continue
        sims = sliding.similarities(word.start, word.end, unit)
        if sims is None:
            continue
        own = max(sims[j] for j, name in enumerate(names) if name == int(speaker))
        best = int(np.argmax(sims))
        if names[best] != int(speaker) and sims[best] - own >= margin:
            out[i] = names[best]
    return out


__all__ = ["SlidingEmbeddings", "relabel"]
