"""Is the session narrow-band? A running measure of the speech's energy above 4 kHz.

A telephone channel (300-3400 Hz, 8 kHz sampling) leaves nothing above 4 kHz, and CAM++
distances between speakers shrink on such audio: on the same conversations of the
``calls`` development set (seed 3), the mean cosine distance between two speakers'
embeddings is 0.59 wide-band and 0.50 through the channel (within one speaker: 0.27 and
0.24), and the re-clustering tree merges the two speakers at 0.44-0.51 instead of
0.51-0.64, under the 0.5 cut (``offline_threshold``) tuned on wide-band meetings. So on
narrow-band audio the re-clustering also undoes lower merges (``split_floor``,
``recluster.cut_tree``). :class:`BandwidthMeter` sums, over the VAD's speech frames, the
power above 4 kHz and in 300-3400 Hz; the audio is narrow-band when the first is under
``narrow_db`` dB of the second (measured: -78 to -81 dB through the telephone channel, -6
to -28 dB on wide-band speech, AMI far-field included), once ``min_speech`` s of speech
were heard.
"""

from __future__ import annotations

import numpy as np

from diareval.constants import SAMPLE_RATE


class BandwidthMeter:
    """Running high-band / voice-band energy of the speech frames it is given."""

    def __init__(self, narrow_db: float = -45.0, min_speech: float = 1.0):
        self.narrow_db = narrow_db
        self.min_speech = min_speech
        self.high = self.voice = 0.0
        self.seconds = 0.0
        self._n = 0
        self._taper = np.zeros(0)
        self._bands = (np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))

    def accept(self, frame: np.ndarray) -> None:
        """One speech frame (float samples at 16 kHz; shorter than 64 samples: ignored)."""
        n = len(frame)
        if n < 64:
            return
        if n != self._n:
            freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
            self._n, self._taper = n, np.hanning(n)
            self._bands = (freqs >= 4000.0, (freqs >= 300.0) & (freqs < 3400.0))
        power = np.abs(np.fft.rfft(np.asarray(frame, dtype=np.float64) * self._taper)) ** 2
        self.high += float(power[self._bands[0]].sum())
        self.voice += float(power[self._bands[1]].sum())
        self.seconds += n / SAMPLE_RATE

    @property
    def level_db(self) -> float | None:
        """Energy above 4 kHz relative to 300-3400 Hz (dB); None before any voice-band energy."""
        if self.voice <= 0:
            return None
        return float(10.0 * np.log10(max(self.high, 1e-30) / self.voice))

    @property
    def narrow(self) -> bool:
        """True once ``min_speech`` s of speech say the audio is narrow-band."""
        level = self.level_db
        return self.seconds >= self.min_speech and level is not None and level < self.narrow_db
