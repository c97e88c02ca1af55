"""Word speakers from sliding embeddings (baseline/sliding.py), hand-worked with a stand-in
embedding: the "voice" of a stretch of audio is the sign of its mean sample, so a signal
positive for 3 s, then negative for 3 s, is two voices changing at 3 s with no pause."""

from __future__ import annotations

import numpy as np

from diareval.server.engines.baseline.buffer import AudioBuffer
from diareval.server.engines.baseline.sliding import SlidingEmbeddings, relabel
from diareval.server.engines.baseline.words import Word

RATE = 16000


class SignEmbedding:
    """features: one value per 10 ms frame (its mean sample); from_features: (1, 0) for a
    window of positive mean, (0, 1) otherwise. Counts the windows it embeds."""

    def __init__(self):
        self.embedded = 0

    def features(self, audio: np.ndarray) -> np.ndarray:
        frames = len(audio) // 160
        return audio[:frames * 160].reshape(frames, 160).mean(axis=1, keepdims=True)

    def from_features(self, feats: list) -> np.ndarray:
        self.embedded += len(feats)
        return np.array([[1.0, 0.0] if f.mean() > 0 else [0.0, 1.0] for f in feats],
                        dtype=np.float32)


def _two_voices() -> AudioBuffer:
    audio = AudioBuffer()
    audio.append(np.concatenate([np.full(3 * RATE, 0.1), np.full(3 * RATE, -0.1)]).astype(np.float32))
    return audio


CLUSTERS = (np.array([[2.0, 0.0], [0.0, 0.5]]), [0, 1])  # centroid -> speaker (any norm)
WORDS = [Word("a", 0.5, 1.0, 1.0), Word("b", 2.0, 2.4, 1.0), Word("c", 3.2, 3.6, 1.0),
         Word("d", 4.5, 5.0, 1.0)]


def test_words_of_the_second_voice_take_its_speaker():
    """Window 1 s, hop 0.25 s: word c (3.2-3.6 s) has the windows centred at 3.25 and 3.5,
    over 2.75-3.75 and 3.0-4.0: mostly the second voice, so c becomes speaker 1 as d does;
    a and b (first voice) stay 0. With a margin above 1 (the clean windows differ by
    exactly 1 in cosine similarity) nothing changes."""
    embedding = SignEmbedding()
    sliding = SlidingEmbeddings(embedding, window=1.0, hop=0.25)
    sliding.embed(0.0, 6.0, _two_voices())
    assert relabel(WORDS, [0, 0, 0, 0], sliding, CLUSTERS, margin=0.0) == [0, 0, 1, 1]
    assert relabel(WORDS, [1, 1, 1, 1], sliding, CLUSTERS, margin=0.0) == [0, 0, 1, 1]
    assert relabel(WORDS, [0, 0, 0, 0], sliding, CLUSTERS, margin=1.01) == [0, 0, 0, 0]
    # no speaker, a speaker no cluster is named after, one cluster, no clusters: kept
    assert relabel(WORDS, [None, 5, 0, 0], sliding, CLUSTERS, 0.0) == [None, 5, 1, 1]
    one = (CLUSTERS[0][:1], [0])
    assert relabel(WORDS, [0, 0, 0, 0], sliding, one, 0.0) == [0, 0, 0, 0]
    assert relabel(WORDS, [0, 0, 0, 0], sliding, None, 0.0) == [0, 0, 0, 0]
    assert relabel(WORDS, None, sliding, CLUSTERS, 0.0) is None


def test_windows_are_embedded_once_and_only_in_full():
    """Centres in [0, 6] s at hop 0.25 s with 1 s windows: starts -0.5 ... 5.5 s, of which
    those in the 6 s of audio in full start at 0, 0.25, ..., 5.0 s: 21 windows.
    Asking again, or for a span inside, embeds nothing more."""
    embedding = SignEmbedding()
    sliding = SlidingEmbeddings(embedding, window=1.0, hop=0.25)
    audio = _two_voices()
    sliding.embed(0.0, 6.0, audio)
    assert len(sliding) == embedding.embedded == 21
    sliding.embed(1.0, 4.0, audio)
    assert embedding.embedded == 21


def test_a_word_between_windows_takes_the_nearest_one():
    """Windows every 1 s (1 s long): a word of 4.6-4.7 s has no window centred on it; the
    nearest centre to its middle is 4.5 s (window 4-5 s, the second voice)."""
    sliding = SlidingEmbeddings(SignEmbedding(), window=1.0, hop=1.0)
    sliding.embed(0.0, 6.0, _two_voices())
    word = Word("e", 4.6, 4.7, 1.0)
    assert relabel([word], [0], sliding, CLUSTERS, 0.0) == [1]
    unit = CLUSTERS[0] / np.linalg.norm(CLUSTERS[0], axis=1, keepdims=True)
    sims = sliding.similarities(4.6, 4.7, unit)
    assert np.allclose(sims, [0.0, 1.0])


def test_audio_no_longer_kept_is_not_embedded():
    """The buffer forgot the first 2 s: windows starting before 2 s are left out, and a word
    there keeps its speaker."""
    audio = _two_voices()
    audio.forget_before(2 * RATE, slack=0)
    sliding = SlidingEmbeddings(SignEmbedding(), window=1.0, hop=0.25)
    sliding.embed(0.0, 6.0, audio)
    assert len(sliding) == 13  # starts 2.0, 2.25, ..., 5.0 s
    assert relabel([Word("a", 0.5, 1.0, 1.0)], [1], sliding, CLUSTERS, 0.0) == [1]


def test_the_windows_embedded_are_kept_once_in_order():
    """``matrix`` (what the revision clusters on narrow-band audio) holds each window once, in
    the order embedded: windows of 1 s every 0.5 s centred in [0.5, 2.5] are the five
    starting at 0-2 s (first voice); those centred in [2.0, 5.5] add the six starting at
    2.5-5 s (2.5-3.5 s holds half of each voice, mean 0: the second voice by the
    stand-in's rule; the rest are all second voice). Asking for a span again embeds nothing."""
    embedding = SignEmbedding()
    sliding = SlidingEmbeddings(embedding, window=1.0, hop=0.5)
    audio = _two_voices()
    sliding.embed(0.5, 2.5, audio)
    assert len(sliding) == 5 and sliding.matrix.tolist() == [[1.0, 0.0]] * 5
    sliding.embed(2.0, 5.5, audio)
    assert len(sliding) == 11 and embedding.embedded == 11
    assert sliding.matrix.tolist() == [[1.0, 0.0]] * 5 + [[0.0, 1.0]] * 6
    sliding.embed(0.0, 6.0, audio)  # every window centred in [0.5, 5.5] is there already
    assert embedding.embedded == 11 and len(sliding.matrix) == 11
