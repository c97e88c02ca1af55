"""The unit every stage passes around: one recording with its reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyannote.core import Annotation, Timeline

from diareval.datasets.audio import SAMPLE_RATE, audio_duration, load_audio


@dataclass(frozen=True)
class ReferenceWord:
    """One reference word: who said it, when (seconds), and what."""

    speaker: str
    start: float
    end: float
    text: str


@dataclass
class Recording:
    """A labelled recording.

    ``reference`` is the speaker annotation, ``uem`` the region to score, ``words``
    optional reference words (for word-count buckets and speaker-attributed WER).
    Audio is read on demand by :meth:`load_audio` as 16 kHz mono int16.
    """

    uri: str
    audio_path: Path
    reference: Annotation
    uem: Timeline
    words: list[ReferenceWord] | None = None
    meta: dict = field(default_factory=dict)

    def load_audio(self) -> np.ndarray:
        """The audio as 16 kHz mono int16 samples."""
        return load_audio(self.audio_path, SAMPLE_RATE)

    @property
    def duration(self) -> float:
        """Audio duration in seconds (from the file header)."""
        return audio_duration(self.audio_path)

    @property
    def speakers(self) -> list[str]:
        """Reference speaker names, sorted."""
        return sorted(self.reference.labels())
