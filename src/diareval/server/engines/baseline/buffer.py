"""The audio a baseline session keeps: the recent samples, addressed by absolute sample index."""

from __future__ import annotations

import numpy as np


class AudioBuffer:
    """float32 samples of the session from ``start`` on; ``received`` counts every sample fed."""

    __slots__ = ("samples", "start", "received")

    def __init__(self) -> None:
        self.samples = np.zeros(0, dtype=np.float32)
        self.start = 0  # absolute index of samples[0]
        self.received = 0

    def append(self, audio: np.ndarray) -> None:
        """Add the next float32 samples."""
        self.samples = np.concatenate([self.samples, audio])
        self.received += len(audio)

    def audio(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end) (absolute), from what is still kept."""
        start = max(start, self.start)
        return self.samples[start - self.start:max(start, end) - self.start]

    def window(self, end: int, length: int) -> np.ndarray:
        """The ``length`` samples before ``end``, zero-padded in front where the buffer (or
        the session) does not reach back that far."""
        audio = np.zeros(length, dtype=np.float32)
        available = self.audio(end - length, end)
        audio[length - len(available):] = available
        return audio

    def forget_before(self, keep_from: int, slack: int) -> bool:
        """Drop the samples before ``keep_from`` once more than ``slack`` of them could go
        (copying the rest is not worth it for less). True when it dropped them."""
        if keep_from - self.start <= slack:
            return False
        self.samples = self.samples[keep_from - self.start:].copy()
        self.start = keep_from
        return True
