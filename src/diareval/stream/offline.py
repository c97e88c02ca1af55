"""Stream a recording through an engine in this process: no server, no websocket, no pacing.

Every engine decides from audio time only (``diareval.server.engines.base``), so feeding
50 ms chunks back to back gives the messages the local server would send at real-time
pace, as fast as the engine computes them. The result is a session log like the one the
streaming runner writes (``diareval.sessionlog.LogLine``, "recv" lines only): ``t_audio``
= audio fed when the message came, ``t_wall`` = process CPU seconds spent in the engine
so far (all threads: CTranslate2 decodes in its own), i.e. the time on an idle core.
Score it like any session log (``diareval.score``); used by ``diareval.tune`` and
``benchmarks/engine.py``.

    from diareval.server.engines import make_engine_factory
    from diareval.stream.offline import stream_offline
    factory = make_engine_factory("baseline")
    session = stream_offline(factory, recording, SessionParams(speaker_labels=True))
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from diareval.datasets.audio import SAMPLE_RATE
from diareval.server.engines.base import EngineFactory, SessionParams
from diareval.sessionlog import LogLine

CHUNK = 800  # samples: 50 ms at 16 kHz, the runner's default chunk


@dataclass
class OfflineSession:
    """The messages of one recording, as session log lines, and the engine's CPU time."""

    uri: str
    log: list[LogLine]
    cpu_seconds: float
    audio_seconds: float

    @property
    def real_time_factor(self) -> float:
        """Engine CPU seconds per audio second (NaN for empty audio)."""
        return self.cpu_seconds / self.audio_seconds if self.audio_seconds else float("nan")


def stream_offline(factory: EngineFactory, recording, params: SessionParams,
                   chunk: int = CHUNK) -> OfflineSession:
    """Feed ``recording``'s audio (16 kHz int16) through a new engine from ``factory`` in
    chunks of ``chunk`` samples, then Terminate (``engine.finish()``); every message
    returned becomes a "recv" log line. Works with any engine (oracle, baseline, ...)."""
    audio = recording.load_audio()
    engine = factory(params)
    log = []
    cpu = 0.0
    fed = 0
    for i in range(0, len(audio), chunk):
        piece = audio[i:i + chunk]
        t0 = time.process_time()
        messages = engine.feed(piece)
        cpu += time.process_time() - t0
        fed += len(piece)
        log += [LogLine("recv", cpu, fed / SAMPLE_RATE, m) for m in messages]
    t0 = time.process_time()
    messages = engine.finish()
    cpu += time.process_time() - t0
    log += [LogLine("recv", cpu, fed / SAMPLE_RATE, m) for m in messages]
    return OfflineSession(recording.uri, log, cpu, len(audio) / SAMPLE_RATE)


__all__ = ["CHUNK", "OfflineSession", "stream_offline"]
