"""Audio as the simulator sends it: 16 kHz mono int16, in fixed-size chunks.

Sources read lazily: hundreds of concurrent sessions of hour-long meetings
would not fit in memory as whole arrays. A 16 kHz file is read block by block;
any other rate is loaded and resampled whole (``diareval.datasets.load_audio``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import soundfile as sf

from diareval.datasets.audio import SAMPLE_RATE, float_to_int16, load_audio

MIN_CHUNK_SECONDS = 0.05   # the service closes with 3007 on a chunk outside 50..1000 ms
MAX_CHUNK_SECONDS = 1.0


class AudioSource(Protocol):
    """Anything the simulator can stream."""

    @property
    def duration(self) -> float: ...

    def blocks(self, samples: int) -> Iterator[np.ndarray]:
        """Consecutive int16 blocks of ``samples`` samples (the last may be shorter)."""


class ArrayAudio:
    """Audio already in memory (tests, benchmarks)."""

    def __init__(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE):
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"ArrayAudio needs {SAMPLE_RATE} Hz samples")
        self.samples = np.asarray(samples, dtype=np.int16).reshape(-1)

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.samples) / SAMPLE_RATE

    def blocks(self, samples: int) -> Iterator[np.ndarray]:
        """Consecutive blocks of ``samples`` samples (the last may be shorter)."""
        for start in range(0, len(self.samples), samples):
            yield self.samples[start:start + samples]


class SilenceAudio:
    """``duration`` seconds of low noise, generated as it goes (benchmarks: no memory per session)."""

    def __init__(self, duration: float, seed: int = 0):
        self._duration = float(duration)
        self._block = np.random.default_rng(seed).integers(-64, 64, SAMPLE_RATE, dtype=np.int16)

    @property
    def duration(self) -> float:
        return self._duration

    def blocks(self, samples: int) -> Iterator[np.ndarray]:
        total = int(round(self._duration * SAMPLE_RATE))
        block = np.resize(self._block, samples)
        for start in range(0, total, samples):
            yield block[:min(samples, total - start)]


class FileAudio:
    """An audio file, converted exactly as ``diareval.datasets.load_audio`` converts it."""

    def __init__(self, path: str | Path, duration: float | None = None):
        self.path = Path(path)
        if duration is None:
            info = sf.info(str(self.path))
            duration = info.frames / info.samplerate
        self._duration = float(duration)

    @property
    def duration(self) -> float:
        return self._duration

    def blocks(self, samples: int) -> Iterator[np.ndarray]:
        with sf.SoundFile(str(self.path)) as file:
            if file.samplerate != SAMPLE_RATE:
                yield from ArrayAudio(load_audio(self.path)).blocks(samples)
                return
            while True:
                data = file.read(samples, dtype="float32", always_2d=True)
                if len(data) == 0:
                    return
                yield float_to_int16(data.mean(axis=1))


def recording_audio(recording) -> FileAudio:
    """The audio source of a :class:`diareval.datasets.Recording`."""
    return FileAudio(recording.audio_path, recording.meta.get("duration"))


def check_chunk_seconds(chunk_seconds: float) -> float:
    """The chunk duration if the protocol allows it (50..1000 ms), else ValueError."""
    from diareval.errors import ConfigError
    if not MIN_CHUNK_SECONDS - 1e-9 <= chunk_seconds <= MAX_CHUNK_SECONDS + 1e-9:
        raise ConfigError(f"chunk duration {chunk_seconds * 1000:g} ms is outside the 50..1000 ms "
                          "the service accepts")
    return float(chunk_seconds)


def chunks(source: AudioSource, chunk_seconds: float) -> Iterator[np.ndarray]:
    """The chunks to send: ``chunk_seconds`` each; a short last chunk is padded with silence to
    50 ms (a shorter one would be a protocol violation)."""
    samples = int(round(chunk_seconds * SAMPLE_RATE))
    minimum = int(round(MIN_CHUNK_SECONDS * SAMPLE_RATE))
    for block in source.blocks(samples):
        if len(block) == 0:
            continue
        if len(block) < minimum:
            block = np.concatenate([block, np.zeros(minimum - len(block), dtype=np.int16)])
        yield block
