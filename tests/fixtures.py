"""Generated datasets for the tests (no tests here): audio + RTTM (+ UEM) folders that
``diareval.datasets.load_folder`` reads. Not speech: only the reference and the exact audio
bytes matter. Every RTTM and UEM file is written by ``format_rttm`` / ``format_uem``.

- :func:`make_dataset`: short recordings of alternating noise bursts (stream/run/fault tests).
- :func:`write_synthetic_dataset`: random conversations of tones in noise, with overlaps
  (server, oracle and client tests).
- :func:`voice_points`: unit embedding-like vectors around one direction per voice
  (clustering tests).
- :func:`write_rttm`, :func:`write_uem`: reference files from ``(start, end, speaker)`` /
  ``(start, end)`` tuples per URI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import soundfile as sf
from pyannote.core import Annotation, Segment, Timeline

from diareval.datasets import load_folder
from diareval.datasets.audio import SAMPLE_RATE
from diareval.datasets.rttm import format_rttm, format_uem

SR = SAMPLE_RATE


def annotation(uri: str, segments: Iterable[tuple[float, float, str]]) -> Annotation:
    """An Annotation of ``(start, end, speaker)`` turns (one track each, overlaps kept)."""
    result = Annotation(uri=uri)
    for start, end, speaker in segments:
        segment = Segment(start, end)
        result[segment, result.new_track(segment)] = speaker
    return result


def write_rttm(path: str | Path, turns: Mapping[str, Iterable[tuple[float, float, str]]]) -> Path:
    """Write an RTTM file of ``{uri: [(start, end, speaker), ...]}`` (times to 1 ms)."""
    path = Path(path)
    path.write_text("".join(format_rttm(annotation(uri, segments), uri)
                            for uri, segments in turns.items()), encoding="utf-8")
    return path


def write_uem(path: str | Path, regions: Mapping[str, Iterable[tuple[float, float]]],
              decimals: int = 3) -> Path:
    """Write a UEM file of ``{uri: [(start, end), ...]}``."""
    path = Path(path)
    path.write_text("".join(format_uem(Timeline([Segment(s, e) for s, e in spans], uri=uri), uri,
                                       decimals=decimals)
                            for uri, spans in regions.items()), encoding="utf-8")
    return path


def make_dataset(root: Path, n: int = 2, seconds: float = 3.0, seed: int = 0) -> list:
    """``n`` recordings ``rec0..`` of ``seconds`` s: alternating 0.5 s noise bursts of two
    speakers (different loudness) with gaps, and their RTTM (one ``ref.rttm``); loaded with
    ``load_folder``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    turns = {}
    for i in range(n):
        uri = f"rec{i}"
        audio = np.zeros(int(seconds * SR), dtype=np.float32)
        t, speaker = 0.2, 0
        turns[uri] = []
        while t + 0.5 <= seconds:
            start = int(t * SR)
            amplitude = 0.1 if speaker == 0 else 0.3
            audio[start:start + SR // 2] = rng.uniform(-amplitude, amplitude, SR // 2)
            turns[uri].append((round(t, 3), round(t, 3) + 0.5, f"spk{speaker}"))
            t += 0.7
            speaker = 1 - speaker
        sf.write(root / f"{uri}.wav", audio, SR, subtype="PCM_16")
    write_rttm(root / "ref.rttm", turns)
    return load_folder(root)


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
    n = int(round(duration * SR))
    audio = rng.normal(0, 0.003, n)
    t = np.arange(n) / SR
    for start, end, speaker in segments:
        index = int(speaker[3:]) - 1
        a, b = int(start * SR), min(n, int(end * SR))
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
        sf.write(folder / f"{uri}.wav", audio, SR, subtype="PCM_16")
        write_rttm(folder / f"{uri}.rttm", {uri: segments})
    return folder


def voice_points(sizes, spread: float, separation: float, dim: int = 32, seed: int = 0):
    """Unit vectors around one centre per voice: centre i is ``separation`` radians from
    centre 0 (in its own plane), each point the centre plus Gaussian noise of ``spread``
    per dimension; returns (points, voice of each point)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    points, voice = [], []
    for i, n in enumerate(sizes):
        centre = basis[0] if i == 0 else np.cos(separation) * basis[0] + np.sin(separation) * basis[i]
        x = centre + spread * rng.standard_normal((n, dim))
        points.append(x / np.linalg.norm(x, axis=1, keepdims=True))
        voice += [i] * n
    return np.vstack(points), np.array(voice)
