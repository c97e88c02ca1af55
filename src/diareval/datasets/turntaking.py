"""Turn-taking: placing scripted turns in a session, and the named turn-taking profiles.

Both conversation generators (espeak-ng voices in :mod:`diareval.datasets.synthetic`, real
utterances in :mod:`diareval.datasets.mixtures`) place their turns with
:func:`schedule_conversation`, so a profile means the same thing for both.

Profiles (``ConversationSpec(profile=...)`` through ``with_options`` / the loaders' options;
a field given explicitly wins over the profile's value):

- ``"default"``: the spec's own defaults (2/3/4 speakers, 30% back-channels, pauses of
  0.1 s + exponential with mean 0.5 s, 15% of turns overlapping by 0.3-0.9 s). Unchanged
  output for a given seed.
- ``"call"``: a telephone call, see :data:`PROFILES` ``["call"]``: 2 speakers; 15%
  back-channels (1-2 words); the gap before a turn that does not overlap is uniform on
  [0, 0.3] s (``pause_min`` 0, ``pause_max`` 0.3: no silence between turns is longer than
  0.3 s); 20% of the turns start before the previous one ends, by 0.15-0.45 s (uniform,
  mean ``overlap_mean`` 0.3, at most 80% of either turn); turns of 3 + geometric words
  with mean 8. With two speakers every turn is a speaker change, so the overlaps and the
  short gaps are all at speaker changes: the quick turn-taking of a call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pyannote.core import Annotation, Segment

from diareval.datasets.audio import SAMPLE_RATE, float_to_int16
from diareval.datasets.recording import ReferenceWord

# field values each profile sets (before the options given explicitly)
PROFILES: dict[str, dict] = {
    "default": {},
    "call": {"n_speakers": 2, "backchannel_rate": 0.15, "mean_words": 8.0,
             "pause_min": 0.0, "pause_mean": 0.15, "pause_max": 0.3,
             "overlap_rate": 0.2, "overlap_mean": 0.3},
}

@dataclass
class Turn:
    """One scripted turn as placed in the session."""

    speaker: str
    start: float
    end: float
    text: str
    n_words: int
    overlap: float  # seconds overlapping the previous turn (0 if none)


@dataclass
class GeneratedConversation:
    """Audio (16 kHz mono int16), reference and words of one generated conversation."""

    uri: str
    audio: np.ndarray
    reference: Annotation
    words: list[ReferenceWord]
    turns: list[Turn]
    voices: dict[str, str] = field(default_factory=dict)


class _Stratified:
    """Uniform numbers in [0, 1) that cover the quantiles of every block of ``block`` draws."""

    def __init__(self, rng: np.random.Generator, block: int = 20):
        self.rng, self.block, self.queue = rng, block, []

    def __call__(self) -> float:
        if not self.queue:
            strata = self.rng.permutation(self.block)
            self.queue = list((strata + self.rng.random(self.block)) / self.block)
        return self.queue.pop()


def _geometric_words(u: float, mean_words: float, max_words: int) -> int:
    """3 + geometric number of extra words with the given mean, by inverse CDF, capped."""
    extra_mean = mean_words - 3.0
    if extra_mean <= 0:
        return 3
    p = 1.0 / (extra_mean + 1.0)  # P(extra = k) = p (1-p)^k, mean (1-p)/p
    extra = int(math.floor(math.log1p(-u) / math.log1p(-p)))
    return min(3 + extra, max_words)



def schedule_conversation(spec, rng: np.random.Generator, uri: str,
                          speakers: list[str], make_turn,
                          noise_seed: int = 0) -> GeneratedConversation:
    """Place turns one after another with the spec's turn-taking statistics and mix them.

    ``make_turn(speaker_index, n_words) -> (clip, text, n_words)`` supplies the audio of a
    turn (synthesised, or cut from real recordings). Pauses, overlaps and turn lengths
    follow ``spec``; the session is ``spec.minutes`` long (trailing silence after the last
    turn that fits)."""
    n = len(speakers)
    total = int(round(spec.minutes * 60 * SAMPLE_RATE))
    tracks = np.zeros(total, dtype=np.float32)
    draw_length, draw_pause, draw_overlap = (_Stratified(rng), _Stratified(rng),
                                             _Stratified(rng))
    turns: list[Turn] = []
    words: list[ReferenceWord] = []
    reference = Annotation(uri=uri)
    busy_until = [0] * n            # sample where each speaker's last turn ends
    cursor = int(0.5 * SAMPLE_RATE)  # end of the conversation so far (max end of turns)
    previous = None                  # (speaker index, start, end) of the previous turn
    overlap_debt = 0.0
    pending_overlap: float | None = None
    gap = int(0.1 * SAMPLE_RATE)     # a speaker never starts within 0.1 s of their last turn
    while True:
        # 1. what is said: back-channel (1 or 2 words) or a longer turn
        u = draw_length()
        if u < spec.backchannel_rate:
            n_words = 1 if u < spec.backchannel_rate / 2 else 2
        else:
            v = (u - spec.backchannel_rate) / max(1.0 - spec.backchannel_rate, 1e-9)
            n_words = _geometric_words(v, spec.mean_words, spec.max_words)
        # 2. when: overlap by quota (error diffusion), else a pause after the conversation
        want_overlap = previous is not None and spec.overlap_rate > 0 and \
            overlap_debt + spec.overlap_rate >= 0.5
        if pending_overlap is None:  # kept until used, so long overlaps are not selected out
            pending_overlap = spec.overlap_mean * (0.5 + draw_overlap())
        if spec.pause_max is None:  # pause_min + exponential
            pause_s = spec.pause_min + (spec.pause_mean - spec.pause_min) * \
                -math.log1p(-min(draw_pause(), 1 - 1e-9))
        else:  # uniform on [pause_min, pause_max]
            pause_s = spec.pause_min + (spec.pause_max - spec.pause_min) * draw_pause()
        # 3. who: anyone but the previous speaker
        candidates = [k for k in range(n) if previous is None or k != previous[0] or n == 1]
        k = candidates[int(rng.integers(len(candidates)))]
        clip, text, n_words = make_turn(k, n_words)
        length = len(clip.samples)
        start = None
        if want_overlap:
            o = int(pending_overlap * SAMPLE_RATE)
            candidate = previous[2] - o
            if (o <= 0.8 * min(previous[2] - previous[1], length)
                    and candidate >= busy_until[k] + gap and candidate >= previous[1]):
                start = candidate
                pending_overlap = None
        if start is None:
            start = max(cursor + int(pause_s * SAMPLE_RATE), busy_until[k] + gap)
        end = start + length
        if end > total:
            break
        overlap = max(0, (previous[2] - start)) / SAMPLE_RATE if previous else 0.0
        if previous is not None and spec.overlap_rate > 0:
            overlap_debt += spec.overlap_rate - (1.0 if overlap > 0 else 0.0)
        tracks[start:end] += clip.samples
        speaker = speakers[k]
        for a, b in clip.regions:
            reference[Segment((start + a) / SAMPLE_RATE, (start + b) / SAMPLE_RATE),
                      f"t{len(turns)}.{a}"] = speaker
        for a, b, token in clip.words:
            words.append(ReferenceWord(speaker, round((start + a) / SAMPLE_RATE, 4),
                                       round((start + b) / SAMPLE_RATE, 4), token))
        turns.append(Turn(speaker, start / SAMPLE_RATE, end / SAMPLE_RATE, text, n_words,
                          overlap))
        busy_until[k] = end
        cursor = max(cursor, end)
        previous = (k, start, end)
    peak = float(np.abs(tracks).max()) if len(tracks) else 0.0
    if peak > 0.99:  # overlaps may add up: scale down rather than clip
        tracks *= 0.99 / peak
    audio = float_to_int16(tracks)
    if spec.noise is not None:
        from diareval.datasets.noise import make_noise, mix_at_snr

        noise = make_noise(spec.noise, len(audio), seed=noise_seed)
        audio = mix_at_snr(audio, noise, spec.snr, speech=reference.get_timeline().support())
    words.sort(key=lambda w: (w.start, w.speaker))
    return GeneratedConversation(uri, audio, reference, words, turns)



def realized_statistics(turns: list[Turn]) -> dict:
    """What a generated session actually has (requested values can be out of reach: long
    overlaps need two long turns, so a high overlap rate with long overlaps, few speakers
    and many back-channels falls short; these numbers say by how much)."""
    if not turns:
        return {"turns": 0}
    words = np.array([t.n_words for t in turns])
    overlaps = np.array([t.overlap for t in turns[1:]]) if len(turns) > 1 else np.zeros(0)
    overlapping = overlaps[overlaps > 0]
    return {"turns": len(turns),
            "backchannel_share": round(float(np.mean(words <= 2)), 4),
            "mean_words_other": round(float(words[words > 2].mean()), 3)
            if (words > 2).any() else None,
            "overlap_rate": round(float(np.mean(overlaps > 0)), 4) if overlaps.size else 0.0,
            "overlap_mean": round(float(overlapping.mean()), 4) if overlapping.size else None}


