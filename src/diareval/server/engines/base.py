"""The engine interface: audio in, v3 messages out. One engine instance per session.

The server owns the protocol (handshake, validation, pacing rules, Begin and
Termination, close codes); an engine only turns audio into the messages the
service would send while that audio arrives (Turn, SpeechStarted,
SpeakerRevision, ...). Time inside an engine is *audio time*: an engine decides
what to emit from how much audio it has received, never from the wall clock, so a
session streamed faster than real time gives the same messages, earlier.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from diareval.constants import SAMPLE_RATE
from diareval.errors import DiarevalError
from diareval.server.messages import ModelFamily, model_family


@dataclass(frozen=True)
class SessionParams:
    """The validated query parameters of one session (PROTOCOL.md names and defaults)."""

    sample_rate: int = SAMPLE_RATE
    encoding: str = "pcm_s16le"
    speech_model: str = "universal-streaming-english"
    speaker_labels: bool = False
    max_speakers: int | None = None
    format_turns: bool = False
    end_of_turn_confidence_threshold: float = 0.4
    min_turn_silence: int | None = None  # ms; None = the model's default
    max_turn_silence: int | None = None  # ms; None = the model's default
    keyterms_prompt: tuple[str, ...] = ()
    language_detection: bool = False
    inactivity_timeout: int | None = None
    # ms between mid-session SpeakerRevision messages; None or 0 = only the end-of-stream one
    speaker_labels_revision_interval_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other accepted parameters, as sent

    @property
    def family(self) -> ModelFamily:
        """The model family of ``speech_model`` (``diareval.server.messages.MODEL_FAMILIES``):
        its turn defaults and message style."""
        return model_family(self.speech_model)

    @property
    def is_u3_pro(self) -> bool:
        """True for the Universal-3 Pro family, whose turn defaults and message style differ
        from Universal-Streaming's (decided by the family table, not the model's name)."""
        return self.family.is_u3_pro

    @property
    def revision_interval_ms(self) -> int:
        """The mid-session revision interval in ms when it applies (``speaker_labels`` on and
        ``speaker_labels_revision_interval_ms`` > 0), else 0 (no mid-session revisions)."""
        if not self.speaker_labels or not self.speaker_labels_revision_interval_ms:
            return 0
        return int(self.speaker_labels_revision_interval_ms)

    @property
    def effective_min_turn_silence(self) -> int:
        """min_turn_silence in ms, or the family's default (U3 Pro 100, Universal-Streaming 400)."""
        if self.min_turn_silence is not None:
            return self.min_turn_silence
        return self.family.min_turn_silence

    @property
    def effective_max_turn_silence(self) -> int:
        """max_turn_silence in ms, or the family's default (U3 Pro 1000, Universal-Streaming 1280)."""
        if self.max_turn_silence is not None:
            return self.max_turn_silence
        return self.family.max_turn_silence


class EngineError(DiarevalError):
    """An engine refuses the session or its audio; the server answers with an Error message
    carrying ``code`` (a v3 close code, default 3005 "server error") and closes with that code.

    Example: the oracle cannot match the audio to any recording it knows.
    """

    def __init__(self, message: str, code: int = 3005):
        super().__init__(message)
        self.code = code


class Engine(ABC):
    """Turns one session's audio into v3 server messages (dicts, JSON-ready).

    Set ``blocking = True`` on engines whose ``feed`` does heavy compute: the
    server then calls them in a worker thread so other sessions keep their pace.
    """

    blocking: bool = False

    def __init__(self, params: SessionParams):
        self.params = params

    @abstractmethod
    def feed(self, pcm: np.ndarray) -> list[dict]:
        """Take the next chunk of mono int16 PCM at ``params.sample_rate``; return messages due now."""

    def force_endpoint(self) -> list[dict]:
        """The client sent ForceEndpoint: finalise the current turn now. Default: nothing."""
        return []

    def update_configuration(self, changes: dict) -> list[dict]:
        """The client sent UpdateConfiguration with ``changes``. Default: nothing."""
        return []

    @abstractmethod
    def finish(self) -> list[dict]:
        """The client sent Terminate: return the last messages (final Turns, revisions)."""


# Builds the engine of a new session from its parameters.
EngineFactory = Callable[[SessionParams], Engine]
