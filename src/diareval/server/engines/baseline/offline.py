"""Stream a recording through a baseline engine without a server, and score it.

The engine decides from audio time only, so feeding 50 ms chunks back to back gives
the messages the local server would send at real-time pace. Used by the tuning
command and ``benchmarks/engine.py``; the session log lines it builds are what the
streaming runner would have logged (``t_audio`` = audio fed when the message came,
``t_wall`` = process CPU seconds spent so far (all threads: CTranslate2 decodes in its own), i.e. the time on an idle core).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from diareval.server.engines.base import EngineFactory, SessionParams

CHUNK = 800  # samples: 50 ms at 16 kHz, the runner's default chunk


@dataclass
class OfflineSession:
    """The messages of one recording, as session log lines, and the engine's CPU time."""

    uri: str
    log: list  # diareval.sessionlog.LogLine
    cpu_seconds: float
    audio_seconds: float

    @property
    def real_time_factor(self) -> float:
        return self.cpu_seconds / self.audio_seconds if self.audio_seconds else float("nan")


def stream_offline(factory: EngineFactory, recording, params: SessionParams) -> OfflineSession:
    """Feed ``recording`` through a new engine in 50 ms chunks; Terminate at the end."""
    from diareval.sessionlog import LogLine

    audio = recording.load_audio()
    engine = factory(params)
    log = []
    cpu = 0.0
    fed = 0
    for i in range(0, len(audio), CHUNK):
        chunk = audio[i:i + CHUNK]
        t0 = time.process_time()
        messages = engine.feed(chunk)
        cpu += time.process_time() - t0
        fed += len(chunk)
        log += [LogLine("recv", cpu, fed / 16000, m) for m in messages]
    t0 = time.process_time()
    messages = engine.finish()
    cpu += time.process_time() - t0
    log += [LogLine("recv", cpu, fed / 16000, m) for m in messages]
    return OfflineSession(recording.uri, log, cpu, len(audio) / 16000)


def score_session(session: OfflineSession, recording, collar: float = 0.0,
                  skip_overlap: bool = False, revisions: bool = True, oracle_labels: bool = False):
    """DER components (diareval.score.der.DERResult) of a word-level hypothesis.

    ``oracle_labels``: score the same words with the reference speaker each overlaps
    most (:func:`diareval.score.oracle_labelled`): the floor of perfect labels.
    """
    from diareval.score.der import Conventions, der
    from diareval.score.hypothesis import hypothesis_from_log, session_turns
    from diareval.score.labelling_floor import oracle_labelled

    conventions = Conventions(collar=collar, skip_overlap=skip_overlap, level="word",
                              unknown="error", revisions=revisions)
    if oracle_labels:
        hypothesis = oracle_labelled(session_turns(session.log, revisions).turns,
                                     recording.reference, uri=recording.uri)
    else:
        hypothesis = hypothesis_from_log(session.log, level="word", unknown="error",
                                         revisions=revisions, uri=recording.uri)
    return der(recording.reference, hypothesis, recording.uem, conventions)


def finalisation_latencies(session: OfflineSession) -> np.ndarray:
    """Audio-time finalisation latency of each final turn: t_audio of its end-of-turn
    message minus its last word's end (seconds)."""
    from diareval.score.hypothesis import session_turns

    turns = session_turns(session.log, revisions=False).turns
    return np.array([t.t_audio - max(w.end for w in t.words) for t in turns if t.words])
