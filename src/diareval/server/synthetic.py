"""Small generated conversations (noise-and-tone audio + RTTM) for tests of the server,
the oracle and clients. Not speech: only the reference and the exact audio bytes matter.

``write_synthetic_dataset(folder, ...)`` writes ``<uri>.wav`` and ``<uri>.rttm`` files that
``diareval.datasets.load_folder`` reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from diareval.datasets.audio import SAMPLE_RATE


def synthetic_segments(duration: float, n_speakers: int, rng: np.random.Generator,
                       min_turn: float = 0.3, max_turn: float = 4.0,
                       overlap_probability: float = 0.15) -> list[tuple[float, float, str]]:
    """A random conversation: ``(start, end, speaker)`` turns, speakers ``spk1..spkN``,
    mostly alternating, gaps of 0.1-0.8 s, sometimes an overlap of up to 0.6 s."""
    segments = []
    t = round(float(rng.uniform(0.2, 0.6)), 3)
    previous = None
    while True:
        choices = [s for s in range(n_speakers) if s != previous] or [0]
        speaker = int(rng.choice(choices))
        length = round(float(rng.uniform(min_turn, max_turn)), 3)
        if t + length > duration - 0.2:
            break
        segments.append((t, round(t + length, 3), f"spk{speaker + 1}"))
        previous = speaker
        if rng.random() < overlap_probability:
            t = round(t + length - float(rng.uniform(0.1, min(0.6, length * 0.5))), 3)
        else:
            t = round(t + length + float(rng.uniform(0.1, 0.8)), 3)
    return segments


def synthetic_audio(segments, duration: float, n_speakers: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Float audio in [-1, 1]: quiet noise everywhere, a speaker-specific tone plus noise
    inside each segment."""
    n = int(round(duration * SAMPLE_RATE))
    audio = rng.normal(0, 0.003, n)
    t = np.arange(n) / SAMPLE_RATE
    for start, end, speaker in segments:
        index = int(speaker[3:]) - 1
        a, b = int(start * SAMPLE_RATE), min(n, int(end * SAMPLE_RATE))
        frequency = 150.0 + 70.0 * index
        audio[a:b] += 0.2 * np.sin(2 * np.pi * frequency * t[a:b]) + rng.normal(0, 0.02, b - a)
    return np.clip(audio, -1.0, 1.0)


def write_synthetic_dataset(folder: str | Path, n_recordings: int = 2, duration: float = 20.0,
                            n_speakers: int = 2, seed: int = 0, **options) -> Path:
    """Write ``n_recordings`` generated conversations (``syn000.wav`` + ``syn000.rttm``, ...)
    into ``folder``; return it. ``options`` go to :func:`synthetic_segments`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_recordings):
        rng = np.random.default_rng([seed, i])
        uri = f"syn{i:03d}"
        segments = synthetic_segments(duration, n_speakers, rng, **options)
        audio = synthetic_audio(segments, duration, n_speakers, rng)
        sf.write(folder / f"{uri}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
        lines = [f"SPEAKER {uri} 1 {s:.3f} {e - s:.3f} <NA> <NA> {spk} <NA> <NA>"
                 for s, e, spk in segments]
        (folder / f"{uri}.rttm").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
