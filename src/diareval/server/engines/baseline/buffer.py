"""The audio a baseline session keeps: the recent samples, addressed by absolute sample index."""

from __future__ import annotations

import numpy as np


class AudioBuffer:
    """float32 samples of the session from ``start`` on; ``received`` counts every sample fed.

    The samples live at the front of an array with room to grow (doubled when full), so a
    50 ms chunk is one copy of itself, not of everything kept (a concatenation per chunk
    copied up to ~50 s of audio 20 times a second). Slices handed out stay valid: appending
    writes only past them, growing and forgetting copy to a new array.
    """

    __slots__ = ("data", "size", "start", "received")

    def __init__(self) -> None:
        self.data = np.zeros(0, dtype=np.float32)
        self.size = 0  # samples kept: data[:size]
        self.start = 0  # absolute index of data[0]
        self.received = 0

    @property
    def samples(self) -> np.ndarray:
        """The samples kept (a view)."""
        return self.data[:self.size]

    def append(self, audio: np.ndarray) -> None:
        """Add the next float32 samples."""
        n = len(audio)
        if self.size + n > len(self.data):
            grown = np.zeros(max(2 * len(self.data), self.size + n, 1 << 16), dtype=np.float32)
            grown[:self.size] = self.data[:self.size]
            self.data = grown
        self.data[self.size:self.size + n] = audio
        self.size += n
        self.received += n

    def audio(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end) (absolute), from what is still kept."""
        start = max(start, self.start)
        return self.data[start - self.start:min(max(start, end) - self.start, self.size)]

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
        kept = self.data[keep_from - self.start:self.size]
        self.data = np.zeros(max(2 * len(kept), 1 << 16), dtype=np.float32)
        self.data[:len(kept)] = kept
        self.size = len(kept)
        self.start = keep_from
        return True
